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
//!   `{"errcode": …, "error": …}` — the same body HTTP would answer. The access token is
//!   watched for the connection's whole life: logout, device deletion, a password change with
//!   logout, deactivation, refresh or expiry end it at once with an `M_UNKNOWN_TOKEN` frame.

use std::{collections::HashMap, time::Duration};

use axum::{
    extract::{
        Query, State, WebSocketUpgrade,
        ws::{Message, WebSocket},
    },
    response::{IntoResponse, Response},
};
use http::HeaderMap;
use serde_json::Value;

use crate::{
    api::{AppState, extract::bearer_token},
    error::Error,
    service::{sync::SyncFilter, users::sessions::Session},
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
    let since = super::convert::token("since", params.get("since").map(String::as_str))?;
    let authenticated = match bearer_token(&headers) {
        Some(token) => {
            let checked = token.clone();
            let session = services
                .blocking(move |s| s.sessions.authenticate(&checked, None))
                .await?;
            Some((token, session))
        }
        None => None,
    };
    let filter_param = params.get("filter").cloned();
    let presence = params
        .get("set_presence")
        .cloned()
        .unwrap_or_else(|| "online".to_owned());
    Ok(upgrade
        .on_upgrade(move |socket| async move {
            if let Err(e) = run(
                socket,
                services,
                authenticated,
                since,
                filter_param,
                presence,
            )
            .await
            {
                tracing::debug!(error = %e, "websocket sync ended");
            }
        })
        .into_response())
}

/// Sends the error's public body (internal details are logged, never sent) and closes.
async fn send_error(socket: &mut WebSocket, error: Error) {
    let (_, body) = error.into_public();
    let _ = socket.send(Message::Text(body.to_string().into())).await;
    let _ = socket.send(Message::Close(None)).await;
}

/// Why a connection ends.
enum End {
    /// The client closed it, or the server is stopping.
    Quietly,
    /// With an error frame (the token stopped being valid, a sync failed…).
    With(Error),
}

async fn run(
    mut socket: WebSocket,
    services: AppState,
    authenticated: Option<(String, Session)>,
    since: Option<u64>,
    filter_param: Option<String>,
    presence: String,
) -> Result<(), axum::Error> {
    let (token, session) = match authenticated {
        Some(authenticated) => authenticated,
        None => match authenticate_first_frame(&mut socket, &services).await {
            Ok(authenticated) => authenticated,
            Err(e) => {
                send_error(&mut socket, e).await;
                return Ok(());
            }
        },
    };
    let connection = Connection {
        services: &services,
        session: &session,
        token: &token,
        presence: &presence,
    };
    match connection.serve(&mut socket, since, filter_param).await? {
        End::Quietly => {
            let _ = socket.send(Message::Close(None)).await;
        }
        End::With(e) => send_error(&mut socket, e).await,
    }
    Ok(())
}

/// The session of a client that sends its token as the first frame.
async fn authenticate_first_frame(
    socket: &mut WebSocket,
    services: &AppState,
) -> Result<(String, Session), Error> {
    let token = first_frame_token(socket)
        .await
        .ok_or_else(Error::missing_token)?;
    let checked = token.clone();
    let session = services
        .blocking(move |s| s.sessions.authenticate(&checked, None))
        .await?;
    Ok((token, session))
}

/// One authenticated connection.
struct Connection<'a> {
    services: &'a AppState,
    session: &'a Session,
    token: &'a str,
    presence: &'a str,
}

impl Connection<'_> {
    /// Sends a frame per update until the connection ends; says why it ended.
    async fn serve(
        &self,
        socket: &mut WebSocket,
        mut since: Option<u64>,
        filter_param: Option<String>,
    ) -> Result<End, axum::Error> {
        // Subscribed before the first check, so a revocation right after it still wakes us.
        let mut revocations = self.services.sessions.revocations();
        let mut expires_at = match token_still_valid(self.services, self.token).await {
            Ok(expires_at) => expires_at,
            Err(e) => return Ok(End::With(e)),
        };
        let filter_for = self.session.clone();
        let filter = match self
            .services
            .blocking(move |s| resolve_filter(s, &filter_for, filter_param.as_deref()))
            .await
        {
            Ok(filter) => filter,
            Err(e) => return Ok(End::With(e)),
        };
        let channel = self.services.notifier.channel(&self.session.user_id);
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        let mut first = true;
        loop {
            let woken = channel.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let response = match self.build(since, &filter).await {
                Ok(response) => response,
                Err(e) => return Ok(End::With(e)),
            };
            if first || response.has_updates {
                since = Some(response.next_batch);
                // The body is serde_json output and string pieces: always UTF-8, so this takes
                // the buffer as it is (the lossy branch copies, and never runs).
                let text = String::from_utf8(response.body)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
                socket.send(Message::Text(text.into())).await?;
                first = false;
            }
            loop {
                tokio::select! {
                    _ = &mut woken => break,
                    _ = self.services.notifier.closed() => return Ok(End::Quietly),
                    _ = revocations.changed() => {}
                    _ = expiry_sleep(expires_at) => {}
                    _ = ping.tick() => socket.send(Message::Ping(Vec::new().into())).await?,
                    incoming = socket.recv() => match incoming {
                        None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Ok(End::Quietly),
                        Some(Ok(_)) => continue,
                    },
                }
                // A revocation, the expiry time or a ping: the token is checked again (pings
                // catch anything else that ended the session).
                match token_still_valid(self.services, self.token).await {
                    Ok(expiry) => expires_at = expiry,
                    Err(e) => return Ok(End::With(e)),
                }
            }
        }
    }

    /// Marks the user present (unless asked not to) and builds the next sync payload.
    async fn build(
        &self,
        since: Option<u64>,
        filter: &SyncFilter,
    ) -> Result<crate::service::sync::SyncResponse, Error> {
        if self.presence != "offline" {
            let (user, state) = (self.session.user_id.clone(), self.presence.to_owned());
            let _ = self
                .services
                .blocking(move |s| s.set_presence(&user, &state, None))
                .await;
        }
        let (session, filter) = (self.session.clone(), filter.clone());
        self.services
            .blocking(move |s| {
                s.build_sync(
                    &session,
                    since,
                    crate::service::sync::SyncOptions::default(),
                    &filter,
                )
            })
            .await
    }
}

/// Re-checks the connection's token (see `SessionService::validate`); `Ok` carries its
/// expiry time.
async fn token_still_valid(services: &AppState, token: &str) -> Result<Option<u64>, Error> {
    let token = token.to_owned();
    services
        .blocking(move |s| s.sessions.validate(&token))
        .await
}

/// Sleeps until a token expires (forever for tokens that don't).
async fn expiry_sleep(expires_at: Option<u64>) {
    match expires_at {
        Some(at) => {
            let left = at.saturating_sub(crate::util::now_millis());
            tokio::time::sleep(Duration::from_millis(left)).await;
        }
        None => std::future::pending().await,
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
    services: &crate::service::Services,
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
