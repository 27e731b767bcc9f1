//! Downloads: bytes, the headers browsers rely on, authentication, the legacy switch.

use reqwest::StatusCode;

use super::{get, json, mxc_path, png, upload, upload_ok};
use crate::common::{TestServer, assert_error};

#[tokio::test]
async fn downloads_are_byte_identical_with_safe_headers() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw-alice-1").await;
    let image = png(64, 48);
    let (status, body) = upload(
        &server,
        &alice.token,
        image.clone(),
        Some("image/png"),
        Some("cat.png"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let path = mxc_path(body["content_uri"].as_str().unwrap()).to_owned();

    let response = get(
        &server,
        &format!("/_matrix/client/v1/media/download/{path}"),
        Some(&alice.token),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "image/png");
    assert_eq!(headers["content-disposition"], "inline; filename=cat.png");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("sandbox; default-src 'none'; script-src 'none';")
    );
    assert!(
        headers["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    assert_eq!(headers["content-length"], image.len().to_string().as_str());
    assert_eq!(response.bytes().await.unwrap().as_ref(), image.as_slice());

    // A name in the path replaces the uploaded one.
    let response = get(
        &server,
        &format!("/_matrix/client/v1/media/download/{path}/other%20name.png"),
        Some(&alice.token),
    )
    .await;
    assert_eq!(
        response.headers()["content-disposition"],
        "inline; filename=\"other name.png\""
    );
    // No token: 401, whatever the id.
    let response = get(
        &server,
        &format!("/_matrix/client/v1/media/download/{path}"),
        None,
    )
    .await;
    assert_error(
        &json(response).await,
        StatusCode::UNAUTHORIZED,
        "M_MISSING_TOKEN",
    );
    // allow_redirect and timeout_ms are accepted.
    let response = get(
        &server,
        &format!("/_matrix/client/v1/media/download/{path}?timeout_ms=5000&allow_redirect=true"),
        Some(&alice.token),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn unsafe_types_are_attachments_and_names_are_encoded() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw-alice-1").await;
    let cases = [
        (
            "text/html",
            Some("page.html"),
            "attachment; filename=page.html",
        ),
        ("image/svg+xml", None, "attachment"),
        (
            "Text/Plain; charset=utf-8",
            Some("\u{1F414}.txt"),
            "inline; filename*=utf-8''%F0%9F%90%94.txt",
        ),
        (
            "application/pdf",
            Some("a;b \"c\".pdf"),
            "attachment; filename=\"a;b \\\"c\\\".pdf\"",
        ),
    ];
    for (content_type, name, expected) in cases {
        let (status, body) = upload(
            &server,
            &alice.token,
            b"<script>alert(1)</script>".to_vec(),
            Some(content_type),
            name,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let path = mxc_path(body["content_uri"].as_str().unwrap()).to_owned();
        let response = get(
            &server,
            &format!("/_matrix/client/v1/media/download/{path}"),
            Some(&alice.token),
        )
        .await;
        assert_eq!(response.headers()["content-type"], content_type);
        assert_eq!(
            response.headers()["content-disposition"],
            expected,
            "{content_type}"
        );
        assert!(response.headers().contains_key("content-security-policy"));
    }
    // No content type: served as bytes.
    let (_, body) = upload(&server, &alice.token, b"raw".to_vec(), None, None).await;
    let path = mxc_path(body["content_uri"].as_str().unwrap()).to_owned();
    let response = get(
        &server,
        &format!("/_matrix/client/v1/media/download/{path}"),
        Some(&alice.token),
    )
    .await;
    assert_eq!(
        response.headers()["content-type"],
        "application/octet-stream"
    );
    assert_eq!(response.headers()["content-disposition"], "attachment");
}

#[tokio::test]
async fn remote_and_unknown_media_are_not_found() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw-alice-1").await;
    for path in [
        "/_matrix/client/v1/media/download/other.example/abcdef",
        "/_matrix/client/v1/media/download/localhost/doesnotexist",
        "/_matrix/client/v1/media/thumbnail/other.example/abcdef?width=32&height=32",
        "/_matrix/media/v3/download/other.example/abcdef",
    ] {
        let response = get(&server, path, Some(&alice.token)).await;
        assert!(
            response.headers().contains_key("x-content-type-options"),
            "{path}"
        );
        assert_error(&json(response).await, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    }
}

#[tokio::test]
async fn legacy_endpoints_serve_only_media_from_before_the_switch() {
    let mut server = TestServer::start_with(|c| c.media.enable_authenticated_media = false).await;
    let alice = server.register("alice", "pw-alice-1").await;
    let old = upload_ok(&server, &alice.token, b"old media".to_vec(), "text/plain").await;
    let legacy = |mxc: &str| format!("/_matrix/media/v3/download/{}", mxc_path(mxc));
    let response = get(&server, &legacy(&old), None).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "legacy serves media without a token"
    );
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"old media");

    // The operator turns authenticated media on: new media is frozen out of the legacy
    // endpoints, old media stays reachable there.
    server.config.media.enable_authenticated_media = true;
    server.restart().await;
    let new = upload_ok(&server, &alice.token, b"new media".to_vec(), "text/plain").await;
    assert_error(
        &json(get(&server, &legacy(&new), None).await).await,
        StatusCode::NOT_FOUND,
        "M_NOT_FOUND",
    );
    let response = get(
        &server,
        &format!("/_matrix/media/r0/download/{}/named.txt", mxc_path(&old)),
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-disposition"],
        "inline; filename=named.txt"
    );
    let response = get(
        &server,
        &format!("/_matrix/client/v1/media/download/{}", mxc_path(&new)),
        Some(&alice.token),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
}
