//! `/versions`, `/capabilities`, `.well-known`, login flows, CORS.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{TestServer, assert_error};

#[tokio::test]
async fn versions_are_public_and_honest() {
    let server = TestServer::start().await;
    let (status, body) = server.get("/_matrix/client/versions", None).await;
    assert_eq!(status, StatusCode::OK);
    let versions: Vec<&str> = body["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        versions.contains(&"v1.1") && versions.contains(&"r0.6.1"),
        "{versions:?}"
    );
    let minor = |v: &str| v.strip_prefix("v1.").and_then(|m| m.parse::<u32>().ok());
    assert!(
        versions.iter().filter_map(|v| minor(v)).all(|m| m <= 11),
        "nothing past v1.11 yet: {versions:?}"
    );
    // `unstable_features` is optional and only sent when a feature is on.
    assert!(
        body.get("unstable_features")
            .is_none_or(|features| features.is_object())
    );
}

#[tokio::test]
async fn capabilities_need_a_token_and_list_account_capabilities() {
    let server = TestServer::start().await;
    assert_error(
        &server.get("/_matrix/client/v3/capabilities", None).await,
        StatusCode::UNAUTHORIZED,
        "M_MISSING_TOKEN",
    );
    let alice = server.register("alice", "pw-alice").await;
    let (status, body) = server
        .get("/_matrix/client/v3/capabilities", Some(&alice.token))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["capabilities"]["m.change_password"]["enabled"], true);
    assert_eq!(body["capabilities"]["m.3pid_changes"]["enabled"], false);
    let versions = &body["capabilities"]["m.room_versions"];
    assert_eq!(versions["default"], "10");
    for version in [
        "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12",
    ] {
        assert_eq!(versions["available"][version], "stable", "{versions}");
    }
}

#[tokio::test]
async fn well_known_documents_follow_config() {
    let server = TestServer::start().await;
    for path in ["client", "server", "support"] {
        let response = server
            .get(&format!("/.well-known/matrix/{path}"), None)
            .await;
        assert_error(&response, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    }
    let server = TestServer::start_with(|config| {
        config.well_known.client = Some("https://matrix.example.org".into());
        config.well_known.server = Some("matrix.example.org:443".into());
        config.well_known.support_page = Some("https://example.org/help".into());
        config.well_known.support_contacts = vec![hearth::config::SupportContact {
            role: "m.role.admin".into(),
            matrix_id: Some("@admin:example.org".into()),
            email_address: Some("admin@example.org".into()),
        }];
    })
    .await;
    let (status, body) = server.get("/.well-known/matrix/client", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["m.homeserver"]["base_url"],
        "https://matrix.example.org"
    );
    let (_, body) = server.get("/.well-known/matrix/server", None).await;
    assert_eq!(body, json!({ "m.server": "matrix.example.org:443" }));
    let (_, body) = server.get("/.well-known/matrix/support", None).await;
    assert_eq!(body["support_page"], "https://example.org/help");
    assert_eq!(body["contacts"][0]["role"], "m.role.admin");
    assert_eq!(body["contacts"][0]["matrix_id"], "@admin:example.org");
    assert_eq!(body["contacts"][0]["email_address"], "admin@example.org");
}

#[tokio::test]
async fn login_flows_offer_password() {
    let server = TestServer::start().await;
    let (status, body) = server.get("/_matrix/client/v3/login", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["flows"], json!([{ "type": "m.login.password" }]));
}

#[tokio::test]
async fn cors_preflight_and_headers() {
    let server = TestServer::start().await;
    let response = server
        .http
        .request(
            Method::OPTIONS,
            format!("{}/_matrix/client/v3/login", server.base),
        )
        .header("Origin", "https://app.example.org")
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let headers = response.headers();
    assert_eq!(headers["access-control-allow-origin"], "*");
    let methods = headers["access-control-allow-methods"].to_str().unwrap();
    for method in ["GET", "POST", "PUT", "DELETE", "OPTIONS"] {
        assert!(methods.contains(method), "{methods}");
    }
    let allowed = headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(
        allowed.contains("authorization")
            && allowed.contains("content-type")
            && allowed.contains("x-requested-with")
    );

    let response = server
        .http
        .get(format!("{}/_matrix/client/versions", server.base))
        .header("Origin", "https://app.example.org")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
}

#[tokio::test]
async fn r0_paths_and_unknown_query_parameters_work() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw-alice").await;
    let (status, body) = server
        .get(
            "/_matrix/client/r0/account/whoami?_cacheBuster=12345",
            Some(&alice.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user_id"], alice.user_id);
    let (status, body) = server
        .get("/_matrix/client/r0/login?_cacheBuster=1", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
