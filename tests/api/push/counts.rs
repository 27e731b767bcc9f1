//! Notification counts come from push-rule outcomes: mentions highlight, notices and edits
//! stay quiet, a muted room counts nothing, and `/notifications` lists what notified.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{counts, send};
use crate::common::{TestServer, create_room, public_room};

fn text(body: &str) -> Value {
    json!({ "msgtype": "m.text", "body": body })
}

#[tokio::test]
async fn mentions_highlight_and_quiet_events_do_not_count() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let carol = server.register("carol", "pw").await;
    // Three members: not a one-to-one room. Alice created it (power 100: she may @room).
    let room = public_room(&server, &alice, &bob).await;
    let (status, _) = server
        .post(
            &format!("/_matrix/client/v3/join/{room}"),
            Some(&carol.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let plain = send(&server, &alice, &room, "t1", text("hello")).await;
    assert_eq!(
        counts(&server, &bob, &room).await,
        (1, 0),
        "a message notifies"
    );
    let mut mention = text("hi bob");
    mention["m.mentions"] = json!({ "user_ids": [bob.user_id] });
    send(&server, &alice, &room, "t2", mention).await;
    assert_eq!(
        counts(&server, &bob, &room).await,
        (2, 1),
        "a user mention highlights"
    );
    assert_eq!(
        counts(&server, &carol, &room).await,
        (2, 0),
        "not carol's mention"
    );

    let mut everyone = text("hi all");
    everyone["m.mentions"] = json!({ "room": true });
    send(&server, &alice, &room, "t3", everyone.clone()).await;
    assert_eq!(
        counts(&server, &carol, &room).await,
        (3, 1),
        "a room mention highlights"
    );
    // Carol has no power to notify the room: her @room is a plain message.
    send(&server, &carol, &room, "t4", everyone).await;
    assert_eq!(counts(&server, &bob, &room).await, (4, 2));

    send(
        &server,
        &alice,
        &room,
        "t5",
        json!({ "msgtype": "m.notice", "body": "bot" }),
    )
    .await;
    let edit = json!({
        "msgtype": "m.text",
        "body": "* hello!",
        "m.new_content": { "msgtype": "m.text", "body": "hello!" },
        "m.relates_to": { "rel_type": "m.replace", "event_id": plain },
    });
    send(&server, &alice, &room, "t6", edit).await;
    assert_eq!(
        counts(&server, &bob, &room).await,
        (4, 2),
        "notices and edits do not notify"
    );
    // The sender's own messages never count for them.
    assert_eq!(counts(&server, &alice, &room).await, (1, 0));
}

#[tokio::test]
async fn a_muted_room_counts_nothing_and_one_to_one_rooms_ring() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let room = public_room(&server, &alice, &bob).await;
    let (status, _) = server
        .put(
            "/_matrix/client/v3/pushrules/global/override/mute",
            Some(&bob.token),
            json!({
                "conditions": [{ "kind": "event_match", "key": "room_id", "pattern": room }],
                "actions": ["dont_notify"],
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    send(&server, &alice, &room, "m1", text("psst")).await;
    assert_eq!(counts(&server, &bob, &room).await, (0, 0), "muted");

    let dm = create_room(
        &server,
        &alice,
        json!({ "invite": [bob.user_id], "is_direct": true }),
    )
    .await;
    let (status, _) = server
        .post(
            &format!("/_matrix/client/v3/join/{dm}"),
            Some(&bob.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    send(&server, &alice, &dm, "d1", text("just us")).await;
    assert_eq!(counts(&server, &bob, &dm).await, (1, 0));
    let (_, list) = server
        .get("/_matrix/client/v3/notifications", Some(&bob.token))
        .await;
    let newest = &list["notifications"][0];
    assert_eq!(newest["room_id"], dm.as_str());
    assert_eq!(newest["event"]["content"]["body"], "just us");
    assert_eq!(
        newest["actions"],
        json!(["notify", { "set_tweak": "sound", "value": "default" }]),
        "the one-to-one rule rings"
    );
    assert_eq!(newest["read"], false);
}

#[tokio::test]
async fn the_notification_list_pages_newest_first() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let room = public_room(&server, &alice, &bob).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let mut content = text(&format!("m{n}"));
        if n % 2 == 0 {
            content["m.mentions"] = json!({ "user_ids": [bob.user_id] });
        }
        ids.push(send(&server, &alice, &room, &format!("n{n}"), content).await);
    }
    // Bob reads up to the second message.
    let (status, _) = server
        .post(
            &format!("/_matrix/client/v3/rooms/{room}/receipt/m.read/{}", ids[1]),
            Some(&bob.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let mut seen = Vec::new();
    let mut read = Vec::new();
    let mut from: Option<String> = None;
    for _ in 0..5 {
        let query = match &from {
            Some(token) => format!("?limit=2&from={token}"),
            None => "?limit=2".to_owned(),
        };
        let (status, page) = server
            .get(
                &format!("/_matrix/client/v3/notifications{query}"),
                Some(&bob.token),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for notification in page["notifications"].as_array().unwrap() {
            seen.push(
                notification["event"]["event_id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
            read.push(notification["read"].as_bool().unwrap());
            assert_eq!(notification["room_id"], room.as_str());
            assert!(notification["ts"].as_u64().unwrap() > 0);
        }
        match page["next_token"].as_str() {
            Some(token) => from = Some(token.to_owned()),
            None => break,
        }
    }
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);
    assert_eq!(read, [false, false, false, true, true]);

    let (_, highlights) = server
        .get(
            "/_matrix/client/v3/notifications?only=highlight",
            Some(&bob.token),
        )
        .await;
    let highlighted: Vec<&str> = highlights["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["event"]["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(highlighted, [&ids[4], &ids[2], &ids[0]]);
    let bad = server
        .get(
            "/_matrix/client/v3/notifications?from=garbage",
            Some(&bob.token),
        )
        .await;
    crate::common::assert_error(&bad, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
}
