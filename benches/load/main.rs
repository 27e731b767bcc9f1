//! `hearth-bench`: a load generator that drives any homeserver through the client-server API
//! only, so Hearth and other servers are measured the same way. Each scenario checks
//! correctness while it measures (every message reaches every receiver exactly once) and
//! reports an error instead of a number when something is wrong. With `--pid`, it reads the
//! server's CPU time and RSS from `/proc` before and after each scenario and reports CPU
//! milliseconds per operation — the figure to trust on a shared, noisy machine.
//!
//! Run against a server on loopback only, e.g.
//! `hearth-bench --url http://127.0.0.1:8008 --pid 1234 send --messages 500`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a load generator reports failures by exiting"
)]

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

mod keys;
mod media;
mod profile;
mod push;

use clap::{Parser, Subcommand};
use serde_json::{Value, json};

#[derive(Parser)]
#[command(
    name = "hearth-bench",
    about = "Client-API load scenarios for Matrix homeservers"
)]
struct Cli {
    /// Base URL of the homeserver (loopback).
    #[arg(long, default_value = "http://127.0.0.1:8008")]
    url: String,
    /// PID of the server process, to report its CPU time and RSS.
    #[arg(long)]
    pid: Option<u32>,
    /// Other processes (another server on the same machine) that must also be idle before a
    /// measurement starts, so their background work does not land in this one's numbers.
    #[arg(long = "also-idle")]
    also_idle: Vec<u32>,
    /// Prefix for generated user names (unique per run).
    #[arg(long, default_value_t = format!("b{}", std::process::id()))]
    prefix: String,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Clone)]
