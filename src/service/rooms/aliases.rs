//! Room aliases (`#name:server` → room id) and the room directory's published list; a deleted
//! alias also leaves the room's canonical alias event.

use ruma::{OwnedRoomAliasId, OwnedRoomId, OwnedUserId, RoomAliasId, RoomId, UserId};
use serde::{Deserialize, Serialize};

use crate::{
    error::{Error, Result},
    service::Services,
    storage::{Db, Table, tables},
};

/// Stored per local alias.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AliasRecord {
    pub room_id: OwnedRoomId,
    /// Who created the alias (may delete it without power).
    pub creator: OwnedUserId,
}

/// Owns the `aliases`, `room_aliases` and `public_rooms` tables.
pub struct AliasService {
    db: Db,
    aliases: Table<String, AliasRecord>,
    by_room: Table<(String, String), bool>,
    public: Table<String, bool>,
}

impl AliasService {
    pub fn new(db: Db) -> Self {
        Self {
            aliases: db.open_table(tables::ALIASES),
            by_room: db.open_table(tables::ROOM_ALIASES),
            public: db.open_table(tables::PUBLIC_ROOMS),
            db,
        }
    }

    /// The room a local alias points to.
    pub fn resolve_local(&self, alias: &RoomAliasId) -> Result<Option<AliasRecord>> {
        Ok(self.aliases.get(&alias.as_str().to_owned())?)
    }

    /// Every local alias of a room.
    pub fn aliases_of(&self, room_id: &RoomId) -> Result<Vec<OwnedRoomAliasId>> {
        Ok(self
            .by_room
            .scan_prefix(&crate::storage::codec::prefix(room_id.as_str()))?
            .into_iter()
            .filter_map(|((_, alias), _)| RoomAliasId::parse(alias).ok())
            .collect())
    }

    /// Writes an alias and its reverse entry, replacing any previous target.
    fn put(&self, alias: &RoomAliasId, record: &AliasRecord) -> Result<()> {
        let mut batch = self.db.batch();
        if let Some(previous) = self.resolve_local(alias)? {
            self.by_room.delete(
                &mut batch,
                &(previous.room_id.to_string(), alias.to_string()),
            );
        }
        self.aliases
            .put(&mut batch, &alias.as_str().to_owned(), record);
        self.by_room.put(
            &mut batch,
            &(record.room_id.to_string(), alias.to_string()),
            &true,
        );
        self.db.write(batch)?;
        Ok(())
    }

    /// Points an existing alias at another room (room upgrades).
    pub fn repoint(&self, alias: &RoomAliasId, room_id: &RoomId) -> Result<()> {
        let mut record = self
            .resolve_local(alias)?
            .ok_or_else(|| Error::not_found("Unknown alias"))?;
        record.room_id = room_id.to_owned();
        self.put(alias, &record)
    }

    fn remove(&self, alias: &RoomAliasId) -> Result<()> {
        let mut batch = self.db.batch();
        if let Some(previous) = self.resolve_local(alias)? {
            self.by_room.delete(
                &mut batch,
                &(previous.room_id.to_string(), alias.to_string()),
            );
        }
        self.aliases.delete(&mut batch, &alias.as_str().to_owned());
        self.db.write(batch)?;
        Ok(())
    }

    /// Whether a room is published in the directory.
    pub fn is_public(&self, room_id: &RoomId) -> Result<bool> {
        Ok(self
            .public
            .get(&room_id.as_str().to_owned())?
            .unwrap_or(false))
    }

    /// Publishes or unpublishes a room.
    pub fn set_public(&self, room_id: &RoomId, public: bool) -> Result<()> {
        let mut batch = self.db.batch();
        if public {
            self.public
                .put(&mut batch, &room_id.as_str().to_owned(), &true);
        } else {
            self.public.delete(&mut batch, &room_id.as_str().to_owned());
        }
        self.db.write(batch)?;
        Ok(())
    }

    /// Every published room.
    pub fn public_rooms(&self) -> Result<Vec<OwnedRoomId>> {
        Ok(self
            .public
            .scan_all()?
            .into_iter()
            .filter_map(|(room, _)| RoomId::parse(room).ok())
            .collect())
    }
}

impl Services {
    /// `PUT /directory/room/{alias}`: only local aliases, for rooms that exist.
    pub fn set_alias(&self, alias: &RoomAliasId, room_id: &RoomId, creator: &UserId) -> Result<()> {
        if alias.server_name() != self.users.server_name() {
            return Err(Error::invalid_param("Aliases must be on this server"));
        }
        if self.rooms.registry.room(room_id)?.is_none() {
            return Err(Error::not_found("Unknown room"));
        }
        if self.aliases.resolve_local(alias)?.is_some() {
            return Err(Error::unknown(
                http::StatusCode::CONFLICT,
                "Room alias already exists",
            ));
        }
        self.aliases.put(
            alias,
            &AliasRecord {
                room_id: room_id.to_owned(),
                creator: creator.to_owned(),
            },
        )
    }

