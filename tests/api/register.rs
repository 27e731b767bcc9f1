//! `POST /register` with UIAA, registration tokens, availability and shared-secret registration.

use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::json;
use sha1::Sha1;

use crate::common::{SHARED_SECRET, TestServer, assert_error};

const REGISTER: &str = "/_matrix/client/v3/register";

#[tokio::test]
async fn dummy_flow_with_session_registers_and_logs_in() {
    let server = TestServer::start().await;
    let (status, challenge) = server
        .post(
            REGISTER,
            None,
            json!({ "username": "alice", "password": "pw" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{challenge}");
    assert_eq!(challenge["flows"], json!([{ "stages": ["m.login.dummy"] }]));
    let session = challenge["session"].as_str().expect("session id");
    let (status, body) = server
        .post(
            REGISTER,
            None,
            json!({
                "username": "alice", "password": "pw",
                "device_id": "PHONE", "initial_device_display_name": "Alice's phone",
                "auth": { "type": "m.login.dummy", "session": session },
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user_id"], "@alice:localhost");
    assert_eq!(body["device_id"], "PHONE");
    let token = body["access_token"].as_str().unwrap();
    let (_, whoami) = server
        .get("/_matrix/client/v3/account/whoami", Some(token))
        .await;
    assert_eq!(whoami["user_id"], "@alice:localhost");
    assert_eq!(whoami["device_id"], "PHONE");
    let (_, device) = server
        .get("/_matrix/client/v3/devices/PHONE", Some(token))
        .await;
    assert_eq!(device["display_name"], "Alice's phone");
    // The session was consumed.
    let (status, _) = server
        .post(REGISTER, None, json!({ "username": "alice2", "password": "pw", "auth": { "type": "m.login.dummy", "session": session } }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn taken_invalid_and_generated_usernames() {
    let server = TestServer::start().await;
    server.register("alice", "pw").await;
    let dummy = json!({ "type": "m.login.dummy" });
    let response = server
        .post(
            REGISTER,
            None,
            json!({ "username": "alice", "password": "pw", "auth": dummy }),
        )
        .await;
    assert_error(&response, StatusCode::BAD_REQUEST, "M_USER_IN_USE");
    // Capitals are lowered (as Synapse does), so this is alice again.
    let response = server
        .post(
            REGISTER,
            None,
            json!({ "username": "ALice", "password": "pw", "auth": dummy }),
        )
        .await;
    assert_error(&response, StatusCode::BAD_REQUEST, "M_USER_IN_USE");
    for bad in ["al ice", "al:ice", "_reserved", ""] {
        let response = server
            .post(
                REGISTER,
                None,
                json!({ "username": bad, "password": "pw", "auth": dummy }),
            )
            .await;
        assert_error(&response, StatusCode::BAD_REQUEST, "M_INVALID_USERNAME");
    }
    let (status, body) = server
        .post(REGISTER, None, json!({ "password": "pw", "auth": dummy }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["user_id"].as_str().unwrap().ends_with(":localhost"));
    let response = server
        .post(REGISTER, None, json!({ "username": "nopw", "auth": dummy }))
        .await;
    assert_error(&response, StatusCode::BAD_REQUEST, "M_MISSING_PARAM");
}

#[tokio::test]
async fn availability() {
    let server = TestServer::start().await;
    server.register("alice", "pw").await;
    let (status, body) = server
        .get("/_matrix/client/v3/register/available?username=bob", None)
        .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({ "available": true }))
    );
    let response = server
        .get("/_matrix/client/v3/register/available?username=alice", None)
        .await;
    assert_error(&response, StatusCode::BAD_REQUEST, "M_USER_IN_USE");
    let response = server
        .get(
            "/_matrix/client/v3/register/available?username=B%20ad",
            None,
        )
        .await;
    assert_error(&response, StatusCode::BAD_REQUEST, "M_INVALID_USERNAME");
}

#[tokio::test]
async fn inhibit_login_returns_no_tokens() {
    let server = TestServer::start().await;
    let (status, body) = server
        .post(REGISTER, None, json!({ "username": "quiet", "password": "pw", "inhibit_login": true, "auth": { "type": "m.login.dummy" } }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user_id"], "@quiet:localhost");
    // ruma writes the absent device id as `null`; no token and no device either way.
    assert!(
        body.get("access_token").is_none() && body["device_id"].is_null(),
        "{body}"
    );
    let (status, _) = server.login("quiet", "pw").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn registration_disabled_and_guests() {
    let server = TestServer::start_with(|config| config.allow_registration = false).await;
    let response = server
        .post(
            REGISTER,
            None,
            json!({ "username": "x", "password": "pw", "auth": { "type": "m.login.dummy" } }),
        )
        .await;
    assert_error(&response, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let response = server
        .post(&format!("{REGISTER}?kind=guest"), None, json!({}))
        .await;
    assert_error(&response, StatusCode::FORBIDDEN, "M_GUEST_ACCESS_FORBIDDEN");
}

#[tokio::test]
async fn registration_token_flow() {
    let server =
        TestServer::start_with(|config| config.registration_token = Some("let-me-in".into())).await;
    let (status, challenge) = server
        .post(
            REGISTER,
            None,
            json!({ "username": "carol", "password": "pw" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge["flows"],
        json!([{ "stages": ["m.login.registration_token"] }])
    );
    let session = challenge["session"].as_str().unwrap();
    // Dummy is not enough when a token is required.
    let (status, body) = server
        .post(REGISTER, None, json!({ "username": "carol", "password": "pw", "auth": { "type": "m.login.dummy", "session": session } }))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = server
        .post(REGISTER, None, json!({ "username": "carol", "password": "pw", "auth": { "type": "m.login.registration_token", "token": "wrong", "session": session } }))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["errcode"], "M_FORBIDDEN", "{body}");
    let (status, body) = server
        .post(REGISTER, None, json!({ "username": "carol", "password": "pw", "auth": { "type": "m.login.registration_token", "token": "let-me-in", "session": session } }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let validity = "/_matrix/client/v1/register/m.login.registration_token/validity";
    let (_, body) = server
        .get(&format!("{validity}?token=let-me-in"), None)
        .await;
    assert_eq!(body, json!({ "valid": true }));
    let (_, body) = server.get(&format!("{validity}?token=nope"), None).await;
    assert_eq!(body, json!({ "valid": false }));
}

fn mac(nonce: &str, user: &str, password: &str, admin: bool) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(SHARED_SECRET.as_bytes()).unwrap();
    let kind = if admin { "admin" } else { "notadmin" };
    mac.update(format!("{nonce}\0{user}\0{password}\0{kind}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn shared_secret_registration() {
    let server = TestServer::start().await;
    let path = "/_synapse/admin/v1/register";
    let (status, body) = server.get(path, None).await;
    assert_eq!(status, StatusCode::OK);
    let nonce = body["nonce"].as_str().unwrap().to_owned();
    let bad = json!({ "nonce": nonce, "username": "admin", "password": "pw", "admin": true, "mac": mac(&nonce, "admin", "pw", false) });
    assert_error(
        &server.post(path, None, bad).await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );

    let (_, body) = server.get(path, None).await;
    let nonce = body["nonce"].as_str().unwrap().to_owned();
    let good = json!({ "nonce": nonce, "username": "admin", "password": "pw", "admin": true, "displayname": "The Admin", "mac": mac(&nonce, "admin", "pw", true) });
    let (status, body) = server.post(path, None, good.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user_id"], "@admin:localhost");
    let token = body["access_token"].as_str().unwrap();
    let (_, whoami) = server
        .get("/_matrix/client/v3/account/whoami", Some(token))
        .await;
    assert_eq!(whoami["user_id"], "@admin:localhost");
    let (_, profile) = server
        .get("/_matrix/client/v3/profile/@admin:localhost", None)
        .await;
    assert_eq!(profile["displayname"], "The Admin");
    // Replaying the same nonce fails.
    assert_error(
        &server.post(path, None, good).await,
        StatusCode::BAD_REQUEST,
        "M_UNKNOWN",
    );

    let disabled = TestServer::start_with(|config| config.registration_shared_secret = None).await;
    assert_error(
        &disabled.get(path, None).await,
        StatusCode::NOT_FOUND,
        "M_UNRECOGNIZED",
    );
}

#[tokio::test]
async fn concurrent_registrations_of_one_name_have_one_winner() {
    let server = TestServer::start().await;
    let attempts = (0..8).map(|_| {
        server.post(
            REGISTER,
            None,
            json!({ "username": "race", "password": "pw", "auth": { "type": "m.login.dummy" } }),
        )
    });
    let results = futures::future::join_all(attempts).await;
    let winners = results
        .iter()
        .filter(|(status, _)| *status == StatusCode::OK)
        .count();
    assert_eq!(winners, 1, "{results:?}");
    assert!(
        results
            .iter()
            .all(|(status, body)| *status == StatusCode::OK || body["errcode"] == "M_USER_IN_USE")
    );
}

#[tokio::test]
async fn capitals_in_requested_user_names_are_lowered() {
    let server = TestServer::start().await;
    let (status, body) = server
        .post(
            REGISTER,
            None,
            json!({ "username": "user-UPPER", "password": "pw", "auth": { "type": "m.login.dummy" } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user_id"], "@user-upper:localhost");
    let (status, body) = server.login("user-upper", "pw").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user_id"], "@user-upper:localhost");

    // Shared-secret registration: the MAC covers the name as sent, the account is lowered.
    let path = "/_synapse/admin/v1/register";
    let (_, body) = server.get(path, None).await;
    let nonce = body["nonce"].as_str().unwrap().to_owned();
    let name = "user-UPPER-shared-SECRET";
    let request = json!({ "nonce": nonce, "username": name, "password": "pw", "admin": false, "mac": mac(&nonce, name, "pw", false) });
    let (status, body) = server.post(path, None, request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user_id"], "@user-upper-shared-secret:localhost");
    let (_, whoami) = server
        .get(
            "/_matrix/client/v3/account/whoami",
            Some(body["access_token"].as_str().unwrap()),
        )
        .await;
    assert_eq!(whoami["user_id"], "@user-upper-shared-secret:localhost");
}
