//! The user directory: local users who share a room with the searcher or sit in a public room,
//! matched on user id and display name (local users by their profile, not by room-specific
//! member events).

use std::collections::BTreeMap;

use ruma::{OwnedUserId, UserId};
use serde_json::{Value, json};

use crate::{error::Result, service::Services};

/// Search results and whether more matched than `limit`.
pub struct DirectoryResults {
    pub results: Vec<Value>,
    pub limited: bool,
}

impl Services {
    /// `POST /user_directory/search`. Blocking.
    pub fn search_users(
        &self,
        searcher: &UserId,
        term: &str,
        limit: usize,
    ) -> Result<DirectoryResults> {
        let term = term.to_lowercase();
        // Candidate rooms: the searcher's joined rooms and rooms with a public join rule
        // (both come from indexes; no room list is scanned).
        let mut rooms: Vec<ruma::OwnedRoomId> = self
            .rooms
            .members
            .rooms_of(searcher)?
            .into_iter()
            .filter(|(_, m)| m.membership == "join")
            .map(|(room, _)| room)
            .collect();
        for room in self.rooms.members.rooms_with_public_join_rule()? {
            if !rooms.contains(&room) {
                rooms.push(room);
            }
        }
        let mut found: BTreeMap<OwnedUserId, Value> = BTreeMap::new();
        for room in rooms {
            let Some((short_room, _)) = self.rooms.registry.room(&room)? else {
                continue;
            };
            for (user, member) in self.rooms.joined_member_profiles(short_room)? {
                if found.contains_key(&user) {
                    continue;
                }
                let content = self.directory_profile(&user, member)?;
                let name = content["displayname"].as_str().unwrap_or("");
                if user.as_str().to_lowercase().contains(&term)
                    || name.to_lowercase().contains(&term)
                {
                    let mut entry = json!({ "user_id": user });
                    if !name.is_empty() {
                        entry["display_name"] = json!(name);
                    }
                    if let Some(url) = content["avatar_url"].as_str() {
                        entry["avatar_url"] = json!(url);
                    }
                    found.insert(user, entry);
                }
            }
        }
        let limited = found.len() > limit;
        Ok(DirectoryResults {
            results: found.into_values().take(limit).collect(),
            limited,
        })
    }

    /// What the directory shows of a member: a local user's own profile, never a name or
    /// avatar they set in one room (that room's members may see it, the directory's searchers
    /// may not; Synapse's directory ignores such per-room profiles too). Only for users of
    /// other servers, whose profiles we do not hold, the member event is all there is.
    fn directory_profile(&self, user: &UserId, member: Value) -> Result<Value> {
        if !self.users.is_local(user) {
            return Ok(member);
        }
        let profile = self.profiles.get(user)?.unwrap_or_default();
        Ok(json!({ "displayname": profile.displayname, "avatar_url": profile.avatar_url }))
    }
}
