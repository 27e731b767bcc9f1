//! Push-rule evaluation of one event for every local member of its room, with ruma's rules
//! and conditions. The event is flattened once and one room context is reused for every
//! member; members on the server-default rules share one walk over them (`shortcut`), so
//! they cost a few string comparisons and their notification rows, encoded once.

use futures::FutureExt;
use ruma::{
    OwnedUserId, UserId,
    push::{Action, FlattenedJson, PushConditionPowerLevelsCtx, PushConditionRoomCtx, Ruleset},
    serde::Raw,
};
use serde_json::value::RawValue;

use super::{
    PushService,
    gateway::PushJob,
    notifications::{NotificationRecord, PreparedNotification},
    shortcut::Candidate,
};
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

/// A local member the event may notify, with what the rules read about them.
#[derive(Clone, Debug)]
pub struct Recipient {
    pub user: OwnedUserId,
    /// The member's display name in the room ("" when none).
    pub display_name: String,
    /// The same, lowercased (what name-matching compares).
    pub lower_display_name: String,
}

impl Recipient {
    pub fn new(user: OwnedUserId, display_name: Option<String>) -> Self {
        let display_name = display_name.unwrap_or_default();
        Self {
            lower_display_name: display_name.to_lowercase(),
            display_name,
            user,
        }
    }
}

/// What evaluation added to the batch.
#[derive(Default)]
pub struct Evaluated {
    /// Pushes queued for delivery (the sender task is woken once the batch lands).
    pub queued: usize,
}

impl PushService {
    /// Evaluates `event` for each of `recipients` (local members; the sender is skipped) and
    /// adds the notifications and queued pushes to `batch`. Members on the server-default
    /// rules share one evaluation (`shortcut`); the others walk their own rules.
    pub fn evaluate_into(
        &self,
        batch: &mut Batch,
        event: &EventToEvaluate<'_>,
        room: RoomForPush,
        recipients: &[Recipient],
    ) -> Result<Evaluated> {
        let raw: Raw<()> = Raw::from_json(event.json.to_owned());
        let flat = FlattenedJson::from_raw(&raw);
        let mut context = PushConditionRoomCtx::new(
            room.room_id.clone(),
            ruma::UInt::new_saturating(room.member_count),
            event.sender.to_owned(),
            String::new(),
        );
        context.power_levels = room.power_levels;
        let notification = |actions: &[Action]| NotificationRecord {
            short_room: event.short_room,
            room_id: room.room_id.to_string(),
            event_id: event.event_id.to_owned(),
            highlight: actions.iter().any(Action::is_highlight),
            actions: actions.to_vec(),
            thread: event.thread.clone(),
            ts: event.ts,
        };
        let shared = self.defaults.shared_outcome(&flat, &mut context);
        let shared_notification = shared
            .actions
            .filter(|actions| actions.iter().any(Action::should_notify))
            .map(|actions| self.notifications.prepare(notification(actions)));
        let customized = self.rules.customized_users();
        let mut evaluated = Evaluated::default();
        for recipient in recipients {
            let user = &recipient.user;
            if *user == event.sender {
                continue;
            }
            let candidate = Candidate {
                user,
                lower_display_name: &recipient.lower_display_name,
            };
            if !customized.contains(user) && !shared.may_differ_for(&candidate) {
                if let Some(prepared) = &shared_notification {
                    self.notify_into(
                        batch,
                        user,
                        event.count,
                        prepared,
                        room.member_count,
                        &mut evaluated,
                    )?;
                }
                continue;
            }
            let record = self.rules.record(user)?;
            context.user_id.clone_from(user);
            context
                .user_display_name
                .clone_from(&recipient.display_name);
            let Some(actions) = first_match(&record.global, &flat, &context) else {
                continue;
            };
            if !actions.iter().any(Action::should_notify) {
                continue;
            }
            let prepared = self.notifications.prepare(notification(actions));
            self.notify_into(
                batch,
                user,
                event.count,
                &prepared,
                room.member_count,
                &mut evaluated,
            )?;
        }
        Ok(evaluated)
    }

    /// Adds one user's notification, and the pushes to their pushers, to `batch`.
    fn notify_into(
        &self,
        batch: &mut Batch,
        user: &UserId,
        count: u64,
        notification: &PreparedNotification,
        member_count: u64,
        evaluated: &mut Evaluated,
    ) -> Result<()> {
        self.notifications
            .record_into(batch, user, count, notification);
        if self.pushers.may_have_pushers(user) {
            evaluated.queued += self.queue.enqueue_into(
                batch,
                &self.pushers.of(user)?,
                PushJob::for_event(user, &notification.record, member_count),
            )?;
        }
        Ok(())
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
