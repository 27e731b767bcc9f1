//! `GET /sync` (long-polling) and sync filters.

use std::time::Duration;

use axum::{
    Json,
    extract::State,
    response::{IntoResponse, Response},
};
use ruma::api::client::{
    filter::{create_filter, get_filter},
    sync::sync_events,
};
use serde_json::{Value, json};

use super::convert;
use crate::{
    api::{AppState, Ruma},
    error::{Error, Result},
    service::sync::{SyncFilter, SyncOptions},
};

/// Longest a `/sync` request waits for something to happen.
const MAX_TIMEOUT: Duration = Duration::from_secs(300);

/// `GET /sync`: answers at once when something changed since `since`, otherwise waits for a
/// wake-up from a write that concerns the user, or for `timeout`.
pub async fn sync(
    State(services): State<AppState>,
    request: Ruma<sync_events::v3::Request>,
) -> Result<Response> {
    let session = request.session()?.clone();
    let body = request.body;
    let since = convert::token("since", body.since.as_deref())?;
    let filter = match body.filter {
        None => SyncFilter::default(),
        Some(sync_events::v3::Filter::FilterDefinition(definition)) => {
            SyncFilter::from_json(&convert::to_value(&definition)?)
        }
        Some(sync_events::v3::Filter::FilterId(id)) => {
            let user = session.user_id.clone();
            let stored = services
                .blocking(move |s| s.filters.get(&user, &id))
                .await?
                .ok_or_else(|| Error::not_found("Unknown filter"))?;
            SyncFilter::from_json(&stored)
        }
        Some(_) => SyncFilter::default(),
    };
    let timeout = body.timeout.unwrap_or_default().min(MAX_TIMEOUT);
    let deadline = tokio::time::Instant::now() + timeout;
    let full_state = body.full_state;
    let options = SyncOptions {
        full_state,
        use_state_after: body.use_state_after,
    };
    // Syncing marks the user active unless the client says otherwise.
    let presence = body.set_presence.to_string();
    if presence != "offline" {
        let user = session.user_id.clone();
        services
            .blocking(move |s| s.set_presence(&user, &presence, None))
            .await?;
    }
    let channel = services.notifier.channel(&session.user_id);
    loop {
        // Register for wake-ups before reading, so a write in between is not missed.
        let woken = channel.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let (session, filter) = (session.clone(), filter.clone());
        let response = services
            .blocking(move |s| s.build_sync(&session, since, options, &filter))
            .await?;
        if response.has_updates
            || since.is_none()
            || full_state
            || tokio::time::Instant::now() >= deadline
            || services.notifier.is_closing()
        {
            return Ok((
                [(http::header::CONTENT_TYPE, "application/json")],
                response.body,
            )
                .into_response());
        }
        tokio::select! {
            _ = &mut woken => {}
            _ = tokio::time::sleep_until(deadline) => {}
            _ = services.notifier.closed() => {}
        }
    }
}

/// `POST /user/{userId}/filter`
pub async fn create_filter(
    State(services): State<AppState>,
    request: Ruma<create_filter::v3::Request>,
) -> Result<Json<Value>> {
    let user = request.session()?.user_id.clone();
    if user != request.body.user_id {
        return Err(Error::forbidden("You can only create filters for yourself"));
    }
    let filter = convert::to_value(&request.body.filter)?;
    let id = services
        .blocking(move |s| s.filters.create(&user, &filter))
        .await?;
    Ok(Json(json!({ "filter_id": id })))
}

/// `GET /user/{userId}/filter/{filterId}`
pub async fn get_filter(
    State(services): State<AppState>,
    request: Ruma<get_filter::v3::Request>,
) -> Result<Json<Value>> {
    let user = request.session()?.user_id.clone();
    if user != request.body.user_id {
        return Err(Error::forbidden("You can only read your own filters"));
    }
    let filter_id = request.body.filter_id;
    let filter = services
        .blocking(move |s| s.filters.get(&user, &filter_id))
        .await?
        .ok_or_else(|| Error::not_found("Unknown filter"))?;
    Ok(Json(filter))
}
