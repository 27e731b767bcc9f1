//! `device_lists` in `/sync` and `/keys/changes`: key uploads, new logins and room mates who
//! join are `changed`; room mates who no longer share a room are `left`.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{SigningKey, device_keys, sync, upload};
use crate::common::{TestServer, TestUser, public_room};

fn listed(body: &Value, field: &str) -> Vec<String> {
    body["device_lists"][field]
        .as_array()
        .map(|users| {
            users
                .iter()
                .map(|u| u.as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn next_batch(server: &TestServer, user: &TestUser, since: Option<&str>) -> String {
    sync(server, user, since).await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Syncs from `since` until `field` lists `user` (bounded); returns the body.
async fn sync_until_listed(
    server: &TestServer,
    syncer: &TestUser,
    since: &str,
    field: &str,
    user: &str,
) -> Value {
    let mut since = since.to_owned();
    for _ in 0..20 {
        let (status, body) = server
            .get(
                &format!("/_matrix/client/v3/sync?since={since}&timeout=2000"),
                Some(&syncer.token),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        if listed(&body, field).iter().any(|u| u == user) {
            return body;
        }
        since = body["next_batch"].as_str().unwrap().to_owned();
    }
    panic!("{user} never appeared in device_lists.{field}");
}

#[tokio::test]
async fn key_changes_of_room_mates_reach_sync_and_key_changes() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let loner = server.register("loner", "pw").await;
    let room = public_room(&server, &alice, &bob).await;
    let since = next_batch(&server, &bob, None).await;

    // Uploading device keys is a change for everyone sharing a room.
    let key = SigningKey::new(&alice.device_id);
    let (status, _) = upload(
        &server,
        &alice,
        json!({ "device_keys": device_keys(&alice, &key) }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    sync_until_listed(&server, &bob, &since, "changed", &alice.user_id).await;
    // ... and /keys/changes reports the same between the two tokens.
    let to = next_batch(&server, &bob, None).await;
    let (status, changes) = server
        .get(
            &format!("/_matrix/client/v3/keys/changes?from={since}&to={to}"),
            Some(&bob.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changes}");
    assert_eq!(changes["changed"], json!([alice.user_id]));
    // Nobody else hears of it.
    let loner_since = next_batch(&server, &loner, None).await;
    let (_, body) = server
        .get(
            &format!("/_matrix/client/v3/sync?since={loner_since}&timeout=0"),
            Some(&loner.token),
        )
        .await;
    assert!(listed(&body, "changed").is_empty(), "{body}");

    // A new login is a change too (a new device to encrypt for).
    let since = next_batch(&server, &bob, None).await;
    let (status, _) = server.login("alice", "pw").await;
    assert_eq!(status, StatusCode::OK);
    sync_until_listed(&server, &bob, &since, "changed", &alice.user_id).await;

    // Someone newly sharing a room is changed; leaving the only shared room is left.
    let since = next_batch(&server, &bob, None).await;
    let (status, _) = server
        .post(
            &format!("/_matrix/client/v3/join/{room}"),
            Some(&loner.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let body = sync_until_listed(&server, &bob, &since, "changed", &loner.user_id).await;
    let since = body["next_batch"].as_str().unwrap().to_owned();
    let (status, _) = server
        .post(
            &format!("/_matrix/client/v3/rooms/{room}/leave"),
            Some(&loner.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    sync_until_listed(&server, &bob, &since, "left", &loner.user_id).await;
}

#[tokio::test]
async fn a_key_change_wakes_a_waiting_sync() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    public_room(&server, &alice, &bob).await;
    let since = next_batch(&server, &bob, None).await;
    let waiting = {
        let (http, base, token) = (server.http.clone(), server.base.clone(), bob.token.clone());
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let body: Value = http
                .get(format!(
                    "{base}/_matrix/client/v3/sync?since={since}&timeout=20000"
                ))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (body, started.elapsed())
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // Logging out a device: a change written by the device hook, not by an upload.
    let (_, login) = server.login("alice", "pw").await;
    let token = login["access_token"].as_str().unwrap().to_owned();
    let (body, waited) = waiting.await.unwrap();
    assert!(
        listed(&body, "changed").contains(&alice.user_id),
        "woken by the new login: {body}"
    );
    assert!(
        waited < std::time::Duration::from_secs(15),
        "woken, not timed out"
    );
    let (status, _) = server
        .post("/_matrix/client/v3/logout", Some(&token), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
}
