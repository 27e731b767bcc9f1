//! Crash durability: the real `hearth` binary under concurrent write load is killed with
//! SIGKILL, restarted on the same data directory, and every write it acknowledged must still be
//! there — readable by event id, part of the room timeline, and bound to its transaction id so
//! a client retry gets the same event back.
//!
//! Three cycles of: 8 writers send messages, topic changes and redactions to 3 rooms for a
//! fixed time, the server is killed mid-flight, restarted and checked. Writes that were in
//! flight at the kill have an unknown outcome; after the restart they are retried with the same
//! transaction id (as a client would), which must succeed and stay idempotent.
//!
//! Runs with durable writes (`storage.sync_writes = true`, the default).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::{
    collections::{HashMap, HashSet},
    fs::File,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use futures::{StreamExt, stream};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

const USERS: usize = 4;
const ROOMS: usize = 3;
const WRITERS: usize = 8;
/// How long each cycle's load runs before the kill (fixed, so runs are comparable).
const LOAD_MS: [u64; 3] = [1300, 2100, 1700];
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Parallel requests during verification.
const CHECK_CONCURRENCY: usize = 8;

/// A running `hearth serve` child process; killed (SIGKILL) and reaped when dropped, so a
/// failing test leaves no server behind. Prints the server log when dropped during a panic.
struct ServerProcess {
    child: Option<Child>,
    log: PathBuf,
    base: String,
}

impl ServerProcess {
    /// Writes the config for `port` and starts the server on `dir`'s database.
    fn spawn(dir: &Path, port: u16, generation: usize) -> Self {
        let config_path = dir.join("hearth.toml");
        let database = toml::Value::String(dir.join("db").display().to_string());
        let config = format!(
            "database_path = {database}\n\
             port = {port}\n\
             allow_registration = true\n\
             log_level = \"warn\"\n\
             [storage]\n\
             sync_writes = true\n\
             [password_hash]\n\
             memory_kib = 64\n\
             iterations = 1\n\
             [rate_limits]\n\
             enabled = false\n"
        );
        std::fs::write(&config_path, config).expect("write config");
        let log = dir.join(format!("server-{generation}.log"));
        let out = File::create(&log).expect("create log");
        let err = out.try_clone().expect("clone log handle");
        let mut command = Command::new(env!("CARGO_BIN_EXE_hearth"));
        command
            .arg("--config")
            .arg(&config_path)
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        // The file must decide the settings (sync_writes above all), not the caller's shell.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("HEARTH_") {
                command.env_remove(name);
            }
        }
        let child = command.spawn().expect("spawn hearth");
        ServerProcess {
            child: Some(child),
            log,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Polls `/versions` until it answers 200; panics if the process exits or it takes too long.
    async fn wait_ready(&mut self) -> Duration {
        let started = Instant::now();
        let http = Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("client");
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().expect("try_wait"))
            {
                panic!(
                    "hearth exited during startup ({status}):\n{}",
                    self.log_tail()
                );
            }
            let url = format!("{}/_matrix/client/versions", self.base);
            if let Ok(response) = http.get(&url).send().await
                && response.status() == StatusCode::OK
            {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < READY_TIMEOUT,
                "hearth not ready after {READY_TIMEOUT:?}:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL (what `Child::kill` sends on Unix) and reap, so the database lock is free.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "--- server log ({}) ---\n{}",
                self.log.display(),
                self.log_tail()
            );
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

#[derive(Clone, Debug)]
struct User {
    user_id: String,
    token: String,
}

/// One write a client made.
#[derive(Clone, Debug)]
enum Op {
    Message {
        user: usize,
        room: usize,
        txn: String,
        body: String,
    },
    Topic {
        user: usize,
        room: usize,
        topic: String,
    },
    Redact {
        user: usize,
        room: usize,
        target: String,
        txn: String,
    },
}

impl Op {
    fn user(&self) -> usize {
        match self {
            Op::Message { user, .. } | Op::Topic { user, .. } | Op::Redact { user, .. } => *user,
        }
    }

    fn room(&self) -> usize {
        match self {
            Op::Message { room, .. } | Op::Topic { room, .. } | Op::Redact { room, .. } => *room,
        }
    }

    /// Whether re-sending is idempotent (carries a transaction id).
    fn has_txn(&self) -> bool {
        !matches!(self, Op::Topic { .. })
    }
}

/// A write the server answered 200 for, with the event id it returned.
#[derive(Clone, Debug)]
struct Acked {
    op: Op,
    event_id: String,
}

#[derive(Default)]
struct Ledger {
    acked: Vec<Acked>,
    /// Writes in flight when the server died: outcome unknown.
    unknown: Vec<Op>,
    /// Targets of acknowledged redactions.
    redacted: HashSet<String>,
    /// Anything that went wrong while the server was supposed to be healthy.
    failures: Vec<String>,
}

enum SendError {
    /// No complete response (connection refused/reset, timeout): outcome unknown.
    Transport(String),
    /// The server answered, but not 200.
    Status(StatusCode, String),
}

struct Env {
    http: Client,
    base: String,
    users: Arc<Vec<User>>,
    rooms: Arc<Vec<String>>,
}

impl Env {
    fn new(base: &str, users: &Arc<Vec<User>>, rooms: &Arc<Vec<String>>) -> Self {
        Env {
            // A fresh client per server process: no pooled connections to a dead one.
            http: Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .connect_timeout(Duration::from_secs(2))
                .build()
                .expect("client"),
            base: base.to_owned(),
            users: users.clone(),
            rooms: rooms.clone(),
        }
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<Value, SendError> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| SendError::Transport(e.to_string()))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| SendError::Transport(e.to_string()))?;
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status != StatusCode::OK {
            return Err(SendError::Status(status, value.to_string()));
        }
        Ok(value)
    }

    /// Like `request`, but any failure panics.
    async fn ok(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Value {
        match self.request(method, path, token, body).await {
            Ok(value) => value,
            Err(SendError::Transport(e)) => panic!("{path}: transport error {e}"),
            Err(SendError::Status(status, body)) => panic!("{path}: {status} {body}"),
        }
    }

    /// Performs a write; returns the event id from the 200 response.
    async fn perform(&self, op: &Op) -> Result<String, SendError> {
        let token = self.users[op.user()].token.as_str();
        let room = &self.rooms[op.room()];
        let (path, body) = match op {
            Op::Message { txn, body, .. } => (
                format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}"),
                json!({ "msgtype": "m.text", "body": body }),
            ),
            Op::Topic { topic, .. } => (
                format!("/_matrix/client/v3/rooms/{room}/state/m.room.topic/"),
                json!({ "topic": topic }),
            ),
            Op::Redact { target, txn, .. } => (
                format!("/_matrix/client/v3/rooms/{room}/redact/{target}/{txn}"),
                json!({ "reason": "crash test" }),
            ),
        };
        let value = self
            .request(Method::PUT, &path, Some(token), Some(body))
            .await?;
        value["event_id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| SendError::Status(StatusCode::OK, format!("no event_id: {value}")))
    }
}

