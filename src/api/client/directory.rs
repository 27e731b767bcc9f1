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

use super::convert;
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
    services
        .blocking(move |s| s.set_alias(&body.room_alias, &body.room_id, &user))
        .await?;
    Ok(Json(json!({})))
}

/// `GET /directory/room/{roomAlias}`
pub async fn get_alias(
    State(services): State<AppState>,
    request: Ruma<get_alias::v3::Request>,
) -> Result<Json<Value>> {
    let alias = request.body.room_alias;
    let room_id = services.blocking(move |s| s.resolve_alias(&alias)).await?;
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
    let alias = request.body.room_alias;
    services
        .blocking(move |s| s.delete_alias(&alias, &user))
        .await?;
    Ok(Json(json!({})))
}

/// `GET /rooms/{roomId}/aliases`: members (or anyone, for world-readable rooms) only.
pub async fn room_aliases(
    State(services): State<AppState>,
    request: Ruma<aliases::v3::Request>,
) -> Result<Json<Value>> {
    let user = request.session()?.user_id.clone();
    let room_id = request.body.room_id;
    let aliases = services
        .blocking(move |s| {
            let member = s.rooms.members.is_joined(&user, &room_id)?;
            if !member && !s.rooms.is_world_readable(&room_id)? {
                return Err(Error::forbidden("You are not in this room"));
            }
            s.aliases.aliases_of(&room_id)
        })
        .await?;
    Ok(Json(json!({ "aliases": aliases })))
}

/// `GET /directory/list/room/{roomId}`
pub async fn get_visibility(
    State(services): State<AppState>,
    request: Ruma<get_room_visibility::v3::Request>,
) -> Result<Json<Value>> {
    let room_id = request.body.room_id;
    let public = services
        .blocking(move |s| {
            if s.rooms.registry.room(&room_id)?.is_none() {
                return Err(Error::not_found("Unknown room"));
            }
            s.aliases.is_public(&room_id)
        })
        .await?;
    let visibility = if public { "public" } else { "private" };
    Ok(Json(json!({ "visibility": visibility })))
}

/// `PUT /directory/list/room/{roomId}`: needs the power to change the room's state.
pub async fn set_visibility(
    State(services): State<AppState>,
    request: Ruma<set_room_visibility::v3::Request>,
) -> Result<Json<Value>> {
    let user = request.session()?.user_id.clone();
    let body = request.body;
    let public = body.visibility == Visibility::Public;
    services
        .blocking(move |s| {
            if s.rooms.registry.room(&body.room_id)?.is_none() {
                return Err(Error::not_found("Unknown room"));
            }
            if !s
                .rooms
                .user_can_send_state(&body.room_id, &user, "m.room.canonical_alias")?
            {
                return Err(Error::forbidden(
                    "You may not change the room's directory visibility",
                ));
            }
            s.rooms_directory_publish(&body.room_id, public)
        })
        .await?;
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
    let page = services
        .blocking(move |s| s.public_rooms(limit, body.since.as_deref(), None, None))
        .await?;
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
    let filter = convert::to_value(&body.filter)?;
    let search = filter
        .get("generic_search_term")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let room_types: Option<Vec<Option<String>>> = filter
        .get("room_types")
        .and_then(Value::as_array)
        .map(|types| {
            types
                .iter()
                .map(|t| t.as_str().map(str::to_owned))
                .collect()
        });
    let since = body.since;
    let page = services
        .blocking(move |s| {
            s.public_rooms(
                limit,
                since.as_deref(),
                search.as_deref(),
                room_types.as_deref(),
            )
        })
        .await?;
    Ok(Json(public_rooms_json(page)))
}
