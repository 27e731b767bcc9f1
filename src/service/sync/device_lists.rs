//! The E2EE streams of `/sync`: `device_lists` (whose keys changed, who no longer shares a
//! room; incremental syncs only) and the syncing device's one-time key counts and unused
//! fallback key types (every response, as clients expect).

use super::{SyncContext, render::SyncBody};
use crate::error::Result;

pub(super) fn provide(ctx: &SyncContext<'_>, body: &mut SyncBody) -> Result<()> {
    let (user, device) = (&ctx.session.user_id, &ctx.session.device_id);
    let e2ee = &ctx.services.e2ee;
    body.one_time_key_counts = e2ee
        .one_time_key_counts(user, device)?
        .into_iter()
        .map(|(algorithm, count)| (algorithm.to_string(), count))
        .collect();
    body.unused_fallback_key_types = e2ee.unused_fallback_key_types(user, device)?;
    if let Some(since) = ctx.since {
        let lists = ctx.services.device_lists(user, since, ctx.next_batch)?;
        body.device_lists_changed = lists.changed.iter().map(ToString::to_string).collect();
        body.device_lists_left = lists.left.iter().map(ToString::to_string).collect();
    }
    Ok(())
}