/// One writer: sends until `killed`, recording acknowledged and in-flight writes.
async fn writer(
    env: Arc<Env>,
    index: usize,
    cycle: usize,
    killed: Arc<AtomicBool>,
    ledger: Arc<Mutex<Ledger>>,
) {
    let user = index % USERS;
    let mut own_messages: Vec<(usize, String)> = Vec::new();
    let mut n = 0usize;
    while !killed.load(Ordering::SeqCst) {
        n += 1;
        let room = (index + n) % ROOMS;
        let op = if n.is_multiple_of(25)
            && let Some((room, target)) = own_messages.pop()
        {
            Op::Redact {
                user,
                room,
                target,
                txn: format!("r{cycle}-w{index}-{n}"),
            }
        } else if n.is_multiple_of(10) {
            Op::Topic {
                user,
                room,
                topic: format!("topic c{cycle} w{index} n{n}"),
            }
        } else {
            Op::Message {
                user,
                room,
                txn: format!("m{cycle}-w{index}-{n}"),
                body: format!("message c{cycle} w{index} n{n}"),
            }
        };
        match env.perform(&op).await {
            Ok(event_id) => {
                let mut ledger = ledger.lock().unwrap();
                match &op {
                    Op::Message { room, .. } => own_messages.push((*room, event_id.clone())),
                    Op::Redact { target, .. } => {
                        ledger.redacted.insert(target.clone());
                    }
                    Op::Topic { .. } => {}
                }
                ledger.acked.push(Acked { op, event_id });
            }
            Err(SendError::Transport(e)) => {
                let mut ledger = ledger.lock().unwrap();
                if killed.load(Ordering::SeqCst) {
                    ledger.unknown.push(op);
                } else {
                    ledger.failures.push(format!(
                        "writer {index}: transport error before the kill: {e}"
                    ));
                }
                return;
            }
            Err(SendError::Status(status, body)) => {
                ledger
                    .lock()
                    .unwrap()
                    .failures
                    .push(format!("writer {index}: {op:?} answered {status}: {body}"));
                return;
            }
        }
    }
}

