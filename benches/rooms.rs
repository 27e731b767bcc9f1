//! Room storage benchmark (run with `cargo bench --bench rooms`; `cargo test` runs it at a
//! tiny size as a smoke test). Drives the services directly, without HTTP, and reports:
//! - events appended per second into one room by one sender;
//! - `/messages` page latency deep inside a large room;
//! - state lookup time in a room with many members.

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
        rooms::{
            NewEvent,
            create::CreateRoomRequest,
            read::{Direction, EventFilter},
        },
        users::sessions::Session,
    },
    storage::Db,
};
use ruma::{UserId, events::StateEventType};
use serde_json::json;

struct Sizes {
    events: usize,
    members: usize,
    samples: usize,
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let sizes = if full {
        Sizes {
            events: 100_000,
            members: 10_000,
            samples: 200,
        }
    } else {
        Sizes {
            events: 300,
            members: 50,
            samples: 5,
        }
    };
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
    let room = services
        .create_room(
            &alice,
            CreateRoomRequest {
                preset: Some("public_chat".into()),
                ..Default::default()
            },
        )
        .unwrap();

    // 1. Appending events.
    let start = Instant::now();
    for i in 0..sizes.events {
        let event = NewEvent {
            kind: "m.room.message".into(),
            content: json!({ "msgtype": "m.text", "body": format!("message number {i}") }),
            state_key: None,
            redacts: None,
            txn: None,
        };
        services.rooms.append(&room, &alice, event).unwrap();
    }
    let elapsed = start.elapsed();
    println!(
        "append: {} events in {:.2} s = {:.0} events/s ({:.1} µs each)",
        sizes.events,
        elapsed.as_secs_f64(),
        sizes.events as f64 / elapsed.as_secs_f64(),
        elapsed.as_micros() as f64 / sizes.events as f64
    );

    // 2. /messages deep in the room: pages of 50 starting 10% into the history.
    let session = Session {
        user_id: alice.clone(),
        device_id: "BENCH".into(),
    };
    let (short_room, _) = services.rooms.registry.room(&room).unwrap().unwrap();
    let latest = services.rooms.timeline.latest_count(short_room).unwrap();
    let deep = latest - (latest / 10) * 9;
    let filter = EventFilter::default();
    let mut timings = Vec::new();
    for _ in 0..sizes.samples {
        let start = Instant::now();
        let page = services
            .rooms
            .messages(
                &session,
                &room,
                Some(deep),
                None,
                Direction::Backward,
                50,
                &filter,
            )
            .unwrap();
        timings.push(start.elapsed().as_micros() as u64);
        assert!(!page.chunk.is_empty());
    }
    report("messages page (50 events, deep)", &mut timings);

    // 3. State lookups with many members.
    for i in 0..sizes.members {
        let user = UserId::parse(format!("@member{i}:localhost")).unwrap();
        services
            .create_account(&user, None, false, None, None)
            .unwrap();
        services.join(&user, &room, None).unwrap();
    }
    let mut timings = Vec::new();
    for i in 0..sizes.samples {
        let user = format!("@member{}:localhost", (i * 7919) % sizes.members);
        let start = Instant::now();
        let event = services
            .rooms
            .current_state_event(&room, &StateEventType::RoomMember, &user)
            .unwrap();
        timings.push(start.elapsed().as_micros() as u64);
        assert!(event.is_some());
    }
    report(
        &format!("member state lookup ({} members)", sizes.members + 1),
        &mut timings,
    );
    let mut timings = Vec::new();
    for _ in 0..sizes.samples {
        let start = Instant::now();
        let levels = services.rooms.power_levels(&room).unwrap();
        timings.push(start.elapsed().as_micros() as u64);
        assert!(levels.user(&alice) >= 100);
    }
    report("power levels lookup", &mut timings);
}

fn report(name: &str, timings: &mut [u64]) {
    timings.sort_unstable();
    let p = |q: f64| timings[((timings.len() - 1) as f64 * q) as usize];
    println!(
        "{name}: p50 {} µs, p99 {} µs ({} samples)",
        p(0.5),
        p(0.99),
        timings.len()
    );
}
