//! Account data (global and per room) and room tags.

use axum::{Json, extract::State};
use ruma::{
    RoomId, UserId,
    api::client::{
        config::{
            get_global_account_data, get_room_account_data, set_global_account_data,
            set_room_account_data,
        },
        tag::{create_tag, delete_tag, get_tags},
    },
};
use serde_json::{Value, json};

use crate::{
    api::{AppState, Ruma},
    error::{Error, Result},
};

fn ensure_self(session_user: &UserId, path_user: &UserId) -> Result<()> {
    if session_user == path_user {
        Ok(())
    } else {
        Err(Error::forbidden(
            "You can only access your own account data",
        ))
    }
}

fn content<T>(raw: &ruma::serde::Raw<T>) -> Result<Value> {
    serde_json::from_str(raw.json().get()).map_err(|e| Error::bad_json(e.to_string()))
}

/// Types the server manages itself (spec: clients may not set them through this API).
fn ensure_settable(kind: &str) -> Result<()> {
    if kind == "m.fully_read" || kind == "m.push_rules" {
        return Err(Error::bad_json(format!(
            "{kind} cannot be set through the account data API"
        )));
    }
    Ok(())
}

/// `PUT /user/{userId}/account_data/{type}`
pub async fn set_global(
    State(services): State<AppState>,
    request: Ruma<set_global_account_data::v3::Request>,
) -> Result<Json<Value>> {
    let session = request.session()?;
    let body = &request.body;
    ensure_self(&session.user_id, &body.user_id)?;
    let kind = body.event_type.to_string();
    ensure_settable(&kind)?;
    services
        .account_data
        .set(&session.user_id, None, &kind, content(&body.data)?)?;
    Ok(Json(json!({})))
}

/// `GET /user/{userId}/account_data/{type}`
pub async fn get_global(
    State(services): State<AppState>,
    request: Ruma<get_global_account_data::v3::Request>,
) -> Result<Json<Value>> {
    let session = request.session()?;
    ensure_self(&session.user_id, &request.body.user_id)?;
    let value =
        services
            .account_data
            .get(&session.user_id, None, &request.body.event_type.to_string())?;
    Ok(Json(value.ok_or_else(|| {
        Error::not_found("Account data not found")
    })?))
}

fn ensure_room(services: &AppState, room_id: &RoomId) -> Result<()> {
    if services.rooms.room(room_id)?.is_none() {
        return Err(Error::not_found("Unknown room"));
    }
    Ok(())
}

/// `PUT /user/{userId}/rooms/{roomId}/account_data/{type}`
pub async fn set_room(
    State(services): State<AppState>,
    request: Ruma<set_room_account_data::v3::Request>,
) -> Result<Json<Value>> {
    let session = request.session()?;
    let body = &request.body;
    ensure_self(&session.user_id, &body.user_id)?;
    ensure_room(&services, &body.room_id)?;
    let kind = body.event_type.to_string();
    ensure_settable(&kind)?;
    services.account_data.set(
        &session.user_id,
        Some(&body.room_id),
        &kind,
        content(&body.data)?,
    )?;
    Ok(Json(json!({})))
}

/// `GET /user/{userId}/rooms/{roomId}/account_data/{type}`
pub async fn get_room(
    State(services): State<AppState>,
    request: Ruma<get_room_account_data::v3::Request>,
) -> Result<Json<Value>> {
    let session = request.session()?;
    let body = &request.body;
    ensure_self(&session.user_id, &body.user_id)?;
    let value = services.account_data.get(
        &session.user_id,
        Some(&body.room_id),
        &body.event_type.to_string(),
    )?;
    Ok(Json(value.ok_or_else(|| {
        Error::not_found("Account data not found")
    })?))
}

fn tags_of(
    services: &AppState,
    user: &UserId,
    room: &RoomId,
) -> Result<serde_json::Map<String, Value>> {
    Ok(services
        .account_data
        .get(user, Some(room), "m.tag")?
        .and_then(|content| content.get("tags").and_then(Value::as_object).cloned())
        .unwrap_or_default())
}

/// `GET /user/{userId}/rooms/{roomId}/tags`
pub async fn get_tags(
    State(services): State<AppState>,
    request: Ruma<get_tags::v3::Request>,
) -> Result<Json<Value>> {
    let session = request.session()?;
    ensure_self(&session.user_id, &request.body.user_id)?;
    Ok(Json(
        json!({ "tags": tags_of(&services, &session.user_id, &request.body.room_id)? }),
    ))
}

/// `PUT /user/{userId}/rooms/{roomId}/tags/{tag}`
pub async fn put_tag(
    State(services): State<AppState>,
    request: Ruma<create_tag::v3::Request>,
) -> Result<Json<Value>> {
    let session = request.session()?;
    let body = &request.body;
    ensure_self(&session.user_id, &body.user_id)?;
    ensure_room(&services, &body.room_id)?;
    let mut tags = tags_of(&services, &session.user_id, &body.room_id)?;
    tags.insert(
        body.tag.clone(),
        serde_json::to_value(&body.tag_info).map_err(Error::internal)?,
    );
    services.account_data.set(
        &session.user_id,
        Some(&body.room_id),
        "m.tag",
        json!({ "tags": tags }),
    )?;
    Ok(Json(json!({})))
}

/// `DELETE /user/{userId}/rooms/{roomId}/tags/{tag}`
pub async fn delete_tag(
    State(services): State<AppState>,
    request: Ruma<delete_tag::v3::Request>,
) -> Result<Json<Value>> {
    let session = request.session()?;
    let body = &request.body;
    ensure_self(&session.user_id, &body.user_id)?;
    let mut tags = tags_of(&services, &session.user_id, &body.room_id)?;
    tags.remove(&body.tag);
    services.account_data.set(
        &session.user_id,
        Some(&body.room_id),
        "m.tag",
        json!({ "tags": tags }),
    )?;
    Ok(Json(json!({})))
}
