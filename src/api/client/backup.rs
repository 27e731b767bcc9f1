//! Server-side key backup: `/room_keys/version[/{version}]` and
//! `/room_keys/keys[/{roomId}[/{sessionId}]]`. The rules live in `service::e2ee::backup`.

use std::collections::BTreeMap;

use axum::extract::State;
use ruma::{
    OwnedRoomId, UInt,
    api::client::backup::{
        RoomKeyBackup, add_backup_keys, add_backup_keys_for_room, add_backup_keys_for_session,
        create_backup_version, delete_backup_keys, delete_backup_keys_for_room,
        delete_backup_keys_for_session, delete_backup_version, get_backup_info, get_backup_keys,
        get_backup_keys_for_room, get_backup_keys_for_session, get_latest_backup_info,
        update_backup_version,
    },
    serde::Raw,
};

use crate::{
    api::{AppState, Ruma, RumaResponse},
    error::{Error, Result},
    service::e2ee::backup::{BackedUpKeys, parse_version},
};

fn count(n: u64) -> UInt {
    UInt::new_saturating(n)
}

/// Backed-up keys in ruma's shape.
fn rooms_of(keys: BackedUpKeys) -> BTreeMap<OwnedRoomId, RoomKeyBackup> {
    keys.into_iter()
        .filter_map(|(room, sessions)| {
            let room = OwnedRoomId::try_from(room.as_str()).ok()?;
            let sessions = sessions
                .into_iter()
                .map(|(session, data)| (session, Raw::from_json(data)))
                .collect();
            Some((room, RoomKeyBackup::new(sessions)))
        })
        .collect()
}

/// Ruma's keys in the service's shape.
fn keys_of(rooms: BTreeMap<OwnedRoomId, RoomKeyBackup>) -> BackedUpKeys {
    rooms
        .into_iter()
        .map(|(room, backup)| {
            let sessions = backup
                .sessions
                .into_iter()
                .map(|(session, data)| (session, data.into_json()))
                .collect();
            (room.to_string(), sessions)
        })
        .collect()
}

/// `POST /room_keys/version`
pub async fn create_version(
    State(services): State<AppState>,
    request: Ruma<create_backup_version::v3::Request>,
) -> Result<RumaResponse<create_backup_version::v3::Response>> {
    let user = request.session()?.user_id.clone();
    let algorithm = request.body.algorithm.into_json();
    let version = services
        .blocking(move |s| s.e2ee.backup.create_version(&user, algorithm))
        .await?;
    Ok(RumaResponse(create_backup_version::v3::Response::new(
        version.to_string(),
    )))
}

/// `GET /room_keys/version`
pub async fn latest_version(
    State(services): State<AppState>,
    request: Ruma<get_latest_backup_info::v3::Request>,
) -> Result<RumaResponse<get_latest_backup_info::v3::Response>> {
    let user = request.session()?.user_id.clone();
    let (version, record, keys) = services
        .blocking(move |s| s.e2ee.backup.version(&user, None))
        .await?;
    Ok(RumaResponse(get_latest_backup_info::v3::Response::new(
        Raw::from_json(record.algorithm),
        count(keys),
        record.etag.to_string(),
        version.to_string(),
    )))
}

/// `GET /room_keys/version/{version}`
pub async fn get_version(
    State(services): State<AppState>,
    request: Ruma<get_backup_info::v3::Request>,
) -> Result<RumaResponse<get_backup_info::v3::Response>> {
    let user = request.session()?.user_id.clone();
    let wanted = parse_version(&request.body.version)?;
    let (version, record, keys) = services
        .blocking(move |s| s.e2ee.backup.version(&user, Some(wanted)))
        .await?;
    Ok(RumaResponse(get_backup_info::v3::Response::new(
        Raw::from_json(record.algorithm),
        count(keys),
        record.etag.to_string(),
        version.to_string(),
    )))
}

