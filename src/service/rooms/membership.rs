//! Membership changes by local users: join, invite, leave, kick, ban, unban. The rules (join
//! rules, power levels, bans) are enforced by the authorization rules in `RoomService::append`.

use ruma::{OwnedEventId, RoomId, UserId, events::TimelineEventType};
use serde_json::{Map, Value, json};

use crate::{
    error::{Error, Result},
    service::{
        Services,
        rooms::{NewEvent, create::member_content},
        users::profiles::{MAX_AVATAR_URL_BYTES, MAX_DISPLAYNAME_CHARS},
    },
};

impl Services {
    fn membership_event(
        &self,
        sender: &UserId,
        room_id: &RoomId,
        target: &UserId,
        mut content: Value,
        reason: Option<String>,
    ) -> Result<OwnedEventId> {
        if let Some(reason) = reason {
            content["reason"] = json!(reason);
        }
        let event = NewEvent::state(TimelineEventType::RoomMember, target.as_str(), content);
        Ok(self.rooms.append(room_id, sender, event)?.event_id)
    }

    fn ensure_local_room(&self, room_id: &RoomId) -> Result<()> {
        if self.rooms.registry.room(room_id)?.is_none() {
            return Err(Error::not_found(
                "This server does not know the room (joining rooms on other servers needs federation)",
            ));
        }
        Ok(())
    }

    /// Joins a local room. Blocking.
    pub fn join(&self, user: &UserId, room_id: &RoomId, reason: Option<String>) -> Result<()> {
        self.join_with_content(user, room_id, reason, Map::new())
    }

    /// Joins a local room with content of the client's own in the member event (the body of
    /// `/join`, as Synapse keeps it: custom keys, a name or avatar for this room only). The
    /// server decides `membership` and the join's authoriser; the user's profile fills a
    /// display name or avatar the client did not give. Already joined: nothing changes.
    /// Blocking.
    pub fn join_with_content(
        &self,
        user: &UserId,
        room_id: &RoomId,
        reason: Option<String>,
        custom: Map<String, Value>,
    ) -> Result<()> {
        self.ensure_local_room(room_id)?;
        let custom = checked_custom_content(custom)?;
        if let Some(current) = self.rooms.members.membership(user, room_id)?
            && current.membership == "join"
        {
            return Ok(());
        }
        let profile = self.profiles.get(user)?.unwrap_or_default();
        let mut content = member_content("join", &profile, false);
        if let Value::Object(fields) = &mut content {
            fields.extend(custom);
        }
        if let Some(authoriser) = self.restricted_join_authoriser(user, room_id)? {
            content["join_authorised_via_users_server"] = json!(authoriser);
        }
        self.membership_event(user, room_id, user, content, reason)?;
        self.carry_over_from_predecessor(user, room_id)?;
        Ok(())
    }

