//! Wake-ups for long-polling `/sync` requests: writers wake exactly the users a write affects;
//! a waiting request sleeps on its user's [`Notify`] and costs nothing until then.
//!
//! Waiters must register (`Notified::enable`) before they read, so that a write landing between
//! their read and their wait still wakes them.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use ruma::{OwnedUserId, UserId};
use tokio::sync::Notify;

/// One wake-up channel per local user with a waiting request.
#[derive(Default)]
pub struct Notifier {
    users: Mutex<HashMap<OwnedUserId, Arc<Notify>>>,
}

impl Notifier {
    /// The channel a user's requests wait on.
    pub fn channel(&self, user: &UserId) -> Arc<Notify> {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        users.entry(user.to_owned()).or_default().clone()
    }

    /// Wakes every waiting request of these users.
    pub fn wake<'a>(&self, users: impl IntoIterator<Item = &'a UserId>) {
        let channels = self.users.lock().unwrap_or_else(|e| e.into_inner());
        for user in users {
            if let Some(channel) = channels.get(user) {
                channel.notify_waiters();
            }
        }
    }
}
