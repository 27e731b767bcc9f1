//! Typing notifications, read receipts and read markers.

use axum::{Json, extract::State};
use ruma::api::client::{
    read_marker::set_read_marker,
    receipt::create_receipt,
    typing::create_typing_event::{self, v3::Typing},
};
use serde_json::{Value, json};

use super::convert;
use crate::{
    api::{AppState, Ruma},
    error::{Error, Result},
};

/// `PUT /rooms/{roomId}/typing/{userId}`
pub async fn typing(
    State(services): State<AppState>,
    request: Ruma<create_typing_event::v3::Request>,
) -> Result<Json<Value>> {
    let session = request.session()?.clone();
    let body = request.body;
    if session.user_id != body.user_id {
        return Err(Error::forbidden("You can only set your own typing state"));
    }
    let timeout = match body.state {
        Typing::Yes(info) => Some(info.timeout),
        _ => None,
    };
    let room = body.room_id.clone();
    services
        .blocking(move |s| s.set_typing(&body.room_id, &session.user_id, timeout))
        .await?;
    if let Some(timeout) = timeout {
        // Typing ends by itself: wake the room when the timeout passes. The timer holds the
        // services weakly, so a pending typing notification never keeps a stopped server's
        // database open.
        let services = std::sync::Arc::downgrade(&services);
        let wait = timeout.min(crate::service::ephemeral::MAX_TYPING_TIMEOUT)
            + std::time::Duration::from_millis(50);
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            let Some(services) = services.upgrade() else {
                return;
            };
            if let Err(e) = services.blocking(move |s| s.expire_typing(&room)).await {
                tracing::warn!(error = %e, "expiring typing notifications failed");
            }
        });
    }
    Ok(Json(json!({})))
}

/// `POST /rooms/{roomId}/receipt/{receiptType}/{eventId}`
pub async fn receipt(
    State(services): State<AppState>,
    request: Ruma<create_receipt::v3::Request>,
) -> Result<Json<Value>> {
    let session = request.session()?.clone();
    let body = request.body;
    let thread = convert::to_value(&body.thread)?;
    let thread_id = thread.as_str().map(str::to_owned);
    let receipt_type = body.receipt_type.to_string();
    services
        .blocking(move |s| {
            s.send_receipt(
                &body.room_id,
                &session.user_id,
                &receipt_type,
                &body.event_id,
                thread_id,
            )
        })
        .await?;
    Ok(Json(json!({})))
}

/// `POST /rooms/{roomId}/read_markers`
pub async fn read_markers(
    State(services): State<AppState>,
    request: Ruma<set_read_marker::v3::Request>,
) -> Result<Json<Value>> {
    let session = request.session()?.clone();
    let body = request.body;
    services
        .blocking(move |s| {
            if let Some(event) = &body.fully_read {
                s.send_receipt(&body.room_id, &session.user_id, "m.fully_read", event, None)?;
            }
            if let Some(event) = &body.read_receipt {
                s.send_receipt(&body.room_id, &session.user_id, "m.read", event, None)?;
            }
            if let Some(event) = &body.private_read_receipt {
                s.send_receipt(
                    &body.room_id,
                    &session.user_id,
                    "m.read.private",
                    event,
                    None,
                )?;
            }
            Ok(())
        })
        .await?;
    Ok(Json(json!({})))
}

/// `PUT /sendToDevice/{eventType}/{txnId}`
pub async fn send_to_device(
    State(services): State<AppState>,
    request: Ruma<ruma::api::client::to_device::send_event_to_device::v3::Request>,
) -> Result<Json<Value>> {
    let session = request.session()?.clone();
    let body = request.body;
    let messages = convert::to_value(&body.messages)?;
    let kind = body.event_type.to_string();
    let txn = body.txn_id.to_string();
    services
        .blocking(move |s| s.send_to_device(&session, &kind, &txn, &messages))
        .await?;
    Ok(Json(json!({})))
}

/// `PUT /presence/{userId}/status`
pub async fn put_presence(
    State(services): State<AppState>,
    request: Ruma<ruma::api::client::presence::set_presence::v3::Request>,
) -> Result<Json<Value>> {
    let session = request.session()?.clone();
    let body = request.body;
    if session.user_id != body.user_id {
        return Err(Error::forbidden("You can only set your own presence"));
    }
    let state = body.presence.to_string();
    if !matches!(state.as_str(), "online" | "unavailable" | "offline") {
        return Err(Error::invalid_param(format!(
            "Unknown presence state {state}"
        )));
    }
    let status_msg = body.status_msg;
    services
        .blocking(move |s| s.set_presence(&session.user_id, &state, Some(status_msg)))
        .await?;
    Ok(Json(json!({})))
}

/// `GET /presence/{userId}/status`: for yourself and users you share a room with.
pub async fn get_presence(
    State(services): State<AppState>,
    request: Ruma<ruma::api::client::presence::get_presence::v3::Request>,
) -> Result<Json<Value>> {
    let session = request.session()?.clone();
    let target = request.body.user_id;
    let (viewer, other) = (session.user_id.clone(), target.clone());
    if !services
        .blocking(move |s| s.share_a_room(&viewer, &other))
        .await?
    {
        return Err(Error::forbidden("You do not share a room with this user"));
    }
    let view = services.presence.view(&target);
    let mut response = json!({ "presence": view.state, "currently_active": view.currently_active });
    if let Some(ago) = view.last_active_ago {
        response["last_active_ago"] = json!(ago);
    }
    if let Some(msg) = view.status_msg {
        response["status_msg"] = json!(msg);
    }
    Ok(Json(response))
}
