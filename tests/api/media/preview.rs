//! URL previews: off by default, public addresses only unless allowed, OpenGraph with the
//! image stored as media, the limits, and the cache.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use axum::{Router, response::IntoResponse, routing::get as route_get};
use reqwest::StatusCode;

use super::{get, json, mxc_path, png};
use crate::common::{TestServer, assert_error};

/// A web server on loopback with a page, its image, redirects and a huge page; counts hits.
async fn web_server() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let image = png(279, 129);
    let counter = hits.clone();
    let app = Router::new()
        .route(
            "/page.html",
            route_get(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async {
                    (
                        [("content-type", "text/html; charset=utf-8")],
                        r#"<html><head><title>Fallback</title>
                        <meta property="og:title" content="The Rock" />
                        <meta property="og:description" content="A film" />
                        <meta property="og:image" content="img/test.png" />
                        </head><body></body></html>"#,
                    )
                }
            }),
        )
        .route(
            "/img/test.png",
            route_get(move || {
                let image = image.clone();
                async move { ([("content-type", "image/png")], image) }
            }),
        )
        .route(
            "/loop",
            route_get(|| async { axum::response::Redirect::temporary("/loop") }),
        )
        .route(
            "/huge",
            route_get(|| async {
                ([("content-type", "text/html")], vec![b'a'; 300_000]).into_response()
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), hits)
}

fn preview_path(url: &str) -> String {
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("url", url)
        .finish();
    format!("/_matrix/client/v1/media/preview_url?{query}")
}

#[tokio::test]
async fn previews_are_off_by_default() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw-alice-1").await;
    let response = get(
        &server,
        &preview_path("https://matrix.org/"),
        Some(&alice.token),
    )
    .await;
    assert_error(&json(response).await, StatusCode::FORBIDDEN, "M_FORBIDDEN");
}

#[tokio::test]
async fn loopback_is_refused_when_previews_are_public_only() {
    let (base, hits) = web_server().await;
    let server = TestServer::start_with(|c| c.media.url_preview = true).await;
    let alice = server.register("alice", "pw-alice-1").await;
    let port = base.rsplit(':').next().unwrap().to_owned();
    for url in [
        format!("{base}/page.html"),
        format!("http://localhost:{port}/page.html"),
        format!("http://[::1]:{port}/page.html"),
        format!("http://127.1:{port}/page.html"),
    ] {
        let response = get(&server, &preview_path(&url), Some(&alice.token)).await;
        assert_error(&json(response).await, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing was fetched");
    for url in ["file:///etc/passwd", "not a url"] {
        let response = get(&server, &preview_path(url), Some(&alice.token)).await;
        assert_error(
            &json(response).await,
            StatusCode::BAD_REQUEST,
            "M_INVALID_PARAM",
        );
    }
}

#[tokio::test]
async fn open_graph_and_image_are_previewed_and_cached() {
    let (base, hits) = web_server().await;
    let server = TestServer::start_with(|c| {
        c.media.url_preview = true;
        c.media.url_preview_allow_private_addresses = true;
        c.media.url_preview_max_size = 100_000;
        c.media.url_preview_max_redirects = 3;
    })
    .await;
    let alice = server.register("alice", "pw-alice-1").await;
    let url = format!("{base}/page.html");
    let (status, body) = json(get(&server, &preview_path(&url), Some(&alice.token)).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["og:title"], "The Rock");
    assert_eq!(body["og:description"], "A film");
    assert_eq!(body["og:image:width"], 279);
    assert_eq!(body["og:image:height"], 129);
    assert_eq!(body["og:image:type"], "image/png");
    assert_eq!(body["matrix:image:size"], png(279, 129).len());
    let image = body["og:image"].as_str().unwrap();
    let response = get(
        &server,
        &format!("/_matrix/client/v1/media/download/{}", mxc_path(image)),
        Some(&alice.token),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.bytes().await.unwrap().as_ref(),
        png(279, 129).as_slice()
    );

    // The legacy path answers the same, from the cache.
    let legacy = format!(
        "/_matrix/media/v3/preview_url?url={}",
        url::form_urlencoded::byte_serialize(url.as_bytes()).collect::<String>()
    );
    let (status, cached) = json(get(&server, &legacy, Some(&alice.token)).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cached, body);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "the second preview came from the cache"
    );

    let (status, body) = json(
        get(
            &server,
            &preview_path(&format!("{base}/loop")),
            Some(&alice.token),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    let response = get(
        &server,
        &preview_path(&format!("{base}/huge")),
        Some(&alice.token),
    )
    .await;
    assert_error(
        &json(response).await,
        StatusCode::BAD_GATEWAY,
        "M_TOO_LARGE",
    );
    let response = get(&server, &preview_path(&url), None).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn every_redirect_is_checked_against_the_policy() {
    let hop = Router::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // The first hop is an allowed IP literal; it redirects to a denied domain.
    let target = format!("http://localhost:{}/page", addr.port());
    let hop = hop.route(
        "/start",
        route_get(move || {
            let target = target.clone();
            async move { axum::response::Redirect::temporary(&target) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, hop).await });
    let server = TestServer::start_with(|c| {
        c.media.url_preview = true;
        c.media.url_preview_allow_private_addresses = true;
        c.media.url_preview_deny_domains = vec!["localhost".into()];
    })
    .await;
    let alice = server.register("alice", "pw-alice-1").await;
    let response = get(
        &server,
        &preview_path(&format!("http://{addr}/start")),
        Some(&alice.token),
    )
    .await;
    assert_error(&json(response).await, StatusCode::FORBIDDEN, "M_FORBIDDEN");
}
