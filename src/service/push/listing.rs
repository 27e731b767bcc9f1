//! `GET /notifications`: a page of the user's notification list, newest first, each with its
//! event as clients render it and whether the user's receipts already cover it.

use ruma::{
    MilliSecondsSinceUnixEpoch, OwnedRoomId, UInt, UserId,
    api::client::push::get_notifications::v3::Notification, serde::Raw,
};

use crate::{
    error::{Error, Result},
    service::Services,
    util::now_millis,
};

/// Page size when the client gives none, and the largest page served.
const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 100;

/// One page and the token of the next.
pub struct NotificationPage {
    pub notifications: Vec<Notification>,
    pub next_token: Option<String>,
}

impl Services {
    /// Notifications below the token `from` (from the newest without one); `only_highlights`
    /// keeps those that highlight (`only=highlight`).
    pub fn notification_page(
        &self,
        user: &UserId,
        from: Option<&str>,
        limit: Option<UInt>,
        only_highlights: bool,
    ) -> Result<NotificationPage> {
        let before = match from {
            Some(token) => Some(
                token
                    .parse::<u64>()
                    .map_err(|_| Error::invalid_param("Invalid pagination token in from"))?,
            ),
            None => None,
        };
        let limit = limit
            .map_or(DEFAULT_LIMIT, |l| u64::from(l) as usize)
            .clamp(1, MAX_LIMIT);
        let rows = self
            .push
            .notifications
            .newest_first(user, before, limit, |record| {
                !only_highlights || record.highlight
            })?;
        let next_token = (rows.len() == limit)
            .then(|| rows.last().map(|(count, _)| count.to_string()))
            .flatten();
        let now = now_millis();
        let mut notifications = Vec::with_capacity(rows.len());
        for (count, record) in rows {
            let Ok(room_id) = OwnedRoomId::try_from(record.room_id.as_str()) else {
                continue;
            };
            let Ok(event_id) = ruma::OwnedEventId::try_from(record.event_id.as_str()) else {
                continue;
            };
            let Some(event) = self.rooms.timeline.get_pdu(&event_id)? else {
                continue;
            };
            let json = serde_json::value::to_raw_value(&event.to_client_format(now))
                .map_err(Error::internal)?;
            let read = self.is_read(&room_id, user, count, record.thread.as_deref())?;
            let ts = MilliSecondsSinceUnixEpoch(UInt::new_saturating(record.ts));
            notifications.push(Notification::new(
                record.actions,
                Raw::from_json(json),
                read,
                room_id,
                ts,
            ));
        }
        Ok(NotificationPage {
            notifications,
            next_token,
        })
    }
}