    /// `DELETE /directory/room/{alias}`: the alias creator or a room moderator (power to send
    /// `m.room.canonical_alias`) may remove it.
    pub fn delete_alias(&self, alias: &RoomAliasId, user: &UserId) -> Result<()> {
        let record = self
            .aliases
            .resolve_local(alias)?
            .ok_or_else(|| Error::not_found("Unknown alias"))?;
        let allowed = record.creator == user
            || self
                .rooms
                .user_can_send_state(&record.room_id, user, "m.room.canonical_alias")?;
        if !allowed {
            return Err(Error::forbidden("You may not delete this alias"));
        }
        self.aliases.remove(alias)?;
        // As in Synapse: the deleting user also takes the alias out of the room's canonical
        // alias event. That is a separate event with its own authorization; a user who may
        // delete the alias (its creator) but not send the event leaves the event as it is.
        if let Err(e) = self.drop_from_canonical_alias(&record.room_id, user, alias) {
            tracing::info!(%alias, room = %record.room_id, error = %e, "canonical alias event not updated");
        }
        Ok(())
    }

    /// Sends a new `m.room.canonical_alias` without `alias` when the current one names it.
    /// Blocking.
    fn drop_from_canonical_alias(
        &self,
        room_id: &RoomId,
        sender: &UserId,
        alias: &RoomAliasId,
    ) -> Result<()> {
        use ruma::events::{StateEventType, TimelineEventType};
        self.rooms.append_from_current(room_id, sender, |rooms| {
            let Some(event) =
                rooms.current_state_event(room_id, &StateEventType::RoomCanonicalAlias, "")?
            else {
                return Ok(None);
            };
            Ok(
                without_alias(&event.content_value(), alias.as_str()).map(|content| {
                    crate::service::rooms::NewEvent::state(
                        TimelineEventType::RoomCanonicalAlias,
                        "",
                        content,
                    )
                }),
            )
        })?;
        Ok(())
    }

    /// Resolves `#alias:server` (local aliases only until federation exists).
    pub fn resolve_alias(&self, alias: &RoomAliasId) -> Result<OwnedRoomId> {
        if alias.server_name() != self.users.server_name() {
            return Err(Error::not_found(
                "Aliases on other servers cannot be resolved yet",
            ));
        }
        Ok(self
            .aliases
            .resolve_local(alias)?
            .ok_or_else(|| Error::not_found("Room alias not found"))?
            .room_id)
    }

    /// A room id as given, or the room an alias points to (`/join/{roomIdOrAlias}`, knock).
    pub fn resolve_room_or_alias(&self, target: &ruma::RoomOrAliasId) -> Result<OwnedRoomId> {
        match <&RoomId>::try_from(target) {
            Ok(room_id) => Ok(room_id.to_owned()),
            Err(alias) => self.resolve_alias(alias),
        }
    }

    /// Publishes or unpublishes a room in the directory.
    pub fn rooms_directory_publish(&self, room_id: &RoomId, public: bool) -> Result<()> {
        self.aliases.set_public(room_id, public)
    }
}