/// `PUT /room_keys/version/{version}`
pub async fn update_version(
    State(services): State<AppState>,
    request: Ruma<update_backup_version::v3::Request>,
) -> Result<RumaResponse<update_backup_version::v3::Response>> {
    let user = request.session()?.user_id.clone();
    let body = request.body;
    let version = parse_version(&body.version)?;
    let algorithm = body.algorithm.into_json();
    services
        .blocking(move |s| s.e2ee.backup.update_version(&user, version, algorithm))
        .await?;
    Ok(RumaResponse(update_backup_version::v3::Response::new()))
}

/// `DELETE /room_keys/version/{version}`
pub async fn delete_version(
    State(services): State<AppState>,
    request: Ruma<delete_backup_version::v3::Request>,
) -> Result<RumaResponse<delete_backup_version::v3::Response>> {
    let user = request.session()?.user_id.clone();
    let version = parse_version(&request.body.version)?;
    services
        .blocking(move |s| s.e2ee.backup.delete_version(&user, version))
        .await?;
    Ok(RumaResponse(delete_backup_version::v3::Response::new()))
}

/// `PUT /room_keys/keys`
pub async fn put_keys(
    State(services): State<AppState>,
    request: Ruma<add_backup_keys::v3::Request>,
) -> Result<RumaResponse<add_backup_keys::v3::Response>> {
    let user = request.session()?.user_id.clone();
    let body = request.body;
    let version = parse_version(&body.version)?;
    let keys = keys_of(body.rooms);
    let (etag, keys) = services
        .blocking(move |s| s.e2ee.backup.put_keys(&user, version, keys))
        .await?;
    Ok(RumaResponse(add_backup_keys::v3::Response::new(
        etag.to_string(),
        count(keys),
    )))
}

/// `PUT /room_keys/keys/{roomId}`
pub async fn put_room_keys(
    State(services): State<AppState>,
    request: Ruma<add_backup_keys_for_room::v3::Request>,
) -> Result<RumaResponse<add_backup_keys_for_room::v3::Response>> {
    let user = request.session()?.user_id.clone();
    let body = request.body;
    let version = parse_version(&body.version)?;
    let sessions = body
        .sessions
        .into_iter()
        .map(|(session, data)| (session, data.into_json()))
        .collect();
    let keys = BackedUpKeys::from([(body.room_id.to_string(), sessions)]);
    let (etag, keys) = services
        .blocking(move |s| s.e2ee.backup.put_keys(&user, version, keys))
        .await?;
    Ok(RumaResponse(add_backup_keys_for_room::v3::Response::new(
        etag.to_string(),
        count(keys),
    )))
}

/// `PUT /room_keys/keys/{roomId}/{sessionId}`
pub async fn put_session_key(
    State(services): State<AppState>,
    request: Ruma<add_backup_keys_for_session::v3::Request>,
) -> Result<RumaResponse<add_backup_keys_for_session::v3::Response>> {
    let user = request.session()?.user_id.clone();
    let body = request.body;
    let version = parse_version(&body.version)?;
    let keys = BackedUpKeys::from([(
        body.room_id.to_string(),
        BTreeMap::from([(body.session_id, body.session_data.into_json())]),
    )]);
    let (etag, keys) = services
        .blocking(move |s| s.e2ee.backup.put_keys(&user, version, keys))
        .await?;
    Ok(RumaResponse(
        add_backup_keys_for_session::v3::Response::new(etag.to_string(), count(keys)),
    ))
}

/// `GET /room_keys/keys`
pub async fn get_keys(
    State(services): State<AppState>,
    request: Ruma<get_backup_keys::v3::Request>,
) -> Result<RumaResponse<get_backup_keys::v3::Response>> {
    let user = request.session()?.user_id.clone();
    let version = parse_version(&request.body.version)?;
    let keys = services
        .blocking(move |s| s.e2ee.backup.keys(&user, version, None, None))
        .await?;
    Ok(RumaResponse(get_backup_keys::v3::Response::new(rooms_of(
        keys,
    ))))
}

