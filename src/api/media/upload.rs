//! Uploads, `POST /_matrix/media/v3/upload` and `PUT /_matrix/media/v3/upload/{server}/{id}`:
//! the body is streamed to a temp file as it arrives (memory stays flat whatever its size),
//! with its own limit, `media.max_upload_size`, instead of the JSON body limit.
//!
//! Nothing is recorded until the last byte is in and fsynced: a body over the limit, cut short
//! or abandoned by its client leaves no record and no file (the temp file goes with the writer).

use axum::{
    body::Body,
    extract::{Path, Request, State},
    response::{IntoResponse, Response},
};
use http::request::Parts;
use http_body_util::BodyExt;
use ruma::{ServerName, api::client::media::create_content};

use crate::{
    api::{
        AppState, RumaResponse,
        extract::{self, Caller, TokenUse},
    },
    error::Error,
    service::media::{NewUpload, store::TempBlob},
};

/// Longest file name kept, in bytes.
const MAX_FILENAME: usize = 1024;

/// `POST /_matrix/media/v3/upload` (and r0)
pub async fn upload(State(state): State<AppState>, request: Request) -> Response {
    upload_new(state, request)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn upload_new(state: AppState, request: Request) -> Result<Response, Error> {
    let (parts, body) = request.into_parts();
    let uploader = uploader(&parts, &state).await?;
    let (content_type, filename) = describe(&parts)?;
    let temp = receive(&state, &parts, body).await?;
    let upload = NewUpload {
        uploader,
        content_type,
        filename,
        reserved_id: None,
    };
    let content_uri = state
        .blocking(move |s| s.media.commit_upload(temp, upload))
        .await?;
    Ok(RumaResponse(create_content::v3::Response::new(content_uri)).into_response())
}

/// `PUT /_matrix/media/v3/upload/{serverName}/{mediaId}`: the content of an id reserved with
/// `/create`.
pub async fn upload_reserved(State(state): State<AppState>, request: Request) -> Response {
    upload_to_reserved(state, request)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn upload_to_reserved(state: AppState, request: Request) -> Result<Response, Error> {
    let (mut parts, body) = request.into_parts();
    let uploader = uploader(&parts, &state).await?;
    let Path((server, media_id)) = <Path<(String, String)> as axum::extract::FromRequestParts<
        AppState,
    >>::from_request_parts(&mut parts, &state)
    .await
    .map_err(|e| Error::invalid_param(format!("Invalid path: {e}")))?;
    let server = ServerName::parse(&server)
        .map_err(|_| Error::not_found("No such media id on this server"))?;
    // Refused before a byte is read: someone else's id, a used one, an unknown one.
    {
        let (user, server, media_id) = (uploader.clone(), server.clone(), media_id.clone());
        state
            .blocking(move |s| {
                let user = ruma::UserId::parse(&user)
                    .map_err(|e| Error::internal(format!("session user id: {e}")))?;
                s.media.check_reserved(&user, &server, &media_id)
            })
            .await?;
    }
    let (content_type, filename) = describe(&parts)?;
    let temp = receive(&state, &parts, body).await?;
    let upload = NewUpload {
        uploader,
        content_type,
        filename,
        reserved_id: Some(media_id),
    };
    state
        .blocking(move |s| s.media.commit_upload(temp, upload))
        .await?;
    // The spec's answer is an empty object (ruma's response type cannot be built here).
    Ok(axum::Json(serde_json::json!({})).into_response())
}

/// The uploading user (uploads need an access token).
async fn uploader(parts: &Parts, state: &AppState) -> Result<String, Error> {
    match extract::authenticate(parts, state, TokenUse::Required).await? {
        Caller::User(session) => Ok(session.user_id.to_string()),
        Caller::Anonymous | Caller::Server(_) => Err(Error::missing_token()),
    }
}

/// The upload's `Content-Type` header and `filename` query parameter.
fn describe(parts: &Parts) -> Result<(Option<String>, Option<String>), Error> {
    let content_type = match parts.headers.get(http::header::CONTENT_TYPE) {
        Some(value) => {
            let text = value
                .to_str()
                .map_err(|_| Error::invalid_param("Content-Type must be ASCII"))?
                .trim();
            (!text.is_empty()).then(|| text.to_owned())
        }
        None => None,
    };
    let filename = parts.uri.query().and_then(|query| {
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == "filename")
            .map(|(_, value)| value.into_owned())
    });
    if let Some(name) = &filename
        && (name.len() > MAX_FILENAME || name.chars().any(char::is_control))
    {
        return Err(Error::invalid_param(format!(
            "The filename must be at most {MAX_FILENAME} bytes without control characters"
        )));
    }
    Ok((content_type, filename.filter(|name| !name.is_empty())))
}

/// Streams the body into the blob store, refusing more than `media.max_upload_size` bytes.
async fn receive(state: &AppState, parts: &Parts, mut body: Body) -> Result<TempBlob, Error> {
    let limit = state.media.config().max_upload_size;
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(Error::too_large(limit));
    }
    let mut writer = state.media.store.start_write();
    let mut received = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            Error::unknown(
                http::StatusCode::BAD_REQUEST,
                format!("The upload ended before its last byte: {e}"),
            )
        })?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        received += data.len();
        if received > limit {
            return Err(Error::too_large(limit));
        }
        writer
            .write(data)
            .await
            .map_err(|e| Error::internal(format!("writing an upload: {e}")))?;
    }
    writer
        .finish()
        .await
        .map_err(|e| Error::internal(format!("finishing an upload: {e}")))
}
