//! Push: rules and their endpoints, notification counts and the notification list, pushers,
//! and delivery to a push gateway.

mod counts;
mod delivery;
mod gateway_stub;
mod rules;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestServer, TestUser};

/// `GET /pushrules/` of a user.
async fn all_rules(server: &TestServer, user: &TestUser) -> Value {
    let (status, body) = server
        .get("/_matrix/client/v3/pushrules/", Some(&user.token))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Sends a message with the given content; returns its event id.
async fn send(
    server: &TestServer,
    user: &TestUser,
    room: &str,
    txn: &str,
    content: Value,
) -> String {
    let path = format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}");
    let (status, body) = server.put(&path, Some(&user.token), content).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["event_id"].as_str().unwrap().to_owned()
}

/// `(notification_count, highlight_count)` of a room in a fresh initial sync.
async fn counts(server: &TestServer, user: &TestUser, room: &str) -> (u64, u64) {
    let (status, body) = server
        .get("/_matrix/client/v3/sync", Some(&user.token))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let unread = &body["rooms"]["join"][room]["unread_notifications"];
    (
        unread["notification_count"].as_u64().unwrap_or(0),
        unread["highlight_count"].as_u64().unwrap_or(0),
    )
}

/// Sets an HTTP pusher for the user's device.
async fn set_pusher(server: &TestServer, user: &TestUser, url: &str, pushkey: &str, data: Value) {
    let mut data = data;
    data["url"] = json!(url);
    let (status, body) = server
        .post(
            "/_matrix/client/v3/pushers/set",
            Some(&user.token),
            json!({
                "kind": "http",
                "app_id": "org.example.app",
                "pushkey": pushkey,
                "app_display_name": "Example",
                "device_display_name": "Phone",
                "lang": "en",
                "data": data,
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
