//! Server notices: messages from the server's own user to one local user, in that user's
//! notices room — created on the first notice, tagged `m.server_notice`, and reused for every
//! later one (re-inviting the user who left it). The invite cannot be rejected; once joined,
//! the user may leave. Admins send notices through Synapse's admin endpoint
//! (`/_synapse/admin/v1/send_server_notice`), which clients and tools already speak.

use ruma::{OwnedEventId, OwnedUserId, RoomId, UserId, events::StateEventType};
use serde_json::{Value, json};

use crate::{
    error::{Error, Result},
    service::{
        Services,
        rooms::{NewEvent, Txn, TxnEndpoint, create::CreateRoomRequest},
        users::sessions::Session,
    },
};

/// The room tag clients use to show the notices room apart (spec: server notices module).
const SERVER_NOTICE_TAG: &str = "m.server_notice";

/// One notice, as the admin asked for it.
pub struct ServerNotice {
    pub user_id: OwnedUserId,
    /// `m.room.message` unless the admin asks for another type.
    pub kind: String,
    pub state_key: Option<String>,
    pub content: Value,
    /// The admin's transaction id: a repeated request returns the first notice.
    pub txn_id: Option<String>,
}

impl Services {
    /// The user notices come from.
    pub fn server_notices_user(&self) -> Result<OwnedUserId> {
        UserId::parse_with_server_name(
            self.config.server_notices.sender_localpart.as_str(),
            self.users.server_name(),
        )
        .map_err(|e| Error::internal(format!("server_notices.sender_localpart: {e}")))
    }

    /// Whether a room is a notices room: created by the notices user.
    pub fn is_server_notices_room(&self, room_id: &RoomId) -> Result<bool> {
        let sender = self.server_notices_user()?;
        Ok(self
            .rooms
            .current_state_event(room_id, &StateEventType::RoomCreate, "")?
            .is_some_and(|create| create.sender == sender))
    }

    /// Sends a notice as `admin` (who must be a server admin); returns its event id.
    /// Blocking.
    pub fn send_server_notice(
        &self,
        admin: &Session,
        notice: ServerNotice,
    ) -> Result<OwnedEventId> {
        if !self.users.get(&admin.user_id)?.is_some_and(|u| u.admin) {
            return Err(Error::forbidden(
                "Only server admins may send server notices",
            ));
        }
        let target = &notice.user_id;
        if !self.users.is_local(target) {
            return Err(Error::invalid_param(
                "Server notices can only be sent to local users",
            ));
        }
        if !self.users.exists(target)? {
            return Err(Error::not_found("Unknown user"));
        }
        if !notice.content.is_object() {
            return Err(Error::bad_json("content must be a JSON object"));
        }
        let sender = self.server_notices_user()?;
        let room_id = match self.notices_room_of(target, &sender)? {
            Some(room_id) => room_id,
            None => self.create_notices_room(target, &sender)?,
        };
        let invited_or_joined = self
            .rooms
            .members
            .membership(target, &room_id)?
            .is_some_and(|m| m.membership == "join" || m.membership == "invite");
        if !invited_or_joined {
            self.invite(&sender, &room_id, target, None, false)?;
        }
        let event = NewEvent {
            kind: notice.kind.as_str().into(),
            content: notice.content,
            state_key: notice.state_key,
            redacts: None,
            // Scoped to the admin: two admins' transaction ids never collide.
            txn: notice.txn_id.map(|txn_id| Txn {
                device_id: format!("server-notice:{}", admin.user_id),
                txn_id,
                endpoint: TxnEndpoint::Send,
            }),
        };
        Ok(self.rooms.append(&room_id, &sender, event)?.event_id)
    }

    /// The user's notices room, if one was made: a room of theirs (in any membership) that the
    /// notices user created and is still in.
    fn notices_room_of(&self, user: &UserId, sender: &UserId) -> Result<Option<ruma::OwnedRoomId>> {
        for (room_id, _) in self.rooms.members.rooms_of(user)? {
            if self.rooms.members.is_joined(sender, &room_id)?
                && self.is_server_notices_room(&room_id)?
            {
                return Ok(Some(room_id));
            }
        }
        Ok(None)
    }

    /// Creates a notices room for `user` (the invite follows) and tags it for them.
    fn create_notices_room(&self, user: &UserId, sender: &UserId) -> Result<ruma::OwnedRoomId> {
        self.ensure_notices_profile(sender)?;
        let room_id = self.create_room(
            sender,
            CreateRoomRequest {
                preset: Some("private_chat".into()),
                name: Some(self.config.server_notices.room_name.clone()),
                // The user reads notices; they cannot write into the room (Synapse does the
                // same).
                power_level_content_override: Some(json!({ "users_default": -10 })),
                ..CreateRoomRequest::default()
            },
        )?;
        self.account_data.set(
            user,
            Some(&room_id),
            "m.tag",
            json!({ "tags": { SERVER_NOTICE_TAG: {} } }),
        )?;
        Ok(room_id)
    }

    /// Gives the notices user its display name (it has a profile but no account: nobody can
    /// log in as it).
    fn ensure_notices_profile(&self, sender: &UserId) -> Result<()> {
        let name = &self.config.server_notices.sender_display_name;
        let current = self.profiles.get(sender)?;
        if current.as_ref().and_then(|p| p.displayname.as_ref()) != Some(name) {
            let mut batch = self.db.batch();
            self.profiles
                .create_into(&mut batch, sender, Some(name.clone()));
            self.db.write(batch)?;
        }
        Ok(())
    }
}
