//! The `rooms` stream of `/sync`: the user's joined rooms (timeline, state, summary, unread
//! counts, account data, ephemeral events), invites (but not from ignored users) and knocks
//! (stripped state) and left rooms.

use std::collections::HashSet;

use ruma::{RoomId, events::StateEventType};
use serde_json::{Map, Value, json};

use super::{
    SyncContext,
    account_data::RoomAccountData,
    render::{JoinedRoom, LeftRoom, SyncBody},
};
use crate::{
    error::Result,
    service::rooms::{Membership, RoomRecord},
};

/// State event types shown in invite and knock previews.
const STRIPPED_STATE: &[&str] = &[
    "m.room.create",
    "m.room.join_rules",
    "m.room.name",
    "m.room.avatar",
    "m.room.canonical_alias",
    "m.room.encryption",
    "m.room.topic",
];

/// A joined room's unread counts: (notifications, highlights), and per thread when asked for.
type UnreadNotifications = ((u64, u64), Option<Map<String, Value>>);

/// Writes `rooms`: every room of the user the filter wants whose membership is at or below
/// `next_batch`, each joined room with its entry of `account_data`.
pub(super) fn provide(
    ctx: &SyncContext<'_>,
    mut account_data: RoomAccountData,
    body: &mut SyncBody,
) -> Result<()> {
    let (services, since) = (ctx.services, ctx.since);
    let ignored: HashSet<String> = services
        .account_data
        .ignored_users(&ctx.session.user_id)?
        .into_iter()
        .collect();
    for (room_id, membership) in services.rooms.members.rooms_of(&ctx.session.user_id)? {
        if !ctx.filter.wants_room(&room_id) || membership.count > ctx.next_batch {
            continue;
        }
        let changed = since.is_none_or(|s| membership.count > s);
        match membership.membership.as_str() {
            "join" => {
                let data = account_data.remove(room_id.as_str()).unwrap_or_default();
                if let Some(entry) = ctx.joined_room(&room_id, &membership, data, &ignored)? {
                    body.join.insert(room_id.to_string(), entry);
                }
            }
            "invite" if changed && !ctx.invited_by_ignored(&membership, &ignored)? => {
                body.invite.insert(room_id.to_string(), json!({ "invite_state": { "events": ctx.stripped_state(&room_id, &membership)? } }));
            }
            "knock" if changed => {
                body.knock.insert(room_id.to_string(), json!({ "knock_state": { "events": ctx.stripped_state(&room_id, &membership)? } }));
            }
            // A forgotten room stays out of initial syncs, but a leave newer than the token
            // still reaches incremental ones: other devices must learn the room was left even
            // when it is forgotten at once (Synapse; Complement's TestRoomForget).
            "leave" | "ban"
                if changed
                    && (since.is_some() || (ctx.filter.include_leave && !membership.forgotten)) =>
            {
                if let Some(entry) = ctx.left_room(&room_id, &membership)? {
                    body.leave.insert(room_id.to_string(), entry);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

impl SyncContext<'_> {
    /// Whether an invite comes from a user the invitee ignores: such invites are not shown
    /// (spec: `m.ignored_user_list`; Synapse drops them from `/sync` too). The invite stays,
    /// so it shows again if the user is no longer ignored.
    fn invited_by_ignored(
        &self,
        membership: &Membership,
        ignored: &HashSet<String>,
    ) -> Result<bool> {
        if ignored.is_empty() {
            return Ok(false);
        }
        let invite = self.services.rooms.timeline.get_pdu(&membership.event_id)?;
        Ok(invite.is_some_and(|invite| ignored.contains(invite.sender.as_str())))
    }

    /// The stripped state of an invite or knock, ending with the membership event itself.
    fn stripped_state(&self, room_id: &RoomId, membership: &Membership) -> Result<Vec<Value>> {
        let rooms = &self.services.rooms;
        let mut events = Vec::new();
        for kind in STRIPPED_STATE {
            if let Some(event) =
                rooms.current_state_event(room_id, &StateEventType::from(*kind), "")?
            {
                events.push(event.to_stripped_state());
            }
        }
        if let Some(event) = rooms.timeline.get_pdu(&membership.event_id)? {
            events.push(event.to_stripped_state());
        }
        Ok(events)
    }

    /// A joined room's entry, or `None` when an incremental sync has nothing for it.
    fn joined_room(
        &self,
        room_id: &RoomId,
        membership: &Membership,
        account_data: Vec<Value>,
        ignored: &HashSet<String>,
    ) -> Result<Option<JoinedRoom>> {
        let Some((short_room, record)) = self.services.rooms.registry.room(room_id)? else {
            return Ok(None);
        };
        let (since, full_state) = (self.since, self.full_state);
        let from = since.unwrap_or(0);
        let (events, limited) = self.timeline(short_room, from, self.next_batch)?;
        // Events of ignored users are hidden (spec: m.ignored_user_list).
        let events: Vec<_> = events
            .into_iter()
            .filter(|e| !ignored.contains(e.pdu.sender.as_str()))
            .collect();
        let newly_joined = since.is_some_and(|s| membership.count > s);
        let ephemeral = self.room_ephemeral(room_id)?;
        if since.is_some()
            && events.is_empty()
            && !limited
            && !full_state
            && !newly_joined
            && account_data.is_empty()
            && ephemeral.is_empty()
        {
            return Ok(None);
        }
        let (unread, unread_threads) =
            self.unread_notifications(room_id, short_room, membership)?;
        let whole = since.is_none() || full_state || newly_joined;
        let span = (from, self.next_batch);
        let state = if self.use_state_after {
            self.room_state_after(short_room, &events, span, whole, limited)?
        } else {
            self.room_state(short_room, &events, span, whole, limited)?
        };
        Ok(Some(JoinedRoom {
            timeline: self.timeline_section(events, limited, from, true)?,
            state,
            state_after: self.use_state_after,
            summary: self.room_summary(room_id, short_room, &record)?,
            account_data,
            ephemeral,
            unread,
            unread_threads,
        }))
    }

    /// A joined room's `ephemeral` events: typing and receipts since `since`, as the filter
    /// wants them.
    fn room_ephemeral(&self, room_id: &RoomId) -> Result<Vec<Value>> {
        let ephemeral_service = &self.services.ephemeral;
        let mut ephemeral = Vec::new();
        if let Some(typing) = ephemeral_service.typing_event(room_id, self.since) {
            ephemeral.push(typing);
        }
        if let Some(receipts) =
            ephemeral_service.receipt_event(room_id, self.since, &self.session.user_id)?
        {
            ephemeral.push(receipts);
        }
        self.filter.ephemeral.retain_json(&mut ephemeral);
        Ok(ephemeral)
    }

    /// A joined room's unread counts up to `next_batch`: (notifications, highlights) and, when
    /// the client asks, per thread; otherwise threads count in the total.
    fn unread_notifications(
        &self,
        room_id: &RoomId,
        short_room: u64,
        membership: &Membership,
    ) -> Result<UnreadNotifications> {
        let unread = self.services.unread_counts(
            room_id,
            short_room,
            &self.session.user_id,
            membership.count,
            self.next_batch,
        )?;
        if self.filter.unread_thread_notifications {
            let threads: Map<String, Value> = unread
                .threads
                .iter()
                .map(|(root, (n, h))| {
                    (
                        root.clone(),
                        json!({ "notification_count": n, "highlight_count": h }),
                    )
                })
                .collect();
            Ok((unread.main, Some(threads)))
        } else {
            let total = unread
                .threads
                .values()
                .fold(unread.main, |acc, (n, h)| (acc.0 + n, acc.1 + h));
            Ok((total, None))
        }
    }

    /// A left (or banned) room's entry: its timeline up to the leave and the state before it.
    fn left_room(&self, room_id: &RoomId, membership: &Membership) -> Result<Option<LeftRoom>> {
        let Some((short_room, _)) = self.services.rooms.registry.room(room_id)? else {
            return Ok(None);
        };
        let from = self.since.unwrap_or(0);
        let (events, limited) = self.timeline(short_room, from, membership.count)?;
        // Like a joined room's, with the leave as the end: an incremental sync sends only what
        // changed (nothing, when the timeline holds every change), not the whole state
        // (Complement's TestLeaveEventVisibility, TestArchivedRoomsHistory).
        let whole = self.since.is_none() || self.full_state;
        let span = (from, membership.count);
        let state = if self.use_state_after {
            self.room_state_after(short_room, &events, span, whole, limited)?
        } else {
            self.room_state(short_room, &events, span, whole, limited)?
        };
        Ok(Some(LeftRoom {
            timeline: self.timeline_section(events, limited, from, false)?,
            state,
            state_after: self.use_state_after,
        }))
    }

    /// `summary`: heroes (up to five other members) and member counts.
    fn room_summary(&self, room_id: &RoomId, short_room: u64, room: &RoomRecord) -> Result<Value> {
        let heroes = self.services.rooms.members.heroes(
            room_id,
            short_room,
            room.state_hash,
            &self.session.user_id,
            5,
        )?;
        Ok(json!({
            "m.heroes": heroes,
            "m.joined_member_count": room.joined_members,
            "m.invited_member_count": room.invited_members,
        }))
    }
}
