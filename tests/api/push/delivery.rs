//! Pushers and delivery: the pusher endpoints and their errors, the exact payload a push
//! gateway receives, retries after failures, a restart with pushes queued, rejected pushkeys,
//! badge updates, and the egress policy.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{gateway_stub::Gateway, send, set_pusher};
use crate::common::{TestServer, TestUser, assert_error, create_room};

/// A server that may push to loopback gateways.
async fn server() -> TestServer {
    TestServer::start_with(|config| config.push.allow_private_addresses = true).await
}

async fn pushers(server: &TestServer, user: &TestUser) -> Vec<Value> {
    let (status, body) = server
        .get("/_matrix/client/v3/pushers", Some(&user.token))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["pushers"].as_array().unwrap().clone()
}

/// A one-to-one room of alice and bob.
async fn direct_room(server: &TestServer, alice: &TestUser, bob: &TestUser) -> String {
    let room = create_room(
        server,
        alice,
        json!({ "invite": [bob.user_id], "is_direct": true, "name": "Just us" }),
    )
    .await;
    let (status, _) = server
        .post(
            &format!("/_matrix/client/v3/join/{room}"),
            Some(&bob.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    room
}

fn text(body: &str) -> Value {
    json!({ "msgtype": "m.text", "body": body })
}

#[tokio::test]
async fn pushers_are_set_listed_deleted_and_checked() {
    let server = server().await;
    let bob = server.register("bob", "pw").await;
    let url = "https://push.example.org/_matrix/push/v1/notify";
    set_pusher(
        &server,
        &bob,
        url,
        "key1",
        json!({ "format": "event_id_only" }),
    )
    .await;
    let listed = pushers(&server, &bob).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["pushkey"], "key1");
    assert_eq!(listed[0]["app_id"], "org.example.app");
    assert_eq!(listed[0]["kind"], "http");
    assert_eq!(
        listed[0]["data"],
        json!({ "url": url, "format": "event_id_only" })
    );
    assert_eq!(listed[0]["device_display_name"], "Phone");

    let pusher = |extra: Value| {
        let mut body = json!({
            "kind": "http",
            "app_id": "org.example.app",
            "pushkey": "key2",
            "app_display_name": "Example",
            "device_display_name": "Phone",
            "lang": "en",
            "data": { "url": url },
        });
        for (key, value) in extra.as_object().unwrap() {
            if value.is_null() {
                body.as_object_mut().unwrap().remove(key);
            } else {
                body[key] = value.clone();
            }
        }
        body
    };
    let cases = [
        (
            pusher(json!({ "data": { "url": "https://push.example.org/other" } })),
            "M_INVALID_PARAM",
        ),
        (
            pusher(json!({ "data": { "url": "not a url" } })),
            "M_INVALID_PARAM",
        ),
        (
            pusher(json!({ "data": { "format": "event_id_only" } })),
            "M_MISSING_PARAM",
        ),
        (pusher(json!({ "app_id": null })), "M_MISSING_PARAM"),
        (pusher(json!({ "lang": null })), "M_MISSING_PARAM"),
        (
            pusher(json!({ "app_id": "x".repeat(65) })),
            "M_INVALID_PARAM",
        ),
    ];
    for (body, errcode) in cases {
        let response = server
            .post("/_matrix/client/v3/pushers/set", Some(&bob.token), body)
            .await;
        assert_error(&response, StatusCode::BAD_REQUEST, errcode);
    }
    assert_eq!(pushers(&server, &bob).await.len(), 1, "nothing changed");

    let (status, _) = server
        .post(
            "/_matrix/client/v3/pushers/set",
            Some(&bob.token),
            json!({ "kind": null, "app_id": "org.example.app", "pushkey": "key1" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(pushers(&server, &bob).await.is_empty());
}

#[tokio::test]
async fn a_pusher_goes_with_its_device_and_its_pushkey_with_its_new_owner() {
    let server = server().await;
    let bob = server.register("bob", "pw").await;
    let url = "https://push.example.org/_matrix/push/v1/notify";
    set_pusher(&server, &bob, url, "bobs-phone", json!({})).await;
    // Another user registering the same pushkey (append: false) takes it over.
    let carol = server.register("carol", "pw").await;
    set_pusher(&server, &carol, url, "bobs-phone", json!({})).await;
    assert!(pushers(&server, &bob).await.is_empty());
    assert_eq!(pushers(&server, &carol).await.len(), 1);
    // Logging out removes the device's pushers.
    let (status, _) = server
        .post("/_matrix/client/v3/logout", Some(&carol.token), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, login) = server.login("carol", "pw").await;
    let carol = TestUser {
        token: login["access_token"].as_str().unwrap().to_owned(),
        ..carol
    };
    assert!(pushers(&server, &carol).await.is_empty());
}

#[tokio::test]
async fn the_gateway_receives_the_spec_payload() {
    let server = server().await;
    let gateway = Gateway::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let (status, _) = server
        .put(
            &format!("/_matrix/client/v3/profile/{}/displayname", alice.user_id),
            Some(&alice.token),
            json!({ "displayname": "Alice" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let room = direct_room(&server, &alice, &bob).await;
    set_pusher(
        &server,
        &bob,
        &gateway.url(),
        "bob-key",
        json!({ "custom": 7 }),
    )
    .await;
    let event_id = send(&server, &alice, &room, "p1", text("ping")).await;
    let received = gateway.wait_for(1).await;
    let notification = &received[0]["notification"];
    assert_eq!(notification["event_id"], event_id.as_str());
    assert_eq!(notification["room_id"], room.as_str());
    assert_eq!(notification["type"], "m.room.message");
    assert_eq!(notification["sender"], alice.user_id.as_str());
    assert_eq!(notification["sender_display_name"], "Alice");
    assert_eq!(notification["room_name"], "Just us");
    assert_eq!(
        notification["prio"], "high",
        "one-to-one rooms push with high priority"
    );
    assert_eq!(notification["content"], text("ping"));
    assert_eq!(notification["counts"]["unread"], 1);
    let devices = notification["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0]["app_id"], "org.example.app");
    assert_eq!(devices[0]["pushkey"], "bob-key");
    assert!(devices[0]["pushkey_ts"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(
        devices[0]["data"],
        json!({ "custom": 7 }),
        "data without the url"
    );
    assert_eq!(devices[0]["tweaks"], json!({ "sound": "default" }));
    // Nobody else is pushed for (alice's own message, no pusher of hers).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(gateway.received().len(), 1);

    // Reading the message sends the badge back to zero, counts only.
    let (status, _) = server
        .post(
            &format!("/_matrix/client/v3/rooms/{room}/receipt/m.read/{event_id}"),
            Some(&bob.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let received = gateway.wait_for(2).await;
    let badge = &received[1]["notification"];
    assert_eq!(badge["counts"]["unread"], 0);
    assert!(badge.get("event_id").is_none(), "{badge}");
    assert_eq!(badge["devices"][0]["pushkey"], "bob-key");
}

#[tokio::test]
async fn event_id_only_pushers_get_the_minimal_form() {
    let server = server().await;
    let gateway = Gateway::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let room = direct_room(&server, &alice, &bob).await;
    set_pusher(
        &server,
        &bob,
        &gateway.url(),
        "k",
        json!({ "format": "event_id_only" }),
    )
    .await;
    let event_id = send(&server, &alice, &room, "p1", text("secret")).await;
    let received = gateway.wait_for(1).await;
    let notification = received[0]["notification"].as_object().unwrap();
    let mut keys: Vec<&str> = notification.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["counts", "devices", "event_id", "prio", "room_id"]);
    assert_eq!(notification["event_id"], event_id.as_str());
    assert_eq!(
        notification["devices"][0]["data"],
        json!({ "format": "event_id_only" })
    );
}

#[tokio::test]
async fn a_failing_gateway_gets_every_push_once_after_it_recovers() {
    let server = server().await;
    let gateway = Gateway::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let room = direct_room(&server, &alice, &bob).await;
    set_pusher(&server, &bob, &gateway.url(), "k", json!({})).await;
    gateway.fail_next(2);
    let mut sent = Vec::new();
    for n in 0..3 {
        sent.push(
            send(
                &server,
                &alice,
                &room,
                &format!("f{n}"),
                text(&format!("m{n}")),
            )
            .await,
        );
    }
    let received = gateway.wait_for(3).await;
    let ids: Vec<&str> = received
        .iter()
        .map(|r| r["notification"]["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, sent, "in order, each once");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(gateway.received().len(), 3, "nothing sent twice");
}

#[tokio::test]
async fn pushes_queued_at_a_restart_are_delivered_after_it() {
    let mut server = server().await;
    let gateway = Gateway::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let room = direct_room(&server, &alice, &bob).await;
    set_pusher(&server, &bob, &gateway.url(), "k", json!({})).await;
    // The gateway is down (every request fails) while the messages are sent.
    gateway.fail_next(usize::MAX);
    let mut sent = Vec::new();
    for n in 0..3 {
        sent.push(
            send(
                &server,
                &alice,
                &room,
                &format!("r{n}"),
                text(&format!("m{n}")),
            )
            .await,
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.restart().await;
    gateway.fail_next(0);
    let received = gateway.wait_for(3).await;
    let ids: Vec<&str> = received
        .iter()
        .map(|r| r["notification"]["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, sent);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(gateway.received().len(), 3, "nothing sent twice");
}

#[tokio::test]
async fn a_rejected_pushkey_loses_its_pusher() {
    let server = server().await;
    let gateway = Gateway::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let room = direct_room(&server, &alice, &bob).await;
    set_pusher(&server, &bob, &gateway.url(), "stale", json!({})).await;
    gateway.reject("stale");
    send(&server, &alice, &room, "x1", text("anyone?")).await;
    gateway.wait_for(1).await;
    let mut gone = false;
    for _ in 0..50 {
        if pushers(&server, &bob).await.is_empty() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "the rejected pusher is deleted");
}

#[tokio::test]
async fn no_push_goes_to_a_private_address_unless_configured() {
    let server = TestServer::start().await;
    let gateway = Gateway::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let room = direct_room(&server, &alice, &bob).await;
    set_pusher(&server, &bob, &gateway.url(), "k", json!({})).await;
    send(&server, &alice, &room, "x1", text("hello")).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        gateway.received().is_empty(),
        "loopback is off limits by default"
    );
}
