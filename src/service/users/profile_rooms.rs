//! Profile changes carried into rooms: after a display name or avatar change, every room the
//! user is joined to gets a new `m.room.member` join event with the new profile, as Synapse
//! does (its `_update_join_states`).
//!
//! Why in the background: a user in hundreds of rooms would otherwise hold the profile request
//! for as many signed, authorized writes. The request stores the profile and returns; a walk
//! per user then visits the joined rooms one at a time, each room one short blocking step
//! through the normal pipeline ([`RoomService::append_from_current`]), so other requests run
//! in between. At most [`PARALLEL_WALKS`] walks run at once, so many users changing their
//! profiles at the same time cannot take every blocking thread either.
//!
//! Rapid changes do not queue a walk each: a change while the user's walk is under way only
//! marks it, and the walk goes round once more when it ends. Each room reads the newest
//! profile when its turn comes, and a room whose member event already says it is skipped, so
//! the second round costs only reads.
//!
//! A room that refuses the new event (the authorization rules, an event grown past the size
//! limit) is logged and skipped; the others still get theirs. The membership is read again
//! under the room's lock, so a user who left (or was kicked) meanwhile is never joined back.
//!
//! Walks live in memory: a shutdown ends them, and rooms not reached by then keep the old
//! profile until the next change (Synapse keeps its walks in a task table and resumes them).
//!
//! [`RoomService::append_from_current`]: crate::service::rooms::RoomService::append_from_current

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, Weak},
};

use ruma::{
    OwnedRoomId, OwnedUserId, RoomId, UserId,
    events::{StateEventType, TimelineEventType},
};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::{
    error::{Error, Result},
    service::{
        Services,
        rooms::{NewEvent, RoomService},
        users::profiles::ProfileRecord,
    },
};

/// How many users' walks may run at once.
pub const PARALLEL_WALKS: usize = 2;

/// Member-event keys that belong to the membership change that wrote them, not to the member:
/// a profile update must not repeat them.
const TRANSITION_KEYS: [&str; 3] = [
    "reason",
    "join_authorised_via_users_server",
    "third_party_invite",
];

/// Which profile field a user changes.
#[derive(Clone, Debug)]
pub enum ProfileChange {
    /// A new display name; `None` or empty clears it.
    Displayname(Option<String>),
    /// A new avatar URL; `None` or empty clears it.
    AvatarUrl(Option<String>),
}

/// The walks under way.
pub struct ProfileRooms {
    /// Users whose walk runs or waits for a slot, with whether a change arrived since the
    /// walk's current round began.
    walks: Mutex<HashMap<OwnedUserId, bool>>,
    slots: Arc<Semaphore>,
}

impl Default for ProfileRooms {
    fn default() -> Self {
        Self {
            walks: Mutex::default(),
            slots: Arc::new(Semaphore::new(PARALLEL_WALKS)),
        }
    }
}

impl ProfileRooms {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<OwnedUserId, bool>> {
        self.walks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a change of `user`'s profile; true when a new walk must start (none runs).
    fn note_change(&self, user: &UserId) -> bool {
        let mut walks = self.lock();
        match walks.get_mut(user) {
            Some(again) => {
                *again = true;
                false
            }
            None => {
                walks.insert(user.to_owned(), false);
                true
            }
        }
    }

    /// Called when a round ends: true when a change arrived during it (go round again);
    /// otherwise the walk is over and forgotten.
    fn round_done(&self, user: &UserId) -> bool {
        let mut walks = self.lock();
        match walks.get_mut(user) {
            Some(again) if *again => {
                *again = false;
                true
            }
            _ => {
                walks.remove(user);
                false
            }
        }
    }
}

impl Services {
    /// `PUT /profile/{userId}/displayname|avatar_url`: stores the change and starts carrying
    /// it into the user's rooms. Only the user may change their own profile.
    pub async fn change_profile(
        self: &Arc<Self>,
        caller: &UserId,
        target: &UserId,
        change: ProfileChange,
    ) -> Result<()> {
        if caller != target {
            return Err(Error::forbidden("You cannot change another user's profile"));
        }
        let user = target.to_owned();
        self.blocking(move |s| match change {
            ProfileChange::Displayname(name) => s.profiles.set_displayname(&user, name),
            ProfileChange::AvatarUrl(url) => s.profiles.set_avatar_url(&user, url),
        })
        .await?;
        if self.profile_rooms.note_change(target) {
            tokio::spawn(walk(Arc::downgrade(self), target.to_owned()));
        }
        Ok(())
    }

    /// The rooms `user` is joined to, in room id order (as Synapse walks them). Blocking.
    fn joined_rooms_sorted(&self, user: &UserId) -> Result<Vec<OwnedRoomId>> {
        let mut rooms: Vec<OwnedRoomId> = self
            .rooms
            .members
            .rooms_of(user)?
            .into_iter()
            .filter(|(_, membership)| membership.membership == "join")
            .map(|(room, _)| room)
            .collect();
        rooms.sort();
        Ok(rooms)
    }

