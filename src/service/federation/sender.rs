//! Delivers the outgoing queue: per destination one transaction in flight (up to 50 PDUs),
//! retried with exponential backoff (30 s doubling to 24 h) that resets as soon as the
//! destination contacts us. Delivery resumes after a restart from what the queue holds; a
//! transaction id is derived from the events it carries, so a retry of the same events is
//! the same transaction and the destination does not apply it twice.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, Weak},
    time::{Duration, Instant},
};

use ruma::{
    MilliSecondsSinceUnixEpoch, OwnedTransactionId, ServerName,
    api::federation::transactions::send_transaction_message,
};

use super::queue::OutboundQueue;
use crate::service::Services;

/// Most PDUs in one transaction (the spec's limit).
const PDUS_PER_TRANSACTION: usize = 50;
const FIRST_BACKOFF: Duration = Duration::from_secs(30);
const LONGEST_BACKOFF: Duration = Duration::from_secs(24 * 3600);
/// How often the sender looks for destinations whose backoff ended.
const RETRY_TICK: Duration = Duration::from_secs(5);

#[derive(Clone, Copy)]
struct DestinationState {
    sending: bool,
    failures: u32,
    retry_at: Option<Instant>,
}

/// Per destination: whether a transaction is in flight, and the backoff after failures.
#[derive(Default)]
pub struct Backoffs(Mutex<HashMap<String, DestinationState>>);

impl Backoffs {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, DestinationState>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A request from `server` proves it is up: retry what waits for it now.
    pub fn contacted(&self, server: &ServerName, queue: &OutboundQueue) {
        let mut states = self.lock();
        if let Some(state) = states.get_mut(server.as_str())
            && state.retry_at.is_some()
        {
            state.retry_at = None;
            state.failures = 0;
            drop(states);
            queue.mark([server.to_string()]);
        }
    }

    /// Claims `destination` for one delivery run, unless one runs or its backoff holds.
    fn claim(&self, destination: &str) -> bool {
        let mut states = self.lock();
        let state = states
            .entry(destination.to_owned())
            .or_insert(DestinationState {
                sending: false,
                failures: 0,
                retry_at: None,
            });
        if state.sending || state.retry_at.is_some_and(|at| at > Instant::now()) {
            return false;
        }
        state.sending = true;
        true
    }

    fn finish(&self, destination: &str, failed: bool) {
        let mut states = self.lock();
        if let Some(state) = states.get_mut(destination) {
            state.sending = false;
            if failed {
                state.failures += 1;
                let factor = 1u32 << state.failures.saturating_sub(1).min(16);
                let wait = (FIRST_BACKOFF * factor).min(LONGEST_BACKOFF);
                state.retry_at = Some(Instant::now() + wait);
            } else {
                state.failures = 0;
                state.retry_at = None;
            }
        }
    }

    /// Destinations whose backoff has ended.
    fn due(&self) -> Vec<String> {
        let now = Instant::now();
        self.lock()
            .iter()
            .filter(|(_, state)| !state.sending && state.retry_at.is_some_and(|at| at <= now))
            .map(|(destination, _)| destination.clone())
            .collect()
    }
}

/// The sender task: runs until the services are gone.
pub async fn run(services: Weak<Services>) {
    let Some(first) = services.upgrade() else {
        return;
    };
    let wake = first.federation.queue.wake.clone();
    // What a previous run left in the queue.
    match first.blocking(|s| s.federation.queue.destinations()).await {
        Ok(destinations) => first.federation.queue.mark(destinations),
        Err(e) => tracing::warn!(error = %e, "federation queue unreadable"),
    }
    drop(first);
    loop {
        let _ = tokio::time::timeout(RETRY_TICK, wake.notified()).await;
        let Some(services) = services.upgrade() else {
            return;
        };
        let federation = &services.federation;
        let mut destinations = federation.queue.take_dirty();
        destinations.extend(federation.backoff.due());
        for destination in destinations {
            if federation.backoff.claim(&destination) {
                tokio::spawn(deliver(services.clone(), destination));
            }
        }
    }
}

/// Sends everything queued for `destination`, one transaction at a time, until the queue is
/// empty or a transaction fails.
async fn deliver(services: Arc<Services>, destination: String) {
    let failed = match deliver_all(&services, &destination).await {
        Ok(()) => false,
        Err(e) => {
            tracing::info!(%destination, error = %e, "federation delivery failed; will retry");
            true
        }
    };
    services.federation.backoff.finish(&destination, failed);
    // Events queued while this run sent its last transaction.
    if !failed {
        let more = {
            let destination = destination.clone();
            services
                .blocking(move |s| s.federation.queue.pending(&destination, 1))
                .await
        };
        if more.is_ok_and(|more| !more.is_empty()) {
            services.federation.queue.mark([destination]);
        }
    }
}

async fn deliver_all(services: &Arc<Services>, destination: &str) -> crate::error::Result<()> {
    let server = ruma::OwnedServerName::try_from(destination)
        .map_err(|e| crate::error::Error::internal(format!("queued for {destination}: {e}")))?;
    loop {
        let batch = {
            let destination = destination.to_owned();
            services
                .blocking(move |s| {
                    let pending = s
                        .federation
                        .queue
                        .pending(&destination, PDUS_PER_TRANSACTION)?;
                    let mut pdus = Vec::with_capacity(pending.len());
                    for (_, event_id) in &pending {
                        let Ok(event_id) = ruma::EventId::parse(event_id) else {
                            continue;
                        };
                        if let Some(pdu) = s.rooms.federation_form(&event_id)? {
                            pdus.push(pdu);
                        }
                    }
                    Ok((pending, pdus))
                })
                .await?
        };
        let (pending, pdus) = batch;
        if pending.is_empty() {
            return Ok(());
        }
        let positions: Vec<u64> = pending.iter().map(|(position, _)| *position).collect();
        if !pdus.is_empty() {
            let txn_id = transaction_id(&positions);
            let mut request = send_transaction_message::v1::Request::new(
                txn_id,
                services.federation.server_name().to_owned(),
                MilliSecondsSinceUnixEpoch::now(),
            );
            request.pdus = pdus;
            let response = services.federation.client.send(&server, request).await?;
            for (event_id, result) in response.pdus {
                if let Err(reason) = result {
                    tracing::info!(%destination, %event_id, %reason, "the destination refused an event");
                }
            }
        }
        let destination = destination.to_owned();
        services
            .blocking(move |s| s.federation.queue.remove(&destination, &positions))
            .await?;
    }
}

/// A transaction id named after the events it carries: the same events, the same id.
fn transaction_id(positions: &[u64]) -> OwnedTransactionId {
    let first = positions.first().copied().unwrap_or(0);
    let last = positions.last().copied().unwrap_or(0);
    format!("{first}-{last}-{}", positions.len()).into()
}
