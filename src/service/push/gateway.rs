//! Delivery to push gateways: a queue in RocksDB (written in the batch of the event or receipt
//! that caused the push, so a restart loses nothing), and a background task that sends each
//! queued push with the Push Gateway API and deletes it once the gateway has taken it.
//!
//! Each pusher's pushes go out in order, one at a time; pushers proceed in parallel. A failed
//! or timed-out push stays queued and its pusher waits (1 s, doubling to 1 h) before the next
//! try. Pushkeys the gateway lists as `rejected` lose their pusher.

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
    sync::{Arc, Mutex, Weak},
    time::{Duration, Instant},
};

use futures::StreamExt;
use ruma::{UserId, api::client::push::PusherKind, push::Action};
use serde::{Deserialize, Serialize};

use super::{notifications::NotificationRecord, pushers::PusherRecord};
use crate::{
    config::PushConfig,
    error::{Error, Result},
    service::{Services, egress},
    storage::{Batch, Db, Table, tables},
};

/// Longest wait between two tries of a failing pusher.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Pushers sent to at the same time.
const PARALLEL_PUSHERS: usize = 32;
/// Queue entries read per pass.
const PASS_SIZE: usize = 1024;

/// One push waiting for delivery to one pusher.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PushJob {
    pub user: String,
    pub app_id: String,
    pub pushkey: String,
    /// The notifying event; `None` for a badge update after a read receipt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<EventPush>,
}

/// The event part of a push.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EventPush {
    pub event_id: String,
    pub room_id: String,
    pub actions: Vec<Action>,
    /// Sent with `prio: high`: highlights and one-to-one rooms.
    pub high_priority: bool,
}

impl PushJob {
    /// A push of `notification` for `user` (its pusher filled in when queued).
    pub fn for_event(user: &UserId, notification: &NotificationRecord, members: u64) -> Self {
        Self {
            user: user.to_string(),
            app_id: String::new(),
            pushkey: String::new(),
            event: Some(EventPush {
                event_id: notification.event_id.clone(),
                room_id: notification.room_id.clone(),
                actions: notification.actions.clone(),
                high_priority: notification.highlight || members == 2,
            }),
        }
    }

    /// A badge update for `user`.
    pub fn counts_only(user: &UserId) -> Self {
        Self {
            user: user.to_string(),
            app_id: String::new(),
            pushkey: String::new(),
            event: None,
        }
    }

    fn pusher_key(&self) -> PusherKey {
        (self.user.clone(), self.app_id.clone(), self.pushkey.clone())
    }
}

/// Owns the queue table and wakes the sender.
pub struct PushQueue {
    db: Db,
    table: Table<u64, PushJob>,
    wake: tokio::sync::Notify,
}

impl PushQueue {
    pub fn new(db: &Db) -> Self {
        Self {
            db: db.clone(),
            table: db.open_table(tables::PUSH_QUEUE),
            wake: tokio::sync::Notify::new(),
        }
    }

    /// Queues `job` for each HTTP pusher in `pushers` in `batch`; returns how many.
    pub fn enqueue_into(
        &self,
        batch: &mut Batch,
        pushers: &[PusherRecord],
        job: PushJob,
    ) -> Result<usize> {
        let mut queued = 0;
        for pusher in pushers {
            if !matches!(pusher.pusher.kind, PusherKind::Http(_)) {
                continue;
            }
            let mut job = job.clone();
            job.app_id.clone_from(&pusher.pusher.ids.app_id);
            job.pushkey.clone_from(&pusher.pusher.ids.pushkey);
            self.table.put(batch, &self.db.next_count()?, &job);
            queued += 1;
        }
        Ok(queued)
    }

    /// Tells the sender that new pushes landed.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// How many pushes wait (for metrics and tests).
    pub fn len(&self) -> Result<usize> {
        Ok(self.table.scan_all()?.len())
    }

    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }
}

/// A pusher: (user, app id, pushkey).
type PusherKey = (String, String, String);

/// Failing pushers and when each may be tried again (in memory: a restart tries at once).
type Backoffs = Arc<Mutex<HashMap<PusherKey, Backoff>>>;

/// When a failing pusher may be tried again.
#[derive(Clone, Copy)]
struct Backoff {
    until: Instant,
    delay: Duration,
}

/// Sends queued pushes until the server stops. Holds the services weakly, so it never keeps
/// a stopped server's database open.
pub async fn run_sender(services: Weak<Services>, config: PushConfig) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(config.request_timeout_secs.max(1)))
        .connect_timeout(Duration::from_secs(
            config.request_timeout_secs.clamp(1, 10),
        ))
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(egress::PolicyResolver::new(
            config.allow_private_addresses,
        )))
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "push gateway HTTP client: pushes are not delivered");
            return;
        }
    };
    let backoff: Backoffs = Default::default();
    loop {
        let Some(strong) = services.upgrade() else {
            return;
        };
        if strong.notifier.is_closing() {
            return;
        }
        let sent = match send_pass(&strong, &client, &config, &backoff).await {
            Ok(sent) => sent,
            Err(e) => {
                tracing::warn!(error = %e, "push delivery pass failed");
                0
            }
        };
        if sent > 0 {
            continue;
        }
        let next_retry = backoff
            .lock()
            .map(|b| b.values().map(|b| b.until).min())
            .unwrap_or(None);
        let wait = next_retry.map_or(Duration::from_secs(3600), |until| {
            until.saturating_duration_since(Instant::now())
        });
        // Waiting holds the queue and the notifier, not the services: the task is aborted at
        // shutdown, and a pass in flight is the only time it keeps the database open.
        let (push, notifier) = (strong.push.clone(), strong.notifier.clone());
        drop(strong);
        tokio::select! {
            _ = push.queue.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = notifier.closed() => return,
        }
    }
}

