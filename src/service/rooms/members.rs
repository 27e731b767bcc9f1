//! Who is in which room: each user's memberships (user → rooms) and each room's members
//! (room → users), the rooms with a public join rule, and the first members of a room (sync
//! heroes). `persist` keeps them up to date with every membership event, in its batch.

use std::sync::Arc;

use ruma::{OwnedRoomId, OwnedUserId, RoomId, UserId, events::TimelineEventType};

use super::{Membership, Pdu, RoomRecord};
use crate::{
    error::{Error, Result},
    service::cache::{Cache, NumberKeys},
    storage::{Batch, Db, Table, tables},
};

/// A user joining or leaving a room (key: the membership event's stream position): the
/// stream behind "who newly shares a room with me" (`device_lists` in `/sync`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct JoinChange {
    pub room_id: OwnedRoomId,
    pub user_id: OwnedUserId,
    /// Joined (`true`) or stopped being joined (`false`).
    pub joined: bool,
}

/// Owns the membership tables.
pub struct Members {
    db: Db,
    join_changes: Table<u64, JoinChange>,
    user_rooms: Table<(String, String), Membership>,
    room_members: Table<(String, String), String>,
    public_join_rule: Table<String, bool>,
    /// Per room: the state snapshot, how many members were asked for, and the first members
    /// in user id order (sync heroes).
    heroes: Cache<u64, (u64, usize, Arc<Vec<OwnedUserId>>), NumberKeys>,
}

impl Members {
    pub fn new(db: &Db, cached: usize) -> Self {
        Self {
            db: db.clone(),
            join_changes: db.open_table(tables::JOIN_CHANGES),
            user_rooms: db.open_table(tables::USER_ROOMS),
            room_members: db.open_table(tables::ROOM_MEMBERS),
            public_join_rule: db.open_table(tables::PUBLIC_JOIN_RULE),
            heroes: Cache::new(cached),
        }
    }

    /// Joins and leaves at stream positions `(after, until]`, oldest first.
    pub fn join_changes(&self, after: u64, until: u64) -> Result<Vec<(u64, JoinChange)>> {
        use crate::storage::KeyCodec;
        let (start, end) = (
            after.saturating_add(1).encode(),
            until.saturating_add(1).encode(),
        );
        Ok(self.join_changes.range(&start, &end, false, usize::MAX)?)
    }

    /// A user's membership record in a room.
    pub fn membership(&self, user_id: &UserId, room_id: &RoomId) -> Result<Option<Membership>> {
        Ok(self
            .user_rooms
            .get(&(user_id.as_str().to_owned(), room_id.as_str().to_owned()))?)
    }

    /// Whether the user is joined to the room right now.
    pub fn is_joined(&self, user_id: &UserId, room_id: &RoomId) -> Result<bool> {
        Ok(self
            .membership(user_id, room_id)?
            .is_some_and(|m| m.membership == "join"))
    }

    /// Every room a user has a membership record in.
    pub fn rooms_of(&self, user_id: &UserId) -> Result<Vec<(OwnedRoomId, Membership)>> {
        let prefix = crate::storage::codec::prefix(user_id.as_str());
        Ok(self
            .user_rooms
            .scan_prefix(&prefix)?
            .into_iter()
            .filter_map(|((_, room), membership)| Some((RoomId::parse(room).ok()?, membership)))
            .collect())
    }

    /// Rooms anyone may join (current join rule `public`).
    pub fn rooms_with_public_join_rule(&self) -> Result<Vec<OwnedRoomId>> {
        Ok(self
            .public_join_rule
            .scan_all()?
            .into_iter()
            .filter_map(|(room, _)| RoomId::parse(room).ok())
            .collect())
    }

    /// Local users with a membership in the room, and what it is.
    pub fn members_with_membership(
        &self,
        room_id: &RoomId,
    ) -> Result<Vec<(ruma::OwnedUserId, String)>> {
        Ok(self
            .room_members
            .scan_prefix(&crate::storage::codec::prefix(room_id.as_str()))?
            .into_iter()
            .filter_map(|((_, user), membership)| Some((UserId::parse(user).ok()?, membership)))
            .collect())
    }

