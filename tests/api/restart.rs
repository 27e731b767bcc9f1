//! Data survives a restart; revocations too.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{TestServer, assert_error};

#[tokio::test]
async fn accounts_and_tokens_survive_a_restart() {
    let mut server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let (_, second) = server.login("alice", "pw").await;
    let second_token = second["access_token"].as_str().unwrap().to_owned();
    let (status, _) = server
        .post("/_matrix/client/v3/logout", Some(&second_token), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    server
        .put(
            &format!("/_matrix/client/v3/profile/{}/displayname", alice.user_id),
            Some(&alice.token),
            json!({ "displayname": "Alice" }),
        )
        .await;

    server.restart().await;

    let (status, whoami) = server
        .get("/_matrix/client/v3/account/whoami", Some(&alice.token))
        .await;
    assert_eq!(status, StatusCode::OK, "old token still valid: {whoami}");
    assert_eq!(whoami["user_id"], alice.user_id);
    let response = server
        .get("/_matrix/client/v3/account/whoami", Some(&second_token))
        .await;
    assert_error(&response, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
    assert_eq!(server.login("alice", "pw").await.0, StatusCode::OK);
    let (_, profile) = server
        .get(
            &format!("/_matrix/client/v3/profile/{}", alice.user_id),
            None,
        )
        .await;
    assert_eq!(profile["displayname"], "Alice");
    server.stop().await;
}
