//! Downloads and thumbnails, authenticated (`/_matrix/client/v1/media/…`) and legacy
//! (`/_matrix/media/v3/…`): files are streamed from disk in chunks, never read whole.
//!
//! `Content-Type` is the uploaded one; `Content-Disposition` is `inline` only for types a
//! browser shows without running anything (images, audio, video, plain text) and `attachment`
//! otherwise, with the filename encoded per RFC 6266/8187 (ruma's `ContentDisposition`).
//! Content is immutable, so responses may be cached for a year. The legacy endpoints serve
//! only media uploaded while `media.enable_authenticated_media` was off.

use std::{path::Path, time::Duration};

use axum::{body::Body, extract::State, response::Response};
use bytes::BytesMut;
use http::{HeaderValue, header};
use ruma::{
    ServerName,
    api::client::{authenticated_media as v1, media as v3},
    http_headers::{ContentDisposition, ContentDispositionType},
    media::Method as RumaMethod,
};
use tokio::io::AsyncReadExt;

use super::secured;
use crate::{
    api::{AppState, Ruma},
    error::Error,
    service::media::{
        MediaRecord,
        thumbnail::{Method, ThumbnailSpec},
    },
};

/// Bytes read from disk per chunk of a response.
const CHUNK: usize = 256 * 1024;

/// Types shown inline: they cannot carry scripts (Synapse's list, plus `text/plain`).
const INLINE_TYPES: &[&str] = &[
    "text/plain",
    "text/csv",
    "application/json",
    "application/ld+json",
    "image/jpeg",
    "image/gif",
    "image/png",
    "image/apng",
    "image/webp",
    "image/avif",
    "video/mp4",
    "video/webm",
    "video/ogg",
    "video/quicktime",
    "audio/mp4",
    "audio/webm",
    "audio/aac",
    "audio/mpeg",
    "audio/ogg",
    "audio/wave",
    "audio/wav",
    "audio/x-wav",
    "audio/x-pn-wav",
    "audio/flac",
    "audio/x-flac",
];

/// Whether a content type is shown inline (its essence, case-insensitively).
pub fn is_inline(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    INLINE_TYPES.iter().any(|t| t.eq_ignore_ascii_case(essence))
}

/// Which API a request came through.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Api {
    Authenticated,
    Legacy,
}

/// The record of a local media, waiting for a reserved id's upload up to `timeout`.
async fn find(
    state: &AppState,
    server: &ServerName,
    media_id: &str,
    timeout: Duration,
    api: Api,
) -> Result<(MediaRecord, std::path::PathBuf), Error> {
    if !state.media.is_local(server) {
        // Remote media needs federation, which does not exist yet.
        return Err(Error::not_found(
            "Media from other servers is not available yet",
        ));
    }
    let (record, path) = state.media.wait_for(server, media_id, timeout).await?;
    if api == Api::Legacy && record.authenticated && state.media.config().enable_authenticated_media
    {
        return Err(Error::not_found(
            "This media is served only by the authenticated /_matrix/client/v1/media endpoints",
        ));
    }
    Ok((record, path))
}

/// A file streamed from disk with the media headers.
async fn stream_file(
    path: &Path,
    content_type: &str,
    disposition: ContentDisposition,
    api: Api,
) -> Result<Response, Error> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| Error::internal(format!("opening {}: {e}", path.display())))?;
    let length = file
        .metadata()
        .await
        .map_err(|e| Error::internal(format!("reading {}: {e}", path.display())))?
        .len();
    let chunks = futures::stream::try_unfold(file, |mut file| async move {
        let mut buffer = BytesMut::with_capacity(CHUNK);
        let read = file.read_buf(&mut buffer).await?;
        Ok::<_, std::io::Error>((read > 0).then(|| (buffer.freeze(), file)))
    });
    let content_type = HeaderValue::from_str(content_type)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    let disposition = HeaderValue::from_str(&disposition.to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    // Authenticated responses are per user: shared caches must not keep them.
    let cache = match api {
        Api::Authenticated => "private, max-age=31536000, immutable",
        Api::Legacy => "public, max-age=31536000, immutable",
    };
    let mut response = Response::new(Body::from_stream(chunks));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(header::CONTENT_DISPOSITION, disposition);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    Ok(response)
}

/// The download of a record, named `filename` if the path gives one.
async fn download(
    state: AppState,
    server: &ServerName,
    media_id: &str,
    filename: Option<String>,
    timeout: Duration,
    api: Api,
) -> Result<Response, Error> {
    let (record, path) = find(&state, server, media_id, timeout, api).await?;
    let content_type = record
        .content_type
        .clone()
        .unwrap_or_else(|| "application/octet-stream".to_owned());
    let kind = if is_inline(&content_type) {
        ContentDispositionType::Inline
    } else {
        ContentDispositionType::Attachment
    };
    let disposition = ContentDisposition::new(kind).with_filename(filename.or(record.filename));
    stream_file(&path, &content_type, disposition, api).await
}

