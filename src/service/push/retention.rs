//! The notification list's retention: a background task that drops entries older than
//! `push.notification_retention_days`, once at start and then every hour.

use std::{sync::Weak, time::Duration};

use crate::{service::Services, util::now_millis};

/// How often the list is swept.
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// Runs until the services are gone; does nothing when retention is 0 (keep forever).
pub async fn run_sweeper(services: Weak<Services>, retention_days: u64) {
    if retention_days == 0 {
        return;
    }
    let keep_ms = retention_days.saturating_mul(24 * 3600 * 1000);
    let mut ticks = tokio::time::interval(SWEEP_EVERY);
    loop {
        ticks.tick().await;
        let Some(strong) = services.upgrade() else {
            return;
        };
        let cutoff = now_millis().saturating_sub(keep_ms);
        let sweep = tokio::task::spawn_blocking(move || {
            strong
                .push
                .notifications
                .sweep_older_than(&strong.db, cutoff)
        });
        match sweep.await {
            Ok(Ok(0)) => {}
            Ok(Ok(swept)) => tracing::info!(swept, "old notifications removed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "notification sweep failed"),
            Err(e) => tracing::warn!(error = %e, "notification sweep task failed"),
        }
    }
}
