//! `POST /createRoom`: the create event, the creator's join, power levels, the preset's rules,
//! initial state, name, topic and invites — each a real signed and authorized event.

use ruma::{
    OwnedRoomAliasId, OwnedRoomId, OwnedUserId, RoomAliasId, RoomId, RoomVersionId, UserId,
    events::TimelineEventType,
    room_version_rules::{RoomIdFormatVersion, RoomVersionRules},
};
use serde_json::{Map, Value, json};

use crate::{
    error::{Error, Result},
    service::{
        Services,
        rooms::{NewEvent, rules_for},
    },
    util::random_alphanumeric,
};

/// What a client asked for, already parsed.
#[derive(Default)]
pub struct CreateRoomRequest {
    pub creation_content: Option<Value>,
    pub initial_state: Vec<Value>,
    pub invite: Vec<OwnedUserId>,
    pub is_direct: bool,
    pub name: Option<String>,
    pub power_level_content_override: Option<Value>,
    /// `private_chat`, `trusted_private_chat` or `public_chat`.
    pub preset: Option<String>,
    pub room_alias_name: Option<String>,
    pub room_version: Option<RoomVersionId>,
    pub topic: Option<String>,
    /// `visibility: public` (published in the room directory).
    pub public: bool,
}

impl Services {
    /// The room versions this server can create and join, with the default.
    pub fn supported_room_versions(&self) -> Vec<RoomVersionId> {
        use RoomVersionId::*;
        // Every stable version: ruma carries their authorization, redaction and event-id rules
        // (versions 1 and 2 name events by `event_id` fields, see `builder`).
        vec![V1, V2, V3, V4, V5, V6, V7, V8, V9, V10, V11, V12]
    }

    /// Creates a room. Blocking: call from a blocking task.
    pub fn create_room(&self, creator: &UserId, request: CreateRoomRequest) -> Result<OwnedRoomId> {
        let version = match request.room_version.clone() {
            Some(version) => version,
            None => RoomVersionId::try_from(self.config.default_room_version.as_str())
                .map_err(|e| Error::internal(format!("default_room_version: {e}")))?,
        };
        if !self.supported_room_versions().contains(&version) {
            return Err(Error::unsupported_room_version(format!(
                "Room version {version} is not supported"
            )));
        }
        let rules = rules_for(&version)?;
        let alias = match &request.room_alias_name {
            Some(name) => Some(self.new_local_alias(name)?),
            None => None,
        };
        let preset = match (request.preset.as_deref(), request.public) {
            (Some(preset @ ("private_chat" | "trusted_private_chat" | "public_chat")), _) => preset,
            (Some(other), _) => return Err(Error::bad_json(format!("Unknown preset {other}"))),
            (None, true) => "public_chat",
            (None, false) => "private_chat",
        };
        let derived_room_id = rules.room_id_format == RoomIdFormatVersion::V2;
        let trusted = preset == "trusted_private_chat";

        let create = create_content(&request, &rules, &version, creator, trusted)?;
        let room_id = (!derived_room_id)
            .then(|| {
                RoomId::parse(format!(
                    "!{}:{}",
                    random_alphanumeric(18),
                    self.config.server_name
                ))
            })
            .transpose()
            .map_err(Error::internal)?;
        let create_pdu =
            self.rooms
                .create_room(creator, version.clone(), Value::Object(create), room_id)?;
        let room_id = create_pdu.room_id.clone();
        let send = |event: NewEvent| self.rooms.append(&room_id, creator, event);

        // The creator joins.
        let profile = self.profiles.get(creator)?.unwrap_or_default();
        send(NewEvent::state(
            TimelineEventType::RoomMember,
            creator.as_str(),
            member_content("join", &profile, false),
        ))?;

        let power_levels = initial_power_levels(&request, &rules, creator, trusted)?;
        send(NewEvent::state(
            TimelineEventType::RoomPowerLevels,
            "",
            power_levels,
        ))?;

        // Alias.
        if let Some(alias) = &alias {
            self.set_alias(alias, &room_id, creator)?;
            send(NewEvent::state(
                TimelineEventType::RoomCanonicalAlias,
                "",
                json!({ "alias": alias }),
            ))?;
        }

        // Preset rules, unless initial_state sets the same state.
        let initial = parse_initial_state(&request.initial_state)?;
        let overridden = |kind: &str| initial.iter().any(|(k, s, _)| k == kind && s.is_empty());
        for (kind, content) in preset_events(preset) {
            if !overridden(kind) {
                send(NewEvent::state(kind, "", content))?;
            }
        }
        for (kind, state_key, content) in initial {
            if kind == "m.room.create" || kind == "m.room.member" {
                return Err(Error::bad_json(format!(
                    "{kind} cannot be set through initial_state"
                )));
            }
            send(NewEvent::state(kind.as_str(), state_key, content))?;
        }
        if let Some(name) = request.name.filter(|n| !n.is_empty()) {
            send(NewEvent::state(
                TimelineEventType::RoomName,
                "",
                json!({ "name": name }),
            ))?;
        }
        if let Some(topic) = request.topic.filter(|t| !t.is_empty()) {
            // The plain topic and its rich representation (spec v1.15, `m.topic`).
            send(NewEvent::state(
                TimelineEventType::RoomTopic,
                "",
                json!({
                    "topic": topic,
                    "m.topic": { "m.text": [{ "body": topic, "mimetype": "text/plain" }] },
                }),
            ))?;
        }
        for invitee in &request.invite {
            self.invite(creator, &room_id, invitee, None, request.is_direct)?;
        }
        self.carry_over_from_predecessor(creator, &room_id)?;
        if request.public {
            self.rooms_directory_publish(&room_id, true)?;
        }
        Ok(room_id)
    }

