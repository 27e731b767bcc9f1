//! Room aliases and the room directory's visibility flag.

use axum::{Json, extract::State};
use ruma::api::client::{
    alias::{create_alias, delete_alias, get_alias},
    directory::{
        get_public_rooms, get_public_rooms_filtered, get_room_visibility, set_room_visibility,
    },
    room::{Visibility, aliases},
};
use serde_json::{Value, json};

use crate::{
    api::{AppState, Ruma},
    error::{Error, Result},
};

/// `PUT /directory/room/{roomAlias}`
pub async fn put_alias(
    State(services): State<AppState>,
    request: Ruma<create_alias::v3::Request>,
) -> Result<Json<Value>> {
    let user = request.session()?.user_id.clone();
    let body = request.body;
    services.set_alias(&body.room_alias, &body.room_id, &user)?;
    Ok(Json(json!({})))
}

/// `GET /directory/room/{roomAlias}`
pub async fn get_alias(
    State(services): State<AppState>,
    request: Ruma<get_alias::v3::Request>,
) -> Result<Json<Value>> {
    let room_id = services.resolve_alias(&request.body.room_alias)?;
    Ok(Json(
        json!({ "room_id": room_id, "servers": [services.config.server_name] }),
    ))
}

/// `DELETE /directory/room/{roomAlias}`
pub async fn delete_alias(
    State(services): State<AppState>,
    request: Ruma<delete_alias::v3::Request>,
) -> Result<Json<Value>> {
    let user = request.session()?.user_id.clone();
    services.delete_alias(&request.body.room_alias, &user)?;
    Ok(Json(json!({})))
}

/// `GET /rooms/{roomId}/aliases`: members (or anyone, for world-readable rooms) only.
pub async fn room_aliases(
    State(services): State<AppState>,
    request: Ruma<aliases::v3::Request>,
) -> Result<Json<Value>> {
    let user = request.session()?.user_id.clone();
    let room_id = request.body.room_id;
    let member = services.rooms.is_joined(&user, &room_id)?;
    if !member && !services.rooms.is_world_readable(&room_id)? {
        return Err(Error::forbidden("You are not in this room"));
    }
    Ok(Json(
        json!({ "aliases": services.aliases.aliases_of(&room_id)? }),
    ))
}

/// `GET /directory/list/room/{roomId}`
pub async fn get_visibility(
    State(services): State<AppState>,
    request: Ruma<get_room_visibility::v3::Request>,
) -> Result<Json<Value>> {
    let room_id = request.body.room_id;
    if services.rooms.room(&room_id)?.is_none() {
        return Err(Error::not_found("Unknown room"));
    }
    let visibility = if services.aliases.is_public(&room_id)? {
        "public"
    } else {
        "private"
    };
    Ok(Json(json!({ "visibility": visibility })))
}

/// `PUT /directory/list/room/{roomId}`: needs the power to change the room's state.
pub async fn set_visibility(
    State(services): State<AppState>,
    request: Ruma<set_room_visibility::v3::Request>,
) -> Result<Json<Value>> {
    let user = request.session()?.user_id.clone();
    let body = request.body;
    if services.rooms.room(&body.room_id)?.is_none() {
        return Err(Error::not_found("Unknown room"));
    }
    if !services
        .rooms
        .user_can_send_state(&body.room_id, &user, "m.room.canonical_alias")?
    {
        return Err(Error::forbidden(
            "You may not change the room's directory visibility",
        ));
    }
    services.rooms_directory_publish(&body.room_id, body.visibility == Visibility::Public)?;
    Ok(Json(json!({})))
}

fn public_rooms_json(page: crate::service::rooms::aliases::PublicRoomsPage) -> Value {
    let mut response = json!({ "chunk": page.chunk, "total_room_count_estimate": page.total });
    if let Some(next) = page.next_batch {
        response["next_batch"] = json!(next);
    }
    if let Some(prev) = page.prev_batch {
        response["prev_batch"] = json!(prev);
    }
    response
}

/// Refuses directory queries for other servers (they need federation).
fn ensure_local_directory(services: &AppState, server: Option<&ruma::ServerName>) -> Result<()> {
    match server {
        Some(server) if server != services.users.server_name() => Err(Error::not_found(
            "Room directories of other servers are not available yet",
        )),
        _ => Ok(()),
    }
}

/// `GET /publicRooms`
pub async fn public_rooms(
    State(services): State<AppState>,
    request: Ruma<get_public_rooms::v3::Request>,
) -> Result<Json<Value>> {
    let body = request.body;
    ensure_local_directory(&services, body.server.as_deref())?;
    let limit = body.limit.map(|l| u64::from(l) as usize);
    let page = services.public_rooms(limit, body.since.as_deref(), None, None)?;
    Ok(Json(public_rooms_json(page)))
}

/// `POST /publicRooms` (with `filter.generic_search_term` and `filter.room_types`)
pub async fn public_rooms_filtered(
    State(services): State<AppState>,
    request: Ruma<get_public_rooms_filtered::v3::Request>,
) -> Result<Json<Value>> {
    request.session()?;
    let body = request.body;
    ensure_local_directory(&services, body.server.as_deref())?;
    let limit = body.limit.map(|l| u64::from(l) as usize);
    let filter = serde_json::to_value(&body.filter).map_err(Error::internal)?;
    let search = filter.get("generic_search_term").and_then(Value::as_str);
    let room_types: Option<Vec<Option<String>>> = filter
        .get("room_types")
        .and_then(Value::as_array)
        .map(|types| {
            types
                .iter()
                .map(|t| t.as_str().map(str::to_owned))
                .collect()
        });
    let page =
        services.public_rooms(limit, body.since.as_deref(), search, room_types.as_deref())?;
    Ok(Json(public_rooms_json(page)))
}
