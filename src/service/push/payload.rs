//! The body of a push (`POST /_matrix/push/v1/notify`): ruma's push-gateway types, filled in
//! from the event, the room and the user's unread counts when the push is sent.

use ruma::{
    OwnedEventId, OwnedRoomId, UInt, UserId,
    api::push_gateway::send_event_notification::v1::{
        Device, Notification, NotificationCounts, NotificationPriority, PusherData,
    },
    events::StateEventType,
    push::{Action, HttpPusherData, PushFormat},
};
use serde_json::Value;

use super::{gateway::PushJob, pushers::PusherRecord};
use crate::{
    error::{Error, Result},
    service::Services,
};

impl Services {
    /// The notification of a queued push for one pusher.
    pub(super) fn gateway_notification(
        &self,
        user: &UserId,
        job: &PushJob,
        record: &PusherRecord,
        http: &HttpPusherData,
    ) -> Result<Value> {
        let mut device = Device::new(job.app_id.clone(), job.pushkey.clone());
        device.pushkey_ts = Some(ruma::SecondsSinceUnixEpoch(UInt::new_saturating(
            record.updated_ms / 1000,
        )));
        device.data = PusherData::from(http.clone());
        let mut notification = Notification::new(Vec::new());
        let unread = self.badge_count(user)?;
        notification.counts = NotificationCounts::new(UInt::new_saturating(unread), UInt::MIN);
        let mut priority = None;
        if let Some(event) = &job.event {
            device.tweaks = event
                .actions
                .iter()
                .filter_map(|action| match action {
                    Action::SetTweak(tweak) => Some(tweak.clone()),
                    _ => None,
                })
                .collect();
            notification.event_id = OwnedEventId::try_from(event.event_id.as_str()).ok();
            notification.room_id = OwnedRoomId::try_from(event.room_id.as_str()).ok();
            let priority_name = if event.high_priority { "high" } else { "low" };
            notification.prio = if event.high_priority {
                NotificationPriority::High
            } else {
                NotificationPriority::Low
            };
            priority = Some(priority_name);
            if http.format != Some(PushFormat::EventIdOnly) {
                self.describe_event(user, &mut notification)?;
            }
        }
        notification.devices = vec![device];
        let mut body = serde_json::to_value(&notification).map_err(Error::internal)?;
        // ruma leaves out values equal to their defaults (`prio: high`, zero counts); a badge
        // going to zero and an explicit priority must reach the gateway, so they are written.
        if let Some(object) = body.as_object_mut() {
            object.insert(
                "counts".into(),
                serde_json::json!({ "unread": unread, "missed_calls": 0 }),
            );
            if let Some(priority) = priority {
                object.insert("prio".into(), priority.into());
            }
        }
        Ok(body)
    }

    /// Fills in what the full push format says of the event: type, sender, names, content.
    fn describe_event(&self, user: &UserId, notification: &mut Notification) -> Result<()> {
        let (Some(event_id), Some(room_id)) = (&notification.event_id, &notification.room_id)
        else {
            return Ok(());
        };
        let Some(event) = self.rooms.timeline.get_pdu(event_id)? else {
            return Ok(());
        };
        notification.event_type = Some(event.kind.clone());
        notification.sender = Some(event.sender.clone());
        notification.sender_display_name = self
            .rooms
            .current_state_event(room_id, &StateEventType::RoomMember, event.sender.as_str())?
            .and_then(|member| {
                member.content_value()["displayname"]
                    .as_str()
                    .map(str::to_owned)
            });
        notification.room_name = self
            .rooms
            .current_state_event(room_id, &StateEventType::RoomName, "")?
            .and_then(|name| name.content_value()["name"].as_str().map(str::to_owned))
            .filter(|name| !name.is_empty());
        notification.room_alias = self
            .rooms
            .current_state_event(room_id, &StateEventType::RoomCanonicalAlias, "")?
            .and_then(|alias| {
                alias.content_value()["alias"]
                    .as_str()
                    .and_then(|a| a.try_into().ok())
            });
        notification.user_is_target = event.state_key.as_deref() == Some(user.as_str());
        notification.content = serde_json::value::to_raw_value(&event.content_value()).ok();
        Ok(())
    }

    /// The badge: how many of the user's joined rooms have unread notifications (Synapse's
    /// default, `group_unread_count_by_room`).
    pub fn badge_count(&self, user: &UserId) -> Result<u64> {
        let until = self.db.stream_watermark();
        let mut rooms = 0;
        for (room_id, membership) in self.rooms.members.rooms_of(user)? {
            if membership.membership != "join" {
                continue;
            }
            let Some(short_room) = self.rooms.registry.short_room(&room_id)? else {
                continue;
            };
            let counts = self.unread_counts(&room_id, short_room, user, membership.count, until)?;
            if counts.main.0 > 0 || counts.threads.values().any(|(notes, _)| *notes > 0) {
                rooms += 1;
            }
        }
        Ok(rooms)
    }
}
