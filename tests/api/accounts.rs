//! Password change and deactivation, both behind UIAA.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{TestServer, assert_error};

const WHOAMI: &str = "/_matrix/client/v3/account/whoami";
const PASSWORD: &str = "/_matrix/client/v3/account/password";

#[tokio::test]
async fn change_password_with_uiaa_logs_out_other_devices() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "old-pw").await;
    let (_, other) = server.login("alice", "old-pw").await;
    let other_token = other["access_token"].as_str().unwrap();

    let (status, challenge) = server
        .post(
            PASSWORD,
            Some(&alice.token),
            json!({ "new_password": "new-pw" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{challenge}");
    assert_eq!(
        challenge["flows"],
        json!([{ "stages": ["m.login.password"] }])
    );
    let session = challenge["session"].as_str().unwrap();

    let mut wrong = TestServer::password_auth(&alice, Some(session));
    wrong["password"] = json!("not-it");
    let (status, body) = server
        .post(
            PASSWORD,
            Some(&alice.token),
            json!({ "new_password": "new-pw", "auth": wrong }),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["errcode"], "M_FORBIDDEN", "{body}");
    assert_eq!(body["session"], session);

    let auth = TestServer::password_auth(&alice, Some(session));
    let (status, body) = server
        .post(
            PASSWORD,
            Some(&alice.token),
            json!({ "new_password": "new-pw", "auth": auth }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_error(
        &server.login("alice", "old-pw").await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );
    assert_eq!(server.login("alice", "new-pw").await.0, StatusCode::OK);
    assert_eq!(
        server.get(WHOAMI, Some(&alice.token)).await.0,
        StatusCode::OK,
        "this device stays"
    );
    assert_error(
        &server.get(WHOAMI, Some(other_token)).await,
        StatusCode::UNAUTHORIZED,
        "M_UNKNOWN_TOKEN",
    );
}

#[tokio::test]
async fn change_password_can_keep_other_devices() {
    let server = TestServer::start().await;
    let mut alice = server.register("alice", "old-pw").await;
    let (_, other) = server.login("alice", "old-pw").await;
    let auth = TestServer::password_auth(&alice, None);
    let (status, body) = server
        .post(
            PASSWORD,
            Some(&alice.token),
            json!({ "new_password": "new-pw", "logout_devices": false, "auth": auth }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        server.get(WHOAMI, other["access_token"].as_str()).await.0,
        StatusCode::OK
    );
    alice.password = "new-pw".into();
    assert_eq!(server.login("alice", "new-pw").await.0, StatusCode::OK);
}

#[tokio::test]
async fn uiaa_password_of_another_user_is_refused() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw-a").await;
    let bob = server.register("bob", "pw-b").await;
    let auth = TestServer::password_auth(&bob, None);
    // Refused outright (403, as Synapse answers), not a challenge to try again.
    let response = server
        .post(
            PASSWORD,
            Some(&alice.token),
            json!({ "new_password": "x", "auth": auth }),
        )
        .await;
    assert_error(&response, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    assert_eq!(
        server.login("alice", "pw-a").await.0,
        StatusCode::OK,
        "unchanged"
    );
}

#[tokio::test]
async fn deactivation_revokes_everything_and_keeps_the_name_taken() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let (_, other) = server.login("alice", "pw").await;
    let deactivate = "/_matrix/client/v3/account/deactivate";
    let (status, _) = server.post(deactivate, Some(&alice.token), json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let auth = TestServer::password_auth(&alice, None);
    let (status, body) = server
        .post(deactivate, Some(&alice.token), json!({ "auth": auth }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id_server_unbind_result"], "no-support");
    for token in [
        alice.token.as_str(),
        other["access_token"].as_str().unwrap(),
    ] {
        assert_error(
            &server.get(WHOAMI, Some(token)).await,
            StatusCode::UNAUTHORIZED,
            "M_UNKNOWN_TOKEN",
        );
    }
    assert_error(
        &server.login("alice", "pw").await,
        StatusCode::FORBIDDEN,
        "M_USER_DEACTIVATED",
    );
    let response = server
        .get("/_matrix/client/v3/register/available?username=alice", None)
        .await;
    assert_error(&response, StatusCode::BAD_REQUEST, "M_USER_IN_USE");
    let response = server
        .get("/_matrix/client/v3/profile/@alice:localhost", None)
        .await;
    assert_error(&response, StatusCode::NOT_FOUND, "M_NOT_FOUND");
}