    /// Validates a new alias `#name:our_server` and checks it is free.
    fn new_local_alias(&self, name: &str) -> Result<OwnedRoomAliasId> {
        if name.contains(':') || name.contains('#') || name.trim().is_empty() {
            return Err(Error::invalid_param(
                "room_alias_name must be a bare localpart",
            ));
        }
        let alias = RoomAliasId::parse(format!("#{name}:{}", self.config.server_name))
            .map_err(|e| Error::invalid_param(format!("Invalid room alias: {e}")))?;
        if self.aliases.resolve_local(&alias)?.is_some() {
            return Err(Error::room_in_use("Room alias already taken"));
        }
        Ok(alias)
    }
}

/// The content of the create event: the client's `creation_content` plus what the room
/// version asks for (`room_version`, `creator` before v11, additional creators from v12).
fn create_content(
    request: &CreateRoomRequest,
    rules: &RoomVersionRules,
    version: &RoomVersionId,
    creator: &UserId,
    trusted: bool,
) -> Result<Map<String, Value>> {
    let mut create = match &request.creation_content {
        Some(Value::Object(map)) => map.clone(),
        Some(_) => return Err(Error::bad_json("creation_content must be an object")),
        None => Map::new(),
    };
    create.insert("room_version".into(), json!(version.as_str()));
    if !rules.authorization.use_room_create_sender {
        create.insert("creator".into(), json!(creator));
    }
    if rules.authorization.additional_room_creators && trusted && !request.invite.is_empty() {
        let mut creators: Vec<Value> = create
            .get("additional_creators")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        creators.extend(request.invite.iter().map(|u| json!(u)));
        create.insert("additional_creators".into(), Value::Array(creators));
    }
    Ok(create)
}

/// The room's first power levels: the creator (and, in a trusted private chat, the invitees)
/// at 100 unless the room version privileges creators anyway, then the client's overrides.
fn initial_power_levels(
    request: &CreateRoomRequest,
    rules: &RoomVersionRules,
    creator: &UserId,
    trusted: bool,
) -> Result<Value> {
    let mut users = Map::new();
    if !rules.authorization.explicitly_privilege_room_creators {
        users.insert(creator.to_string(), json!(100));
        if trusted {
            for invitee in &request.invite {
                users.insert(invitee.to_string(), json!(100));
            }
        }
    }
    let mut power_levels = json!({
        "users": users,
        "users_default": 0,
        "events": {
            "m.room.name": 50,
            "m.room.power_levels": 100,
            "m.room.history_visibility": 100,
            "m.room.canonical_alias": 50,
            "m.room.avatar": 50,
            "m.room.tombstone": 100,
            "m.room.server_acl": 100,
            "m.room.encryption": 100,
        },
        "events_default": 0,
        "state_default": 50,
        "ban": 50,
        "kick": 50,
        "redact": 50,
        "invite": 0,
        "notifications": { "room": 50 },
    });
    match &request.power_level_content_override {
        Some(Value::Object(overrides)) => {
            for (key, value) in overrides {
                power_levels[key] = value.clone();
            }
        }
        Some(_) => {
            return Err(Error::bad_json(
                "power_level_content_override must be an object",
            ));
        }
        None => {}
    }
    Ok(power_levels)
}

/// `initial_state` events as `(type, state key, content)`.
fn parse_initial_state(events: &[Value]) -> Result<Vec<(String, String, Value)>> {
    events
        .iter()
        .map(|event| {
            let kind = event
                .get("type")
                .and_then(Value::as_str)
                .ok_or_else(|| Error::bad_json("initial_state event without type"))?;
            let state_key = event.get("state_key").and_then(Value::as_str).unwrap_or("");
            let content = event
                .get("content")
                .cloned()
                .ok_or_else(|| Error::bad_json("initial_state event without content"))?;
            Ok((kind.to_owned(), state_key.to_owned(), content))
        })
        .collect()
}

/// The state a preset sets: join rule, history visibility, guest access.
fn preset_events(preset: &str) -> [(&'static str, Value); 3] {
    let join_rule = if preset == "public_chat" {
        "public"
    } else {
        "invite"
    };
    let guest_access = if preset == "public_chat" {
        "forbidden"
    } else {
        "can_join"
    };
    [
        ("m.room.join_rules", json!({ "join_rule": join_rule })),
        (
            "m.room.history_visibility",
            json!({ "history_visibility": "shared" }),
        ),
        (
            "m.room.guest_access",
            json!({ "guest_access": guest_access }),
        ),
    ]
}

/// The content of a membership event carrying the user's profile.
pub fn member_content(
    membership: &str,
    profile: &crate::service::users::profiles::ProfileRecord,
    is_direct: bool,
) -> Value {
    let mut content = json!({ "membership": membership });
    if let Some(name) = &profile.displayname {
        content["displayname"] = json!(name);
    }
    if let Some(url) = &profile.avatar_url {
        content["avatar_url"] = json!(url);
    }
    if is_direct {
        content["is_direct"] = json!(true);
    }
    content
}
