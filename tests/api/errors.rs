//! Bad input: every case gets the spec's status and errcode, and changes nothing.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{TestServer, assert_error};

#[tokio::test]
async fn unknown_endpoint_and_wrong_method() {
    let server = TestServer::start().await;
    assert_error(
        &server.get("/_matrix/client/v3/nonexistent", None).await,
        StatusCode::NOT_FOUND,
        "M_UNRECOGNIZED",
    );
    assert_error(
        &server.get("/", None).await,
        StatusCode::NOT_FOUND,
        "M_UNRECOGNIZED",
    );
    let response = server
        .request(Method::DELETE, "/_matrix/client/v3/login", None, None)
        .await;
    assert_error(&response, StatusCode::METHOD_NOT_ALLOWED, "M_UNRECOGNIZED");
    let response = server
        .request(
            Method::PATCH,
            "/_matrix/client/v3/account/whoami",
            None,
            None,
        )
        .await;
    assert_error(&response, StatusCode::METHOD_NOT_ALLOWED, "M_UNRECOGNIZED");
}

#[tokio::test]
async fn malformed_json_is_m_not_json_and_wrong_shape_is_m_bad_json() {
    let server = TestServer::start().await;
    let response = server
        .post_raw("/_matrix/client/v3/login", None, b"{not json".to_vec())
        .await;
    assert_error(&response, StatusCode::BAD_REQUEST, "M_NOT_JSON");
    let response = server
        .post("/_matrix/client/v3/login", None, json!({ "type": 5 }))
        .await;
    assert_error(&response, StatusCode::BAD_REQUEST, "M_BAD_JSON");
    let response = server
        .post(
            "/_matrix/client/v3/register",
            None,
            json!({ "username": ["x"], "auth": { "type": "m.login.dummy" } }),
        )
        .await;
    assert_error(&response, StatusCode::BAD_REQUEST, "M_BAD_JSON");
    // Nothing was created by the failed attempts.
    let (status, body) = server
        .get("/_matrix/client/v3/register/available?username=x", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn oversized_body_is_m_too_large_and_changes_nothing() {
    let server = TestServer::start_with(|config| config.max_request_size = 4096).await;
    let padding = "x".repeat(8192);
    let response = server
        .post(
            "/_matrix/client/v3/register",
            None,
            json!({ "username": "big", "password": "pw", "auth": { "type": "m.login.dummy" }, "pad": padding }),
        )
        .await;
    assert_error(&response, StatusCode::PAYLOAD_TOO_LARGE, "M_TOO_LARGE");
    let (status, _) = server
        .get("/_matrix/client/v3/register/available?username=big", None)
        .await;
    assert_eq!(status, StatusCode::OK, "the account must not exist");
}

#[tokio::test]
async fn missing_and_unknown_tokens() {
    let server = TestServer::start().await;
    let whoami = "/_matrix/client/v3/account/whoami";
    assert_error(
        &server.get(whoami, None).await,
        StatusCode::UNAUTHORIZED,
        "M_MISSING_TOKEN",
    );
    let response = server.get(whoami, Some("hat_not_a_real_token")).await;
    assert_error(&response, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
    assert_eq!(response.1["soft_logout"], false);
    // The deprecated query-parameter form is still accepted.
    let alice = server.register("alice", "pw").await;
    let (status, body) = server
        .get(&format!("{whoami}?access_token={}", alice.token), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user_id"], alice.user_id);
}

#[tokio::test]
async fn rate_limits_answer_m_limit_exceeded() {
    let server = TestServer::start_with(|config| {
        config.rate_limits.enabled = true;
        config.rate_limits.login_burst = 2;
        config.rate_limits.login_per_second = 0.001;
    })
    .await;
    for _ in 0..2 {
        let (status, _) = server.login("nobody", "pw").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    let response = server.login("nobody", "pw").await;
    assert_error(&response, StatusCode::TOO_MANY_REQUESTS, "M_LIMIT_EXCEEDED");
    assert!(response.1["retry_after_ms"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn bodiless_posts_read_as_empty_objects() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let (_, room) = server
        .post(
            "/_matrix/client/v3/createRoom",
            Some(&alice.token),
            json!({ "preset": "public_chat" }),
        )
        .await;
    let room = room["room_id"].as_str().unwrap();
    let response = server
        .http
        .post(format!("{}/_matrix/client/v3/join/{room}", server.base))
        .bearer_auth(&bob.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn invalid_utf8_is_m_not_json_before_authentication() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let invalid = b"{ \"test\":\"a\x81\" }".to_vec();
    let response = server
        .post_raw("/_matrix/client/v3/register", None, invalid.clone())
        .await;
    assert_error(&response, StatusCode::BAD_REQUEST, "M_NOT_JSON");
    // The body is judged before the (missing) token.
    let response = server
        .post_raw("/_matrix/client/v3/createRoom", None, invalid)
        .await;
    assert_error(&response, StatusCode::BAD_REQUEST, "M_NOT_JSON");
    // In a field the endpoint would ignore, and with a valid token: still refused, no room.
    let response = server
        .post_raw(
            "/_matrix/client/v3/createRoom",
            Some(&alice.token),
            b"{ \"name\": \"ok\", \"org.example\": \"a\xff\" }".to_vec(),
        )
        .await;
    assert_error(&response, StatusCode::BAD_REQUEST, "M_NOT_JSON");
    let (_, rooms) = server
        .get("/_matrix/client/v3/joined_rooms", Some(&alice.token))
        .await;
    assert_eq!(rooms["joined_rooms"], json!([]));
}
