//! WebSocket sync: `GET /_hearth/client/v1/sync/ws` pushes the same payload as an incremental
//! `/sync` every time something arrives for the user.
//!
//! Protocol (also in the README):
//! - Authenticate with `Authorization: Bearer <token>` on the upgrade request, or, when the
//!   client cannot set headers (browsers), send `{"access_token": "…"}` as the first text frame.
//! - Query parameters: `since` (resume from a `next_batch`), `filter` (a filter id or inline
//!   JSON, as for `/sync`), `set_presence`.
//! - The server sends one text frame per update: a `/sync` response body. The first frame is
//!   sent at once (an initial sync without `since`, or whatever changed since `since`, possibly
//!   empty); later frames only when something changed. Reconnecting with the last `next_batch`
//!   as `since` loses and repeats nothing.
//! - The server pings every 30 s; the connection ends on close, or on an error frame
//!   `{"errcode": …, "error": …}`.

use std::{collections::HashMap, time::Duration};

use axum::{
    extract::{
        Query, State, WebSocketUpgrade,
        ws::{Message, WebSocket},
    },
    response::{IntoResponse, Response},
};
use http::HeaderMap;
use serde_json::{Value, json};

use crate::{
    api::{AppState, extract::bearer_token},
    error::Error,
    service::{
        sessions::Session,
        sync::{SyncFilter, parse_since},
    },
};

const PING_EVERY: Duration = Duration::from_secs(30);
/// How long a client has to send its token frame.
const AUTH_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn sync_ws(
    State(services): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Result<Response, Error> {
    let since = parse_since(params.get("since").map(String::as_str))?;
    let session = match bearer_token(&headers) {
        Some(token) => Some(services.sessions.authenticate(&token, None)?),
        None => None,
    };
    let filter_param = params.get("filter").cloned();
    let presence = params
        .get("set_presence")
        .cloned()
        .unwrap_or_else(|| "online".to_owned());
    Ok(upgrade
        .on_upgrade(move |socket| async move {
            if let Err(e) = run(socket, services, session, since, filter_param, presence).await {
                tracing::debug!(error = %e, "websocket sync ended");
            }
        })
        .into_response())
}

async fn send_error(socket: &mut WebSocket, error: Error) {
    let body = json!({ "errcode": error.errcode(), "error": error.to_string() });
    let _ = socket.send(Message::Text(body.to_string().into())).await;
    let _ = socket.send(Message::Close(None)).await;
}

async fn run(
    mut socket: WebSocket,
    services: AppState,
    session: Option<Session>,
    mut since: Option<u64>,
    filter_param: Option<String>,
    presence: String,
) -> Result<(), axum::Error> {
    let session = match session {
        Some(session) => session,
        None => match first_frame_token(&mut socket).await {
            Some(token) => match services.sessions.authenticate(&token, None) {
                Ok(session) => session,
                Err(e) => {
                    send_error(&mut socket, e).await;
                    return Ok(());
                }
            },
            None => {
                send_error(&mut socket, Error::missing_token()).await;
                return Ok(());
            }
        },
    };
    let filter = match resolve_filter(&services, &session, filter_param.as_deref()) {
        Ok(filter) => filter,
        Err(e) => {
            send_error(&mut socket, e).await;
            return Ok(());
        }
    };
    let channel = services.notifier.channel(&session.user_id);
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let mut first = true;
    loop {
        let woken = channel.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        if presence != "offline" {
            let (user, state) = (session.user_id.clone(), presence.clone());
            let _ = services
                .blocking(move |s| s.set_presence(&user, &state, None))
                .await;
        }
        let (built_for, built_filter) = (session.clone(), filter.clone());
        let response = match services
            .blocking(move |s| s.build_sync(&built_for, since, false, &built_filter))
            .await
        {
            Ok(response) => response,
            Err(e) => {
                send_error(&mut socket, e).await;
                return Ok(());
            }
        };
        if first || response.has_updates {
            since = Some(response.next_batch);
            // The body is serde_json output and string pieces: always UTF-8, so this takes the
            // buffer as it is (the lossy branch copies, and never runs).
            let text = String::from_utf8(response.body)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
            socket.send(Message::Text(text.into())).await?;
            first = false;
        }
        loop {
            tokio::select! {
                _ = &mut woken => break,
                _ = ping.tick() => socket.send(Message::Ping(Vec::new().into())).await?,
                incoming = socket.recv() => match incoming {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Ok(()),
                    Some(Ok(_)) => {}
                },
            }
        }
    }
}

async fn first_frame_token(socket: &mut WebSocket) -> Option<String> {
    let frame = tokio::time::timeout(AUTH_TIMEOUT, socket.recv())
        .await
        .ok()??
        .ok()?;
    let Message::Text(text) = frame else {
        return None;
    };
    let value: Value = serde_json::from_str(&text).ok()?;
    value.get("access_token")?.as_str().map(str::to_owned)
}

fn resolve_filter(
    services: &AppState,
    session: &Session,
    filter: Option<&str>,
) -> Result<SyncFilter, Error> {
    match filter {
        None => Ok(SyncFilter::default()),
        Some(text) if text.trim_start().starts_with('{') => {
            let value: Value = serde_json::from_str(text)
                .map_err(|e| Error::bad_json(format!("Invalid filter: {e}")))?;
            Ok(SyncFilter::from_json(&value))
        }
        Some(id) => {
            let stored = services
                .filters
                .get(&session.user_id, id)?
                .ok_or_else(|| Error::not_found("Unknown filter"))?;
            Ok(SyncFilter::from_json(&stored))
        }
    }
}
