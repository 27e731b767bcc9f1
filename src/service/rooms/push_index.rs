//! The push index on every event: what the room looks like to the push rules of its local
//! members (member count, power levels, display names) and who those members are. `persist`
//! calls it once per event, inside the event's batch.

use ruma::{
    OwnedUserId, UserId, events::StateEventType, push::PushConditionPowerLevelsCtx,
    room_version_rules::AuthorizationRules,
};
use serde_json::value::RawValue;

use super::{Pdu, RoomRecord, RoomService, visibility::PowerLevels};
use crate::{
    error::Result,
    service::push::evaluate::{Evaluated, EventToEvaluate, RoomForPush},
    storage::Batch,
};

impl RoomService {
    /// Evaluates a stored event against the push rules of the room's local members (those
    /// joined before it, and the target of an invite) and adds the outcome to `batch`.
    pub(super) fn index_push(
        &self,
        batch: &mut Batch,
        stored: &Pdu,
        json: &RawValue,
        (short_room, count): (u64, u64),
        room: &RoomRecord,
        rules: &AuthorizationRules,
    ) -> Result<Evaluated> {
        let recipients = self.push_recipients(stored)?;
        if recipients.iter().all(|user| *user == stored.sender) {
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
        let display_name = |user: &UserId| -> Result<Option<String>> {
            Ok(self
                .current_state_event(&stored.room_id, &StateEventType::RoomMember, user.as_str())?
                .and_then(|member| {
                    member.content_value()["displayname"]
                        .as_str()
                        .map(str::to_owned)
                }))
        };
        self.push
            .evaluate_into(batch, &event, context, &recipients, &display_name)
    }

    /// Local users the event may notify: joined members, and whoever it invites.
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
