//! Display name and avatar URL.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{TestServer, assert_error};

#[tokio::test]
async fn get_and_set_profile_fields() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let base = format!("/_matrix/client/v3/profile/{}", alice.user_id);
    let (status, body) = server.get(&base, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({ "displayname": "alice" }),
        "the localpart is the initial display name"
    );

    let (status, _) = server
        .put(
            &format!("{base}/displayname"),
            Some(&alice.token),
            json!({ "displayname": "Alice A." }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server
        .put(
            &format!("{base}/avatar_url"),
            Some(&alice.token),
            json!({ "avatar_url": "mxc://localhost/abc" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = server.get(&format!("{base}/displayname"), None).await;
    assert_eq!(body, json!({ "displayname": "Alice A." }));
    let (_, body) = server.get(&format!("{base}/avatar_url"), None).await;
    assert_eq!(body, json!({ "avatar_url": "mxc://localhost/abc" }));
    let (_, body) = server
        .get(
            &format!("/_matrix/client/r0/profile/{}", alice.user_id),
            None,
        )
        .await;
    assert_eq!(
        body,
        json!({ "displayname": "Alice A.", "avatar_url": "mxc://localhost/abc" })
    );

    // Clearing a field removes it.
    let (status, _) = server
        .put(
            &format!("{base}/displayname"),
            Some(&alice.token),
            json!({ "displayname": null }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = server.get(&base, None).await;
    assert_eq!(body, json!({ "avatar_url": "mxc://localhost/abc" }));
}

#[tokio::test]
async fn profile_errors() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let response = server
        .put(
            &format!("/_matrix/client/v3/profile/{}/displayname", bob.user_id),
            Some(&alice.token),
            json!({ "displayname": "pwned" }),
        )
        .await;
    assert_error(&response, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let (_, body) = server
        .get(&format!("/_matrix/client/v3/profile/{}", bob.user_id), None)
        .await;
    assert_eq!(body["displayname"], "bob", "unchanged");
    let response = server
        .put(
            &format!("/_matrix/client/v3/profile/{}/displayname", alice.user_id),
            None,
            json!({ "displayname": "x" }),
        )
        .await;
    assert_error(&response, StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN");
    let long = "x".repeat(300);
    let response = server
        .put(
            &format!("/_matrix/client/v3/profile/{}/displayname", alice.user_id),
            Some(&alice.token),
            json!({ "displayname": long }),
        )
        .await;
    assert_error(&response, StatusCode::BAD_REQUEST, "M_BAD_JSON");
    assert_error(
        &server
            .get("/_matrix/client/v3/profile/@nobody:localhost", None)
            .await,
        StatusCode::NOT_FOUND,
        "M_NOT_FOUND",
    );
    assert_error(
        &server
            .get("/_matrix/client/v3/profile/not-a-user-id", None)
            .await,
        StatusCode::BAD_REQUEST,
        "M_INVALID_PARAM",
    );
}
