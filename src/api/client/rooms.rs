//! Rooms and membership: create, join, invite, leave, kick, ban, unban, forget, member lists.

use axum::{Json, extract::State};
use ruma::{
    OwnedRoomId,
    api::client::{
        membership::{
            ban_user, forget_room, get_member_events, invite_user, join_room_by_id,
            join_room_by_id_or_alias, joined_members, joined_rooms, kick_user, leave_room,
            unban_user,
        },
        room::{Visibility, create_room},
    },
};
use serde_json::{Value, json};

use super::convert;
use crate::{
    api::{AppState, Ruma, RumaResponse},
    error::{Error, Result},
    service::rooms::create::CreateRoomRequest,
};

/// `POST /createRoom`
pub async fn create(
    State(services): State<AppState>,
    request: Ruma<create_room::v3::Request>,
) -> Result<Json<Value>> {
    let user = request.session()?.user_id.clone();
    let body = request.body;
    let parsed = CreateRoomRequest {
        creation_content: body
            .creation_content
            .as_ref()
            .map(convert::raw_to_value)
            .transpose()?,
        initial_state: body
            .initial_state
            .iter()
            .map(convert::raw_to_value)
            .collect::<Result<_>>()?,
        invite: body.invite,
        is_direct: body.is_direct,
        name: body.name,
        power_level_content_override: body
            .power_level_content_override
            .as_ref()
            .map(convert::raw_to_value)
            .transpose()?,
        preset: body.preset.map(|p| p.to_string()),
        room_alias_name: body.room_alias_name,
        room_version: body.room_version,
        topic: body.topic,
        public: body.visibility == Visibility::Public,
    };
    let room_id = services
        .blocking(move |s| s.create_room(&user, parsed))
        .await?;
    Ok(Json(json!({ "room_id": room_id })))
}

/// `GET /joined_rooms`
pub async fn joined(
    State(services): State<AppState>,
    request: Ruma<joined_rooms::v3::Request>,
) -> Result<Json<Value>> {
    let user = request.session()?.user_id.clone();
    let rooms: Vec<OwnedRoomId> = services
        .blocking(move |s| s.rooms.members.rooms_of(&user))
        .await?
        .into_iter()
        .filter(|(_, m)| m.membership == "join")
        .map(|(room, _)| room)
        .collect();
    Ok(Json(json!({ "joined_rooms": rooms })))
}

/// `POST /join/{roomIdOrAlias}`
pub async fn join_by_id_or_alias(
    State(services): State<AppState>,
    request: Ruma<join_room_by_id_or_alias::v3::Request>,
) -> Result<Json<Value>> {
    let user = request.session()?.user_id.clone();
    let content = request.json_object()?;
    let body = request.body;
    let target = body.room_id_or_alias.clone();
    let room_id = services
        .blocking(move |s| s.resolve_room_or_alias(&target))
        .await?;
    services
        .join_anywhere(&user, &room_id, &body.via, body.reason, content)
        .await?;
    Ok(Json(json!({ "room_id": room_id })))
}

/// `POST /rooms/{roomId}/join`
pub async fn join_by_id(
    State(services): State<AppState>,
    request: Ruma<join_room_by_id::v3::Request>,
) -> Result<Json<Value>> {
    let user = request.session()?.user_id.clone();
    let content = request.json_object()?;
    let room_id = request.body.room_id.clone();
    let reason = request.body.reason;
    services
        .join_anywhere(&user, &room_id, &[], reason, content)
        .await?;
    Ok(Json(json!({ "room_id": room_id })))
}

/// `POST /rooms/{roomId}/invite`
pub async fn invite(
    State(services): State<AppState>,
    request: Ruma<invite_user::v3::Request>,
) -> Result<Json<Value>> {
    let user = request.session()?.user_id.clone();
    let body = request.body;
    let invite_user::v3::InvitationRecipient::UserId(recipient) = body.recipient else {
        return Err(Error::unknown(
            http::StatusCode::BAD_REQUEST,
            "Third-party invites are not supported",
        ));
    };
    let room_id = body.room_id;
    services
        .blocking(move |s| s.invite(&user, &room_id, &recipient.user_id, recipient.reason, false))
        .await?;
    Ok(Json(json!({})))
}

