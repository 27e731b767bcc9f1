//! Device list, get, rename, delete (UIAA).

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{TestServer, assert_error};

#[tokio::test]
async fn list_get_and_rename() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let (_, second) = server.login("alice", "pw").await;
    let (status, body) = server
        .get("/_matrix/client/v3/devices", Some(&alice.token))
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut ids: Vec<&str> = body["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device_id"].as_str().unwrap())
        .collect();
    ids.sort();
    let mut expected = vec![
        alice.device_id.as_str(),
        second["device_id"].as_str().unwrap(),
    ];
    expected.sort();
    assert_eq!(ids, expected);
    assert!(body["devices"][0]["last_seen_ts"].is_u64());

    let path = format!("/_matrix/client/v3/devices/{}", alice.device_id);
    let (status, _) = server
        .put(&path, Some(&alice.token), json!({ "display_name": "Desk" }))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, device) = server.get(&path, Some(&alice.token)).await;
    assert_eq!(device["display_name"], "Desk");
    assert_eq!(device["device_id"], alice.device_id.as_str());
    assert_eq!(device["last_seen_ip"], "127.0.0.1");

    assert_error(
        &server
            .get("/_matrix/client/v3/devices/NOPE", Some(&alice.token))
            .await,
        StatusCode::NOT_FOUND,
        "M_NOT_FOUND",
    );
    let response = server
        .put(
            "/_matrix/client/v3/devices/NOPE",
            Some(&alice.token),
            json!({ "display_name": "x" }),
        )
        .await;
    assert_error(&response, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    // Another user's device is invisible.
    let bob = server.register("bob", "pw").await;
    assert_error(
        &server.get(&path, Some(&bob.token)).await,
        StatusCode::NOT_FOUND,
        "M_NOT_FOUND",
    );
}

#[tokio::test]
async fn delete_one_device_needs_uiaa_and_revokes_its_token() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let (_, second) = server.login("alice", "pw").await;
    let second_id = second["device_id"].as_str().unwrap();
    let path = format!("/_matrix/client/v3/devices/{second_id}");
    let (status, challenge) = server
        .request(Method::DELETE, &path, Some(&alice.token), Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let session = challenge["session"].as_str().unwrap();
    assert_eq!(
        server
            .get(
                "/_matrix/client/v3/account/whoami",
                second["access_token"].as_str()
            )
            .await
            .0,
        StatusCode::OK
    );
    let auth = TestServer::password_auth(&alice, Some(session));
    let (status, body) = server
        .request(
            Method::DELETE,
            &path,
            Some(&alice.token),
            Some(json!({ "auth": auth })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_error(
        &server
            .get(
                "/_matrix/client/v3/account/whoami",
                second["access_token"].as_str(),
            )
            .await,
        StatusCode::UNAUTHORIZED,
        "M_UNKNOWN_TOKEN",
    );
    assert_error(
        &server.get(&path, Some(&alice.token)).await,
        StatusCode::NOT_FOUND,
        "M_NOT_FOUND",
    );
    let response = server
        .request(Method::DELETE, &path, Some(&alice.token), Some(json!({})))
        .await;
    assert_error(&response, StatusCode::NOT_FOUND, "M_NOT_FOUND");
}

#[tokio::test]
async fn delete_many_devices() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let (_, b) = server.login("alice", "pw").await;
    let (_, c) = server.login("alice", "pw").await;
    let devices = json!([b["device_id"], c["device_id"], "UNKNOWN"]);
    let (status, _) = server
        .post(
            "/_matrix/client/v3/delete_devices",
            Some(&alice.token),
            json!({ "devices": devices }),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let auth = TestServer::password_auth(&alice, None);
    let (status, body) = server
        .post(
            "/_matrix/client/v3/delete_devices",
            Some(&alice.token),
            json!({ "devices": devices, "auth": auth }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, list) = server
        .get("/_matrix/client/v3/devices", Some(&alice.token))
        .await;
    assert_eq!(list["devices"].as_array().unwrap().len(), 1);
    assert_eq!(list["devices"][0]["device_id"], alice.device_id.as_str());
}

/// Complement's "DELETE /device/{deviceId} requires UI auth user to match device owner": the
/// password of another account proves nothing about this one — 403, and nothing is deleted.
#[tokio::test]
async fn ui_auth_of_another_user_is_forbidden() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "alicepw").await;
    let bob = server.register("bob", "bobspw").await;
    let (_, second) = server.login("alice", "alicepw").await;
    let device = second["device_id"].as_str().unwrap();
    let path = format!("/_matrix/client/v3/devices/{device}");
    let as_bob = json!({ "auth": TestServer::password_auth(&bob, None) });
    let response = server
        .request(
            Method::DELETE,
            &path,
            Some(&alice.token),
            Some(as_bob.clone()),
        )
        .await;
    assert_error(&response, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    assert_eq!(
        server.get(&path, Some(&alice.token)).await.0,
        StatusCode::OK
    );
    // The same on the other routes that ask for the account's password.
    let response = server
        .post(
            "/_matrix/client/v3/delete_devices",
            Some(&alice.token),
            json!({ "devices": [device], "auth": as_bob["auth"] }),
        )
        .await;
    assert_error(&response, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let response = server
        .post(
            "/_matrix/client/v3/account/deactivate",
            Some(&alice.token),
            as_bob.clone(),
        )
        .await;
    assert_error(&response, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    assert_eq!(
        server.get(&path, Some(&alice.token)).await.0,
        StatusCode::OK
    );
    // A wrong password of her own stays a 401 challenge; her right one deletes.
    let mut wrong = alice.clone();
    wrong.password = "nope".to_owned();
    let (status, body) = server
        .request(
            Method::DELETE,
            &path,
            Some(&alice.token),
            Some(json!({ "auth": TestServer::password_auth(&wrong, None) })),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["errcode"], "M_FORBIDDEN");
    let (status, body) = server
        .request(
            Method::DELETE,
            &path,
            Some(&alice.token),
            Some(json!({ "auth": TestServer::password_auth(&alice, None) })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        server.get(&path, Some(&alice.token)).await.0,
        StatusCode::NOT_FOUND
    );
}
