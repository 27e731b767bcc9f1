//! Push-rule evaluation benchmark (run with `cargo bench --bench push`; `cargo test` runs it
//! at a tiny size as a smoke test). Drives the services directly, without HTTP:
//! - evaluation alone: one message evaluated for every member of a large room (default
//!   rules, everyone notified), reported per member and event;
//! - the whole send path: appending a message to that room against appending one to a room
//!   of one member; the difference per member is what a member costs a sent message.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark fails loudly"
)]

use std::{sync::Arc, time::Instant};

use hearth::{
    Config,
    service::{
        Services,
        push::evaluate::{EventToEvaluate, Recipient, RoomForPush},
        rooms::{NewEvent, create::CreateRoomRequest},
    },
    storage::Db,
};
use ruma::{RoomId, UserId};
use serde_json::json;

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (members, samples) = if full { (1000, 200) } else { (20, 3) };
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config {
        database_path: dir.path().join("db"),
        ..Config::default()
    };
    config.storage.sync_writes = false;
    let config = Arc::new(config);
    let db = Db::open(&config.database_path, &config.storage).expect("db opens");
    let services = Services::new(config, db).expect("services start");

    let alice = UserId::parse("@alice:localhost").unwrap();
    services
        .create_account(&alice, None, false, None, None)
        .unwrap();
    let public = || CreateRoomRequest {
        preset: Some("public_chat".into()),
        ..Default::default()
    };
    let big = services.create_room(&alice, public()).unwrap();
    let alone = services.create_room(&alice, public()).unwrap();
    let mut users: Vec<Recipient> = Vec::with_capacity(members);
    for i in 0..members {
        let user = UserId::parse(format!("@member{i}:localhost")).unwrap();
        services
            .create_account(&user, None, false, None, None)
            .unwrap();
        services.join(&user, &big, None).unwrap();
        let name = format!("Member {i}");
        users.push(Recipient::new(user, Some(name)));
    }

    // 1. Evaluation alone.
    let (short_room, _) = services.rooms.registry.room(&big).unwrap().unwrap();
    let event = serde_json::value::to_raw_value(&json!({
        "type": "m.room.message",
        "sender": alice,
        "room_id": big,
        "event_id": "$bench",
        "origin_server_ts": 1,
        "content": { "msgtype": "m.text", "body": "hello everyone" },
    }))
    .unwrap();
    let mut timings = Vec::with_capacity(samples);
    for sample in 0..samples {
        let mut batch = services.db.batch();
        let start = Instant::now();
        services
            .push
            .evaluate_into(
                &mut batch,
                &EventToEvaluate {
                    json: &event,
                    event_id: "$bench",
                    sender: &alice,
                    short_room,
                    count: u64::MAX - sample as u64,
                    thread: None,
                    ts: 1,
                },
                RoomForPush {
                    room_id: RoomId::parse(big.as_str()).unwrap(),
                    member_count: members as u64 + 1,
                    power_levels: None,
                },
                &users,
            )
            .unwrap();
        timings.push(start.elapsed().as_secs_f64() * 1e6 / members as f64);
        drop(batch);
    }
    report("evaluation per member and event", &mut timings);

    // 2. The send path, with and without the members.
    let append_time = |room: &RoomId, tag: &str| {
        let mut timings = Vec::with_capacity(samples);
        for i in 0..samples {
            let event = NewEvent {
                kind: "m.room.message".into(),
                content: json!({ "msgtype": "m.text", "body": format!("{tag} {i}") }),
                state_key: None,
                redacts: None,
                txn: None,
            };
            let start = Instant::now();
            services.rooms.append(room, &alice, event).unwrap();
            timings.push(start.elapsed().as_secs_f64() * 1e6);
        }
        timings.sort_by(f64::total_cmp);
        timings[timings.len() / 2]
    };
    let crowded = append_time(&big, "crowded");
    let empty = append_time(&alone, "alone");
    println!(
        "append p50: {crowded:.0} µs with {} members, {empty:.0} µs alone: {:.2} µs per member",
        members + 1,
        (crowded - empty) / members as f64
    );
}

fn report(name: &str, timings: &mut [f64]) {
    timings.sort_by(f64::total_cmp);
    let p = |q: f64| timings[((timings.len() - 1) as f64 * q) as usize];
    println!(
        "{name}: p50 {:.3} µs, p99 {:.3} µs ({} samples)",
        p(0.5),
        p(0.99),
        timings.len()
    );
}
