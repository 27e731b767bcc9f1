//! The push index on every event: what the room looks like to the push rules of its local
//! members (member count, power levels, display names) and who those members are (cached per
//! room and state snapshot). `persist` calls it once per event, inside the event's batch.

use std::sync::Arc;

use ruma::{
    OwnedUserId, RoomId, UserId, events::StateEventType, push::PushConditionPowerLevelsCtx,
    room_version_rules::AuthorizationRules,
};
use serde_json::value::RawValue;

use super::{Pdu, RoomRecord, RoomService, visibility::PowerLevels};
use crate::{
    error::Result,
    service::{
        cache::{Cache, NumberKeys},
        push::evaluate::{Evaluated, EventToEvaluate, Recipient, RoomForPush},
    },
    storage::Batch,
};

/// How many rooms' member lists push evaluation keeps (each a few dozen bytes per member).
const CACHED_ROOMS: usize = 1024;

/// The local joined members of rooms, with their display names, as of a state snapshot: the
/// same for every event until the room's state changes, so evaluation reads it from here
/// instead of scanning the members and their member events for each message.
pub(super) struct RecipientCache(Cache<u64, Arc<RoomRecipients>, NumberKeys>);

struct RoomRecipients {
    /// The room's state snapshot the list was read at.
    state_hash: u64,
    joined: Vec<Recipient>,
}

impl Default for RecipientCache {
    fn default() -> Self {
        Self(Cache::new(CACHED_ROOMS))
    }
}

impl RoomService {
    /// Evaluates a stored event against the push rules of the room's local members (those
    /// joined before it, and the target of an invite) and adds the outcome to `batch`.
    /// `stored_state` is the room's state snapshot as stored before this event.
    pub(super) fn index_push(
        &self,
        batch: &mut Batch,
        stored: &Pdu,
        json: &RawValue,
        (short_room, count): (u64, u64),
        (room, stored_state): (&RoomRecord, u64),
        rules: &AuthorizationRules,
    ) -> Result<Evaluated> {
        let joined = self.joined_recipients(&stored.room_id, short_room, stored_state)?;
        let invited = self.invite_target(stored, &joined.joined)?;
        let recipients: std::borrow::Cow<'_, [Recipient]> = match invited {
            Some(target) => {
                let mut all = joined.joined.clone();
                all.push(target);
                all.into()
            }
            None => joined.joined.as_slice().into(),
        };
        if recipients.iter().all(|r| r.user == stored.sender) {
            return Ok(Evaluated::default());
        }
        let thread = super::relations::relation_of(stored)
            .filter(|(rel_type, _)| rel_type == "m.thread")
            .map(|(_, root)| root.to_string());
        let event = EventToEvaluate {
            json,
            event_id: stored.event_id.as_str(),
            sender: &stored.sender,
            short_room,
            count,
            thread,
            ts: stored.origin_server_ts.get().into(),
        };
        let context = RoomForPush {
            room_id: stored.room_id.clone(),
            member_count: room.joined_members,
            power_levels: self
                .power_levels(&stored.room_id)
                .ok()
                .and_then(|levels| push_levels(&levels, rules)),
        };
        self.push.evaluate_into(batch, &event, context, &recipients)
    }

    /// The room's local joined members with their display names, as of `state_hash` (the
    /// caller holds the room's lock, so the stored members are those of that snapshot).
    fn joined_recipients(
        &self,
        room_id: &RoomId,
        short_room: u64,
        state_hash: u64,
    ) -> Result<Arc<RoomRecipients>> {
        let lookup = self.push_recipients_cache.0.get(&short_room);
        if let Some(cached) = lookup.value.filter(|c| c.state_hash == state_hash) {
            return Ok(cached);
        }
        let server = self.server_name();
        let mut joined = Vec::new();
        for (user, membership) in self.members.members_with_membership(room_id)? {
            if membership == "join" && user.server_name() == server {
                let name = self.display_name_in(room_id, &user)?;
                joined.push(Recipient::new(user, name));
            }
        }
        let list = Arc::new(RoomRecipients { state_hash, joined });
        self.push_recipients_cache
            .0
            .insert(short_room, list.clone(), lookup.epoch);
        Ok(list)
    }

    /// The local user an invite event invites, unless already joined.
    fn invite_target(&self, stored: &Pdu, joined: &[Recipient]) -> Result<Option<Recipient>> {
        if stored.kind != ruma::events::TimelineEventType::RoomMember
            || stored.content_value()["membership"] != "invite"
        {
            return Ok(None);
        }
        let Some(target) = stored
            .state_key
            .as_deref()
            .and_then(|key| UserId::parse(key).ok())
            .filter(|target| target.server_name() == self.server_name())
        else {
            return Ok(None);
        };
        if joined.iter().any(|r| r.user == target) {
            return Ok(None);
        }
        let name = self.display_name_in(&stored.room_id, &target)?;
        Ok(Some(Recipient::new(target, name)))
    }

    /// The user's display name in the room's current state.
    fn display_name_in(&self, room_id: &RoomId, user: &UserId) -> Result<Option<String>> {
        Ok(self
            .current_state_event(room_id, &StateEventType::RoomMember, user.as_str())?
            .and_then(|member| {
                member.content_value()["displayname"]
                    .as_str()
                    .map(str::to_owned)
            }))
    }

    /// Local users the event may have notified: joined members, and whoever it invites
    /// (a redaction forgets their notifications).
    pub(super) fn push_recipients(&self, stored: &Pdu) -> Result<Vec<OwnedUserId>> {
        let server = self.server_name();
        let mut users: Vec<OwnedUserId> = self
            .members
            .members_with_membership(&stored.room_id)?
            .into_iter()
            .filter(|(user, membership)| membership == "join" && user.server_name() == server)
            .map(|(user, _)| user)
            .collect();
        if stored.kind == ruma::events::TimelineEventType::RoomMember
            && stored.content_value()["membership"] == "invite"
            && let Some(target) = stored
                .state_key
                .as_deref()
                .and_then(|key| UserId::parse(key).ok())
            && target.server_name() == server
            && !users.contains(&target)
        {
            users.push(target);
        }
        Ok(users)
    }
}

/// The room's power levels as the `sender_notification_permission` condition reads them.
fn push_levels(
    levels: &PowerLevels,
    rules: &AuthorizationRules,
) -> Option<PushConditionPowerLevelsCtx> {
    use ruma::events::room::power_levels::{
        RoomPowerLevels, RoomPowerLevelsEventContent, RoomPowerLevelsSource,
    };
    let content: RoomPowerLevelsEventContent =
        serde_json::from_value(levels.content().clone()).ok()?;
    let creators: Vec<OwnedUserId> = levels
        .creators()
        .iter()
        .filter_map(|c| UserId::parse(c.as_str()).ok())
        .collect();
    Some(RoomPowerLevels::new(RoomPowerLevelsSource::Original(content), rules, creators).into())
}