/// One pass over the queue: the oldest push of each ready pusher, sent in parallel. Returns
/// how many were delivered (or dropped because their pusher is gone).
async fn send_pass(
    services: &Arc<Services>,
    client: &reqwest::Client,
    config: &PushConfig,
    backoff: &Backoffs,
) -> Result<usize> {
    let jobs = services
        .blocking(|s| {
            Ok(s.push
                .queue
                .table
                .range(&[], &[0xFF; 9], false, PASS_SIZE)?)
        })
        .await?;
    let now = Instant::now();
    let mut seen = HashSet::new();
    let ready: Vec<(u64, PushJob)> = {
        let waiting = backoff.lock().map_err(Error::internal)?;
        jobs.into_iter()
            .filter(|(_, job)| {
                let key = job.pusher_key();
                let first = seen.insert(key.clone());
                first && waiting.get(&key).is_none_or(|b| b.until <= now)
            })
            .collect()
    };
    let outcomes = futures::stream::iter(ready)
        .map(|(id, job)| async move {
            let outcome = deliver(services, client, config, &job).await;
            (id, job, outcome)
        })
        .buffer_unordered(PARALLEL_PUSHERS)
        .collect::<Vec<_>>()
        .await;
    let mut done = 0;
    for (id, job, outcome) in outcomes {
        let key = job.pusher_key();
        match outcome {
            Ok(rejected) => {
                done += 1;
                if let Ok(mut waiting) = backoff.lock() {
                    waiting.remove(&key);
                }
                services
                    .blocking(move |s| s.finish_push(id, &job, rejected))
                    .await?;
            }
            Err(e) => {
                tracing::info!(error = %e, app_id = %job.app_id, "push not delivered; will retry");
                if let Ok(mut waiting) = backoff.lock() {
                    let delay = waiting
                        .get(&key)
                        .map_or(FIRST_BACKOFF, |b| (b.delay * 2).min(MAX_BACKOFF));
                    waiting.insert(
                        key,
                        Backoff {
                            until: Instant::now() + delay,
                            delay,
                        },
                    );
                }
            }
        }
    }
    Ok(done)
}

/// What a delivery attempt ended with: the pushkeys the gateway rejected, or why it failed.
async fn deliver(
    services: &Arc<Services>,
    client: &reqwest::Client,
    config: &PushConfig,
    job: &PushJob,
) -> Result<Vec<String>> {
    let request_job = job.clone();
    let Some((url, body)) = services
        .blocking(move |s| s.push_request(&request_job))
        .await?
    else {
        // The pusher is gone: nothing to deliver.
        return Ok(Vec::new());
    };
    let parsed = reqwest::Url::parse(&url).map_err(|e| Error::internal(e.to_string()))?;
    if let Some(host) = parsed.host_str() {
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = literal.parse::<IpAddr>()
            && !(config.allow_private_addresses || egress::is_public(ip))
        {
            return Err(Error::internal(format!(
                "push gateway {host} is a non-public address"
            )));
        }
    }
    let response = client
        .post(parsed)
        .json(&body)
        .send()
        .await
        .map_err(|e| Error::internal(format!("push gateway: {e}")))?;
    if !response.status().is_success() {
        return Err(Error::internal(format!(
            "push gateway answered {}",
            response.status()
        )));
    }
    #[derive(Deserialize, Default)]
    struct GatewayAnswer {
        #[serde(default)]
        rejected: Vec<String>,
    }
    let answer: GatewayAnswer = response.json().await.unwrap_or_default();
    Ok(answer.rejected)
}

impl Services {
    /// The gateway URL and body of a queued push; `None` when its pusher no longer exists.
    fn push_request(&self, job: &PushJob) -> Result<Option<(String, serde_json::Value)>> {
        let Ok(user) = UserId::parse(&job.user) else {
            return Ok(None);
        };
        let ids = ruma::api::client::push::PusherIds::new(job.pushkey.clone(), job.app_id.clone());
        let Some(record) = self.push.pushers.get(&user, &ids)? else {
            return Ok(None);
        };
        let PusherKind::Http(http) = &record.pusher.kind else {
            return Ok(None);
        };
        let notification = self.gateway_notification(&user, job, &record, http)?;
        Ok(Some((
            http.url.clone(),
            serde_json::json!({ "notification": notification }),
        )))
    }

    /// Removes a delivered push from the queue, and the pushers whose keys were rejected.
    fn finish_push(&self, id: u64, job: &PushJob, rejected: Vec<String>) -> Result<()> {
        let mut batch = self.db.batch();
        self.push.queue.table.delete(&mut batch, &id);
        self.db.write(batch)?;
        if let Ok(user) = UserId::parse(&job.user) {
            for pushkey in rejected {
                let ids = ruma::api::client::push::PusherIds::new(pushkey, job.app_id.clone());
                tracing::info!(app_id = %job.app_id, "push gateway rejected a pushkey: pusher removed");
                self.push.pushers.remove(&user, &ids)?;
            }
        }
        Ok(())
    }
}
