//! `POST /_synapse/admin/v1/send_server_notice` and `PUT …/send_server_notice/{txnId}`:
//! Synapse's admin endpoint for server notices (see `service::server_notices`).

use axum::{
    Json,
    body::Body,
    extract::{Path, State},
};
use http::request::Parts;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    api::{
        AppState,
        extract::{self, Caller, TokenUse},
    },
    error::{Error, Result},
    service::server_notices::ServerNotice,
};

#[derive(Deserialize)]
struct NoticeBody {
    user_id: ruma::OwnedUserId,
    content: Value,
    #[serde(rename = "type", default = "message_type")]
    kind: String,
    state_key: Option<String>,
}

fn message_type() -> String {
    "m.room.message".into()
}

/// `POST`: a notice without a transaction id.
pub async fn send(
    State(state): State<AppState>,
    request: http::Request<Body>,
) -> Result<Json<Value>> {
    let (parts, body) = request.into_parts();
    send_notice(&state, &parts, body, None).await
}

/// `PUT …/{txnId}`: idempotent per transaction id.
pub async fn send_with_txn(
    State(state): State<AppState>,
    Path(txn_id): Path<String>,
    request: http::Request<Body>,
) -> Result<Json<Value>> {
    let (parts, body) = request.into_parts();
    send_notice(&state, &parts, body, Some(txn_id)).await
}

async fn send_notice(
    state: &AppState,
    parts: &Parts,
    body: Body,
    txn_id: Option<String>,
) -> Result<Json<Value>> {
    // Who asks is checked before the body is read: a non-admin learns nothing else.
    let Caller::User(session) = extract::authenticate(parts, state, TokenUse::Required).await?
    else {
        return Err(Error::missing_token());
    };
    let admin = session.clone();
    let is_admin = state
        .blocking(move |s| Ok(s.users.get(&admin.user_id)?.is_some_and(|u| u.admin)))
        .await?;
    if !is_admin {
        return Err(Error::forbidden(
            "Only server admins may send server notices",
        ));
    }
    let body: NoticeBody = super::read_json(body, state.config.max_request_size).await?;
    let notice = ServerNotice {
        user_id: body.user_id,
        kind: body.kind,
        state_key: body.state_key,
        content: body.content,
        txn_id,
    };
    let event_id = state
        .blocking(move |s| s.send_server_notice(&session, notice))
        .await?;
    Ok(Json(json!({ "event_id": event_id })))
}
