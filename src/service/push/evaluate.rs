//! Push-rule evaluation of one event for every local member of its room, with ruma's rules
//! and conditions. The event is flattened once and one room context is reused for every
//! member, so each member costs a walk over their rules and nothing else.

use futures::FutureExt;
use ruma::{
    OwnedUserId, UserId,
    push::{
        Action, AnyPushRuleRef, FlattenedJson, PushCondition, PushConditionPowerLevelsCtx,
        PushConditionRoomCtx, Ruleset,
    },
    serde::Raw,
};
use serde_json::value::RawValue;

use super::{PushService, gateway::PushJob, notifications::NotificationRecord};
use crate::{error::Result, storage::Batch};

/// An event about to be stored, as evaluation needs it.
pub struct EventToEvaluate<'a> {
    /// The event's JSON (what the rules' conditions match against).
    pub json: &'a RawValue,
    pub event_id: &'a str,
    pub sender: &'a UserId,
    pub short_room: u64,
    /// The event's stream position.
    pub count: u64,
    /// The thread root when the event is in a thread.
    pub thread: Option<String>,
    pub ts: u64,
}

/// The room as the rules' conditions see it when the event lands.
pub struct RoomForPush {
    pub room_id: ruma::OwnedRoomId,
    /// Joined members (`room_member_count`).
    pub member_count: u64,
    /// Power levels (`sender_notification_permission`); `None` when unreadable, which makes
    /// such conditions never match.
    pub power_levels: Option<PushConditionPowerLevelsCtx>,
}

/// What evaluation added to the batch.
#[derive(Default)]
pub struct Evaluated {
    /// Pushes queued for delivery (the sender task is woken once the batch lands).
    pub queued: usize,
}

impl PushService {
    /// Evaluates `event` for each of `recipients` (local members; the sender is skipped) and
    /// adds the notifications and queued pushes to `batch`. `display_name` looks up a
    /// member's display name in the room; it is called only for users whose rules test it.
    pub fn evaluate_into(
        &self,
        batch: &mut Batch,
        event: &EventToEvaluate<'_>,
        room: RoomForPush,
        recipients: &[OwnedUserId],
        display_name: &dyn Fn(&UserId) -> Result<Option<String>>,
    ) -> Result<Evaluated> {
        let raw: Raw<()> = Raw::from_json(event.json.to_owned());
        let flat = FlattenedJson::from_raw(&raw);
        // The legacy display-name rule is the only one that reads the member's display name,
        // and it stands aside for events with `m.mentions` (as ruma evaluates it).
        let may_test_name = flat.get_str("content.body").is_some() && !flat.contains_mentions();
        let mut context = PushConditionRoomCtx::new(
            room.room_id.clone(),
            ruma::UInt::new_saturating(room.member_count),
            event.sender.to_owned(),
            String::new(),
        );
        context.power_levels = room.power_levels;
        let mut evaluated = Evaluated::default();
        for user in recipients {
            if user == event.sender {
                continue;
            }
            let record = self.rules.record(user)?;
            context.user_id.clone_from(user);
            context.user_display_name = if may_test_name && tests_display_name(&record.global) {
                display_name(user)?.unwrap_or_default()
            } else {
                String::new()
            };
            let Some(actions) = first_match(&record.global, &flat, &context) else {
                continue;
            };
            if !actions.iter().any(Action::should_notify) {
                continue;
            }
            let notification = NotificationRecord {
                short_room: event.short_room,
                room_id: room.room_id.to_string(),
                event_id: event.event_id.to_owned(),
                highlight: actions.iter().any(Action::is_highlight),
                actions: actions.to_vec(),
                thread: event.thread.clone(),
                ts: event.ts,
            };
            self.notifications
                .record_into(batch, user, event.count, &notification);
            if self.pushers.may_have_pushers(user) {
                evaluated.queued += self.queue.enqueue_into(
                    batch,
                    &self.pushers.of(user)?,
                    PushJob::for_event(user, &notification, room.member_count),
                )?;
            }
        }
        Ok(evaluated)
    }
}

/// The actions of the first of `rules` that applies (ruma's order: override, content, room,
/// sender, underride).
fn first_match<'a>(
    rules: &'a Ruleset,
    event: &FlattenedJson,
    context: &PushConditionRoomCtx,
) -> Option<&'a [Action]> {
    for rule in rules.iter() {
        // No condition this server enables waits on anything: the future is ready at once.
        // (Thread subscriptions, the only asynchronous one, are an unstable feature left off.)
        if rule.applies(event, context).now_or_never().unwrap_or(false) {
            return Some(rule.actions());
        }
    }
    None
}

/// Whether any enabled rule tests the member's display name (the deprecated
/// `contains_display_name` condition; the current server defaults have none).
fn tests_display_name(rules: &Ruleset) -> bool {
    #[allow(deprecated)]
    rules.iter().any(|rule| match rule {
        AnyPushRuleRef::Override(rule) | AnyPushRuleRef::Underride(rule) => {
            rule.enabled
                && rule
                    .conditions
                    .iter()
                    .any(|c| matches!(c, PushCondition::ContainsDisplayName))
        }
        _ => false,
    })
}
