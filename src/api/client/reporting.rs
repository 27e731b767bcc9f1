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
    services
        .blocking(move |s| {
            let visible = s
                .rooms
                .event_for_user(&session, &body.room_id, &body.event_id);
            if visible.is_err() {
                return Err(Error::not_found("Event not found"));
            }
            s.reports.file(
                session.user_id,
                Some(body.room_id),
                Some(body.event_id),
                None,
                body.reason,
            )
        })
        .await?;
    Ok(Json(json!({})))
}

/// `POST /rooms/{roomId}/report`
pub async fn report_room(
    State(services): State<AppState>,
    request: Ruma<report_room::v3::Request>,
) -> Result<Json<Value>> {
    let session = request.session()?.clone();
    let body = request.body;
    services
        .blocking(move |s| {
            if s.rooms.registry.room(&body.room_id)?.is_none() {
                return Err(Error::not_found("Room not found"));
            }
            s.reports.file(
                session.user_id,
                Some(body.room_id),
                None,
                None,
                Some(body.reason),
            )
        })
        .await?;
    Ok(Json(json!({})))
}

/// `POST /users/{userId}/report`: answers the same whether or not the user exists.
pub async fn report_user(
    State(services): State<AppState>,
    request: Ruma<report_user::v3::Request>,
) -> Result<Json<Value>> {
    let session = request.session()?.clone();
    let body = request.body;
    services
        .blocking(move |s| {
            if s.users.exists(&body.user_id)? {
                s.reports.file(
                    session.user_id,
                    None,
                    None,
                    Some(body.user_id),
                    Some(body.reason),
                )?;
            }
            Ok(())
        })
        .await?;
    Ok(Json(json!({})))
}
