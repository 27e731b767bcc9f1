//! The `presence` stream of `/sync`: presence of the user's room mates, as the filter wants it.

use super::{SyncContext, render::SyncBody};
use crate::error::Result;

/// Writes `presence`: room mates whose presence changed after `since`, and new room mates'.
pub(super) fn provide(ctx: &SyncContext<'_>, body: &mut SyncBody) -> Result<()> {
    let mut presence =
        ctx.services
            .presence_events(&ctx.session.user_id, ctx.since, ctx.next_batch)?;
    ctx.filter.presence.retain_json(&mut presence);
    body.presence = presence;
    Ok(())
}
