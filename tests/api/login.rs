//! `POST /login` in every identifier form, logout, logout all.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{TestServer, assert_error};

const LOGIN: &str = "/_matrix/client/v3/login";
const WHOAMI: &str = "/_matrix/client/v3/account/whoami";

#[tokio::test]
async fn every_identifier_form_logs_in() {
    let server = TestServer::start().await;
    server.register("alice", "secret").await;
    let forms = [
        json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": "alice" }, "password": "secret" }),
        json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": "@alice:localhost" }, "password": "secret" }),
        json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": "ALICE" }, "password": "secret" }),
        json!({ "type": "m.login.password", "user": "alice", "password": "secret" }),
        json!({ "type": "m.login.password", "user": "@alice:localhost", "password": "secret" }),
    ];
    for form in forms {
        let (status, body) = server.post(LOGIN, None, form.clone()).await;
        assert_eq!(status, StatusCode::OK, "{form} -> {body}");
        assert_eq!(body["user_id"], "@alice:localhost");
        assert_eq!(body["home_server"], "localhost");
        let (_, whoami) = server.get(WHOAMI, body["access_token"].as_str()).await;
        assert_eq!(whoami["device_id"], body["device_id"]);
    }
}

#[tokio::test]
async fn wrong_credentials_are_forbidden() {
    let server = TestServer::start().await;
    server.register("alice", "secret").await;
    assert_error(
        &server.login("alice", "wrong").await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );
    assert_error(
        &server.login("nobody", "secret").await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );
    assert_error(
        &server.login("@alice:other.server", "secret").await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );
    let third_party = json!({ "type": "m.login.password", "identifier": { "type": "m.id.thirdparty", "medium": "email", "address": "a@example.org" }, "password": "secret" });
    assert_error(
        &server.post(LOGIN, None, third_party).await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );
    let phone = json!({ "type": "m.login.password", "identifier": { "type": "m.id.phone", "country": "GB", "phone": "123" }, "password": "secret" });
    assert_error(
        &server.post(LOGIN, None, phone).await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );
    let token_login = json!({ "type": "m.login.token", "token": "abc" });
    assert_error(
        &server.post(LOGIN, None, token_login).await,
        StatusCode::BAD_REQUEST,
        "M_UNKNOWN",
    );
}

#[tokio::test]
async fn supplied_device_id_is_reused_and_old_token_revoked() {
    let server = TestServer::start().await;
    server.register("alice", "secret").await;
    let login = |device: &str| json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": "alice" }, "password": "secret", "device_id": device, "initial_device_display_name": "Laptop" });
    let (_, first) = server.post(LOGIN, None, login("LAPTOP")).await;
    assert_eq!(first["device_id"], "LAPTOP");
    let (_, second) = server.post(LOGIN, None, login("LAPTOP")).await;
    assert_eq!(second["device_id"], "LAPTOP");
    assert_error(
        &server.get(WHOAMI, first["access_token"].as_str()).await,
        StatusCode::UNAUTHORIZED,
        "M_UNKNOWN_TOKEN",
    );
    let (status, _) = server.get(WHOAMI, second["access_token"].as_str()).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn logout_and_logout_all() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "secret").await;
    let (_, second) = server.login("alice", "secret").await;
    let (_, third) = server.login("alice", "secret").await;
    let (status, _) = server
        .post("/_matrix/client/v3/logout", Some(&alice.token), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let response = server.get(WHOAMI, Some(&alice.token)).await;
    assert_error(&response, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
    assert_eq!(response.1["soft_logout"], false);
    let (status, _) = server.get(WHOAMI, second["access_token"].as_str()).await;
    assert_eq!(status, StatusCode::OK, "other devices stay logged in");

    let (status, _) = server
        .post(
            "/_matrix/client/v3/logout/all",
            second["access_token"].as_str(),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    for token in [&second["access_token"], &third["access_token"]] {
        assert_error(
            &server.get(WHOAMI, token.as_str()).await,
            StatusCode::UNAUTHORIZED,
            "M_UNKNOWN_TOKEN",
        );
    }
    let (status, _) = server.login("alice", "secret").await;
    assert_eq!(status, StatusCode::OK, "the account itself is fine");
}
