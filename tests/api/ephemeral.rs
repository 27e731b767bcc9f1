//! Typing, receipts (public and private), read markers and unread counts through `/sync`.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestServer, TestUser, public_room};

async fn sync(server: &TestServer, user: &TestUser, since: &str) -> Value {
    let query = if since.is_empty() {
        String::new()
    } else {
        format!("?since={since}&timeout=0")
    };
    let (status, body) = server
        .get(
            &format!("/_matrix/client/v3/sync{query}"),
            Some(&user.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn ephemeral(body: &Value, room: &str, kind: &str) -> Option<Value> {
    body["rooms"]["join"][room]["ephemeral"]["events"]
        .as_array()?
        .iter()
        .find(|e| e["type"] == kind)
        .cloned()
}

#[tokio::test]
async fn typing_starts_stops_and_expires() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let room = public_room(&server, &alice, &bob).await;
    let token = sync(&server, &bob, "").await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    let typing = format!("/_matrix/client/v3/rooms/{room}/typing/{}", alice.user_id);
    let (status, _) = server
        .put(
            &typing,
            Some(&alice.token),
            json!({ "typing": true, "timeout": 30000 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let body = sync(&server, &bob, &token).await;
    assert_eq!(
        ephemeral(&body, &room, "m.typing").unwrap()["content"]["user_ids"],
        json!([alice.user_id])
    );
    let token = body["next_batch"].as_str().unwrap().to_owned();
    server
        .put(&typing, Some(&alice.token), json!({ "typing": false }))
        .await;
    let body = sync(&server, &bob, &token).await;
    assert_eq!(
        ephemeral(&body, &room, "m.typing").unwrap()["content"]["user_ids"],
        json!([])
    );
    let token = body["next_batch"].as_str().unwrap().to_owned();

    // A short timeout ends typing by itself, and wakes a waiting sync.
    server
        .put(
            &typing,
            Some(&alice.token),
            json!({ "typing": true, "timeout": 1000 }),
        )
        .await;
    let body = sync(&server, &bob, &token).await;
    let token = body["next_batch"].as_str().unwrap().to_owned();
    let (_, body) = server
        .get(
            &format!("/_matrix/client/v3/sync?since={token}&timeout=5000"),
            Some(&bob.token),
        )
        .await;
    assert_eq!(
        ephemeral(&body, &room, "m.typing").unwrap()["content"]["user_ids"],
        json!([]),
        "{body}"
    );
    // Typing for someone else is refused.
    let other = format!("/_matrix/client/v3/rooms/{room}/typing/{}", bob.user_id);
    assert_eq!(
        server
            .put(
                &other,
                Some(&alice.token),
                json!({ "typing": true, "timeout": 1000 })
            )
            .await
            .0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn receipts_move_unread_counts_and_private_ones_stay_private() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let room = public_room(&server, &alice, &bob).await;
    let mut last = String::new();
    for i in 0..3 {
        let path = format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/u{i}");
        let mut content = json!({ "msgtype": "m.text", "body": format!("hello {i}") });
        if i == 2 {
            content["m.mentions"] = json!({ "user_ids": [bob.user_id] });
        }
        let (_, body) = server.put(&path, Some(&alice.token), content).await;
        last = body["event_id"].as_str().unwrap().to_owned();
    }
    let body = sync(&server, &bob, "").await;
    let unread = &body["rooms"]["join"][&room]["unread_notifications"];
    assert_eq!(unread["notification_count"], 3);
    assert_eq!(unread["highlight_count"], 1);
    let alice_token = sync(&server, &alice, "").await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();

    // A private receipt clears bob's counts but is invisible to alice.
    let (status, _) = server
        .post(
            &format!("/_matrix/client/v3/rooms/{room}/receipt/m.read.private/{last}"),
            Some(&bob.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let body = sync(&server, &bob, "").await;
    assert_eq!(
        body["rooms"]["join"][&room]["unread_notifications"]["notification_count"],
        0
    );
    assert!(
        ephemeral(&body, &room, "m.receipt").unwrap()["content"][&last]["m.read.private"]
            [&bob.user_id]["ts"]
            .is_u64()
    );
    let body = sync(&server, &alice, &alice_token).await;
    assert!(
        ephemeral(&body, &room, "m.receipt").is_none(),
        "private receipts are not shown to others: {body}"
    );

    // A public receipt (through read_markers) is shown to alice, and sets m.fully_read.
    let (status, _) = server
        .post(
            &format!("/_matrix/client/v3/rooms/{room}/read_markers"),
            Some(&bob.token),
            json!({ "m.fully_read": last, "m.read": last }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let body = sync(&server, &alice, &alice_token).await;
    assert!(
        ephemeral(&body, &room, "m.receipt").unwrap()["content"][&last]["m.read"][&bob.user_id]
            .is_object(),
        "{body}"
    );
    let fully_read = format!(
        "/_matrix/client/v3/user/{}/rooms/{room}/account_data/m.fully_read",
        bob.user_id
    );
    let (_, marker) = server.get(&fully_read, Some(&bob.token)).await;
    assert_eq!(marker["event_id"], last.as_str());
    // Receipts for unknown events are refused.
    let response = server
        .post(
            &format!("/_matrix/client/v3/rooms/{room}/receipt/m.read/$nope"),
            Some(&bob.token),
            json!({}),
        )
        .await;
    assert_eq!(response.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn to_device_messages_are_delivered_once_in_order() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let token = sync(&server, &bob, "").await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    for (txn, n) in [("t1", 1), ("t2", 2), ("t1", 1)] {
        let body =
            json!({ "messages": { bob.user_id.clone(): { bob.device_id.clone(): { "n": n } } } });
        let (status, _) = server
            .put(
                &format!("/_matrix/client/v3/sendToDevice/org.example.ping/{txn}"),
                Some(&alice.token),
                body,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let body = sync(&server, &bob, &token).await;
    let events = body["to_device"]["events"].as_array().unwrap();
    let numbers: Vec<i64> = events
        .iter()
        .map(|e| e["content"]["n"].as_i64().unwrap())
        .collect();
    assert_eq!(
        numbers,
        vec![1, 2],
        "in order, the repeated txn once: {body}"
    );
    assert_eq!(events[0]["sender"], alice.user_id.as_str());
    assert_eq!(events[0]["type"], "org.example.ping");
    // Syncing from the token that delivered them acknowledges them: they are gone.
    let token = body["next_batch"].as_str().unwrap().to_owned();
    let body = sync(&server, &bob, &token).await;
    assert!(
        body["to_device"]["events"].as_array().unwrap().is_empty(),
        "{body}"
    );
    // "*" reaches every device of the user.
    let (_, second) = server.login("bob", "pw").await;
    let body = json!({ "messages": { bob.user_id.clone(): { "*": { "all": true } } } });
    server
        .put(
            "/_matrix/client/v3/sendToDevice/org.example.all/t3",
            Some(&alice.token),
            body,
        )
        .await;
    let (_, for_second) = server
        .get("/_matrix/client/v3/sync", second["access_token"].as_str())
        .await;
    assert_eq!(for_second["to_device"]["events"][0]["content"]["all"], true);
}

#[tokio::test]
async fn thread_unread_counts_and_threaded_receipts() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let room = public_room(&server, &alice, &bob).await;
    let send = |txn: &str, content: Value| {
        let path = format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}");
        let (server, token) = (&server, alice.token.clone());
        async move {
            server.put(&path, Some(&token), content).await.1["event_id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let root = send("root", json!({ "msgtype": "m.text", "body": "root" })).await;
    let in_thread = |n: u32| json!({ "msgtype": "m.text", "body": format!("reply {n}"), "m.relates_to": { "rel_type": "m.thread", "event_id": root } });
    let first_reply = send("r1", in_thread(1)).await;
    send("r2", in_thread(2)).await;

    let threaded = "filter=%7B%22room%22%3A%7B%22timeline%22%3A%7B%22unread_thread_notifications%22%3Atrue%7D%7D%7D";
    let (_, body) = server
        .get(
            &format!("/_matrix/client/v3/sync?{threaded}"),
            Some(&bob.token),
        )
        .await;
    let joined = &body["rooms"]["join"][&room];
    assert_eq!(
        joined["unread_notifications"]["notification_count"], 1,
        "{joined}"
    );
    assert_eq!(
        joined["unread_thread_notifications"][&root]["notification_count"],
        2
    );

    let receipt = format!("/_matrix/client/v3/rooms/{room}/receipt/m.read/{first_reply}");
    let (status, _) = server
        .post(&receipt, Some(&bob.token), json!({ "thread_id": root }))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = server
        .get(
            &format!("/_matrix/client/v3/sync?{threaded}"),
            Some(&bob.token),
        )
        .await;
    let joined = &body["rooms"]["join"][&room];
    assert_eq!(
        joined["unread_notifications"]["notification_count"], 1,
        "the main timeline is unaffected"
    );
    assert_eq!(
        joined["unread_thread_notifications"][&root]["notification_count"],
        1
    );

    let (_, body) = server
        .get("/_matrix/client/v3/sync", Some(&bob.token))
        .await;
    let joined = &body["rooms"]["join"][&room];
    assert_eq!(
        joined["unread_notifications"]["notification_count"], 2,
        "without the option threads count in the total"
    );
    assert!(joined.get("unread_thread_notifications").is_none());
}

/// Unread counts are kept between syncs and extended with newer events only; a redaction or
/// a receipt must still be reflected at once.
#[tokio::test]
async fn unread_counts_follow_new_events_redactions_and_receipts() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let room = public_room(&server, &alice, &bob).await;
    let send = |txn: &str, mention: bool| {
        let mut content = json!({ "msgtype": "m.text", "body": txn });
        if mention {
            content["m.mentions"] = json!({ "user_ids": [bob.user_id] });
        }
        let path = format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}");
        let (server, token) = (&server, alice.token.clone());
        async move {
            let (status, body) = server.put(&path, Some(&token), content).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["event_id"].as_str().unwrap().to_owned()
        }
    };
    let counts = |body: &Value| {
        let unread = &body["rooms"]["join"][&room]["unread_notifications"];
        (
            unread["notification_count"].as_u64().unwrap(),
            unread["highlight_count"].as_u64().unwrap(),
        )
    };
    send("m1", false).await;
    assert_eq!(counts(&sync(&server, &bob, "").await), (1, 0));
    let mention = send("m2", true).await;
    send("m3", false).await;
    assert_eq!(counts(&sync(&server, &bob, "").await), (3, 1));
    assert_eq!(counts(&sync(&server, &bob, "").await), (3, 1), "unchanged");
    let (status, _) = server
        .put(
            &format!("/_matrix/client/v3/rooms/{room}/redact/{mention}/x"),
            Some(&alice.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // The redacted message notifies nobody any more (its push actions go, as in Synapse):
    // neither its highlight nor its notification counts.
    assert_eq!(counts(&sync(&server, &bob, "").await), (2, 0));
    let last = send("m4", false).await;
    assert_eq!(counts(&sync(&server, &bob, "").await), (3, 0));
    let (status, _) = server
        .post(
            &format!("/_matrix/client/v3/rooms/{room}/receipt/m.read/{last}"),
            Some(&bob.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(counts(&sync(&server, &bob, "").await), (0, 0));
    send("m5", true).await;
    assert_eq!(counts(&sync(&server, &bob, "").await), (1, 1));
}