    /// For rooms with a `restricted` (or `knock_restricted`) join rule and a user who is not
    /// invited: checks the user is joined to one of the allowed rooms and names a local member
    /// with the power to invite, as the authorization rules require. `None` when the room's
    /// rule needs no authoriser (the rules then decide).
    fn restricted_join_authoriser(
        &self,
        user: &UserId,
        room_id: &RoomId,
    ) -> Result<Option<ruma::OwnedUserId>> {
        use ruma::events::StateEventType;
        let Some(rules) =
            self.rooms
                .current_state_event(room_id, &StateEventType::RoomJoinRules, "")?
        else {
            return Ok(None);
        };
        let content = rules.content_value();
        let rule = content["join_rule"].as_str().unwrap_or("");
        if rule != "restricted" && rule != "knock_restricted" {
            return Ok(None);
        }
        if self
            .rooms
            .members
            .membership(user, room_id)?
            .is_some_and(|m| m.membership == "invite")
        {
            return Ok(None);
        }
        let allowed_rooms: Vec<&str> = content["allow"]
            .as_array()
            .map(|allow| {
                allow
                    .iter()
                    .filter(|a| a["type"] == "m.room_membership")
                    .filter_map(|a| a["room_id"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        let in_allowed_room = allowed_rooms.iter().any(|allowed| {
            RoomId::parse(allowed).ok().is_some_and(|allowed| {
                self.rooms
                    .members
                    .is_joined(user, &allowed)
                    .unwrap_or(false)
            })
        });
        if !in_allowed_room {
            return Err(Error::forbidden(
                "You are not a member of any room that grants access to this one",
            ));
        }
        let levels = self.rooms.power_levels(room_id)?;
        let needed = levels.action("invite");
        let Some((short_room, _)) = self.rooms.registry.room(room_id)? else {
            return Ok(None);
        };
        let authoriser = self
            .rooms
            .joined_member_profiles(short_room)?
            .into_iter()
            .map(|(member, _)| member)
            .filter(|member| self.users.is_local(member))
            .find(|member| levels.user(member) >= needed);
        authoriser
            .map(Some)
            .ok_or_else(|| Error::forbidden("No member of this server may authorise your join"))
    }

    /// Knocks on a local room (its join rule must allow knocking). Blocking.
    pub fn knock(&self, user: &UserId, room_id: &RoomId, reason: Option<String>) -> Result<()> {
        self.ensure_local_room(room_id)?;
        if let Some(current) = self.rooms.members.membership(user, room_id)? {
            match current.membership.as_str() {
                "join" => return Err(Error::forbidden("You are already in the room")),
                "ban" => return Err(Error::forbidden("You are banned from the room")),
                _ => {}
            }
        }
        let profile = self.profiles.get(user)?.unwrap_or_default();
        self.membership_event(
            user,
            room_id,
            user,
            member_content("knock", &profile, false),
            reason,
        )?;
        Ok(())
    }

    /// Invites a local user. Blocking.
    pub fn invite(
        &self,
        sender: &UserId,
        room_id: &RoomId,
        invitee: &UserId,
        reason: Option<String>,
        is_direct: bool,
    ) -> Result<()> {
        self.ensure_local_room(room_id)?;
        if !self.users.is_local(invitee) {
            return Err(Error::forbidden(
                "Inviting users of other servers needs federation",
            ));
        }
        if !self.users.exists(invitee)? {
            return Err(Error::not_found("Unknown user"));
        }
        if let Some(current) = self.rooms.members.membership(invitee, room_id)? {
            match current.membership.as_str() {
                "join" => return Err(Error::forbidden("User is already in the room")),
                "ban" => return Err(Error::forbidden("User is banned from the room")),
                _ => {}
            }
        }
        let profile = self.profiles.get(invitee)?.unwrap_or_default();
        self.membership_event(
            sender,
            room_id,
            invitee,
            member_content("invite", &profile, is_direct),
            reason,
        )?;
        Ok(())
    }

    /// Leaves a room (also rejects an invite or withdraws a knock). Blocking.
    pub fn leave(&self, user: &UserId, room_id: &RoomId, reason: Option<String>) -> Result<()> {
        self.ensure_local_room(room_id)?;
        match self.rooms.members.membership(user, room_id)? {
            // The invite to one's server-notices room stays until it is accepted (Synapse).
            Some(current)
                if current.membership == "invite" && self.is_server_notices_room(room_id)? =>
            {
                return Err(Error::cannot_leave_server_notice_room());
            }
            Some(current) if matches!(current.membership.as_str(), "join" | "invite" | "knock") => {
            }
            _ => return Err(Error::forbidden("You are not in this room")),
        }
        self.membership_event(
            user,
            room_id,
            user,
            json!({ "membership": "leave" }),
            reason,
        )?;
        Ok(())
    }

    /// Kicks a member or withdraws an invite. Blocking.
    pub fn kick(
        &self,
        sender: &UserId,
        room_id: &RoomId,
        target: &UserId,
        reason: Option<String>,
    ) -> Result<()> {
        self.ensure_local_room(room_id)?;
        match self.rooms.members.membership(target, room_id)? {
            Some(current) if matches!(current.membership.as_str(), "join" | "invite" | "knock") => {
            }
            _ => return Err(Error::forbidden("The user is not in the room")),
        }
        self.membership_event(
            sender,
            room_id,
            target,
            json!({ "membership": "leave" }),
            reason,
        )?;
        Ok(())
    }

    /// Bans a user (member or not). Blocking.
    pub fn ban(
        &self,
        sender: &UserId,
        room_id: &RoomId,
        target: &UserId,
        reason: Option<String>,
    ) -> Result<()> {
        self.ensure_local_room(room_id)?;
        self.membership_event(
            sender,
            room_id,
            target,
            json!({ "membership": "ban" }),
            reason,
        )?;
        Ok(())
    }

    /// Lifts a ban. Blocking.
    pub fn unban(
        &self,
        sender: &UserId,
        room_id: &RoomId,
        target: &UserId,
        reason: Option<String>,
    ) -> Result<()> {
        self.ensure_local_room(room_id)?;
        match self.rooms.members.membership(target, room_id)? {
            Some(current) if current.membership == "ban" => {}
            _ => return Err(Error::forbidden("The user is not banned")),
        }
        self.membership_event(
            sender,
            room_id,
            target,
            json!({ "membership": "leave" }),
            reason,
        )?;
        Ok(())
    }
}

/// Member-event keys a client may not set in `/join`: the server writes them (`reason` comes
/// from the request's own field), or they belong to other kinds of joins.
const SERVER_KEYS: [&str; 5] = [
    "membership",
    "reason",
    "join_authorised_via_users_server",
    "third_party_invite",
    "third_party_signed",
];

/// The client's own member-event content for a join, without the keys the server writes; a
/// display name or avatar URL must be a string within the profile's limits (as Synapse checks),
/// so clients reading the member event can rely on them.
fn checked_custom_content(mut custom: Map<String, Value>) -> Result<Map<String, Value>> {
    for key in SERVER_KEYS {
        custom.remove(key);
    }
    match custom.get("displayname") {
        None | Some(Value::Null) => {}
        Some(Value::String(name)) if name.chars().count() <= MAX_DISPLAYNAME_CHARS => {}
        Some(_) => {
            return Err(Error::bad_json(format!(
                "displayname must be a string of at most {MAX_DISPLAYNAME_CHARS} characters"
            )));
        }
    }
    match custom.get("avatar_url") {
        None | Some(Value::Null) => {}
        Some(Value::String(url)) if url.len() <= MAX_AVATAR_URL_BYTES => {}
        Some(_) => {
            return Err(Error::bad_json(format!(
                "avatar_url must be a string of at most {MAX_AVATAR_URL_BYTES} bytes"
            )));
        }
    }
    Ok(custom)
}
