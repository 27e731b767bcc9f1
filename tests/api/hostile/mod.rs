//! Hostile input against every client endpoint: a deterministic, bounded run of malformed
//! paths, query strings, tokens and bodies. The server must answer every request with a status
//! below 500, never drop a connection, never panic, and still work afterwards.
//!
//! The run, all generated from one seed before anything is sent:
//! - every route of the router once, then random routes up to the request count; each request
//!   is clean, hostile in one part (path, query, token or body) with the rest valid, or hostile
//!   throughout;
//! - fixed cases worth making whatever the seed (login objects without `type`, deep nesting,
//!   odd numbers) and integers at the type boundaries in pagination tokens and limits;
//! - endpoints that end sessions or accounts each get a user of their own, so the main users
//!   keep their sessions.
//!
//! Afterwards: JSON nested just below the parser's limit written through every kind of stored
//! value, then every read of the users' data must answer below 500, before and after a restart.
//!
//! `HEARTH_HOSTILE_SEED` and `HEARTH_HOSTILE_COUNT` override the seed and the request count for
//! independent runs (a failure prints both); `HEARTH_HOSTILE_VERBOSE` prints the statuses per
//! route; `HEARTH_HOSTILE_LOG` sets the server's log directives (default `hearth=error`).

mod known;
mod panics;
mod probes;
mod requests;
mod routes;
mod values;

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::StreamExt;
use rand::{Rng, SeedableRng, rngs::StdRng, seq::SliceRandom};
use reqwest::{Method, header::HeaderValue};
use ruma::api::{Metadata, path_builder::PathBuilder};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub(crate) use crate::common::{TestServer, TestUser, create_room, send_text};

const DEFAULT_SEED: u64 = 0x4845_4152_5448;
const DEFAULT_COUNT: usize = 4000;
const CONCURRENCY: usize = 8;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The thread name of the runtime the server runs on: panics there are the server's.
const THREAD_NAME: &str = "hostile-rt";
/// Failure groups and panic sites printed in the assertion message.
const REPORTED_GROUPS: usize = 20;

use known::*;
use panics::*;
use probes::*;
use requests::*;
use routes::*;
use values::*;

// ---------------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------------

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

async fn setup(server: &TestServer) -> Known {
    let alice = server.register("alice", "alice-password").await;
    let bob = server.register("bob", "bob-password").await;
    let carol = server.register("carol", "carol-password").await;

    let mut rooms = Vec::new();
    for body in [
        json!({ "preset": "public_chat", "name": "hostile" }),
        json!({ "preset": "public_chat", "room_version": "11" }),
        json!({ "preset": "private_chat", "invite": [bob.user_id] }),
    ] {
        rooms.push(create_room(server, &alice, body).await);
    }
    let (status, body) = server
        .post(
            "/_matrix/client/v3/createRoom",
            Some(&alice.token),
            json!({ "preset": "public_chat", "room_version": "12" }),
        )
        .await;
    if status == 200 {
        rooms.push(body["room_id"].as_str().unwrap().to_owned());
    }
    for room in &rooms[..2] {
        let (status, body) = server
            .post(
                &format!("/_matrix/client/v3/join/{room}"),
                Some(&bob.token),
                json!({}),
            )
            .await;
        assert_eq!(status, 200, "bob joins: {body}");
    }
    let mut events = Vec::new();
    for (i, room) in rooms.iter().enumerate() {
        for j in 0..3 {
            events.push(send_text(server, &alice, room, &format!("setup-{i}-{j}"), "hello").await);
        }
    }
    let thread_root = events[0].clone();
    let (status, body) = server
        .put(
            &format!(
                "/_matrix/client/v3/rooms/{}/send/m.room.message/setup-thread",
                rooms[0]
            ),
            Some(&bob.token),
            json!({
                "msgtype": "m.text",
                "body": "in thread",
                "m.relates_to": { "rel_type": "m.thread", "event_id": thread_root },
            }),
        )
        .await;
    assert_eq!(status, 200, "thread reply: {body}");
    events.push(body["event_id"].as_str().unwrap().to_owned());

    let (status, body) = server
        .post(
            &format!("/_matrix/client/v3/user/{}/filter", alice.user_id),
            Some(&alice.token),
            json!({ "room": { "timeline": { "limit": 3 } } }),
        )
        .await;
    assert_eq!(status, 200, "filter: {body}");
    let filter_id = body["filter_id"].as_str().unwrap().to_owned();

    let alias = "#hostile:localhost".to_owned();
    let (status, body) = server
        .put(
            "/_matrix/client/v3/directory/room/%23hostile:localhost",
            Some(&alice.token),
            json!({ "room_id": rooms[0] }),
        )
        .await;
    assert_eq!(status, 200, "alias: {body}");

    let (status, body) = server
        .get("/_matrix/client/v3/sync?timeout=0", Some(&alice.token))
        .await;
    assert_eq!(status, 200, "sync: {body}");
    let since = body["next_batch"].as_str().unwrap().to_owned();

    Known {
        alice,
        bob,
        carol,
        rooms,
        events,
        filter_id,
        alias,
        since,
    }
}

