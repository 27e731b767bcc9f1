//! Presence: explicit states, visibility to room mates, online through sync, idle → offline.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestServer, TestUser, assert_error};

fn presence_of(sync: &Value, user: &TestUser) -> Option<Value> {
    sync["presence"]["events"]
        .as_array()?
        .iter()
        .find(|e| e["sender"] == user.user_id.as_str())
        .map(|e| e["content"].clone())
}

#[tokio::test]
async fn presence_is_shared_with_room_mates_and_idles_to_offline() {
    let server = TestServer::start_with(|config| config.presence.idle_timeout_secs = 2).await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let carol = server.register("carol", "pw").await;
    let (_, room) = server
        .post(
            "/_matrix/client/v3/createRoom",
            Some(&alice.token),
            json!({ "preset": "public_chat" }),
        )
        .await;
    let room = room["room_id"].as_str().unwrap().to_owned();
    server
        .post(
            &format!("/_matrix/client/v3/join/{room}"),
            Some(&bob.token),
            json!({}),
        )
        .await;

    let path = format!("/_matrix/client/v3/presence/{}/status", alice.user_id);
    let (status, _) = server
        .put(
            &path,
            Some(&alice.token),
            json!({ "presence": "unavailable", "status_msg": "lunch" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = server.get(&path, Some(&bob.token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["presence"], "unavailable");
    assert_eq!(body["status_msg"], "lunch");
    assert!(body["last_active_ago"].is_u64());
    assert_error(
        &server.get(&path, Some(&carol.token)).await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );
    assert_error(
        &server
            .put(&path, Some(&bob.token), json!({ "presence": "online" }))
            .await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );

    // Syncing marks alice online; bob's sync carries it.
    let (_, bob_first) = server
        .get(
            "/_matrix/client/v3/sync?set_presence=offline",
            Some(&bob.token),
        )
        .await;
    let token = bob_first["next_batch"].as_str().unwrap().to_owned();
    server
        .get("/_matrix/client/v3/sync", Some(&alice.token))
        .await;
    let (_, body) = server
        .get(
            &format!("/_matrix/client/v3/sync?since={token}&set_presence=offline&timeout=0"),
            Some(&bob.token),
        )
        .await;
    let seen = presence_of(&body, &alice).expect("alice's presence in bob's sync");
    assert_eq!(seen["presence"], "online");
    assert_eq!(seen["currently_active"], true);
    assert_eq!(seen["status_msg"], "lunch", "the status message stays");
    let token = body["next_batch"].as_str().unwrap().to_owned();

    // With no activity alice goes offline by herself, and bob's waiting sync hears it.
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let (_, body) = server
        .get(
            &format!("/_matrix/client/v3/sync?since={token}&set_presence=offline&timeout=10000"),
            Some(&bob.token),
        )
        .await;
    assert_eq!(
        presence_of(&body, &alice).expect("offline update")["presence"],
        "offline",
        "{body}"
    );
}