/// `GET /room_keys/keys/{roomId}`
pub async fn get_room_keys(
    State(services): State<AppState>,
    request: Ruma<get_backup_keys_for_room::v3::Request>,
) -> Result<RumaResponse<get_backup_keys_for_room::v3::Response>> {
    let user = request.session()?.user_id.clone();
    let body = request.body;
    let version = parse_version(&body.version)?;
    let room = body.room_id.to_string();
    let mut keys = services
        .blocking(move |s| s.e2ee.backup.keys(&user, version, Some(&room), None))
        .await?;
    let sessions = keys
        .remove(body.room_id.as_str())
        .unwrap_or_default()
        .into_iter()
        .map(|(session, data)| (session, Raw::from_json(data)))
        .collect();
    Ok(RumaResponse(get_backup_keys_for_room::v3::Response::new(
        sessions,
    )))
}

/// `GET /room_keys/keys/{roomId}/{sessionId}`
pub async fn get_session_key(
    State(services): State<AppState>,
    request: Ruma<get_backup_keys_for_session::v3::Request>,
) -> Result<RumaResponse<get_backup_keys_for_session::v3::Response>> {
    let user = request.session()?.user_id.clone();
    let body = request.body;
    let version = parse_version(&body.version)?;
    let (room, session) = (body.room_id.to_string(), body.session_id.clone());
    let mut keys = services
        .blocking(move |s| {
            s.e2ee
                .backup
                .keys(&user, version, Some(&room), Some(&session))
        })
        .await?;
    let data = keys
        .remove(body.room_id.as_str())
        .and_then(|mut sessions| sessions.remove(&body.session_id))
        .ok_or_else(|| Error::not_found("No key backed up for this session"))?;
    Ok(RumaResponse(
        get_backup_keys_for_session::v3::Response::new(Raw::from_json(data)),
    ))
}

/// `DELETE /room_keys/keys`
pub async fn delete_keys(
    State(services): State<AppState>,
    request: Ruma<delete_backup_keys::v3::Request>,
) -> Result<RumaResponse<delete_backup_keys::v3::Response>> {
    let user = request.session()?.user_id.clone();
    let version = parse_version(&request.body.version)?;
    let (etag, keys) = services
        .blocking(move |s| s.e2ee.backup.delete_keys(&user, version, None, None))
        .await?;
    Ok(RumaResponse(delete_backup_keys::v3::Response::new(
        etag.to_string(),
        count(keys),
    )))
}

/// `DELETE /room_keys/keys/{roomId}`
pub async fn delete_room_keys(
    State(services): State<AppState>,
    request: Ruma<delete_backup_keys_for_room::v3::Request>,
) -> Result<RumaResponse<delete_backup_keys_for_room::v3::Response>> {
    let user = request.session()?.user_id.clone();
    let body = request.body;
    let version = parse_version(&body.version)?;
    let room = body.room_id.to_string();
    let (etag, keys) = services
        .blocking(move |s| s.e2ee.backup.delete_keys(&user, version, Some(&room), None))
        .await?;
    Ok(RumaResponse(
        delete_backup_keys_for_room::v3::Response::new(etag.to_string(), count(keys)),
    ))
}

/// `DELETE /room_keys/keys/{roomId}/{sessionId}`
pub async fn delete_session_key(
    State(services): State<AppState>,
    request: Ruma<delete_backup_keys_for_session::v3::Request>,
) -> Result<RumaResponse<delete_backup_keys_for_session::v3::Response>> {
    let user = request.session()?.user_id.clone();
    let body = request.body;
    let version = parse_version(&body.version)?;
    let (room, session) = (body.room_id.to_string(), body.session_id);
    let (etag, keys) = services
        .blocking(move |s| {
            s.e2ee
                .backup
                .delete_keys(&user, version, Some(&room), Some(&session))
        })
        .await?;
    Ok(RumaResponse(
        delete_backup_keys_for_session::v3::Response::new(etag.to_string(), count(keys)),
    ))
}
