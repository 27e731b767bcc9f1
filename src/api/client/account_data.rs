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

use super::convert;
use crate::{
    api::{AppState, Ruma},
    error::{Error, Result},
    service::Services,
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
    let user = request.session()?.user_id.clone();
    let body = request.body;
    ensure_self(&user, &body.user_id)?;
    let kind = body.event_type.to_string();
    ensure_settable(&kind)?;
    let data = convert::raw_to_value(&body.data)?;
    services
        .blocking(move |s| s.account_data.set(&user, None, &kind, data))
        .await?;
    Ok(Json(json!({})))
}

/// `GET /user/{userId}/account_data/{type}`
pub async fn get_global(
    State(services): State<AppState>,
    request: Ruma<get_global_account_data::v3::Request>,
) -> Result<Json<Value>> {
    let user = request.session()?.user_id.clone();
    let body = request.body;
    ensure_self(&user, &body.user_id)?;
    let kind = body.event_type.to_string();
    let value = services
        .blocking(move |s| {
            if kind == "m.push_rules" {
                let rules = s.push.rules.record(&user)?;
                return Ok(Some(serde_json::json!({ "global": rules.global })));
            }
            s.account_data.get(&user, None, &kind)
        })
        .await?;
    Ok(Json(value.ok_or_else(|| {
        Error::not_found("Account data not found")
    })?))
}

fn ensure_room(services: &Services, room_id: &RoomId) -> Result<()> {
    if services.rooms.registry.room(room_id)?.is_none() {
        return Err(Error::not_found("Unknown room"));
    }
    Ok(())
}

/// `PUT /user/{userId}/rooms/{roomId}/account_data/{type}`
pub async fn set_room(
    State(services): State<AppState>,
    request: Ruma<set_room_account_data::v3::Request>,
) -> Result<Json<Value>> {
    let user = request.session()?.user_id.clone();
    let body = request.body;
    ensure_self(&user, &body.user_id)?;
    services
        .blocking(move |s| {
            ensure_room(s, &body.room_id)?;
            let kind = body.event_type.to_string();
            ensure_settable(&kind)?;
            let data = convert::raw_to_value(&body.data)?;
            s.account_data.set(&user, Some(&body.room_id), &kind, data)
        })
        .await?;
    Ok(Json(json!({})))
}

/// `GET /user/{userId}/rooms/{roomId}/account_data/{type}`
pub async fn get_room(
    State(services): State<AppState>,
    request: Ruma<get_room_account_data::v3::Request>,
) -> Result<Json<Value>> {
    let user = request.session()?.user_id.clone();
    let body = request.body;
    ensure_self(&user, &body.user_id)?;
    let kind = body.event_type.to_string();
    let value = services
        .blocking(move |s| s.account_data.get(&user, Some(&body.room_id), &kind))
        .await?;
    Ok(Json(value.ok_or_else(|| {
        Error::not_found("Account data not found")
    })?))
}

fn tags_of(
    services: &Services,
    user: &UserId,
    room: &RoomId,
) -> Result<serde_json::Map<String, Value>> {
    Ok(services
        .account_data
        .get(user, Some(room), "m.tag")?
        .and_then(|content| content.get("tags").and_then(Value::as_object).cloned())
        .unwrap_or_default())
}

/// Stores the room's `m.tag` account data.
fn set_tags(
    services: &Services,
    user: &UserId,
    room: &RoomId,
    tags: serde_json::Map<String, Value>,
) -> Result<()> {
    services
        .account_data
        .set(user, Some(room), "m.tag", json!({ "tags": tags }))
}

/// `GET /user/{userId}/rooms/{roomId}/tags`
pub async fn get_tags(
    State(services): State<AppState>,
    request: Ruma<get_tags::v3::Request>,
) -> Result<Json<Value>> {
    let user = request.session()?.user_id.clone();
    let body = request.body;
    ensure_self(&user, &body.user_id)?;
    let tags = services
        .blocking(move |s| tags_of(s, &user, &body.room_id))
        .await?;
    Ok(Json(json!({ "tags": tags })))
}

/// `PUT /user/{userId}/rooms/{roomId}/tags/{tag}`
pub async fn put_tag(
    State(services): State<AppState>,
    request: Ruma<create_tag::v3::Request>,
) -> Result<Json<Value>> {
    let user = request.session()?.user_id.clone();
    let body = request.body;
    ensure_self(&user, &body.user_id)?;
    services
        .blocking(move |s| {
            ensure_room(s, &body.room_id)?;
            let mut tags = tags_of(s, &user, &body.room_id)?;
            let info = convert::to_value(&body.tag_info)?;
            tags.insert(body.tag, info);
            set_tags(s, &user, &body.room_id, tags)
        })
        .await?;
    Ok(Json(json!({})))
}

/// `DELETE /user/{userId}/rooms/{roomId}/tags/{tag}`
pub async fn delete_tag(
    State(services): State<AppState>,
    request: Ruma<delete_tag::v3::Request>,
) -> Result<Json<Value>> {
    let user = request.session()?.user_id.clone();
    let body = request.body;
    ensure_self(&user, &body.user_id)?;
    services
        .blocking(move |s| {
            let mut tags = tags_of(s, &user, &body.room_id)?;
            tags.remove(&body.tag);
            set_tags(s, &user, &body.room_id, tags)
        })
        .await?;
    Ok(Json(json!({})))
}

/// `DELETE /_matrix/client/unstable/org.matrix.msc3391/user/{userId}/account_data/{type}`
/// (MSC3391; not in a stable spec version yet).
pub async fn delete_global(
    State(services): State<AppState>,
    axum::extract::Path((user_id, kind)): axum::extract::Path<(String, String)>,
    request: http::Request<axum::body::Body>,
) -> Result<Json<Value>> {
    let (parts, _) = request.into_parts();
    delete(services, &parts, &user_id, None, kind).await
}

/// `DELETE /_matrix/client/unstable/org.matrix.msc3391/user/{userId}/rooms/{roomId}/account_data/{type}`
pub async fn delete_room(
    State(services): State<AppState>,
    axum::extract::Path((user_id, room_id, kind)): axum::extract::Path<(String, String, String)>,
    request: http::Request<axum::body::Body>,
) -> Result<Json<Value>> {
    let (parts, _) = request.into_parts();
    delete(services, &parts, &user_id, Some(room_id), kind).await
}

async fn delete(
    services: AppState,
    parts: &http::request::Parts,
    path_user: &str,
    room: Option<String>,
    kind: String,
) -> Result<Json<Value>> {
    let crate::api::extract::Caller::User(session) = crate::api::extract::authenticate(
        parts,
        &services,
        crate::api::extract::TokenUse::Required,
    )
    .await?
    else {
        return Err(Error::missing_token());
    };
    let path_user =
        UserId::parse(path_user).map_err(|_| Error::invalid_param("Invalid user id"))?;
    ensure_self(&session.user_id, &path_user)?;
    ensure_settable(&kind)?;
    let room = room
        .map(|room| RoomId::parse(room).map_err(|_| Error::invalid_param("Invalid room id")))
        .transpose()?;
    let user = session.user_id.clone();
    services
        .blocking(move |s| {
            if let Some(room) = &room {
                ensure_room(s, room)?;
            }
            s.account_data.delete(&user, room.as_deref(), &kind)
        })
        .await?;
    Ok(Json(json!({})))
}
