//! The outgoing queue: events waiting to be sent to each destination server, in RocksDB so a
//! restart resumes delivery. An event enters it in the batch that stores the event (nothing
//! acknowledged to a client can be lost between the two) and leaves it when the destination
//! has accepted the transaction that carried it. Keyed by destination, so senders can be
//! sharded by destination later.

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
};

use ruma::ServerName;
use tokio::sync::Notify;

use crate::{
    error::Result,
    storage::{Batch, Db, KeyCodec, Table, tables},
};

/// Queued PDUs: (destination, the event's stream position) → event id.
pub struct OutboundQueue {
    table: Table<(String, u64), String>,
    db: Db,
    /// Wakes the sender when something is queued.
    pub wake: Arc<Notify>,
    /// Destinations with newly written entries, taken by the sender when it wakes.
    dirty: Mutex<BTreeSet<String>>,
}

impl OutboundQueue {
    pub fn new(db: &Db) -> Self {
        Self {
            table: db.open_table(tables::FEDERATION_QUEUE),
            db: db.clone(),
            wake: Arc::new(Notify::new()),
            dirty: Mutex::default(),
        }
    }

    /// Queues an event for `destination` in the event's own batch.
    pub fn enqueue(
        &self,
        batch: &mut Batch,
        destination: &ServerName,
        position: u64,
        event_id: &str,
    ) {
        self.table.put(
            batch,
            &(destination.to_string(), position),
            &event_id.to_owned(),
        );
    }

    /// Tells the sender that `destinations` have new entries (call once they are written).
    pub fn mark(&self, destinations: impl IntoIterator<Item = String>) {
        self.lock_dirty().extend(destinations);
        self.wake.notify_one();
    }

    /// The destinations marked since the last call.
    pub fn take_dirty(&self) -> BTreeSet<String> {
        std::mem::take(&mut *self.lock_dirty())
    }

    fn lock_dirty(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.dirty.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The oldest `limit` events queued for `destination`, with their positions.
    pub fn pending(&self, destination: &str, limit: usize) -> Result<Vec<(u64, String)>> {
        let start = (destination.to_owned(), 0).encode();
        let end = (destination.to_owned(), u64::MAX).encode();
        Ok(self
            .table
            .range(&start, &end, false, limit)?
            .into_iter()
            .map(|((_, position), event_id)| (position, event_id))
            .collect())
    }

    /// Every destination with something queued.
    pub fn destinations(&self) -> Result<Vec<String>> {
        let mut destinations: Vec<String> = Vec::new();
        for key in self.table.keys() {
            let (destination, _) = key?;
            if destinations.last() != Some(&destination) {
                destinations.push(destination);
            }
        }
        Ok(destinations)
    }

    /// Removes delivered events.
    pub fn remove(&self, destination: &str, positions: &[u64]) -> Result<()> {
        let mut batch = self.db.batch();
        for position in positions {
            self.table
                .delete(&mut batch, &(destination.to_owned(), *position));
        }
        self.db.write(batch)?;
        Ok(())
    }
}