enum Scenario {
    /// Register N users (m.login.dummy).
    Register {
        #[arg(long, default_value_t = 50)]
        users: usize,
    },
    /// One sender, N sequential messages into one room.
    Send {
        #[arg(long, default_value_t = 500)]
        messages: usize,
    },
    /// S concurrent senders, each into its own room.
    Concurrent {
        #[arg(long, default_value_t = 10)]
        senders: usize,
        #[arg(long, default_value_t = 100)]
        messages: usize,
    },
    /// R receivers long-polling /sync in one room; one sender; time until all have each message.
    Fanout {
        #[arg(long, default_value_t = 20)]
        receivers: usize,
        #[arg(long, default_value_t = 50)]
        messages: usize,
    },
    /// Initial /sync of a user in K rooms of M members with T events each.
    InitialSync {
        #[arg(long, default_value_t = 50)]
        rooms: usize,
        #[arg(long, default_value_t = 50)]
        members: usize,
        #[arg(long, default_value_t = 20)]
        events: usize,
        #[arg(long, default_value_t = 5)]
        samples: usize,
    },
    /// One sender in a room of M members, P of them with a pusher (the bench is their push
    /// gateway); N messages, measured until every push has arrived.
    Push {
        #[arg(long, default_value_t = 1000)]
        members: usize,
        #[arg(long, default_value_t = 100)]
        pushers: usize,
        #[arg(long, default_value_t = 20)]
        messages: usize,
    },
    /// Upload and download R files of M MiB (MiB/s, server CPU per MiB, peak RSS during the
    /// uploads), then thumbnails of P 4000×3000 JPEGs (first request and cached).
    Media {
        #[arg(long, default_value_t = 20)]
        size_mib: usize,
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        #[arg(long, default_value_t = 3)]
        photos: usize,
    },
    /// U users with device keys and cross-signing keys; one `/keys/query` for all of them, S
    /// times.
    KeysQuery {
        #[arg(long, default_value_t = 500)]
        users: usize,
        #[arg(long, default_value_t = 20)]
        samples: usize,
    },
    /// D devices with one-time keys; one `/keys/claim` of a key of every device, S times.
    KeysClaim {
        #[arg(long, default_value_t = 100)]
        devices: usize,
        #[arg(long, default_value_t = 20)]
        samples: usize,
    },
    /// A user in R rooms changes their display name: the update's answer time, the time until
    /// every room has the new member event, and another user's /sync latency meanwhile.
    Profile {
        #[arg(long, default_value_t = 500)]
        rooms: usize,
    },
    /// C idle long-polling clients; server RSS and CPU while idle.
    Idle {
        #[arg(long, default_value_t = 200)]
        clients: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
}

/// CPU ticks and RSS of a process.
#[derive(Clone, Copy)]
struct ProcStats {
    cpu_ms: f64,
    rss_kib: u64,
}

fn proc_stats(pid: Option<u32>) -> Option<ProcStats> {
    let pid = pid?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find(|l| l.starts_with("VmRSS"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(ProcStats {
        cpu_ms: ticks * 10.0,
        rss_kib,
    })
}

/// A client for one user.
#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    url: String,
    token: String,
}

type Failure = String;

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<Value, Failure> {
    let mut request = http.request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request
        .send()
        .await
        .map_err(|e| format!("request to {url} failed: {e}"))?;
    let status = response.status();
    let value: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(format!("{url} answered {status}: {value}"));
    }
    Ok(value)
}

impl Client {
    async fn register(http: &reqwest::Client, url: &str, name: &str) -> Result<Client, Failure> {
        let body = json!({ "username": name, "password": "bench-password-1", "auth": { "type": "m.login.dummy" }, "inhibit_login": false });
        let value = call(
            http,
            reqwest::Method::POST,
            &format!("{url}/_matrix/client/v3/register"),
            None,
            Some(&body),
        )
        .await?;
        Ok(Client {
            http: http.clone(),
            url: url.to_owned(),
            token: value["access_token"]
                .as_str()
                .ok_or("no access_token")?
                .to_owned(),
        })
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, Failure> {
        call(
            &self.http,
            reqwest::Method::POST,
            &format!("{}{path}", self.url),
            Some(&self.token),
            Some(&body),
        )
        .await
    }

    async fn put(&self, path: &str, body: Value) -> Result<Value, Failure> {
        call(
            &self.http,
            reqwest::Method::PUT,
            &format!("{}{path}", self.url),
            Some(&self.token),
            Some(&body),
        )
        .await
    }

    async fn get(&self, path: &str) -> Result<Value, Failure> {
        call(
            &self.http,
            reqwest::Method::GET,
            &format!("{}{path}", self.url),
            Some(&self.token),
            None,
        )
        .await
    }

    /// GET, timed from sending the request to the last byte of the body: the server's answer
    /// time, without the client's JSON parsing (which is the same work for every server).
    async fn get_timed(&self, path: &str) -> Result<(Value, f64), Failure> {
        let url = format!("{}{path}", self.url);
        let start = Instant::now();
        let response = self
            .http
            .get(&url)
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| format!("request to {url} failed: {e}"))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| format!("reading {url} failed: {e}"))?;
        let elapsed_ms = start.elapsed().as_secs_f64() * 1000.0;
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(format!("{url} answered {status}: {value}"));
        }
        Ok((value, elapsed_ms))
    }

    async fn create_room(&self, public: bool) -> Result<String, Failure> {
        let preset = if public {
            "public_chat"
        } else {
            "private_chat"
        };
        let value = self
            .post("/_matrix/client/v3/createRoom", json!({ "preset": preset }))
            .await?;
        Ok(value["room_id"].as_str().ok_or("no room_id")?.to_owned())
    }

    async fn join(&self, room: &str) -> Result<(), Failure> {
        self.post(&format!("/_matrix/client/v3/join/{room}"), json!({}))
            .await
            .map(|_| ())
    }

    async fn send(&self, room: &str, txn: &str, body: &str) -> Result<String, Failure> {
        let path = format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}");
        let value = self
            .put(&path, json!({ "msgtype": "m.text", "body": body }))
            .await?;
        Ok(value["event_id"].as_str().ok_or("no event_id")?.to_owned())
    }

    async fn sync(&self, since: Option<&str>, timeout_ms: u64) -> Result<Value, Failure> {
        let path = match since {
            Some(since) => format!(
                "/_matrix/client/v3/sync?since={since}&timeout={timeout_ms}&set_presence=offline"
            ),
            None => "/_matrix/client/v3/sync?set_presence=offline".to_owned(),
        };
        self.get(&path).await
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn latency_summary(mut samples: Vec<f64>) -> Value {
    samples.sort_by(f64::total_cmp);
    json!({ "p50_ms": round(percentile(&samples, 0.5)), "p99_ms": round(percentile(&samples, 0.99)), "samples": samples.len() })
}

fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

async fn register_many(
    http: &reqwest::Client,
    url: &str,
    prefix: &str,
    tag: &str,
    count: usize,
) -> Result<Vec<Client>, Failure> {
    let mut clients = Vec::with_capacity(count);
    for i in 0..count {
        clients.push(Client::register(http, url, &format!("{prefix}{tag}{i}")).await?);
    }
    Ok(clients)
}

/// Runs a scenario; returns (operations, result fields).
async fn run(cli: &Cli, http: &reqwest::Client) -> Result<(usize, Value, ProcWindow), Failure> {
    let url = cli.url.trim_end_matches('/');
    let prefix = &cli.prefix;
    let mut window = ProcWindow::default();
    match cli.scenario.clone() {
        Scenario::Register { users } => {
            settle(cli.pid, &cli.also_idle).await;
            window.start(cli.pid);
            let started = Instant::now();
            let mut latencies = Vec::with_capacity(users);
            for i in 0..users {
                let t = Instant::now();
                Client::register(http, url, &format!("{prefix}reg{i}")).await?;
                latencies.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            let elapsed = started.elapsed().as_secs_f64();
            window.stop(cli.pid);
            Ok((
                users,
                json!({ "users_per_s": round(users as f64 / elapsed), "latency": latency_summary(latencies) }),
                window,
            ))
        }
        Scenario::Push {
            members,
            pushers,
            messages,
        } => push::run(cli, http, members, pushers, messages).await,
        Scenario::KeysQuery { users, samples } => keys::run_query(cli, http, users, samples).await,
        Scenario::Profile { rooms } => profile::run(cli, http, rooms).await,
        Scenario::KeysClaim { devices, samples } => {
            keys::run_claim(cli, http, devices, samples).await
        }
        Scenario::Media {
            size_mib,
            rounds,
            photos,
        } => media::run(cli, http, size_mib, rounds, photos).await,
        Scenario::Send { messages } => {
            let sender = Client::register(http, url, &format!("{prefix}sender")).await?;
            let room = sender.create_room(false).await?;
            settle(cli.pid, &cli.also_idle).await;
            window.start(cli.pid);
            let started = Instant::now();
            let mut latencies = Vec::with_capacity(messages);
            for i in 0..messages {
                let t = Instant::now();
                sender
                    .send(&room, &format!("s{i}"), &format!("message {i}"))
                    .await?;
                latencies.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            let elapsed = started.elapsed().as_secs_f64();
            window.stop(cli.pid);
            Ok((
                messages,
                json!({ "messages_per_s": round(messages as f64 / elapsed), "latency": latency_summary(latencies) }),
                window,
            ))
        }
        Scenario::Concurrent { senders, messages } => {
            let clients = register_many(http, url, prefix, "conc", senders).await?;
            let mut rooms = Vec::new();
            for client in &clients {
                rooms.push(client.create_room(false).await?);
            }
            settle(cli.pid, &cli.also_idle).await;
            window.start(cli.pid);
            let started = Instant::now();
            let tasks: Vec<_> = clients
                .into_iter()
                .zip(rooms)
                .map(|(client, room)| {
                    tokio::spawn(async move {
                        for i in 0..messages {
                            client
                                .send(&room, &format!("c{i}"), &format!("message {i}"))
                                .await?;
                        }
                        Ok::<(), Failure>(())
                    })
                })
                .collect();
            for task in tasks {
                task.await.map_err(|e| e.to_string())??;
            }
            let elapsed = started.elapsed().as_secs_f64();
            window.stop(cli.pid);
            let total = senders * messages;
            Ok((
                total,
                json!({ "messages_per_s": round(total as f64 / elapsed) }),
                window,
            ))
        }
        Scenario::Fanout {
            receivers,
            messages,
        } => {
            let sender = Client::register(http, url, &format!("{prefix}fanout-sender")).await?;
            let room = sender.create_room(true).await?;
            let clients = register_many(http, url, prefix, "fan", receivers).await?;
            let mut tokens = Vec::new();
            for client in &clients {
                client.join(&room).await?;
                tokens.push(
                    client.sync(None, 0).await?["next_batch"]
                        .as_str()
                        .ok_or("no next_batch")?
                        .to_owned(),
                );
            }
            // Each receiver long-polls and records when it saw each message body.
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, String, Instant)>();
            let mut pollers = Vec::new();
            for (index, (client, token)) in clients.into_iter().zip(tokens).enumerate() {
                let (tx, room) = (tx.clone(), room.clone());
                pollers.push(tokio::spawn(async move {
                    let mut since = token;
                    let mut seen = 0;
                    while seen < messages {
                        let body = client.sync(Some(&since), 30_000).await?;
                        let now = Instant::now();
                        since = body["next_batch"]
                            .as_str()
                            .ok_or("no next_batch")?
                            .to_owned();
                        for event in body["rooms"]["join"][&room]["timeline"]["events"]
                            .as_array()
                            .into_iter()
                            .flatten()
                        {
                            if let Some(text) = event["content"]["body"].as_str() {
                                let _ = tx.send((index, text.to_owned(), now));
                                seen += 1;
                            }
                        }
                    }
                    Ok::<(), Failure>(())
                }));
            }
            drop(tx);
            tokio::time::sleep(Duration::from_millis(300)).await;
            settle(cli.pid, &cli.also_idle).await;
            window.start(cli.pid);
            let mut sent_at = HashMap::new();
            for i in 0..messages {
                let text = format!("fanout {i}");
                sent_at.insert(text.clone(), Instant::now());
                sender.send(&room, &format!("f{i}"), &text).await?;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let mut received: HashMap<String, Vec<Instant>> = HashMap::new();
            let mut counts = vec![HashMap::<String, usize>::new(); receivers];
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            while received.values().filter(|v| v.len() == receivers).count() < messages {
                let next = tokio::time::timeout_at(deadline, rx.recv())
                    .await
                    .map_err(|_| "fan-out timed out: not every receiver got every message")?;
                let Some((index, text, at)) = next else { break };
                *counts[index].entry(text.clone()).or_default() += 1;
                received.entry(text).or_default().push(at);
            }
            window.stop(cli.pid);
            for poller in pollers {
                poller.await.map_err(|e| e.to_string())??;
            }
            for (index, seen) in counts.iter().enumerate() {
                if let Some((text, n)) = seen.iter().find(|(_, n)| **n != 1) {
                    return Err(format!("receiver {index} saw {text:?} {n} times"));
                }
                if seen.len() != messages {
                    return Err(format!(
                        "receiver {index} saw {} of {messages} messages",
                        seen.len()
                    ));
                }
            }
            let latencies: Vec<f64> = sent_at
                .iter()
                .map(|(text, sent)| {
                    let last = received[text].iter().max().copied().unwrap_or(*sent);
                    last.duration_since(*sent).as_secs_f64() * 1000.0
                })
                .collect();
            Ok((
                messages,
                json!({ "receivers": receivers, "send_to_all_received": latency_summary(latencies) }),
                window,
            ))
        }
        Scenario::InitialSync {
            rooms,
            members,
            events,
            samples,
        } => {
            let user = Client::register(http, url, &format!("{prefix}initial")).await?;
            let others = register_many(http, url, prefix, "mem", members.saturating_sub(1)).await?;
            for _ in 0..rooms {
                let room = user.create_room(true).await?;
                for other in &others {
                    other.join(&room).await?;
                }
                for i in 0..events {
                    user.send(&room, &format!("{room}-{i}"), &format!("event {i}"))
                        .await?;
                }
            }
            settle(cli.pid, &cli.also_idle).await;
            window.start(cli.pid);
            let mut plain = Vec::new();
            let mut lazy = Vec::new();
            let lazy_filter =
                "%7B%22room%22%3A%7B%22state%22%3A%7B%22lazy_load_members%22%3Atrue%7D%7D%7D";
            for _ in 0..samples {
                let (body, ms) = user
                    .get_timed("/_matrix/client/v3/sync?set_presence=offline")
                    .await?;
                plain.push(ms);
                let full_members = check_initial_sync(&body, rooms)?;
                if full_members != rooms * members {
                    return Err(format!(
                        "initial sync carried {full_members} member events, expected {}",
                        rooms * members
                    ));
                }
                let (body, ms) = user
                    .get_timed(&format!(
                        "/_matrix/client/v3/sync?filter={lazy_filter}&set_presence=offline"
                    ))
                    .await?;
                lazy.push(ms);
                let lazy_members = check_initial_sync(&body, rooms)?;
                if lazy_members >= full_members {
                    return Err(format!(
                        "lazy-loading sync carried {lazy_members} member events, as many as the full one"
                    ));
                }
            }
            window.stop(cli.pid);
            Ok((
                samples * 2,
                json!({ "rooms": rooms, "members": members, "events": events, "full": latency_summary(plain), "lazy_load_members": latency_summary(lazy) }),
                window,
            ))
        }
        Scenario::Idle { clients, seconds } => {
            let user = Client::register(http, url, &format!("{prefix}idle")).await?;
            let since = user.sync(None, 0).await?["next_batch"]
                .as_str()
                .ok_or("no next_batch")?
                .to_owned();
            let pollers: Vec<_> = (0..clients)
                .map(|_| {
                    let (user, since) = (user.clone(), since.clone());
                    tokio::spawn(
                        async move { user.sync(Some(&since), (seconds + 60) * 1000).await },
                    )
                })
                .collect();
            tokio::time::sleep(Duration::from_secs(2)).await;
            settle(cli.pid, &cli.also_idle).await;
            window.start(cli.pid);
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            window.stop(cli.pid);
            for poller in pollers {
                poller.abort();
            }
            Ok((
                clients,
                json!({ "idle_clients": clients, "seconds": seconds }),
                window,
            ))
        }
    }
}

/// Checks an initial sync answers for every room; returns how many member events it carried.
fn check_initial_sync(body: &Value, rooms: usize) -> Result<usize, Failure> {
    let joined = body["rooms"]["join"]
        .as_object()
        .ok_or("initial sync has no rooms.join")?;
    if joined.len() != rooms {
        return Err(format!(
            "initial sync returned {} of {rooms} rooms",
            joined.len()
        ));
    }
    let members = joined
        .values()
        .flat_map(|room| {
            let state = room["state"]["events"].as_array().into_iter().flatten();
            let timeline = room["timeline"]["events"].as_array().into_iter().flatten();
            state.chain(timeline)
        })
        .filter(|event| event["type"] == "m.room.member")
        .count();
    Ok(members)
}

/// Server CPU and RSS around the measured part of a scenario.
#[derive(Default)]
struct ProcWindow {
    before: Option<ProcStats>,
    after: Option<ProcStats>,
    wall: Option<Instant>,
    elapsed_s: f64,
}

/// Waits (at most 15 s) until the server — and the `--also-idle` processes — have been
/// nearly idle (under 5 % of a core each) for half a second, so a scenario does not measure
/// background work its own setup caused (flushes, compactions, deferred tasks), nor another
/// server's — the same for every server.
async fn settle(pid: Option<u32>, also_idle: &[u32]) {
    let pids: Vec<u32> = pid.into_iter().chain(also_idle.iter().copied()).collect();
    let cpu = |pids: &[u32]| -> Vec<f64> {
        pids.iter()
            .map(|p| proc_stats(Some(*p)).map_or(0.0, |s| s.cpu_ms))
            .collect()
    };
    let mut before = cpu(&pids);
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = cpu(&pids);
        if now.iter().zip(&before).all(|(n, b)| n - b <= 25.0) {
            return;
        }
        before = now;
    }
}

impl ProcWindow {
    fn start(&mut self, pid: Option<u32>) {
        self.before = proc_stats(pid);
        self.wall = Some(Instant::now());
    }
    fn stop(&mut self, pid: Option<u32>) {
        self.after = proc_stats(pid);
        self.elapsed_s = self.wall.map_or(0.0, |w| w.elapsed().as_secs_f64());
    }
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if !cli.url.starts_with("http://127.")
        && !cli.url.starts_with("http://localhost")
        && !cli.url.starts_with("http://[::1]")
    {
        eprintln!("hearth-bench only drives servers on loopback addresses");
        std::process::exit(2);
    }
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(2048)
        .build()
        .expect("HTTP client");
    match run(&cli, &http).await {
        Ok((operations, mut result, window)) => {
            result["operations"] = json!(operations);
            result["seconds"] = json!(round(window.elapsed_s));
            if let (Some(before), Some(after)) = (window.before, window.after) {
                let cpu = after.cpu_ms - before.cpu_ms;
                result["server_cpu_ms"] = json!(round(cpu));
                result["server_cpu_ms_per_op"] = json!(round(cpu / operations.max(1) as f64));
                result["server_rss_kib"] = json!(after.rss_kib);
            }
            println!("{result}");
        }
        Err(failure) => {
            eprintln!("error: {failure}");
            println!("{}", json!({ "error": failure }));
            std::process::exit(1);
        }
    }
}
