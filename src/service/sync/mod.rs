//! `/sync`: what changed for a user between two stream positions, built from the timeline
//! index, state snapshots and membership records — never by replaying room histories.
//!
//! A sync token is a stream position (see `Db::stream_watermark`): everything at or below it
//! has been written, so two consecutive syncs neither miss nor repeat an event.
//!
//! # Streams
//!
//! The response is put together by one provider per stream, each in a module of its own. A
//! provider takes the `SyncContext` — who syncs, from which token, up to which position,
//! with which filter — and writes its part of the `SyncBody`:
//!
//! - `to_device`: send-to-device messages for the syncing device;
//! - `presence`: presence of the user's room mates;
//! - `account_data`: global account data, and per-room account data handed on to `rooms`;
//! - `rooms`: joined, invited, knocked and left rooms (their timelines in `timeline`, their
//!   state in `room_state`);
//! - `device_lists`: whose E2EE keys changed, and the device's one-time key counts.
//!
//! [`Services::build_sync`] reads the watermark (`next_batch`) once, before any store is read,
//! and then calls the providers in the order above, which is the order the stores are read
//! in; keep it. What is stored by stream position (timelines, memberships, account data,
//! to-device messages, unread counts) is read only up to `ctx.next_batch`, so the token never
//! passes an event that was not yet written.
//!
//! Adding a stream (device lists, push rules…): a module with one provider,
//! `fn provide(ctx: &SyncContext<'_>, body: &mut SyncBody) -> Result<()>`, reading its store
//! in `(ctx.since, ctx.next_batch]`; its field in `SyncBody` (written out in `render`,
//! counted in `SyncBody::has_updates`); and one call in [`Services::build_sync`].
//!
//! `render` writes the document straight into one buffer, `filter` reads sync filters.

mod account_data;
mod device_lists;
mod filter;
mod presence;
mod render;
mod room_state;
mod rooms;
mod timeline;
mod to_device;

pub use filter::{FilterStore, SyncFilter};
use render::SyncBody;
pub use render::SyncResponse;

use crate::{
    error::Result,
    service::{Services, users::sessions::Session},
    util::now_millis,
};

/// What every provider of one sync works from.
struct SyncContext<'a> {
    services: &'a Services,
    session: &'a Session,
    /// The client's token: the position after which changes are wanted (`None`: all).
    since: Option<u64>,
    /// The watermark taken when the sync began: the position read up to, and the next token.
    next_batch: u64,
    full_state: bool,
    /// Rooms carry `state_after`, the state at the end of their timeline, instead of `state`
    /// (MSC4222, `use_state_after`).
    use_state_after: bool,
    filter: &'a SyncFilter,
}

/// How a client asked for its sync, beyond the token and the filter.
#[derive(Clone, Copy, Debug, Default)]
pub struct SyncOptions {
    pub full_state: bool,
    pub use_state_after: bool,
}

impl Services {
    /// Builds the sync response for `since` (exclusive) up to the current watermark.
    /// Blocking.
    pub fn build_sync(
        &self,
        session: &Session,
        since: Option<u64>,
        options: SyncOptions,
        filter: &SyncFilter,
    ) -> Result<SyncResponse> {
        let next_batch = self.db.stream_watermark();
        let ctx = SyncContext {
            services: self,
            session,
            since,
            next_batch,
            full_state: options.full_state,
            use_state_after: options.use_state_after,
            filter,
        };
        let mut body = SyncBody {
            next_batch,
            ..SyncBody::default()
        };
        to_device::provide(&ctx, &mut body)?;
        presence::provide(&ctx, &mut body)?;
        let room_account_data = account_data::provide(&ctx, &mut body)?;
        rooms::provide(&ctx, room_account_data, &mut body)?;
        device_lists::provide(&ctx, &mut body)?;
        let has_updates = body.has_updates();
        Ok(SyncResponse {
            body: body.render(now_millis())?,
            next_batch,
            has_updates,
        })
    }
}