    /// Sends `user`'s current profile into `room` as a new join event, unless the user is no
    /// longer joined or the member event already carries it. Blocking.
    fn update_member_profile(&self, user: &UserId, room: &RoomId) -> Result<bool> {
        let profile = self.profiles.get(user)?.unwrap_or_default();
        let sent = self
            .rooms
            .append_from_current(room, user, |rooms: &RoomService| {
                let Some(current) =
                    rooms.current_state_event(room, &StateEventType::RoomMember, user.as_str())?
                else {
                    return Ok(None);
                };
                let old = current.content_value();
                Ok(updated_member_content(&old, &profile).map(|content| {
                    NewEvent::state(TimelineEventType::RoomMember, user.as_str(), content)
                }))
            })?;
        Ok(sent.is_some())
    }
}

/// The content of a join event carrying `profile`, from the member's current content `old`:
/// `None` when the member is not joined or nothing would change.
fn updated_member_content(old: &Value, profile: &ProfileRecord) -> Option<Value> {
    if old["membership"] != "join" {
        return None;
    }
    let mut content = old.as_object()?.clone();
    for key in TRANSITION_KEYS {
        content.remove(key);
    }
    for (key, value) in [
        ("displayname", &profile.displayname),
        ("avatar_url", &profile.avatar_url),
    ] {
        match value {
            Some(value) => content.insert(key.to_owned(), json!(value)),
            None => content.remove(key),
        };
    }
    let content = Value::Object(content);
    (content != *old).then_some(content)
}

/// One user's walk over their joined rooms, round after round while changes keep coming.
async fn walk(services: Weak<Services>, user: OwnedUserId) {
    let Some(slots) = services.upgrade().map(|s| s.profile_rooms.slots.clone()) else {
        return;
    };
    // The semaphore is never closed; without a permit the walk would not be bounded, so it
    // gives up instead.
    let Ok(_slot) = slots.acquire_owned().await else {
        return;
    };
    loop {
        let rooms = step(&services, {
            let user = user.clone();
            move |s| s.joined_rooms_sorted(&user)
        })
        .await;
        let rooms = match rooms {
            None => return,
            Some(Ok(rooms)) => rooms,
            Some(Err(e)) => {
                tracing::warn!(%user, error = %e, "profile change: joined rooms not read");
                Vec::new()
            }
        };
        for room in rooms {
            let done = step(&services, {
                let (user, room) = (user.clone(), room.clone());
                move |s| s.update_member_profile(&user, &room)
            })
            .await;
            match done {
                None => return,
                Some(Err(e)) => {
                    tracing::warn!(%user, %room, error = %e, "profile change not sent to room");
                }
                Some(Ok(_)) => {}
            }
        }
        let Some(services) = services.upgrade() else {
            return;
        };
        if !services.profile_rooms.round_done(&user) {
            return;
        }
    }
}

/// Runs one blocking step of a walk; `None` when the server is stopping (the walk ends then,
/// holding nothing that keeps the database open).
async fn step<T: Send + 'static>(
    services: &Weak<Services>,
    work: impl FnOnce(&Services) -> Result<T> + Send + 'static,
) -> Option<Result<T>> {
    let services = services.upgrade()?;
    if services.notifier.is_closing() {
        return None;
    }
    Some(services.blocking(work).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(name: Option<&str>, avatar: Option<&str>) -> ProfileRecord {
        ProfileRecord {
            displayname: name.map(str::to_owned),
            avatar_url: avatar.map(str::to_owned),
        }
    }

    #[test]
    fn keeps_other_content_and_drops_the_join_transition() {
        let old = json!({
            "membership": "join",
            "displayname": "Freddy",
            "reason": "hello",
            "join_authorised_via_users_server": "@admin:x",
            "org.example.mood": "calm",
        });
        let new = updated_member_content(&old, &profile(Some("Alice"), Some("mxc://x/a")));
        assert_eq!(
            new,
            Some(json!({
                "membership": "join",
                "displayname": "Alice",
                "avatar_url": "mxc://x/a",
                "org.example.mood": "calm",
            }))
        );
    }

    #[test]
    fn cleared_fields_go_and_unchanged_content_sends_nothing() {
        let old = json!({ "membership": "join", "displayname": "A", "avatar_url": "mxc://x/a" });
        assert_eq!(
            updated_member_content(&old, &profile(Some("A"), None)),
            Some(json!({ "membership": "join", "displayname": "A" }))
        );
        assert_eq!(
            updated_member_content(&old, &profile(Some("A"), Some("mxc://x/a"))),
            None
        );
        let left = json!({ "membership": "leave" });
        assert_eq!(
            updated_member_content(&left, &profile(Some("A"), None)),
            None
        );
    }

    #[test]
    fn a_change_during_a_walk_makes_one_more_round() {
        let walks = ProfileRooms::default();
        let user: OwnedUserId = "@a:x".try_into().expect("valid user id");
        assert!(walks.note_change(&user), "first change starts a walk");
        assert!(!walks.note_change(&user), "joins the running walk");
        assert!(!walks.note_change(&user), "still one more round, not two");
        assert!(walks.round_done(&user), "one more round");
        assert!(!walks.round_done(&user), "then done");
        assert!(walks.note_change(&user), "a later change starts a new walk");
    }
}
