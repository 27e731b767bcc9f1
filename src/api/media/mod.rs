//! The media endpoints of the client-server API: configuration, `/create`, upload (streamed to
//! disk, see [`upload`]), download and thumbnails (streamed from disk, see [`download`]) and URL
//! previews, authenticated (`/_matrix/client/v1/media/…`) and legacy (`/_matrix/media/…`).

// The legacy `/_matrix/media/…` endpoints are deprecated in ruma and served on purpose.
#![allow(deprecated)]

pub mod download;
pub mod upload;

use axum::{
    Router,
    extract::State,
    response::{IntoResponse, Response},
    routing::MethodRouter,
};
use http::{HeaderValue, header};
use ruma::{
    UInt,
    api::{
        IncomingRequest,
        client::{
            authenticated_media::{get_media_config as config_v1, get_media_preview as preview_v1},
            media::{
                create_mxc_uri, get_media_config as config_v3, get_media_preview as preview_v3,
            },
        },
        path_builder::PathBuilder,
    },
};

use crate::{
    api::{AppState, Ruma, RumaResponse},
    error::Error,
};

/// `router.media_route::<Req>(handler)`: registers a handler that reads its own request (no
/// [`Ruma`] extractor) under every path ruma knows for `Req`.
pub trait MediaRouterExt {
    fn on_ruma_paths<Req: IncomingRequest>(self, handler: MethodRouter<AppState>) -> Self;
    /// Also serves `Req`'s paths with a trailing slash: matrix-nio downloads
    /// `…/download/{server}/{id}/` (an empty file name) when it asks for no name.
    fn with_trailing_slash<Req: IncomingRequest>(self, handler: MethodRouter<AppState>) -> Self;
}

impl MediaRouterExt for Router<AppState> {
    fn on_ruma_paths<Req: IncomingRequest>(self, handler: MethodRouter<AppState>) -> Self {
        Req::PATH_BUILDER
            .all_paths()
            .fold(self, |router, path| router.route(path, handler.clone()))
    }

    fn with_trailing_slash<Req: IncomingRequest>(self, handler: MethodRouter<AppState>) -> Self {
        Req::PATH_BUILDER.all_paths().fold(self, |router, path| {
            router.route(&format!("{path}/"), handler.clone())
        })
    }
}

/// The headers every media response carries, errors included: the content is whatever users
/// uploaded, so a browser must never run it as part of this origin.
pub fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; \
             style-src 'unsafe-inline'; media-src 'self'; object-src 'self';",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Clients on other origins (Element on its own domain) embed media.
    headers.insert(
        header::HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("cross-origin"),
    );
    response
}

/// A handler's outcome with the media headers, whether it succeeded or not.
pub fn secured(result: Result<Response, Error>) -> Result<Response, Error> {
    Ok(secure(result.unwrap_or_else(IntoResponse::into_response)))
}

fn upload_size(state: &AppState) -> UInt {
    UInt::try_from(state.media.config().max_upload_size as u64).unwrap_or(UInt::MAX)
}

/// `GET /_matrix/client/v1/media/config`
pub async fn config(
    State(state): State<AppState>,
    _request: Ruma<config_v1::v1::Request>,
) -> Result<RumaResponse<config_v1::v1::Response>, Error> {
    Ok(RumaResponse(config_v1::v1::Response::new(upload_size(
        &state,
    ))))
}

/// `GET /_matrix/media/v3/config`
pub async fn config_legacy(
    State(state): State<AppState>,
    _request: Ruma<config_v3::v3::Request>,
) -> Result<RumaResponse<config_v3::v3::Response>, Error> {
    Ok(RumaResponse(config_v3::v3::Response::new(upload_size(
        &state,
    ))))
}

/// `POST /_matrix/media/v1/create`: reserves a media id for a later upload.
pub async fn create(
    State(state): State<AppState>,
    request: Ruma<create_mxc_uri::v1::Request>,
) -> Result<RumaResponse<create_mxc_uri::v1::Response>, Error> {
    let user = request.session()?.user_id.clone();
    let (content_uri, expires_ms) = state
        .blocking(move |s| s.media.create_pending(&user))
        .await?;
    let mut response = create_mxc_uri::v1::Response::new(content_uri);
    response.unused_expires_at = UInt::try_from(expires_ms)
        .ok()
        .map(ruma::MilliSecondsSinceUnixEpoch);
    Ok(RumaResponse(response))
}

/// `GET /_matrix/client/v1/media/preview_url`
pub async fn preview(
    State(state): State<AppState>,
    request: Ruma<preview_v1::v1::Request>,
) -> Result<RumaResponse<preview_v1::v1::Response>, Error> {
    let user = request.session()?.user_id.to_string();
    let data = state.media.preview(&request.body.url, &user).await?;
    preview_response(data).map(RumaResponse)
}

/// `GET /_matrix/media/v3/preview_url`
pub async fn preview_legacy(
    State(state): State<AppState>,
    request: Ruma<preview_v3::v3::Request>,
) -> Result<RumaResponse<preview_v3::v3::Response>, Error> {
    let user = request.session()?.user_id.to_string();
    let data = state.media.preview(&request.body.url, &user).await?;
    let raw = serde_json::value::to_raw_value(&data)
        .map_err(|e| Error::internal(format!("preview JSON: {e}")))?;
    Ok(RumaResponse(preview_v3::v3::Response::from_raw_value(raw)))
}

fn preview_response(data: serde_json::Value) -> Result<preview_v1::v1::Response, Error> {
    let raw = serde_json::value::to_raw_value(&data)
        .map_err(|e| Error::internal(format!("preview JSON: {e}")))?;
    Ok(preview_v1::v1::Response::from_raw_value(raw))
}
