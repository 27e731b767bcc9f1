//! Refresh tokens and expiring access tokens.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{TestServer, assert_error};

const WHOAMI: &str = "/_matrix/client/v3/account/whoami";
const REFRESH: &str = "/_matrix/client/v3/refresh";

fn login_body(refresh: bool) -> serde_json::Value {
    json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": "alice" }, "password": "pw", "refresh_token": refresh })
}

#[tokio::test]
async fn refresh_rotates_tokens_and_retires_the_old_ones() {
    let server = TestServer::start_with(|config| config.access_token_lifetime_secs = 300).await;
    server.register("alice", "pw").await;
    let (status, login) = server
        .post("/_matrix/client/v3/login", None, login_body(true))
        .await;
    assert_eq!(status, StatusCode::OK, "{login}");
    assert_eq!(login["expires_in_ms"], 300_000);
    let first_access = login["access_token"].as_str().unwrap();
    let first_refresh = login["refresh_token"].as_str().unwrap();

    let (status, refreshed) = server
        .post(REFRESH, None, json!({ "refresh_token": first_refresh }))
        .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let second_access = refreshed["access_token"].as_str().unwrap();
    let second_refresh = refreshed["refresh_token"].as_str().unwrap();
    assert_ne!(second_access, first_access);
    assert_ne!(second_refresh, first_refresh);
    assert_eq!(refreshed["expires_in_ms"], 300_000);
    assert_error(
        &server.get(WHOAMI, Some(first_access)).await,
        StatusCode::UNAUTHORIZED,
        "M_UNKNOWN_TOKEN",
    );

    // Until the new access token is used, the old refresh token still works (lost responses).
    let (status, retried) = server
        .post(REFRESH, None, json!({ "refresh_token": first_refresh }))
        .await;
    assert_eq!(status, StatusCode::OK, "{retried}");
    let third_access = retried["access_token"].as_str().unwrap();
    assert_eq!(
        server.get(WHOAMI, Some(third_access)).await.0,
        StatusCode::OK
    );
    // Now the used-up refresh tokens are gone.
    for stale in [first_refresh, second_refresh] {
        let response = server
            .post(REFRESH, None, json!({ "refresh_token": stale }))
            .await;
        assert_error(&response, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
    }
    let (status, _) = server
        .post(
            REFRESH,
            None,
            json!({ "refresh_token": retried["refresh_token"] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn expired_access_token_is_a_soft_logout() {
    let server = TestServer::start_with(|config| config.access_token_lifetime_secs = 1).await;
    server.register("alice", "pw").await;
    let (_, login) = server
        .post("/_matrix/client/v3/login", None, login_body(true))
        .await;
    let access = login["access_token"].as_str().unwrap();
    assert_eq!(server.get(WHOAMI, Some(access)).await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let response = server.get(WHOAMI, Some(access)).await;
    assert_error(&response, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
    assert_eq!(response.1["soft_logout"], true);
    let (status, refreshed) = server
        .post(
            REFRESH,
            None,
            json!({ "refresh_token": login["refresh_token"] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        server
            .get(WHOAMI, refreshed["access_token"].as_str())
            .await
            .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn without_refresh_tokens_access_tokens_do_not_expire() {
    let server = TestServer::start_with(|config| config.access_token_lifetime_secs = 0).await;
    server.register("alice", "pw").await;
    let (_, login) = server
        .post("/_matrix/client/v3/login", None, login_body(true))
        .await;
    assert!(
        login.get("refresh_token").is_none() && login.get("expires_in_ms").is_none(),
        "{login}"
    );
    let response = server
        .post(REFRESH, None, json!({ "refresh_token": "hrt_unknown" }))
        .await;
    assert_error(&response, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
    // Registration can ask for refresh tokens too, when enabled.
    let server = TestServer::start_with(|config| config.access_token_lifetime_secs = 60).await;
    let (status, body) = server
        .post("/_matrix/client/v3/register", None, json!({ "username": "bob", "password": "pw", "refresh_token": true, "auth": { "type": "m.login.dummy" } }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["refresh_token"].is_string());
    assert_eq!(body["expires_in_ms"], 60_000);
}

/// As in Synapse (`refreshable_access_token_lifetime`: 5 minutes), a client that asks for a
/// refresh token gets one without any configuration; one that does not keeps a token that
/// never expires.
#[tokio::test]
async fn refresh_tokens_are_on_by_default() {
    let server = TestServer::start().await;
    let (status, body) = server
        .post("/_matrix/client/v3/register", None, json!({ "username": "alice", "password": "pw", "refresh_token": true, "auth": { "type": "m.login.dummy" } }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["refresh_token"].is_string(), "{body}");
    assert_eq!(body["expires_in_ms"], 300_000);
    let (status, login) = server
        .post("/_matrix/client/v3/login", None, login_body(true))
        .await;
    assert_eq!(status, StatusCode::OK, "{login}");
    assert!(login["refresh_token"].is_string(), "{login}");
    let (status, refreshed) = server
        .post(
            REFRESH,
            None,
            json!({ "refresh_token": login["refresh_token"] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let (_, plain) = server
        .post("/_matrix/client/v3/login", None, login_body(false))
        .await;
    assert!(
        plain.get("refresh_token").is_none() && plain.get("expires_in_ms").is_none(),
        "{plain}"
    );
}
