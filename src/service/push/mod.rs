//! Push: each user's push rules (`rules`), their evaluation on every event that lands in a
//! room (`evaluate`, called once per event by `rooms::persist`), the notifications that come
//! out (`notifications`: unread counts and `GET /notifications`), and their delivery through
//! the users' pushers (`pushers`) to push gateways (`gateway`, `payload`).

pub mod defaults;
pub mod evaluate;
pub mod gateway;
pub use listing::NotificationPage;
mod listing;
pub mod notifications;
mod payload;
pub mod pushers;
pub mod retention;
pub mod rules;
pub mod shortcut;

use std::sync::Arc;

use ruma::UserId;

use crate::{error::Result, service::notifier::Notifier, storage::Db};

/// Everything push owns, built once at start.
pub struct PushService {
    pub rules: rules::PushRules,
    pub pushers: Arc<pushers::Pushers>,
    pub notifications: notifications::Notifications,
    pub queue: gateway::PushQueue,
    /// The server-default rules, evaluated once per event for everyone on them.
    pub defaults: shortcut::DefaultRules,
}

impl PushService {
    pub fn new(db: &Db, notifier: Arc<Notifier>) -> Result<Self> {
        Ok(Self {
            rules: rules::PushRules::new(db, notifier)?,
            defaults: shortcut::DefaultRules::new(),
            pushers: pushers::Pushers::new(db)?,
            notifications: notifications::Notifications::new(db),
            queue: gateway::PushQueue::new(db),
        })
    }

    /// Queues a badge update for each of the user's pushers (after a read receipt); returns
    /// whether any was queued.
    pub fn queue_badge_update(&self, db: &Db, user: &UserId) -> Result<bool> {
        if !self.pushers.may_have_pushers(user) {
            return Ok(false);
        }
        let pushers = self.pushers.of(user)?;
        let mut batch = db.batch();
        let queued =
            self.queue
                .enqueue_into(&mut batch, &pushers, gateway::PushJob::counts_only(user))?;
        if queued > 0 {
            db.write(batch)?;
            self.queue.wake();
        }
        Ok(queued > 0)
    }
}
