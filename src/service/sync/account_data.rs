//! The `account_data` stream of `/sync`: account data changed in `(since, next_batch]`, global
//! values into the response, per-room ones handed on to the rooms they belong to; push rules
//! as the `m.push_rules` global account data.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::{SyncContext, render::SyncBody};
use crate::error::Result;

/// Changed per-room account data events, by room id: each joined room takes its own.
pub(super) type RoomAccountData = HashMap<String, Vec<Value>>;

/// Writes the global `account_data`; returns the per-room events for the rooms provider.
pub(super) fn provide(ctx: &SyncContext<'_>, body: &mut SyncBody) -> Result<RoomAccountData> {
    let filter = ctx.filter;
    let mut room_data = RoomAccountData::new();
    for (room, kind, content) in
        ctx.services
            .account_data
            .changed_since(&ctx.session.user_id, ctx.since, ctx.next_batch)?
    {
        let wanted = match room {
            Some(_) => filter
                .room_account_data
                .matches_type_and_sender(&kind, None),
            None => filter.account_data.matches_type_and_sender(&kind, None),
        };
        if !wanted {
            continue;
        }
        let event = json!({ "type": kind, "content": content });
        match room {
            Some(room) => room_data.entry(room.to_string()).or_default().push(event),
            None => body.account_data.push(event),
        }
    }
    // Push rules are kept by the push service, with a stream position of their own, and
    // reach clients as the `m.push_rules` global account data.
    if filter
        .account_data
        .matches_type_and_sender("m.push_rules", None)
        && let Some(rules) = ctx.services.push.rules.changed_since(
            &ctx.session.user_id,
            ctx.since,
            ctx.next_batch,
        )?
    {
        body.account_data.push(json!({
            "type": "m.push_rules",
            "content": { "global": rules.global },
        }));
    }
    Ok(room_data)
}