#[test]
fn hostile_input_against_every_client_endpoint() {
    // The server's own account of its internal errors, next to the failing requests
    // (`HEARTH_HOSTILE_LOG` takes other directives, e.g. `hearth=debug`).
    let directives = std::env::var("HEARTH_HOSTILE_LOG").unwrap_or_else(|_| "hearth=error".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(directives))
        .with_test_writer()
        .try_init();
    let panics = install_panic_counter();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(THREAD_NAME)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(panics));
}

async fn run(panics: PanicLog) {
    let seed: u64 = env_or("HEARTH_HOSTILE_SEED", DEFAULT_SEED);
    let count: usize = env_or("HEARTH_HOSTILE_COUNT", DEFAULT_COUNT);
    let started = Instant::now();

    let mut server = TestServer::start().await;
    let known = setup(&server).await;
    let routes = route_table();

    // Every route once, the fixed cases, then random routes: all generated before sending so
    // the requests depend on the seed only.
    let mut generator = Generator {
        rng: StdRng::seed_from_u64(seed),
        known: &known,
        max_request_size: server.config.max_request_size,
        victims: 0,
    };
    let mut specs: Vec<Spec> = routes.iter().map(|r| generator.spec(r)).collect();
    specs.extend(fixed_specs(&known));
    while specs.len() < count.max(routes.len()) {
        let route = routes.choose(&mut generator.rng).unwrap().clone();
        specs.push(generator.spec(&route));
    }
    let sessions = register_victims(&server, generator.victims).await;
    for spec in &mut specs {
        if let Some(victim) = spec.victim {
            spec.fill_in(victim, &sessions[victim.0]);
        }
    }
    let generated = started.elapsed();

    // A connection per request: the server may close a kept-alive connection after refusing
    // a request without reading its body, and a reused connection would then fail the next
    // request for a reason that is not that request's.
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let base = server.base.clone();
    let addr = base.trim_start_matches("http://").to_owned();
    let outcomes: Vec<(usize, Outcome)> = futures::stream::iter(specs.iter().enumerate())
        .map(|(i, spec)| {
            let (http, base, addr) = (&client, &base, &addr);
            async move { (i, send(http, base, addr, spec).await) }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let sent = started.elapsed();

    // Tally and group the failures by endpoint and kind.
    let mut classes: BTreeMap<String, usize> = BTreeMap::new();
    let mut groups: BTreeMap<String, (usize, usize, String)> = BTreeMap::new();
    let mut failures = 0;
    let mut per_route: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for (i, outcome) in &outcomes {
        let spec = &specs[*i];
        let code = match outcome {
            Outcome::Status(status, _) => status.to_string(),
            Outcome::Transport(_) => "transport".into(),
        };
        *per_route
            .entry(format!("{} {}", spec.method, spec.template))
            .or_default()
            .entry(code)
            .or_default() += 1;
        let (class, failed, detail) = match outcome {
            Outcome::Status(status, body) => (
                format!("{}xx", status / 100),
                *status >= 500,
                format!(
                    "status {status}, response: {}",
                    prefix(body.as_bytes(), 300)
                ),
            ),
            // The server may refuse an oversized body by answering before reading it all and
            // closing the connection: the client then fails writing the rest.
            Outcome::Transport(e) if spec.oversized && e.contains("error writing a body") => {
                ("oversized body cut off".into(), false, String::new())
            }
            Outcome::Transport(e) => (
                "transport".into(),
                true,
                format!("transport error: {}", prefix(e.as_bytes(), 400)),
            ),
        };
        *classes.entry(class).or_default() += 1;
        if failed {
            failures += 1;
            let kind = match outcome {
                Outcome::Status(status, _) => status.to_string(),
                Outcome::Transport(_) => "transport".into(),
            };
            let key = format!("{} {} -> {kind}", spec.method, spec.template);
            let entry = groups.entry(key).or_insert((0, *i, detail.clone()));
            entry.0 += 1;
            if *i < entry.1 {
                (entry.1, entry.2) = (*i, detail);
            }
        }
    }

    // What hostile writes stored must read back; then the server must still work.
    let (mut after, mut readers) = deep_probes(&server, &client).await;
    for user in [&known.alice, &known.bob] {
        let context = format!("read as {} after the run", user.user_id);
        after.extend(read_everything(&server.base, &client, user, Vec::new(), &context).await);
        readers.push((user.clone(), Vec::new()));
    }
    let (status, body) = server.get("/_matrix/client/versions", None).await;
    let versions_ok = status == 200;
    let (sync_status, sync_body) = server
        .get(
            "/_matrix/client/v3/sync?timeout=0",
            Some(&known.alice.token),
        )
        .await;
    let sync_ok = sync_status == 200;

    // Caches hide what storage cannot give back: read it all again from a restarted server.
    let stopping = Instant::now();
    server.stop().await;
    let stopped_in = stopping.elapsed();
    if stopped_in > Duration::from_secs(5) {
        after.push(format!("shutting the server down took {stopped_in:?}"));
    }
    match hearth::Server::start(server.config.clone()).await {
        Ok(restarted) => {
            let base = format!("http://{}", restarted.client_addr());
            for (user, reads) in readers {
                let context = format!("read as {} after a restart", user.user_id);
                after.extend(read_everything(&base, &client, &user, reads, &context).await);
            }
            restarted.shutdown().await;
        }
        Err(e) => after.push(format!(
            "the server does not start again on its data dir after shutdown: {e:?}"
        )),
    }
    let total = started.elapsed();

    let panic_log = panics.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let panic_count: usize = panic_log.values().sum();
    println!(
        "hostile: seed {seed}, {} requests over {} routes (generated in {generated:?}, sent in \
         {:?}, total {total:?}); outcomes {classes:?}; {failures} failures, {} failed reads \
         after, {panic_count} panics",
        specs.len(),
        routes.len(),
        sent - generated,
        after.len(),
    );

    if std::env::var_os("HEARTH_HOSTILE_VERBOSE").is_some() {
        for (route, codes) in &per_route {
            println!("  {route}: {codes:?}");
        }
    }

    if failures == 0 && after.is_empty() && panic_count == 0 && versions_ok && sync_ok {
        return;
    }
    let mut report = format!(
        "hostile input broke the server (seed {seed}, HEARTH_HOSTILE_SEED={seed} \
         HEARTH_HOSTILE_COUNT={count} to reproduce): {failures} failing requests in {} groups, \
         {} failing reads and probes after the run, {panic_count} panics\n",
        groups.len(),
        after.len()
    );
    if !versions_ok {
        let _ = writeln!(report, "GET /versions afterwards: {status} {body}");
    }
    if !sync_ok {
        let _ = writeln!(report, "alice's sync afterwards: {sync_status} {sync_body}");
    }
    if !after.is_empty() {
        let _ = writeln!(
            report,
            "{} reads and probes after the run failed:",
            after.len()
        );
        for failure in after.iter().take(REPORTED_GROUPS) {
            let _ = writeln!(report, "  {failure}");
        }
    }
    for (site, n) in panic_log.iter().take(REPORTED_GROUPS) {
        let _ = writeln!(report, "panic ×{n}: {site}");
    }
    let mut ordered: Vec<_> = groups.into_iter().collect();
    ordered.sort_by_key(|(_, (_, first, _))| *first);
    for (key, (n, first, detail)) in ordered.iter().take(REPORTED_GROUPS) {
        let spec = &specs[*first];
        let body = spec
            .body
            .as_deref()
            .map_or("<none>".to_owned(), |b| prefix(b, 200));
        let _ = writeln!(
            report,
            "×{n} {key}\n    first: {} {} ({}{}{})\n    body: {body}\n    {detail}",
            spec.method,
            prefix(spec.target.as_bytes(), 200),
            spec.auth_desc,
            if spec.raw { ", raw socket" } else { "" },
            if spec.oversized { ", oversized" } else { "" },
        );
    }
    panic!("{report}");
}
