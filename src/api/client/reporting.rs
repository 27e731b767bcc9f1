//! Reporting events, rooms and users to the server's admins.

use axum::{Json, extract::State};
use ruma::api::client::{
    reporting::report_user,
    room::{report_content, report_room},
};
use serde_json::{Value, json};

use crate::{
    api::{AppState, Ruma},
    error::{Error, Result},
};

/// `POST /rooms/{roomId}/report/{eventId}`: 404 for events the reporter cannot see, so
/// reports do not reveal what exists.
pub async fn report_event(
    State(services): State<AppState>,
    request: Ruma<report_content::v3::Request>,
) -> Result<Json<Value>> {
    let session = request.session()?.clone();
    let body = request.body;
    let (room_id, event_id) = (body.room_id.clone(), body.event_id.clone());
    let check = session.clone();
    let visible = services
        .blocking(move |s| Ok(s.rooms.event_for_user(&check, &room_id, &event_id).is_ok()))
        .await?;
    if !visible {
        return Err(Error::not_found("Event not found"));
    }
    services.reports.file(
        session.user_id,
        Some(body.room_id),
        Some(body.event_id),
        None,
        body.reason,
    )?;
    Ok(Json(json!({})))
}

/// `POST /rooms/{roomId}/report`
pub async fn report_room(
    State(services): State<AppState>,
    request: Ruma<report_room::v3::Request>,
) -> Result<Json<Value>> {
    let session = request.session()?.clone();
    let body = request.body;
    if services.rooms.room(&body.room_id)?.is_none() {
        return Err(Error::not_found("Room not found"));
    }
    services.reports.file(
        session.user_id,
        Some(body.room_id),
        None,
        None,
        Some(body.reason),
    )?;
    Ok(Json(json!({})))
}

/// `POST /users/{userId}/report`: answers the same whether or not the user exists.
pub async fn report_user(
    State(services): State<AppState>,
    request: Ruma<report_user::v3::Request>,
) -> Result<Json<Value>> {
    let session = request.session()?.clone();
    let body = request.body;
    if services.users.exists(&body.user_id)? {
        services.reports.file(
            session.user_id,
            None,
            None,
            Some(body.user_id),
            Some(body.reason),
        )?;
    }
    Ok(Json(json!({})))
}