    /// Sync heroes: up to `limit` users joined to or invited into the room other than
    /// `except`, in user id order. The first few members are cached per room and state
    /// snapshot (`state_hash`, from the room record), so a new membership is seen at once.
    pub fn heroes(
        &self,
        room_id: &RoomId,
        short_room: u64,
        state_hash: u64,
        except: &UserId,
        limit: usize,
    ) -> Result<Vec<ruma::OwnedUserId>> {
        let lookup = self.heroes.get(&short_room);
        let members = match lookup.value {
            Some((hash, fetched, members)) if hash == state_hash && fetched > limit => members,
            _ => {
                // One more than needed, in case `except` is among them.
                let members = Arc::new(self.some_members(room_id, limit + 1)?);
                self.heroes.insert(
                    short_room,
                    (state_hash, limit + 1, members.clone()),
                    lookup.epoch,
                );
                members
            }
        };
        Ok(members
            .iter()
            .filter(|user| *user != except)
            .take(limit)
            .cloned()
            .collect())
    }

    /// Up to `limit` local or remote users joined to or invited into the room, in user id
    /// order, without reading the whole member list.
    fn some_members(&self, room_id: &RoomId, limit: usize) -> Result<Vec<ruma::OwnedUserId>> {
        let prefix = crate::storage::codec::prefix(room_id.as_str());
        let mut end = prefix.clone();
        end.push(0xFF);
        let mut found = Vec::new();
        let mut start = prefix.clone();
        // Page through the member index until enough heroes are found: the first page is just
        // big enough when the first rows qualify (the usual case), later ones bigger.
        let mut page = limit + 1;
        loop {
            let rows = self.room_members.range(&start, &end, false, page)?;
            let exhausted = rows.len() < page;
            page = 32;
            for ((_, user), membership) in &rows {
                if (membership == "join" || membership == "invite")
                    && let Ok(user) = UserId::parse(user)
                {
                    found.push(user);
                    if found.len() >= limit {
                        return Ok(found);
                    }
                }
            }
            match rows.last() {
                Some((last, _)) if !exhausted => start = crate::storage::codec::just_after(last),
                _ => return Ok(found),
            }
        }
    }

    /// Marks a left room as forgotten for the user.
    pub fn forget(&self, user_id: &UserId, room_id: &RoomId) -> Result<()> {
        let key = (user_id.as_str().to_owned(), room_id.as_str().to_owned());
        let Some(mut membership) = self.user_rooms.get(&key)? else {
            return Err(Error::not_found("You have no membership in this room"));
        };
        if membership.membership == "join"
            || membership.membership == "invite"
            || membership.membership == "knock"
        {
            return Err(Error::unknown(
                http::StatusCode::BAD_REQUEST,
                "Leave the room before forgetting it",
            ));
        }
        membership.forgotten = true;
        let mut batch = self.db.batch();
        self.user_rooms.put(&mut batch, &key, &membership);
        self.db.write(batch)?;
        Ok(())
    }

    /// The indexes kept for particular state events: rooms with a public join rule, and
    /// memberships (both directions) with the room's member counts.
    pub(super) fn index_state_event(
        &self,
        batch: &mut Batch,
        room: &mut RoomRecord,
        stored: &Pdu,
        state_key: &str,
        count: u64,
    ) -> Result<()> {
        if stored.kind == TimelineEventType::RoomJoinRules && state_key.is_empty() {
            let key = stored.room_id.to_string();
            if stored.content_value()["join_rule"] == "public" {
                self.public_join_rule.put(batch, &key, &true);
            } else {
                self.public_join_rule.delete(batch, &key);
            }
        }
        if stored.kind != TimelineEventType::RoomMember {
            return Ok(());
        }
        let membership = stored.content_value()["membership"]
            .as_str()
            .unwrap_or("leave")
            .to_owned();
        let key = (state_key.to_owned(), stored.room_id.to_string());
        self.room_members.put(
            batch,
            &(stored.room_id.to_string(), state_key.to_owned()),
            &membership,
        );
        let previous = self.user_rooms.get(&key)?.map(|m| m.membership);
        let was = |state: &str| previous.as_deref() == Some(state);
        let joined = membership == "join";
        if was("join") != joined {
            if joined {
                room.joined_members += 1;
            } else {
                room.joined_members = room.joined_members.saturating_sub(1);
            }
            if let Ok(user_id) = UserId::parse(state_key) {
                let change = JoinChange {
                    room_id: stored.room_id.clone(),
                    user_id,
                    joined,
                };
                self.join_changes.put(batch, &count, &change);
            }
        }
        match (was("invite"), membership == "invite") {
            (false, true) => room.invited_members += 1,
            (true, false) => room.invited_members = room.invited_members.saturating_sub(1),
            _ => {}
        }
        self.user_rooms.put(
            batch,
            &key,
            &Membership {
                membership,
                event_id: stored.event_id.clone(),
                count,
                forgotten: false,
            },
        );
        Ok(())
    }
}
