//! The media repository over HTTP: uploads, downloads, thumbnails and URL previews, with the
//! bad inputs of each.

mod admin;
mod download;
mod preview;
mod thumbnail;
mod upload;

use std::io::Cursor;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::common::TestServer;

/// Uploads `bytes` (`POST /_matrix/media/v3/upload`); returns status and JSON body.
pub async fn upload(
    server: &TestServer,
    token: &str,
    bytes: Vec<u8>,
    content_type: Option<&str>,
    filename: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = server
        .http
        .post(format!("{}/_matrix/media/v3/upload", server.base))
        .bearer_auth(token)
        .body(bytes);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    if let Some(filename) = filename {
        request = request.query(&[("filename", filename)]);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let body = response.bytes().await.unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Uploads and returns the `mxc://` URI.
pub async fn upload_ok(
    server: &TestServer,
    token: &str,
    bytes: Vec<u8>,
    content_type: &str,
) -> String {
    let (status, body) = upload(server, token, bytes, Some(content_type), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["content_uri"].as_str().unwrap().to_owned()
}

/// `mxc://server/id` → `server/id`.
pub fn mxc_path(mxc: &str) -> &str {
    mxc.strip_prefix("mxc://").unwrap()
}

/// A GET with an optional token, the whole response kept (headers matter here).
pub async fn get(server: &TestServer, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = server
        .http
        .request(Method::GET, format!("{}{path}", server.base));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

/// A response's status and JSON body.
pub async fn json(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let body = response.bytes().await.unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// A `width`×`height` PNG with a gradient (so it does not compress to nothing).
pub fn png(width: u32, height: u32) -> Vec<u8> {
    encode(width, height, image::ImageFormat::Png)
}

/// The same as a JPEG.
pub fn jpeg(width: u32, height: u32) -> Vec<u8> {
    encode(width, height, image::ImageFormat::Jpeg)
}

fn encode(width: u32, height: u32, format: image::ImageFormat) -> Vec<u8> {
    let image = image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
    }));
    let mut bytes = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut bytes), format)
        .unwrap();
    bytes
}

/// The dimensions and format of an encoded image.
pub fn image_info(bytes: &[u8]) -> ((u32, u32), image::ImageFormat) {
    let reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .unwrap();
    let format = reader.format().unwrap();
    (reader.into_dimensions().unwrap(), format)
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// The media directory of a test server (the default, under the database).
pub fn media_dir(server: &TestServer) -> std::path::PathBuf {
    server.config.database_path.join("media")
}
