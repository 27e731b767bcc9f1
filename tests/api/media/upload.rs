//! Uploads: direct and to reserved ids, their limits, and what bad uploads leave behind.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use super::{files_under, get, json, media_dir, mxc_path, upload, upload_ok};
use crate::common::{TestServer, assert_error};

#[tokio::test]
async fn config_states_the_upload_limit() {
    let server = TestServer::start_with(|c| c.media.max_upload_size = 12345).await;
    let alice = server.register("alice", "pw-alice-1").await;
    for path in [
        "/_matrix/client/v1/media/config",
        "/_matrix/media/v3/config",
    ] {
        let (status, body) = server.get(path, Some(&alice.token)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(body["m.upload.size"], 12345, "{path}");
    }
    let (status, _) = server.get("/_matrix/client/v1/media/config", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn upload_needs_a_token_and_identical_files_share_one_blob() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw-alice-1").await;
    let (status, body) = server
        .post_raw("/_matrix/media/v3/upload", None, b"x".to_vec())
        .await;
    assert_error(&(status, body), StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN");

    let first = upload_ok(&server, &alice.token, b"same bytes".to_vec(), "text/plain").await;
    let second = upload_ok(&server, &alice.token, b"same bytes".to_vec(), "text/plain").await;
    assert_ne!(first, second, "each upload gets its own media id");
    assert!(first.starts_with("mxc://localhost/"), "{first}");
    let blobs: Vec<_> = files_under(&media_dir(&server))
        .into_iter()
        .filter(|p| !p.starts_with(media_dir(&server).join("tmp")))
        .collect();
    assert_eq!(blobs.len(), 1, "one file for identical content: {blobs:?}");
    // r0 is an alias of v3.
    let response = server
        .http
        .post(format!("{}/_matrix/media/r0/upload", server.base))
        .bearer_auth(&alice.token)
        .body("r0")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn oversized_uploads_are_refused_and_leave_nothing() {
    let server = TestServer::start_with(|c| c.media.max_upload_size = 1024).await;
    let alice = server.register("alice", "pw-alice-1").await;
    // Declared too large: refused before the body is read.
    let response = upload(
        &server,
        &alice.token,
        vec![7; 4096],
        Some("application/octet-stream"),
        None,
    )
    .await;
    assert_error(&response, StatusCode::PAYLOAD_TOO_LARGE, "M_TOO_LARGE");
    // Chunked, without a length: refused once the limit is passed.
    let chunks = futures::stream::iter((0..8).map(|_| {
        Ok::<_, std::io::Error>(hyper::body::Frame::data(bytes::Bytes::from(vec![1u8; 512])))
    }));
    let response = server
        .http
        .post(format!("{}/_matrix/media/v3/upload", server.base))
        .bearer_auth(&alice.token)
        .body(reqwest::Body::wrap(http_body_util::StreamBody::new(chunks)))
        .send()
        .await
        .unwrap();
    assert_error(
        &json(response).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "M_TOO_LARGE",
    );
    // Exactly the limit is fine.
    upload_ok(
        &server,
        &alice.token,
        vec![2; 1024],
        "application/octet-stream",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let files = files_under(&media_dir(&server));
    assert_eq!(
        files.len(),
        1,
        "only the accepted upload is stored: {files:?}"
    );
}

#[tokio::test]
async fn a_truncated_body_stores_nothing_and_the_server_stays_up() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw-alice-1").await;
    let addr = server.base.strip_prefix("http://").unwrap().to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /_matrix/media/v3/upload HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n",
        alice.token
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&[9u8; 5000]).await.unwrap();
    stream.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(stream);
    // The writer notices the end and removes its temp file.
    let mut files = Vec::new();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        files = files_under(&media_dir(&server));
        if files.is_empty() {
            break;
        }
    }
    assert!(files.is_empty(), "nothing stored: {files:?}");
    let (status, _) = server
        .get("/_matrix/client/v1/media/config", Some(&alice.token))
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn reserved_ids_are_uploaded_once_by_their_creator() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw-alice-1").await;
    let bob = server.register("bob", "pw-bob-1").await;
    let (status, body) = server
        .post("/_matrix/media/v1/create", Some(&alice.token), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mxc = body["content_uri"].as_str().unwrap().to_owned();
    assert!(body["unused_expires_at"].as_u64().unwrap() > 0);
    let path = mxc_path(&mxc).to_owned();

    let early = get(
        &server,
        &format!("/_matrix/client/v1/media/download/{path}?timeout_ms=100"),
        Some(&alice.token),
    )
    .await;
    assert_error(
        &json(early).await,
        StatusCode::GATEWAY_TIMEOUT,
        "M_NOT_YET_UPLOADED",
    );

    let put = |token: String, bytes: &'static [u8]| {
        let request = server
            .http
            .put(format!(
                "{}/_matrix/media/v3/upload/{path}?filename=notes.txt",
                server.base
            ))
            .bearer_auth(token)
            .header("content-type", "text/plain")
            .body(bytes);
        async move { json(request.send().await.unwrap()).await }
    };
    assert_error(
        &put(bob.token.clone(), b"bob's").await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );

    // A download waiting for the upload gets it as soon as it lands.
    let wait_path = format!("/_matrix/client/v1/media/download/{path}?timeout_ms=10000");
    let waiting = get(&server, &wait_path, Some(&alice.token));
    let (waited, uploaded) = tokio::join!(waiting, async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        put(alice.token.clone(), b"alice's notes").await
    });
    assert_eq!(uploaded.0, StatusCode::OK, "{}", uploaded.1);
    assert_eq!(uploaded.1, json!({}));
    assert_eq!(waited.status(), StatusCode::OK);
    assert_eq!(waited.bytes().await.unwrap().as_ref(), b"alice's notes");

    assert_error(
        &put(alice.token.clone(), b"again").await,
        StatusCode::CONFLICT,
        "M_CANNOT_OVERWRITE_MEDIA",
    );
    // Bob's refused upload stored nothing.
    assert_eq!(files_under(&media_dir(&server)).len(), 1);
    // Unknown ids, ids of other servers and malformed ones.
    for bad in [
        "localhost/unknownid",
        "other.example/abc",
        "localhost/..%2F..%2Fetc",
    ] {
        let response = server
            .http
            .put(format!("{}/_matrix/media/v3/upload/{bad}", server.base))
            .bearer_auth(&alice.token)
            .body("x")
            .send()
            .await
            .unwrap();
        assert_error(&json(response).await, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    }
}

#[tokio::test]
async fn pending_ids_are_limited_per_user_and_expire() {
    let server = TestServer::start_with(|c| c.media.max_pending_uploads = 2).await;
    let alice = server.register("alice", "pw-alice-1").await;
    let bob = server.register("bob", "pw-bob-1").await;
    for _ in 0..2 {
        let (status, _) = server
            .post("/_matrix/media/v1/create", Some(&alice.token), json!({}))
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let refused = server
        .post("/_matrix/media/v1/create", Some(&alice.token), json!({}))
        .await;
    assert_error(&refused, StatusCode::TOO_MANY_REQUESTS, "M_LIMIT_EXCEEDED");
    assert!(refused.1["retry_after_ms"].as_u64().unwrap() > 0);
    // The limit is per user.
    let (status, _) = server
        .post("/_matrix/media/v1/create", Some(&bob.token), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);

    let mut server = server;
    server.stop().await;
    let mut short = TestServer::start_with(|c| {
        c.media.unused_expiry_secs = 0;
        c.media.max_pending_uploads = 1;
    })
    .await;
    let carol = short.register("carol", "pw-carol-1").await;
    let (_, body) = short
        .post("/_matrix/media/v1/create", Some(&carol.token), json!({}))
        .await;
    let path = mxc_path(body["content_uri"].as_str().unwrap()).to_owned();
    let response = short
        .http
        .put(format!("{}/_matrix/media/v3/upload/{path}", short.base))
        .bearer_auth(&carol.token)
        .body("late")
        .send()
        .await
        .unwrap();
    assert_error(&json(response).await, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    // Expired ids no longer count against the limit.
    let (status, body) = short
        .post("/_matrix/media/v1/create", Some(&carol.token), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    short.stop().await;
}

#[tokio::test]
async fn path_traversal_in_names_touches_nothing_outside_the_store() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw-alice-1").await;
    let name = "../../../../tmp/hearth-escape";
    let (status, body) = upload(
        &server,
        &alice.token,
        b"payload".to_vec(),
        Some("text/plain"),
        Some(name),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!std::path::Path::new("/tmp/hearth-escape").exists());
    let mxc = body["content_uri"].as_str().unwrap();
    let id = mxc.rsplit('/').next().unwrap();
    assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()), "{id}");
    let response = get(
        &server,
        &format!("/_matrix/client/v1/media/download/{}", mxc_path(mxc)),
        Some(&alice.token),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let disposition = response.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(disposition.starts_with("inline"), "{disposition}");
    assert!(disposition.contains("hearth-escape"), "{disposition}");
    for bad in ["..%2F..%2Fetc%2Fpasswd", "a.b", "%00"] {
        let response = get(
            &server,
            &format!("/_matrix/client/v1/media/download/localhost/{bad}"),
            Some(&alice.token),
        )
        .await;
        assert_error(&json(response).await, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    }
    // Control characters in a filename are refused.
    let refused = upload(&server, &alice.token, b"x".to_vec(), None, Some("a\nb")).await;
    assert_error(&refused, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
}

#[tokio::test]
async fn media_survives_a_restart() {
    let mut server = TestServer::start().await;
    let alice = server.register("alice", "pw-alice-1").await;
    let mxc = upload_ok(&server, &alice.token, b"kept".to_vec(), "text/plain").await;
    server.restart().await;
    let response = get(
        &server,
        &format!("/_matrix/client/v1/media/download/{}", mxc_path(&mxc)),
        Some(&alice.token),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"kept");
}

#[tokio::test]
async fn uploads_larger_than_the_json_body_limit_are_streamed() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw-alice-1").await;
    assert!(server.config.max_request_size < 3 * 1024 * 1024);
    let bytes: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let mxc = upload_ok(
        &server,
        &alice.token,
        bytes.clone(),
        "application/octet-stream",
    )
    .await;
    let response = get(
        &server,
        &format!("/_matrix/client/v1/media/download/{}", mxc_path(&mxc)),
        Some(&alice.token),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-disposition"], "attachment");
    assert_eq!(response.bytes().await.unwrap().as_ref(), bytes.as_slice());
    // matrix-nio asks for `…/{server}/{id}/` when it wants no particular file name.
    let response = get(
        &server,
        &format!("/_matrix/client/v1/media/download/{}/", mxc_path(&mxc)),
        Some(&alice.token),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
}
