//! Who must refetch whose keys: the key-change stream (a row per change of a user's devices
//! or cross-signing keys) joined with the join/leave stream of rooms, as `device_lists` in
//! `/sync` and `/keys/changes` report it — `changed`: users I share a room with (or me) whose
//! keys changed, or who newly share a room with me; `left`: users I no longer share any.
//!
//! Key changes are written in the batch that makes them (`note_change_into`), often by hooks
//! of other services (a device removed with its user's logout). A small task, woken by each
//! change, waits until the change has landed and then wakes the syncs that must see it.

use std::{
    collections::{BTreeSet, HashSet},
    sync::{Weak, atomic::Ordering},
    time::Duration,
};

use ruma::{OwnedRoomId, OwnedUserId, UserId};

use super::E2eeService;
use crate::{
    error::Result,
    service::Services,
    storage::{Batch, KeyCodec},
};

/// Changed and left users for one requester.
#[derive(Debug, Default)]
pub struct DeviceLists {
    pub changed: Vec<OwnedUserId>,
    pub left: Vec<OwnedUserId>,
}

impl E2eeService {
    /// Records in `batch` that `user`'s keys changed (at a stream position the batch holds).
    pub fn note_change_into(&self, batch: &mut Batch, user: &UserId) -> Result<()> {
        let position = batch.stream_position(&self.db)?;
        self.key_changes
            .put(batch, &position, &user.as_str().to_owned());
        self.pending_change.fetch_max(position, Ordering::SeqCst);
        Ok(())
    }

    /// Tells the waker that changes were written.
    pub fn announce(&self) {
        self.changed.notify_one();
    }

    /// Users whose keys changed at positions `(after, until]`.
    pub fn changed_users(&self, after: u64, until: u64) -> Result<BTreeSet<OwnedUserId>> {
        let (start, end) = (
            after.saturating_add(1).encode(),
            until.saturating_add(1).encode(),
        );
        Ok(self
            .key_changes
            .range(&start, &end, false, usize::MAX)?
            .into_iter()
            .filter_map(|(_, user)| UserId::parse(user).ok())
            .collect())
    }
}

impl Services {
    /// The rooms `user` is joined to.
    fn joined_rooms(&self, user: &UserId) -> Result<HashSet<OwnedRoomId>> {
        Ok(self
            .rooms
            .members
            .rooms_of(user)?
            .into_iter()
            .filter(|(_, membership)| membership.membership == "join")
            .map(|(room, _)| room)
            .collect())
    }

    fn joined_members(&self, room: &ruma::RoomId) -> Result<Vec<OwnedUserId>> {
        Ok(self
            .rooms
            .members
            .members_with_membership(room)?
            .into_iter()
            .filter(|(_, membership)| membership == "join")
            .map(|(user, _)| user)
            .collect())
    }

    /// `device_lists` for `me` between two stream positions.
    pub fn device_lists(&self, me: &UserId, after: u64, until: u64) -> Result<DeviceLists> {
        let mine = self.joined_rooms(me)?;
        let shares = |other: &UserId| -> Result<bool> {
            Ok(other == me || self.joined_rooms(other)?.iter().any(|r| mine.contains(r)))
        };
        let mut changed = BTreeSet::new();
        let mut maybe_left = BTreeSet::new();
        for user in self.e2ee.changed_users(after, until)? {
            if shares(&user)? {
                changed.insert(user);
            }
        }
        for (_, change) in self.rooms.members.join_changes(after, until)? {
            let concerns_me = change.user_id == me;
            if !concerns_me && !mine.contains(&change.room_id) {
                continue;
            }
            let others: Vec<OwnedUserId> = if concerns_me {
                self.joined_members(&change.room_id)?
            } else {
                vec![change.user_id.clone()]
            };
            for other in others.into_iter().filter(|u| u != me) {
                if shares(&other)? {
                    // Newly sharing a room: their keys are news. Still sharing another room
                    // after a leave: nothing to tell.
                    if change.joined {
                        changed.insert(other);
                    }
                } else {
                    maybe_left.insert(other);
                }
            }
        }
        Ok(DeviceLists {
            left: maybe_left
                .into_iter()
                .filter(|u| !changed.contains(u))
                .collect(),
            changed: changed.into_iter().collect(),
        })
    }

    /// Wakes the syncs of everyone who must hear of `user`'s key change: the user and
    /// everyone sharing a room with them.
    fn wake_for_key_change(&self, user: &UserId) -> Result<()> {
        let mut users: BTreeSet<OwnedUserId> = BTreeSet::from([user.to_owned()]);
        for room in self.joined_rooms(user)? {
            users.extend(self.joined_members(&room)?);
        }
        self.notifier.wake(users.iter().map(|u| &**u));
        Ok(())
    }
}

/// Wakes syncs for key changes once they have landed. Holds the services weakly.
pub async fn run_waker(services: Weak<Services>) {
    let Some(start) = services.upgrade() else {
        return;
    };
    let mut seen = start.db.stream_watermark();
    let (e2ee, notifier) = (start.e2ee.clone(), start.notifier.clone());
    drop(start);
    loop {
        tokio::select! {
            _ = e2ee.changed.notified() => {}
            _ = notifier.closed() => return,
        }
        // A change is announced as soon as it is in a batch; wait (bounded) for it to land.
        for _ in 0..500 {
            let Some(services) = services.upgrade() else {
                return;
            };
            let watermark = services.db.stream_watermark();
            if watermark > seen {
                let woken = services.clone();
                let (after, until) = (seen, watermark);
                let outcome = services
                    .blocking(move |s| {
                        for user in s.e2ee.changed_users(after, until)? {
                            s.wake_for_key_change(&user)?;
                        }
                        Ok(())
                    })
                    .await;
                drop(woken);
                if let Err(e) = outcome {
                    tracing::warn!(error = %e, "waking syncs for key changes failed");
                }
                seen = watermark;
            }
            if seen >= e2ee.pending_change.load(Ordering::SeqCst) {
                break;
            }
            drop(services);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
