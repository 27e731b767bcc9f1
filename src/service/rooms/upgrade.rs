//! `POST /rooms/{roomId}/upgrade`: a new room of the requested version that copies the old
//! room's important state and names it as predecessor, a tombstone in the old room, the old
//! room's power levels restricted, and its local aliases moved.

use ruma::{OwnedRoomId, RoomId, RoomVersionId, UserId, events::StateEventType};
use serde_json::{Value, json};

use crate::{
    error::{Error, Result},
    service::{
        Services,
        rooms::{NewEvent, create::CreateRoomRequest, rules_for},
    },
};

/// State copied into the new room.
const COPIED_STATE: &[&str] = &[
    "m.room.server_acl",
    "m.room.encryption",
    "m.room.name",
    "m.room.avatar",
    "m.room.topic",
    "m.room.guest_access",
    "m.room.history_visibility",
    "m.room.join_rules",
];

impl Services {
    /// Upgrades a room. Blocking.
    pub fn upgrade_room(
        &self,
        user: &UserId,
        old_room: &RoomId,
        new_version: RoomVersionId,
    ) -> Result<OwnedRoomId> {
        if !self.supported_room_versions().contains(&new_version) {
            return Err(Error::unsupported_room_version(format!(
                "Room version {new_version} is not supported"
            )));
        }
        if self.rooms.registry.room(old_room)?.is_none() {
            return Err(Error::not_found("Unknown room"));
        }
        if !self.rooms.members.is_joined(user, old_room)? {
            return Err(Error::forbidden("You are not in this room"));
        }
        if !self
            .rooms
            .user_can_send_state(old_room, user, "m.room.tombstone")?
        {
            return Err(Error::forbidden(
                "You do not have the power to upgrade this room",
            ));
        }
        let request = self.successor_request(user, old_room, new_version)?;
        let new_room = self.create_room(user, request)?;
        self.retire_room(user, old_room, &new_room)?;
        self.move_aliases(user, old_room, &new_room)?;
        Ok(new_room)
    }

    /// What a local user had set for the room an upgraded room replaces follows them into it
    /// when they join (or create) it: their push rules for that room.
    pub(crate) fn carry_over_from_predecessor(&self, user: &UserId, room: &RoomId) -> Result<()> {
        let Some(create) = self.state_content(room, "m.room.create")? else {
            return Ok(());
        };
        let Some(predecessor) = create["predecessor"]["room_id"]
            .as_str()
            .and_then(|id| RoomId::parse(id).ok())
        else {
            return Ok(());
        };
        self.push.rules.copy_room_rules(user, &predecessor, room)
    }

    /// The current state content of `kind` (empty state key) in a room.
    fn state_content(&self, room_id: &RoomId, kind: &str) -> Result<Option<Value>> {
        Ok(self
            .rooms
            .current_state_event(room_id, &StateEventType::from(kind), "")?
            .map(|e| e.content_value()))
    }

    /// The new room: the old one as predecessor, its copied state and power levels.
    fn successor_request(
        &self,
        user: &UserId,
        old_room: &RoomId,
        new_version: RoomVersionId,
    ) -> Result<CreateRoomRequest> {
        let state = |kind: &str| self.state_content(old_room, kind);
        let old_create = state("m.room.create")?.unwrap_or_default();
        let mut creation = json!({ "predecessor": { "room_id": old_room } });
        for key in ["type", "m.federate"] {
            if let Some(value) = old_create.get(key) {
                creation[key] = value.clone();
            }
        }
        let mut initial_state = Vec::new();
        for kind in COPIED_STATE {
            if let Some(content) = state(kind)? {
                initial_state.push(json!({ "type": kind, "state_key": "", "content": content }));
            }
        }
        let mut power_levels = state("m.room.power_levels")?;
        // Rooms from v12 on make their creators all-powerful and forbid listing them in users.
        if rules_for(&new_version)?
            .authorization
            .explicitly_privilege_room_creators
            && let Some(Value::Object(users)) =
                power_levels.as_mut().and_then(|pl| pl.get_mut("users"))
        {
            users.remove(user.as_str());
        }
        Ok(CreateRoomRequest {
            creation_content: Some(creation),
            initial_state,
            power_level_content_override: power_levels,
            room_version: Some(new_version),
            ..CreateRoomRequest::default()
        })
    }

    /// Tombstones the old room and stops ordinary members from speaking there.
    fn retire_room(&self, user: &UserId, old_room: &RoomId, new_room: &RoomId) -> Result<()> {
        self.rooms.append(
            old_room,
            user,
            NewEvent::state(
                "m.room.tombstone",
                "",
                json!({ "body": "This room has been replaced", "replacement_room": new_room }),
            ),
        )?;
        if let Some(mut levels) = self.state_content(old_room, "m.room.power_levels")? {
            let users_default = levels["users_default"].as_i64().unwrap_or(0);
            let restricted = json!(50.max(users_default + 1));
            levels["events_default"] = restricted.clone();
            levels["invite"] = restricted;
            self.rooms.append(
                old_room,
                user,
                NewEvent::state("m.room.power_levels", "", levels),
            )?;
        }
        Ok(())
    }

    /// Moves local aliases, the canonical alias and the directory listing to the new room.
    fn move_aliases(&self, user: &UserId, old_room: &RoomId, new_room: &RoomId) -> Result<()> {
        let aliases = self.aliases.aliases_of(old_room)?;
        for alias in &aliases {
            self.aliases.repoint(alias, new_room)?;
        }
        if let Some(canonical) = self.state_content(old_room, "m.room.canonical_alias")?
            && canonical.get("alias").is_some()
        {
            self.rooms.append(
                old_room,
                user,
                NewEvent::state("m.room.canonical_alias", "", json!({})),
            )?;
            self.rooms.append(
                new_room,
                user,
                NewEvent::state("m.room.canonical_alias", "", canonical),
            )?;
        }
        if self.aliases.is_public(old_room)? {
            self.aliases.set_public(old_room, false)?;
            self.aliases.set_public(new_room, true)?;
        }
        Ok(())
    }
}
