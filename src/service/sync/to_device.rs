//! The `to_device` stream of `/sync`: send-to-device messages queued for the syncing device.

use super::{SyncContext, render::SyncBody};
use crate::error::Result;

/// Writes `to_device`: the device's messages up to `next_batch`. Those at or below `since`
/// were delivered by an earlier sync and are deleted first.
pub(super) fn provide(ctx: &SyncContext<'_>, body: &mut SyncBody) -> Result<()> {
    body.to_device =
        ctx.services
            .to_device
            .take_for_sync(ctx.session, ctx.since, ctx.next_batch)?;
    Ok(())
}
