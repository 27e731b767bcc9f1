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

/// A read receipt deletes the push marks it covers (main timeline and thread receipts only
/// their own), counts stay what they were, and the notification list keeps its entries until
/// their retention ends.
#[tokio::test]
async fn receipts_delete_read_marks_and_old_notifications_are_swept() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let room = public_room(&server, &alice, &bob).await;
    let first = send(&server, &alice, &room, "p1", text("one")).await;
    let second = send(&server, &alice, &room, "p2", text("two")).await;
    let in_thread = json!({
        "msgtype": "m.text",
        "body": "in a thread",
        "m.relates_to": { "rel_type": "m.thread", "event_id": first },
    });
    let reply = send(&server, &alice, &room, "p3", in_thread).await;

    let services = server.services();
    let bob_id = ruma::UserId::parse(bob.user_id.as_str()).unwrap();
    let room_id = ruma::RoomId::parse(room.as_str()).unwrap();
    let (short_room, _) = services.rooms.registry.room(&room_id).unwrap().unwrap();
    let marks = || {
        services
            .push
            .notifications
            .marks(&bob_id, short_room, 0, u64::MAX - 1)
            .unwrap()
            .into_iter()
            .map(|(_, mark)| mark.thread)
            .collect::<Vec<_>>()
    };
    assert_eq!(marks(), [None, None, Some(first.clone())]);

    let receipt = |event: String, body: Value| {
        let server = &server;
        let token = bob.token.clone();
        let path = format!("/_matrix/client/v3/rooms/{room}/receipt/m.read/{event}");
        async move {
            let (status, body) = server.post(&path, Some(&token), body).await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
    };
    receipt(second, json!({ "thread_id": "main" })).await;
    assert_eq!(
        marks(),
        [Some(first.clone())],
        "a main-timeline receipt deletes only main-timeline marks"
    );
    // Thread counts apart from the main timeline's (without the filter they are summed).
    let by_thread =
        "%7B%22room%22%3A%7B%22timeline%22%3A%7B%22unread_thread_notifications%22%3Atrue%7D%7D%7D";
    let (status, sync) = server
        .get(
            &format!("/_matrix/client/v3/sync?filter={by_thread}"),
            Some(&bob.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let joined = &sync["rooms"]["join"][&room];
    assert_eq!(joined["unread_notifications"]["notification_count"], 0);
    assert_eq!(
        joined["unread_thread_notifications"][&first]["notification_count"], 1,
        "the thread's notification still counts: {joined}"
    );

    receipt(reply, json!({})).await;
    assert!(
        marks().is_empty(),
        "an unthreaded receipt covers every mark"
    );
    assert_eq!(counts(&server, &bob, &room).await, (0, 0));

    let (status, page) = server
        .get("/_matrix/client/v3/notifications", Some(&bob.token))
        .await;
    assert_eq!(status, StatusCode::OK);
    let entries = page["notifications"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "read notifications stay listed: {page}");
    assert!(entries.iter().all(|n| n["read"] == true), "{page}");

    let swept = services
        .push
        .notifications
        .sweep_older_than(&services.db, hearth::util::now_millis() + 1)
        .unwrap();
    assert_eq!(swept, 3, "alice has no notifications; bob's three go");
    let (_, page) = server
        .get("/_matrix/client/v3/notifications", Some(&bob.token))
        .await;
    assert_eq!(page["notifications"], json!([]));
}