impl Services {
    /// `m.room.canonical_alias` content must name valid aliases, and local ones must point to
    /// this room.
    pub fn check_canonical_alias_content(
        &self,
        room_id: &RoomId,
        content: &serde_json::Value,
    ) -> Result<()> {
        let mut named = Vec::new();
        match content.get("alias") {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::String(alias)) => named.push(alias.clone()),
            Some(_) => return Err(Error::bad_alias("alias must be a string")),
        }
        match content.get("alt_aliases") {
            None => {}
            Some(serde_json::Value::Array(list)) => {
                for alias in list {
                    named.push(
                        alias
                            .as_str()
                            .ok_or_else(|| Error::bad_alias("alt_aliases must hold strings"))?
                            .to_owned(),
                    );
                }
            }
            Some(_) => return Err(Error::bad_alias("alt_aliases must be a list")),
        }
        for alias in named {
            let alias = RoomAliasId::parse(&alias)
                .map_err(|e| Error::invalid_param(format!("Invalid alias {alias}: {e}")))?;
            if alias.server_name() == self.users.server_name() {
                let record = self.aliases.resolve_local(&alias)?;
                if record.is_none_or(|r| r.room_id != room_id) {
                    return Err(Error::bad_alias(format!(
                        "{alias} does not point to this room"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Canonical alias content without `alias` (as the main alias or among `alt_aliases`, which
/// goes when it empties); `None` when the content does not name it.
fn without_alias(content: &serde_json::Value, alias: &str) -> Option<serde_json::Value> {
    let mut content = content.as_object()?.clone();
    let mut changed = false;
    if content.get("alias").and_then(serde_json::Value::as_str) == Some(alias) {
        content.remove("alias");
        changed = true;
    }
    if let Some(serde_json::Value::Array(alt)) = content.get_mut("alt_aliases") {
        let before = alt.len();
        alt.retain(|other| other.as_str() != Some(alias));
        changed |= alt.len() != before;
        if alt.is_empty() {
            content.remove("alt_aliases");
        }
    }
    changed.then_some(serde_json::Value::Object(content))
}

/// One page of the public room directory.
pub struct PublicRoomsPage {
    pub chunk: Vec<serde_json::Value>,
    pub next_batch: Option<String>,
    pub prev_batch: Option<String>,
    pub total: usize,
}

impl Services {
    /// The public room directory, most joined members first. `since` is an opaque offset
    /// token; `room_types` follows the spec (`None` inside means rooms without a type).
    pub fn public_rooms(
        &self,
        limit: Option<usize>,
        since: Option<&str>,
        search: Option<&str>,
        room_types: Option<&[Option<String>]>,
    ) -> Result<PublicRoomsPage> {
        use ruma::events::StateEventType;
        use serde_json::{Value, json};
        let offset = match since {
            Some(token) => token
                .strip_prefix('o')
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| Error::invalid_param("Invalid since token"))?,
            None => 0,
        };
        let search = search.map(str::to_lowercase).filter(|s| !s.is_empty());
        let mut rooms = Vec::new();
        for room_id in self.aliases.public_rooms()? {
            let state = |kind: StateEventType| -> Result<Value> {
                Ok(self
                    .rooms
                    .current_state_event(&room_id, &kind, "")?
                    .map(|e| e.content_value())
                    .unwrap_or(Value::Null))
            };
            let create = state(StateEventType::RoomCreate)?;
            let room_type = create
                .get("type")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if let Some(types) = room_types
                && !types.is_empty()
                && !types.contains(&room_type)
            {
                continue;
            }
            let name = state(StateEventType::RoomName)?.get("name").cloned();
            let topic = state(StateEventType::RoomTopic)?.get("topic").cloned();
            let alias = state(StateEventType::RoomCanonicalAlias)?
                .get("alias")
                .cloned();
            let avatar = state(StateEventType::RoomAvatar)?.get("url").cloned();
            let join_rule = state(StateEventType::RoomJoinRules)?
                .get("join_rule")
                .cloned();
            let guest = state(StateEventType::RoomGuestAccess)?
                .get("guest_access")
                .cloned();
            if let Some(term) = &search {
                let haystack = [&name, &topic, &alias]
                    .iter()
                    .filter_map(|v| v.as_ref().and_then(Value::as_str))
                    .map(str::to_lowercase)
                    .collect::<Vec<_>>()
                    .join(" ");
                if !haystack.contains(term.as_str()) {
                    continue;
                }
            }
            let Some((short_room, _)) = self.rooms.registry.room(&room_id)? else {
                continue;
            };
            let joined = self.rooms.registry.joined_member_count(short_room)?;
            let mut entry = json!({
                "room_id": room_id,
                "num_joined_members": joined,
                "world_readable": self.rooms.is_world_readable(&room_id)?,
                "guest_can_join": guest.as_ref().and_then(Value::as_str) == Some("can_join"),
                "join_rule": join_rule.unwrap_or(json!("public")),
            });
            for (key, value) in [
                ("name", name),
                ("topic", topic),
                ("canonical_alias", alias),
                ("avatar_url", avatar),
            ] {
                if let Some(value) = value.filter(|v| v.is_string()) {
                    entry[key] = value;
                }
            }
            if let Some(room_type) = room_type {
                entry["room_type"] = json!(room_type);
            }
            rooms.push((joined, room_id.to_string(), entry));
        }
        rooms.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        let total = rooms.len();
        let limit = limit.unwrap_or(total.max(1)).max(1);
        let chunk: Vec<Value> = rooms
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|(_, _, e)| e)
            .collect();
        let next_batch =
            (offset + chunk.len() < total).then(|| format!("o{}", offset + chunk.len()));
        let prev_batch = (offset > 0).then(|| format!("o{}", offset.saturating_sub(limit)));
        Ok(PublicRoomsPage {
            chunk,
            next_batch,
            prev_batch,
            total,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::without_alias;
    use serde_json::json;

    #[test]
    fn an_alias_leaves_the_main_and_the_alternative_places() {
        let content = json!({ "alias": "#a:x", "alt_aliases": ["#a:x", "#b:x"] });
        assert_eq!(
            without_alias(&content, "#a:x"),
            Some(json!({ "alt_aliases": ["#b:x"] }))
        );
        assert_eq!(
            without_alias(&json!({ "alt_aliases": ["#b:x"] }), "#b:x"),
            Some(json!({}))
        );
        assert_eq!(without_alias(&content, "#c:x"), None, "not named: no event");
        assert_eq!(without_alias(&json!({ "alias": 5 }), "#a:x"), None);
    }
}