/// `POST /rooms/{roomId}/leave`
pub async fn leave(
    State(services): State<AppState>,
    request: Ruma<leave_room::v3::Request>,
) -> Result<Json<Value>> {
    let user = request.session()?.user_id.clone();
    let body = request.body;
    services
        .blocking(move |s| s.leave(&user, &body.room_id, body.reason))
        .await?;
    Ok(Json(json!({})))
}

/// `POST /rooms/{roomId}/kick`
pub async fn kick(
    State(services): State<AppState>,
    request: Ruma<kick_user::v3::Request>,
) -> Result<Json<Value>> {
    let user = request.session()?.user_id.clone();
    let body = request.body;
    services
        .blocking(move |s| s.kick(&user, &body.room_id, &body.user_id, body.reason))
        .await?;
    Ok(Json(json!({})))
}

/// `POST /rooms/{roomId}/ban`
pub async fn ban(
    State(services): State<AppState>,
    request: Ruma<ban_user::v3::Request>,
) -> Result<Json<Value>> {
    let user = request.session()?.user_id.clone();
    let body = request.body;
    services
        .blocking(move |s| s.ban(&user, &body.room_id, &body.user_id, body.reason))
        .await?;
    Ok(Json(json!({})))
}

/// `POST /rooms/{roomId}/unban`
pub async fn unban(
    State(services): State<AppState>,
    request: Ruma<unban_user::v3::Request>,
) -> Result<Json<Value>> {
    let user = request.session()?.user_id.clone();
    let body = request.body;
    services
        .blocking(move |s| s.unban(&user, &body.room_id, &body.user_id, body.reason))
        .await?;
    Ok(Json(json!({})))
}

/// `POST /rooms/{roomId}/forget`
pub async fn forget(
    State(services): State<AppState>,
    request: Ruma<forget_room::v3::Request>,
) -> Result<Json<Value>> {
    let user = request.session()?.user_id.clone();
    let room_id = request.body.room_id;
    services
        .blocking(move |s| s.rooms.members.forget(&user, &room_id))
        .await?;
    Ok(Json(json!({})))
}

/// `GET /rooms/{roomId}/members`
pub async fn members(
    State(services): State<AppState>,
    request: Ruma<get_member_events::v3::Request>,
) -> Result<RumaResponse<get_member_events::v3::Response>> {
    let user = request.session()?.user_id.clone();
    let body = request.body;
    let membership = body.membership.map(|m| m.to_string());
    let not_membership = body.not_membership.map(|m| m.to_string());
    let at = convert::token("at", body.at.as_deref())?;
    let chunk = services.blocking(move |s| {
        s.rooms.members_for_user(
            &user,
            &body.room_id,
            membership.as_deref(),
            not_membership.as_deref(),
            at,
        )
    });
    Ok(RumaResponse(get_member_events::v3::Response::new(
        convert::raw_events(chunk.await?)?,
    )))
}

/// `GET /rooms/{roomId}/joined_members`
pub async fn joined_members(
    State(services): State<AppState>,
    request: Ruma<joined_members::v3::Request>,
) -> Result<Json<Value>> {
    let user = request.session()?.user_id.clone();
    let room_id = request.body.room_id;
    let members = services
        .blocking(move |s| s.rooms.joined_members(&user, &room_id))
        .await?;
    let joined: serde_json::Map<String, Value> = members
        .into_iter()
        .map(|(id, profile)| (id.to_string(), profile))
        .collect();
    Ok(Json(json!({ "joined": joined })))
}

/// `POST /knock/{roomIdOrAlias}`
pub async fn knock(
    State(services): State<AppState>,
    request: Ruma<ruma::api::client::knock::knock_room::v3::Request>,
) -> Result<Json<Value>> {
    let user = request.session()?.user_id.clone();
    let body = request.body;
    let room_id = services
        .blocking(move |s| {
            let room_id = s.resolve_room_or_alias(&body.room_id_or_alias)?;
            s.knock(&user, &room_id, body.reason)?;
            Ok(room_id)
        })
        .await?;
    Ok(Json(json!({ "room_id": room_id })))
}

/// `POST /rooms/{roomId}/upgrade`
pub async fn upgrade(
    State(services): State<AppState>,
    request: Ruma<ruma::api::client::room::upgrade_room::v3::Request>,
) -> Result<Json<Value>> {
    let user = request.session()?.user_id.clone();
    let body = request.body;
    let new_room = services
        .blocking(move |s| s.upgrade_room(&user, &body.room_id, body.new_version))
        .await?;
    Ok(Json(json!({ "replacement_room": new_room })))
}
