//! Presence: online / unavailable / offline with `last_active_ago` and `currently_active`.
//! Kept in memory (after a restart everyone starts offline, as they would be). Users whose
//! last activity is older than `presence.idle_timeout_secs` are set offline by a sweeper, which
//! wakes the syncs of the users sharing a room with them.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use ruma::{OwnedUserId, UserId};
use serde_json::{Value, json};

use crate::{error::Result, service::Services, storage::Db};

/// "Currently active" means active within this window.
const CURRENTLY_ACTIVE: Duration = Duration::from_secs(60);

#[derive(Clone, Debug)]
struct PresenceRecord {
    state: String,
    status_msg: Option<String>,
    last_active: Instant,
    position: u64,
}

/// In-memory presence of local users.
pub struct PresenceService {
    db: Db,
    users: Mutex<HashMap<OwnedUserId, PresenceRecord>>,
    idle_timeout: Duration,
}

/// A user's presence as clients see it.
pub struct PresenceView {
    pub state: String,
    pub status_msg: Option<String>,
    pub last_active_ago: Option<u64>,
    pub currently_active: bool,
}

impl PresenceService {
    pub fn new(db: Db, idle_timeout: Duration) -> Self {
        Self {
            db,
            users: Mutex::new(HashMap::new()),
            idle_timeout,
        }
    }

    fn users(&self) -> std::sync::MutexGuard<'_, HashMap<OwnedUserId, PresenceRecord>> {
        self.users.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a state (and activity); returns whether others should hear about it.
    fn set(&self, user: &UserId, state: &str, status_msg: Option<Option<String>>) -> Result<bool> {
        let mut users = self.users();
        let previous = users.get(user).cloned();
        let status_msg = match status_msg {
            Some(msg) => msg,
            None => previous.as_ref().and_then(|p| p.status_msg.clone()),
        };
        let changed = previous
            .as_ref()
            .is_none_or(|p| p.state != state || p.status_msg != status_msg);
        let position = if changed {
            self.db.next_count()?
        } else {
            previous.as_ref().map_or(0, |p| p.position)
        };
        users.insert(
            user.to_owned(),
            PresenceRecord {
                state: state.to_owned(),
                status_msg,
                last_active: Instant::now(),
                position,
            },
        );
        Ok(changed)
    }

    /// What clients see of a user.
    pub fn view(&self, user: &UserId) -> PresenceView {
        match self.users().get(user) {
            Some(record) => {
                let idle = record.last_active.elapsed();
                PresenceView {
                    state: record.state.clone(),
                    status_msg: record.status_msg.clone(),
                    last_active_ago: Some(idle.as_millis() as u64),
                    currently_active: record.state == "online" && idle < CURRENTLY_ACTIVE,
                }
            }
            None => PresenceView {
                state: "offline".into(),
                status_msg: None,
                last_active_ago: None,
                currently_active: false,
            },
        }
    }

    /// Whether the server has heard of the user's presence since it started (users it has
    /// not are offline, and an offline user nobody has seen is not news).
    fn has_record(&self, user: &UserId) -> bool {
        self.users().contains_key(user)
    }

    /// Users whose presence changed after `since`.
    pub fn changed_since(&self, since: Option<u64>) -> Vec<OwnedUserId> {
        self.users()
            .iter()
            .filter(|(_, r)| since.is_none_or(|s| r.position > s))
            .map(|(user, _)| user.clone())
            .collect()
    }

    /// Sets idle users offline; returns them.
    fn sweep(&self) -> Result<Vec<OwnedUserId>> {
        let mut users = self.users();
        let idle: Vec<OwnedUserId> = users
            .iter()
            .filter(|(_, r)| r.state != "offline" && r.last_active.elapsed() >= self.idle_timeout)
            .map(|(user, _)| user.clone())
            .collect();
        for user in &idle {
            let position = self.db.next_count()?;
            if let Some(record) = users.get_mut(user) {
                record.state = "offline".into();
                record.position = position;
            }
        }
        Ok(idle)
    }
}

impl Services {
    /// Sets a user's presence (explicitly, or `online` through `/sync`), waking the syncs of the
    /// users who share a room with them when it changed. Blocking.
    pub fn set_presence(
        &self,
        user: &UserId,
        state: &str,
        status_msg: Option<Option<String>>,
    ) -> Result<()> {
        if self.presence.set(user, state, status_msg)? {
            self.wake_room_mates(user)?;
        }
        Ok(())
    }

    /// Sets idle users offline and tells their room mates. Blocking.
    pub fn sweep_presence(&self) -> Result<()> {
        for user in self.presence.sweep()? {
            self.wake_room_mates(&user)?;
        }
        Ok(())
    }

    fn wake_room_mates(&self, user: &UserId) -> Result<()> {
        let mut mates: Vec<OwnedUserId> = vec![user.to_owned()];
        for (room, membership) in self.rooms.members.rooms_of(user)? {
            if membership.membership != "join" {
                continue;
            }
            mates.extend(
                self.rooms
                    .members
                    .members_with_membership(&room)?
                    .into_iter()
                    .filter(|(_, m)| m == "join")
                    .map(|(u, _)| u),
            );
        }
        mates.sort();
        mates.dedup();
        self.notifier.wake(mates.iter().map(|u| &**u));
        Ok(())
    }

    /// Whether two users share a joined room (or are the same user).
    pub fn share_a_room(&self, a: &UserId, b: &UserId) -> Result<bool> {
        if a == b {
            return Ok(true);
        }
        for (room, membership) in self.rooms.members.rooms_of(a)? {
            if membership.membership == "join" && self.rooms.members.is_joined(b, &room)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// `m.presence` events for `/sync`: room mates whose presence changed after `since`, and
    /// — in an incremental sync — the current presence of users who began sharing a room with
    /// `user` in `(since, until]`, however old it is (a new room mate's presence is news to
    /// the user; sytest "Existing members see new members' presence").
    pub fn presence_events(
        &self,
        user: &UserId,
        since: Option<u64>,
        until: u64,
    ) -> Result<Vec<Value>> {
        let mut users: std::collections::BTreeSet<OwnedUserId> =
            self.presence.changed_since(since).into_iter().collect();
        if let Some(since) = since {
            users.extend(self.new_room_mates(user, since, until)?);
        }
        let mut events = Vec::new();
        for other in users {
            if !self.presence.has_record(&other) || !self.share_a_room(user, &other)? {
                continue;
            }
            let view = self.presence.view(&other);
            let mut content =
                json!({ "presence": view.state, "currently_active": view.currently_active });
            if let Some(ago) = view.last_active_ago {
                content["last_active_ago"] = json!(ago);
            }
            if let Some(msg) = view.status_msg {
                content["status_msg"] = json!(msg);
            }
            events.push(json!({ "type": "m.presence", "sender": other, "content": content }));
        }
        Ok(events)
    }

    /// Users who joined one of `user`'s rooms in `(since, until]`, and the members of the
    /// rooms `user` joined then.
    fn new_room_mates(&self, user: &UserId, since: u64, until: u64) -> Result<Vec<OwnedUserId>> {
        let mut mates = Vec::new();
        for (_, change) in self.rooms.members.join_changes(since, until)? {
            if !change.joined {
                continue;
            }
            if change.user_id == user {
                mates.extend(
                    self.rooms
                        .members
                        .members_with_membership(&change.room_id)?
                        .into_iter()
                        .filter(|(other, m)| m == "join" && other != user)
                        .map(|(other, _)| other),
                );
            } else if self.rooms.members.is_joined(user, &change.room_id)? {
                mates.push(change.user_id);
            }
        }
        Ok(mates)
    }
}
