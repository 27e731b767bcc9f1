//! Wake-ups for long-polling `/sync` requests: writers wake exactly the users a write affects;
//! a waiting request sleeps on its user's [`Notify`] and costs nothing until then.
//!
//! Waiters must register (`Notified::enable`) before they read, so that a write landing between
//! their read and their wait still wakes them.
//!
//! A user has an entry only while some request of theirs holds a [`Channel`]: the last one to
//! go removes it, so users who come and go (or are created in a loop) leave nothing behind.
//! The count check is made under the map lock, where channels are also handed out, so a new
//! waiter either shares the entry or finds it gone and makes a fresh one.

use std::{
    collections::HashMap,
    ops::Deref,
    sync::{Arc, Mutex},
};

use ruma::{OwnedUserId, UserId};
use tokio::sync::Notify;

/// One wake-up channel per local user with a waiting request, and the server's closing
/// signal: at shutdown every long-poll answers at once and every WebSocket sync ends, so
/// nothing keeps the database open.
pub struct Notifier {
    users: Mutex<HashMap<OwnedUserId, Arc<Notify>>>,
    closing: tokio::sync::watch::Sender<bool>,
}

impl Default for Notifier {
    fn default() -> Self {
        Self {
            users: Mutex::default(),
            closing: tokio::sync::watch::Sender::new(false),
        }
    }
}

/// A user's wake-up channel, held by a waiting request.
pub struct Channel<'a> {
    notifier: &'a Notifier,
    user: OwnedUserId,
    notify: Arc<Notify>,
}

impl Deref for Channel<'_> {
    type Target = Notify;

    fn deref(&self) -> &Notify {
        &self.notify
    }
}

impl Drop for Channel<'_> {
    fn drop(&mut self) {
        let mut users = self.notifier.lock();
        // Two references: the map's and ours. Nobody else waits for this user.
        if Arc::strong_count(&self.notify) == 2 {
            users.remove(&self.user);
        }
    }
}

impl Notifier {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<OwnedUserId, Arc<Notify>>> {
        self.users.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The channel a user's requests wait on.
    pub fn channel(&self, user: &UserId) -> Channel<'_> {
        let notify = self.lock().entry(user.to_owned()).or_default().clone();
        Channel {
            notifier: self,
            user: user.to_owned(),
            notify,
        }
    }

    /// Wakes every waiting request of these users.
    pub fn wake<'a>(&self, users: impl IntoIterator<Item = &'a UserId>) {
        let channels = self.lock();
        for user in users {
            if let Some(channel) = channels.get(user) {
                channel.notify_waiters();
            }
        }
    }

    /// Tells every waiting request that the server is stopping.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Whether the server is stopping.
    pub fn is_closing(&self) -> bool {
        *self.closing.borrow()
    }

    /// Resolves once the server is stopping.
    pub async fn closed(&self) {
        let mut closing = self.closing.subscribe();
        let _ = closing.wait_for(|closing| *closing).await;
    }

    /// Users with a waiting request.
    pub fn waiting_users(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn entries_last_as_long_as_someone_waits() {
        let notifier = Notifier::default();
        let alice: OwnedUserId = "@alice:x".try_into().expect("valid user id");
        for i in 0..100 {
            let user: OwnedUserId = format!("@u{i}:x").try_into().expect("valid user id");
            let _channel = notifier.channel(&user);
        }
        assert_eq!(notifier.waiting_users(), 0, "nobody waits: nothing kept");
        let first = notifier.channel(&alice);
        let second = notifier.channel(&alice);
        drop(first);
        assert_eq!(notifier.waiting_users(), 1, "still waited for");
        {
            let woken = second.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            notifier.wake([&*alice]);
            woken.await;
        }
        drop(second);
        assert_eq!(notifier.waiting_users(), 0);
    }
}
