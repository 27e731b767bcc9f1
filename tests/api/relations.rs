//! Relations: edits, threads and annotations, `/relations`, `/threads`, `unsigned.m.relations`.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestServer, TestUser, assert_error, create_room};

async fn send(
    server: &TestServer,
    user: &TestUser,
    room: &str,
    kind: &str,
    txn: &str,
    content: Value,
) -> String {
    let path = format!("/_matrix/client/v3/rooms/{room}/send/{kind}/{txn}");
    let (status, body) = server.put(&path, Some(&user.token), content).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["event_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn edits_threads_and_reactions() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let room = create_room(&server, &alice, json!({ "preset": "public_chat" })).await;
    server
        .post(
            &format!("/_matrix/client/v3/join/{room}"),
            Some(&bob.token),
            json!({}),
        )
        .await;

    let root = send(
        &server,
        &alice,
        &room,
        "m.room.message",
        "root",
        json!({ "msgtype": "m.text", "body": "first" }),
    )
    .await;
    let edit = send(
        &server,
        &alice,
        &room,
        "m.room.message",
        "edit",
        json!({
            "msgtype": "m.text", "body": "* second",
            "m.new_content": { "msgtype": "m.text", "body": "second" },
            "m.relates_to": { "rel_type": "m.replace", "event_id": root },
        }),
    )
    .await;
    // An edit by someone else is not applied.
    send(
        &server,
        &bob,
        &room,
        "m.room.message",
        "fake",
        json!({
            "msgtype": "m.text", "body": "* hacked",
            "m.new_content": { "msgtype": "m.text", "body": "hacked" },
            "m.relates_to": { "rel_type": "m.replace", "event_id": root },
        }),
    )
    .await;
    send(
        &server,
        &bob,
        &room,
        "m.reaction",
        "r1",
        json!({ "m.relates_to": { "rel_type": "m.annotation", "event_id": root, "key": "👍" } }),
    )
    .await;
    let reply = send(
        &server,
        &bob,
        &room,
        "m.room.message",
        "t1",
        json!({
            "msgtype": "m.text", "body": "in thread",
            "m.relates_to": { "rel_type": "m.thread", "event_id": root },
        }),
    )
    .await;

    let (status, event) = server
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/event/{root}"),
            Some(&alice.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let relations = &event["unsigned"]["m.relations"];
    assert_eq!(
        relations["m.replace"]["event_id"],
        edit.as_str(),
        "{relations}"
    );
    assert_eq!(
        event["content"]["body"], "first",
        "original content is kept"
    );
    assert_eq!(relations["m.thread"]["count"], 1);
    assert_eq!(
        relations["m.thread"]["latest_event"]["event_id"],
        reply.as_str()
    );
    assert_eq!(relations["m.thread"]["current_user_participated"], true);

    let base = format!("/_matrix/client/v1/rooms/{room}/relations/{root}");
    let (_, all) = server.get(&base, Some(&bob.token)).await;
    assert_eq!(all["chunk"].as_array().unwrap().len(), 4);
    let (_, edits) = server
        .get(&format!("{base}/m.replace"), Some(&bob.token))
        .await;
    assert_eq!(edits["chunk"].as_array().unwrap().len(), 2);
    let (_, reactions) = server
        .get(&format!("{base}/m.annotation/m.reaction"), Some(&bob.token))
        .await;
    assert_eq!(reactions["chunk"].as_array().unwrap().len(), 1);
    assert_eq!(
        reactions["chunk"][0]["content"]["m.relates_to"]["key"],
        "👍"
    );

    // Pagination: one at a time, newest first, each exactly once.
    let mut seen = Vec::new();
    let mut path = format!("{base}?limit=1");
    loop {
        let (status, page) = server.get(&path, Some(&bob.token)).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen.extend(
            page["chunk"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["event_id"].as_str().unwrap().to_owned()),
        );
        match page["next_batch"].as_str() {
            Some(next) => path = format!("{base}?limit=1&from={next}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 4);
    assert_eq!(seen[0], reply);
    let mut unique = seen.clone();
    unique.dedup();
    assert_eq!(unique, seen);

    let (_, threads) = server
        .get(
            &format!("/_matrix/client/v1/rooms/{room}/threads"),
            Some(&alice.token),
        )
        .await;
    assert_eq!(threads["chunk"].as_array().unwrap().len(), 1);
    assert_eq!(threads["chunk"][0]["event_id"], root.as_str());
    let carol = server.register("carol", "pw").await;
    let (_, none) = server
        .get(
            &format!("/_matrix/client/v1/rooms/{room}/threads?include=participated"),
            Some(&carol.token),
        )
        .await;
    assert!(
        none["chunk"].as_array().is_none_or(|c| c.is_empty()),
        "{none}"
    );
    assert_error(
        &server.get(&base, Some(&carol.token)).await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );
}

/// Whether an event has relations is remembered between reads; a new relation must show at
/// once, in `/event` and in `/sync`.
#[tokio::test]
async fn a_relation_added_after_a_read_shows_up() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let room = create_room(&server, &alice, json!({})).await;
    let root = send(
        &server,
        &alice,
        &room,
        "m.room.message",
        "root",
        json!({ "msgtype": "m.text", "body": "first" }),
    )
    .await;
    let event_path = format!("/_matrix/client/v3/rooms/{room}/event/{root}");
    let root_in_sync = |sync: &Value| -> Value {
        sync["rooms"]["join"][&room]["timeline"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["event_id"] == root.as_str())
            .cloned()
            .expect("root in the timeline")
    };
    let (_, event) = server.get(&event_path, Some(&alice.token)).await;
    assert!(event["unsigned"].get("m.relations").is_none());
    let (_, sync) = server
        .get("/_matrix/client/v3/sync", Some(&alice.token))
        .await;
    assert!(root_in_sync(&sync)["unsigned"].get("m.relations").is_none());
    send(
        &server,
        &alice,
        &room,
        "m.room.message",
        "reply",
        json!({
            "msgtype": "m.text", "body": "in thread",
            "m.relates_to": { "rel_type": "m.thread", "event_id": root },
        }),
    )
    .await;
    let (_, event) = server.get(&event_path, Some(&alice.token)).await;
    assert_eq!(event["unsigned"]["m.relations"]["m.thread"]["count"], 1);
    let (_, sync) = server
        .get("/_matrix/client/v3/sync", Some(&alice.token))
        .await;
    let in_sync = root_in_sync(&sync);
    assert_eq!(in_sync["unsigned"]["m.relations"]["m.thread"]["count"], 1);
    assert_eq!(in_sync["unsigned"]["transaction_id"], "root");
}
