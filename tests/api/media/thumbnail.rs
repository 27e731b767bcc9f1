//! Thumbnails: sizes and methods, caching, animation, and images that must not be decoded.

use reqwest::StatusCode;

use super::{files_under, get, image_info, jpeg, json, media_dir, mxc_path, png, upload_ok};
use crate::common::{TestServer, assert_error};

async fn thumbnail(server: &TestServer, token: &str, mxc: &str, query: &str) -> reqwest::Response {
    let path = format!(
        "/_matrix/client/v1/media/thumbnail/{}?{query}",
        mxc_path(mxc)
    );
    get(server, &path, Some(token)).await
}

#[tokio::test]
async fn crop_and_scale_give_the_asked_sizes_and_are_cached() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw-alice-1").await;
    let mxc = upload_ok(&server, &alice.token, png(640, 480), "image/png").await;
    for (query, size) in [
        ("width=96&height=96&method=crop", (96, 96)),
        ("width=32&height=32&method=crop", (32, 32)),
        ("width=320&height=240&method=scale", (320, 240)),
        ("width=800&height=600", (640, 480)), // never upscaled
    ] {
        let response = thumbnail(&server, &alice.token, &mxc, query).await;
        assert_eq!(response.status(), StatusCode::OK, "{query}");
        assert_eq!(response.headers()["content-type"], "image/png");
        assert!(response.headers().contains_key("content-security-policy"));
        let bytes = response.bytes().await.unwrap();
        assert_eq!(
            image_info(&bytes),
            (size, image::ImageFormat::Png),
            "{query}"
        );
    }
    // The same size again comes from the cache: the same bytes, no new file.
    let count = files_under(&media_dir(&server)).len();
    let first = thumbnail(
        &server,
        &alice.token,
        &mxc,
        "width=96&height=96&method=crop",
    )
    .await
    .bytes()
    .await
    .unwrap();
    let again = thumbnail(
        &server,
        &alice.token,
        &mxc,
        "width=90&height=90&method=crop",
    )
    .await
    .bytes()
    .await
    .unwrap();
    assert_eq!(first, again, "90×90 snaps to the cached 96×96");
    assert_eq!(files_under(&media_dir(&server)).len(), count);
    // The legacy endpoint is frozen for new media by default.
    let legacy = get(
        &server,
        &format!(
            "/_matrix/media/v3/thumbnail/{}?width=32&height=32",
            mxc_path(&mxc)
        ),
        None,
    )
    .await;
    assert_error(&json(legacy).await, StatusCode::NOT_FOUND, "M_NOT_FOUND");
}

#[tokio::test]
async fn a_large_jpeg_gives_a_jpeg_thumbnail() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw-alice-1").await;
    let mxc = upload_ok(&server, &alice.token, jpeg(1600, 1200), "image/jpeg").await;
    let response = thumbnail(
        &server,
        &alice.token,
        &mxc,
        "width=320&height=240&method=scale",
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "image/jpeg");
    let bytes = response.bytes().await.unwrap();
    assert_eq!(image_info(&bytes), ((320, 240), image::ImageFormat::Jpeg));
}

#[tokio::test]
async fn animated_gifs_stay_animated_when_asked() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw-alice-1").await;
    let mut gif = Vec::new();
    {
        let mut encoder = image::codecs::gif::GifEncoder::new(&mut gif);
        for shade in [0u8, 120, 240] {
            let frame = image::RgbaImage::from_pixel(200, 150, image::Rgba([shade, 0, 0, 255]));
            encoder.encode_frame(image::Frame::new(frame)).unwrap();
        }
    }
    let mxc = upload_ok(&server, &alice.token, gif, "image/gif").await;
    let response = thumbnail(
        &server,
        &alice.token,
        &mxc,
        "width=96&height=96&method=crop&animated=true",
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "image/gif");
    let bytes = response.bytes().await.unwrap();
    use image::AnimationDecoder;
    let decoder = image::codecs::gif::GifDecoder::new(std::io::Cursor::new(&bytes)).unwrap();
    let frames = decoder.into_frames().collect_frames().unwrap();
    assert_eq!(frames.len(), 3);
    assert_eq!(frames[0].buffer().dimensions(), (96, 96));
    // Without animated=true: a still PNG.
    let response = thumbnail(
        &server,
        &alice.token,
        &mxc,
        "width=96&height=96&method=crop",
    )
    .await;
    assert_eq!(response.headers()["content-type"], "image/png");
}

/// CRC-32 (IEEE), for hand-made PNG chunks.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A few hundred bytes that claim to be a `width`×`height` PNG: a decompression bomb.
fn bomb_png(width: u32, height: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
    };
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]); // 8-bit RGBA
    chunk(b"IHDR", &ihdr);
    // zlib stream of a run of zeros (what a bomb compresses to).
    chunk(
        b"IDAT",
        &[
            0x78, 0x9c, 0xed, 0xc1, 0x01, 0x0d, 0x00, 0x00, 0x00, 0xc2, 0xa0, 0xf7, 0x4f, 0x6d,
            0x0e, 0x37, 0xa0, 0x00, 0x00, 0x00,
        ],
    );
    chunk(b"IEND", &[]);
    out
}

#[tokio::test]
async fn bombs_corrupt_images_and_bad_requests_are_clear_errors() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw-alice-1").await;
    for (width, height) in [(10_000, 10_000), (100_000, 100_000)] {
        let mxc = upload_ok(&server, &alice.token, bomb_png(width, height), "image/png").await;
        let response = thumbnail(
            &server,
            &alice.token,
            &mxc,
            "width=32&height=32&method=crop",
        )
        .await;
        assert_error(
            &json(response).await,
            StatusCode::PAYLOAD_TOO_LARGE,
            "M_TOO_LARGE",
        );
    }
    let mut corrupt = png(300, 300);
    corrupt.truncate(corrupt.len() / 3);
    let corrupt = upload_ok(&server, &alice.token, corrupt, "image/png").await;
    let text = upload_ok(&server, &alice.token, b"just text".to_vec(), "image/png").await;
    for mxc in [&corrupt, &text] {
        let response = thumbnail(&server, &alice.token, mxc, "width=32&height=32").await;
        assert_error(&json(response).await, StatusCode::BAD_REQUEST, "M_UNKNOWN");
    }
    let good = upload_ok(&server, &alice.token, png(50, 50), "image/png").await;
    for query in ["width=0&height=32", "width=32&height=32&method=stretch"] {
        let response = thumbnail(&server, &alice.token, &good, query).await;
        assert_error(
            &json(response).await,
            StatusCode::BAD_REQUEST,
            "M_INVALID_PARAM",
        );
    }
    let response = thumbnail(&server, &alice.token, &good, "height=32").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // Still healthy: a good image is thumbnailed.
    let response = thumbnail(
        &server,
        &alice.token,
        &good,
        "width=32&height=32&method=crop",
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    // No token: 401.
    let response = get(
        &server,
        &format!(
            "/_matrix/client/v1/media/thumbnail/{}?width=32&height=32",
            mxc_path(&good)
        ),
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}