/// What `GET /rooms/{room}/event/{id}` must show for an acknowledged write, or why not.
fn check_event(env: &Env, acked: &Acked, event: &Value, redacted: bool) -> Result<(), String> {
    let user = &env.users[acked.op.user()].user_id;
    let room = &env.rooms[acked.op.room()];
    let mismatch = |what: &str| Err(format!("{what} differs: {event}"));
    if event["event_id"] != acked.event_id.as_str() {
        return mismatch("event_id");
    }
    if event["sender"] != user.as_str() || event["room_id"] != room.as_str() {
        return mismatch("sender/room_id");
    }
    match &acked.op {
        Op::Message { body, .. } => {
            if event["type"] != "m.room.message" {
                return mismatch("type");
            }
            let expected = if redacted {
                json!({})
            } else {
                json!({ "msgtype": "m.text", "body": body })
            };
            if event["content"] != expected {
                return mismatch(if redacted {
                    "content (redacted)"
                } else {
                    "content"
                });
            }
        }
        Op::Topic { topic, .. } => {
            if event["type"] != "m.room.topic"
                || event["state_key"] != ""
                || event["content"]["topic"] != topic.as_str()
            {
                return mismatch("topic event");
            }
        }
        Op::Redact { target, .. } => {
            let redacts = event
                .get("redacts")
                .or_else(|| event["content"].get("redacts"));
            if event["type"] != "m.room.redaction" || redacts != Some(&json!(target)) {
                return mismatch("redaction");
            }
        }
    }
    Ok(())
}

#[derive(Default, Debug)]
struct Report {
    resolved: usize,
    verified: usize,
    idempotent: usize,
    timeline: usize,
    lost: Vec<String>,
}