/// `GET /_matrix/client/v1/media/download/{serverName}/{mediaId}`
pub async fn get(
    State(state): State<AppState>,
    request: Ruma<v1::get_content::v1::Request>,
) -> Result<Response, Error> {
    let body = request.body;
    let api = Api::Authenticated;
    secured(
        download(
            state,
            &body.server_name,
            &body.media_id,
            None,
            body.timeout_ms,
            api,
        )
        .await,
    )
}

/// `GET /_matrix/client/v1/media/download/{serverName}/{mediaId}/{fileName}`
pub async fn get_named(
    State(state): State<AppState>,
    request: Ruma<v1::get_content_as_filename::v1::Request>,
) -> Result<Response, Error> {
    let body = request.body;
    let name = Some(body.filename);
    let api = Api::Authenticated;
    secured(
        download(
            state,
            &body.server_name,
            &body.media_id,
            name,
            body.timeout_ms,
            api,
        )
        .await,
    )
}

/// `GET /_matrix/media/v3/download/{serverName}/{mediaId}`. Local media is never redirected,
/// so `allow_redirect` changes nothing; remote media is not found whatever `allow_remote` says.
pub async fn get_legacy(
    State(state): State<AppState>,
    request: Ruma<v3::get_content::v3::Request>,
) -> Result<Response, Error> {
    let body = request.body;
    let api = Api::Legacy;
    secured(
        download(
            state,
            &body.server_name,
            &body.media_id,
            None,
            body.timeout_ms,
            api,
        )
        .await,
    )
}

/// `GET /_matrix/media/v3/download/{serverName}/{mediaId}/{fileName}`
pub async fn get_legacy_named(
    State(state): State<AppState>,
    request: Ruma<v3::get_content_as_filename::v3::Request>,
) -> Result<Response, Error> {
    let body = request.body;
    let name = Some(body.filename);
    let api = Api::Legacy;
    secured(
        download(
            state,
            &body.server_name,
            &body.media_id,
            name,
            body.timeout_ms,
            api,
        )
        .await,
    )
}

/// What a thumbnail request asks for.
struct ThumbnailAsk<'a> {
    server: &'a ServerName,
    media_id: &'a str,
    width: u64,
    height: u64,
    method: Option<RumaMethod>,
    animated: Option<bool>,
    timeout: Duration,
}

async fn thumbnail(state: AppState, ask: ThumbnailAsk<'_>, api: Api) -> Result<Response, Error> {
    let method = match ask.method {
        None | Some(RumaMethod::Scale) => Method::Scale,
        Some(RumaMethod::Crop) => Method::Crop,
        Some(other) => {
            return Err(Error::invalid_param(format!(
                "Unknown thumbnail method {:?}: use crop or scale",
                other.as_str()
            )));
        }
    };
    if ask.width == 0 || ask.height == 0 {
        return Err(Error::invalid_param("width and height must be at least 1"));
    }
    let clamp = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
    let (record, _) = find(&state, ask.server, ask.media_id, ask.timeout, api).await?;
    let spec = ThumbnailSpec::for_request(
        clamp(ask.width),
        clamp(ask.height),
        method,
        ask.animated.unwrap_or(false),
    );
    let thumb = state.media.thumbnail(record, spec).await?;
    let extension = thumb.content_type.rsplit('/').next().unwrap_or("bin");
    let disposition = ContentDisposition::new(ContentDispositionType::Inline)
        .with_filename(Some(format!("thumbnail.{extension}")));
    stream_file(&thumb.path, &thumb.content_type, disposition, api).await
}

/// `GET /_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}`
pub async fn get_thumbnail(
    State(state): State<AppState>,
    request: Ruma<v1::get_content_thumbnail::v1::Request>,
) -> Result<Response, Error> {
    let body = request.body;
    let ask = ThumbnailAsk {
        server: &body.server_name,
        media_id: &body.media_id,
        width: body.width.into(),
        height: body.height.into(),
        method: body.method.clone(),
        animated: body.animated,
        timeout: body.timeout_ms,
    };
    secured(thumbnail(state.clone(), ask, Api::Authenticated).await)
}

/// `GET /_matrix/media/v3/thumbnail/{serverName}/{mediaId}`
pub async fn get_thumbnail_legacy(
    State(state): State<AppState>,
    request: Ruma<v3::get_content_thumbnail::v3::Request>,
) -> Result<Response, Error> {
    let body = request.body;
    let ask = ThumbnailAsk {
        server: &body.server_name,
        media_id: &body.media_id,
        width: body.width.into(),
        height: body.height.into(),
        method: body.method.clone(),
        animated: body.animated,
        timeout: body.timeout_ms,
    };
    secured(thumbnail(state.clone(), ask, Api::Legacy).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_safe_types_are_inline() {
        for inline in [
            "image/png",
            "Text/Plain; charset=utf-8",
            "video/mp4",
            "audio/ogg",
        ] {
            assert!(is_inline(inline), "{inline}");
        }
        for attachment in [
            "image/svg+xml",
            "image/svg",
            "text/html",
            "application/pdf",
            "",
        ] {
            assert!(!is_inline(attachment), "{attachment}");
        }
    }
}