/// Everything that must hold after a restart. Panics with details on any lost or wrong write.
async fn verify(env: &Env, ledger: &Mutex<Ledger>) -> Report {
    let mut report = Report::default();

    // 1. Writes with unknown outcome: a client retries them with the same txn id. The retry
    //    must succeed, and a second retry must return the same event.
    let unknown = std::mem::take(&mut ledger.lock().unwrap().unknown);
    for op in unknown.into_iter().filter(Op::has_txn) {
        let first = env.perform(&op).await;
        let second = env.perform(&op).await;
        match (first, second) {
            (Ok(a), Ok(b)) if a == b => {
                let mut ledger = ledger.lock().unwrap();
                if let Op::Redact { target, .. } = &op {
                    ledger.redacted.insert(target.clone());
                }
                ledger.acked.push(Acked { op, event_id: a });
                report.resolved += 1;
            }
            (Ok(a), Ok(b)) => report.lost.push(format!(
                "retry of in-flight {op:?} not idempotent: {a} then {b}"
            )),
            (Err(SendError::Status(s, b)), _) | (_, Err(SendError::Status(s, b))) => report
                .lost
                .push(format!("retry of in-flight {op:?}: {s} {b}")),
            (Err(SendError::Transport(e)), _) | (_, Err(SendError::Transport(e))) => report
                .lost
                .push(format!("retry of in-flight {op:?}: transport {e}")),
        }
    }
    let (acked, redacted) = {
        let ledger = ledger.lock().unwrap();
        (ledger.acked.clone(), ledger.redacted.clone())
    };

    // 2. Every acknowledged event is readable by id with the content that was sent.
    let results: Vec<Result<(), String>> = stream::iter(acked.iter())
        .map(|a| {
            let redacted = redacted.contains(&a.event_id);
            async move {
                let room = &env.rooms[a.op.room()];
                let path = format!("/_matrix/client/v3/rooms/{room}/event/{}", a.event_id);
                let token = env.users[a.op.user()].token.as_str();
                match env.request(Method::GET, &path, Some(token), None).await {
                    Ok(event) => check_event(env, a, &event, redacted)
                        .map_err(|e| format!("{:?} ({}): {e}", a.op, a.event_id)),
                    Err(SendError::Status(s, b)) => {
                        Err(format!("{:?} ({}): GET {s} {b}", a.op, a.event_id))
                    }
                    Err(SendError::Transport(e)) => {
                        Err(format!("{:?} ({}): GET transport {e}", a.op, a.event_id))
                    }
                }
            }
        })
        .buffer_unordered(CHECK_CONCURRENCY)
        .collect()
        .await;
    for result in results {
        match result {
            Ok(()) => report.verified += 1,
            Err(e) => report.lost.push(e),
        }
    }

    // 3. Re-sending an acknowledged txn id returns the same event (the txn mapping survived).
    let results: Vec<Result<(), String>> = stream::iter(acked.iter().filter(|a| a.op.has_txn()))
        .map(|a| async move {
            match env.perform(&a.op).await {
                Ok(id) if id == a.event_id => Ok(()),
                Ok(id) => Err(format!(
                    "re-sent {:?}: got {id}, acknowledged {}",
                    a.op, a.event_id
                )),
                Err(SendError::Status(s, b)) => Err(format!("re-sent {:?}: {s} {b}", a.op)),
                Err(SendError::Transport(e)) => Err(format!("re-sent {:?}: transport {e}", a.op)),
            }
        })
        .buffer_unordered(CHECK_CONCURRENCY)
        .collect()
        .await;
    for result in results {
        match result {
            Ok(()) => report.idempotent += 1,
            Err(e) => report.lost.push(e),
        }
    }

    // 4. Every acknowledged event is in its room's timeline (/messages, newest first), once.
    for (index, room) in env.rooms.iter().enumerate() {
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut from: Option<String> = None;
        loop {
            let mut path = format!("/_matrix/client/v3/rooms/{room}/messages?dir=b&limit=1000");
            if let Some(from) = &from {
                path.push_str(&format!("&from={from}"));
            }
            let page = env
                .ok(Method::GET, &path, Some(&env.users[0].token), None)
                .await;
            let chunk = page["chunk"].as_array().cloned().unwrap_or_default();
            for event in &chunk {
                if let Some(id) = event["event_id"].as_str() {
                    *seen.entry(id.to_owned()).or_default() += 1;
                }
            }
            match page["end"].as_str() {
                Some(end) if !chunk.is_empty() => from = Some(end.to_owned()),
                _ => break,
            }
        }
        for (id, times) in &seen {
            if *times > 1 {
                report
                    .lost
                    .push(format!("{id} appears {times} times in {room}'s timeline"));
            }
        }
        for a in acked.iter().filter(|a| a.op.room() == index) {
            if seen.contains_key(&a.event_id) {
                report.timeline += 1;
            } else {
                report.lost.push(format!(
                    "{:?} ({}) missing from the timeline of {room}",
                    a.op, a.event_id
                ));
            }
        }
    }

    // 5. /sync works for everyone and shows every room as joined.
    for user in env.users.iter() {
        let sync = env
            .ok(
                Method::GET,
                "/_matrix/client/v3/sync?timeout=0",
                Some(&user.token),
                None,
            )
            .await;
        for room in env.rooms.iter() {
            if sync["rooms"]["join"].get(room).is_none() {
                report.lost.push(format!(
                    "/sync of {} lacks joined room {room}",
                    user.user_id
                ));
            }
        }
    }

    // 6. New writes work (and become part of what later cycles check).
    for user in 0..USERS {
        for room in 0..ROOMS {
            let n = ledger.lock().unwrap().acked.len();
            let op = Op::Message {
                user,
                room,
                txn: format!("after-{n}-u{user}-r{room}"),
                body: format!("after restart {n} u{user} r{room}"),
            };
            match env.perform(&op).await {
                Ok(event_id) => ledger.lock().unwrap().acked.push(Acked { op, event_id }),
                Err(SendError::Status(s, b)) => report
                    .lost
                    .push(format!("new send {op:?} after restart: {s} {b}")),
                Err(SendError::Transport(e)) => report
                    .lost
                    .push(format!("new send {op:?} after restart: transport {e}")),
            }
        }
    }
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill_under_concurrent_load() {
    let test_started = Instant::now();
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let mut generation = 0;
    let mut server = ServerProcess::spawn(dir.path(), port, generation);
    let ready = server.wait_ready().await;
    println!("crash: server ready on port {port} in {ready:?}");

    // Users, and rooms everyone has joined and may set the topic in.
    let setup = Env::new(&server.base, &Arc::new(Vec::new()), &Arc::new(Vec::new()));
    let mut users = Vec::new();
    for i in 0..USERS {
        let body = setup
            .ok(
                Method::POST,
                "/_matrix/client/v3/register",
                None,
                Some(json!({
                    "username": format!("writer{i}"),
                    "password": format!("password-{i}"),
                    "auth": { "type": "m.login.dummy" },
                })),
            )
            .await;
        users.push(User {
            user_id: body["user_id"].as_str().expect("user_id").to_owned(),
            token: body["access_token"]
                .as_str()
                .expect("access_token")
                .to_owned(),
        });
    }
    let power: serde_json::Map<String, Value> = users
        .iter()
        .map(|u| (u.user_id.clone(), json!(100)))
        .collect();
    let mut rooms = Vec::new();
    for i in 0..ROOMS {
        let body = setup
            .ok(
                Method::POST,
                "/_matrix/client/v3/createRoom",
                Some(&users[0].token),
                Some(json!({
                    "preset": "public_chat",
                    "name": format!("crash room {i}"),
                    "power_level_content_override": { "users": power },
                })),
            )
            .await;
        let room = body["room_id"].as_str().expect("room_id").to_owned();
        for user in &users[1..] {
            setup
                .ok(
                    Method::POST,
                    &format!("/_matrix/client/v3/join/{room}"),
                    Some(&user.token),
                    Some(json!({})),
                )
                .await;
        }
        rooms.push(room);
    }
    let users = Arc::new(users);
    let rooms = Arc::new(rooms);
    let ledger = Arc::new(Mutex::new(Ledger::default()));

    let mut kills = 0;
    let mut total_unknown = 0;
    let mut last = Report::default();
    for (cycle, load_ms) in LOAD_MS.iter().enumerate() {
        let env = Arc::new(Env::new(&server.base, &users, &rooms));
        let killed = Arc::new(AtomicBool::new(false));
        let acked_before = ledger.lock().unwrap().acked.len();
        let writers: Vec<_> = (0..WRITERS)
            .map(|i| {
                tokio::spawn(writer(
                    env.clone(),
                    i,
                    cycle,
                    killed.clone(),
                    ledger.clone(),
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(*load_ms)).await;
        killed.store(true, Ordering::SeqCst);
        server.kill();
        kills += 1;
        for writer in writers {
            tokio::time::timeout(REQUEST_TIMEOUT + Duration::from_secs(5), writer)
                .await
                .expect("writer stops after the kill")
                .expect("writer task");
        }
        let (acked_now, unknown, failures) = {
            let ledger = ledger.lock().unwrap();
            (
                ledger.acked.len(),
                ledger.unknown.len(),
                ledger.failures.clone(),
            )
        };
        assert!(
            failures.is_empty(),
            "writes failed while the server was up:\n{}",
            failures.join("\n")
        );
        total_unknown += unknown;
        println!(
            "crash: cycle {cycle}: {}ms of load, {} writes acknowledged, {unknown} in flight at SIGKILL",
            load_ms,
            acked_now - acked_before
        );

        generation += 1;
        server = ServerProcess::spawn(dir.path(), port, generation);
        let ready = server.wait_ready().await;
        let env = Env::new(&server.base, &users, &rooms);
        let check_started = Instant::now();
        let report = verify(&env, &ledger).await;
        println!(
            "crash: cycle {cycle}: restarted in {ready:?}; {} in-flight writes retried; \
             {} acknowledged events verified by id, {} txn ids idempotent, {} in timelines, \
             {} problems ({:?})",
            report.resolved,
            report.verified,
            report.idempotent,
            report.timeline,
            report.lost.len(),
            check_started.elapsed()
        );
        assert!(
            report.lost.is_empty(),
            "after SIGKILL #{kills}, {} acknowledged writes lost or wrong:\n{}",
            report.lost.len(),
            report.lost.join("\n")
        );
        last = report;
    }
    let (acked, messages, topics, redactions) = {
        let ledger = ledger.lock().unwrap();
        let count = |f: fn(&Op) -> bool| ledger.acked.iter().filter(|a| f(&a.op)).count();
        (
            ledger.acked.len(),
            count(|op| matches!(op, Op::Message { .. })),
            count(|op| matches!(op, Op::Topic { .. })),
            count(|op| matches!(op, Op::Redact { .. })),
        )
    };
    println!(
        "crash: done: {kills} SIGKILLs, {acked} acknowledged writes ({messages} messages, \
         {topics} topic changes, {redactions} redactions; {} verified after the last kill), \
         {total_unknown} in flight at kills, 0 lost, {:?} total",
        last.verified,
        test_started.elapsed()
    );
}
