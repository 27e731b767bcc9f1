//! `POST /search`: full-text search over room events the user may see.

use axum::{Json, extract::State};
use ruma::{OwnedRoomId, RoomId, api::client::search::search_events};
use serde_json::{Value, json};

use super::convert;
use crate::{
    api::{AppState, Ruma},
    error::Result,
    service::{
        Services,
        rooms::{
            read::{Direction, EventFilter},
            search::{SearchQuery, default_keys, hit_json},
        },
        users::sessions::Session,
    },
};

/// Default and largest number of results per page.
const DEFAULT_LIMIT: usize = 10;
const MAX_LIMIT: usize = 100;

/// Events around a hit, as `event_context` asks.
fn hit_context(
    services: &Services,
    session: &Session,
    room_id: &RoomId,
    count: u64,
    before: usize,
    after: usize,
    include_profile: bool,
) -> Result<Value> {
    let filter = EventFilter::default();
    let mut context = json!({});
    let mut senders = Vec::new();
    if before > 0 {
        let page = services.rooms.messages(
            session,
            room_id,
            Some(count.saturating_sub(1)),
            None,
            Direction::Backward,
            before,
            &filter,
        )?;
        senders.extend(
            page.chunk
                .iter()
                .filter_map(|e| e["sender"].as_str().map(str::to_owned)),
        );
        context["events_before"] = json!(page.chunk);
        context["start"] = json!(page.end.unwrap_or(0).to_string());
    }
    if after > 0 {
        let page = services.rooms.messages(
            session,
            room_id,
            Some(count),
            None,
            Direction::Forward,
            after,
            &filter,
        )?;
        senders.extend(
            page.chunk
                .iter()
                .filter_map(|e| e["sender"].as_str().map(str::to_owned)),
        );
        context["events_after"] = json!(page.chunk);
        if let Some(end) = page.end {
            context["end"] = json!(end.to_string());
        }
    }
    if include_profile {
        let mut profiles = serde_json::Map::new();
        for sender in senders {
            let member = services.rooms.current_state_event(
                room_id,
                &ruma::events::StateEventType::RoomMember,
                &sender,
            )?;
            if let Some(member) = member {
                let content = member.content_value();
                profiles.insert(sender, json!({ "displayname": content["displayname"], "avatar_url": content["avatar_url"] }));
            }
        }
        context["profile_info"] = Value::Object(profiles);
    }
    Ok(context)
}

pub async fn search(
    State(services): State<AppState>,
    request: Ruma<search_events::v3::Request>,
) -> Result<Json<Value>> {
    let session = request.session()?.clone();
    let body = request.body;
    let Some(criteria) = body.search_categories.room_events else {
        return Ok(Json(json!({ "search_categories": {} })));
    };
    let filter_json = convert::to_value(&criteria.filter)?;
    let rooms = |key: &str| -> Option<Vec<OwnedRoomId>> {
        filter_json.get(key)?.as_array().map(|list| {
            list.iter()
                .filter_map(|r| r.as_str())
                .filter_map(|r| RoomId::parse(r).ok())
                .collect()
        })
    };
    let keys = match &criteria.keys {
        Some(keys) => keys.iter().map(|k| k.to_string()).collect(),
        None => default_keys(),
    };
    let offset = convert::token("next_batch", body.next_batch.as_deref())?.unwrap_or(0);
    let query = SearchQuery {
        term: criteria.search_term.clone(),
        keys,
        filter: EventFilter::from_json(&filter_json),
        rooms: rooms("rooms"),
        not_rooms: rooms("not_rooms").unwrap_or_default(),
        limit: filter_json
            .get("limit")
            .and_then(Value::as_u64)
            .map_or(DEFAULT_LIMIT, |l| (l as usize).clamp(1, MAX_LIMIT)),
        order_by_rank: criteria
            .order_by
            .as_ref()
            .is_none_or(|o| o.to_string() == "rank"),
        offset,
    };
    let before = u64::from(criteria.event_context.before_limit) as usize;
    let after = u64::from(criteria.event_context.after_limit) as usize;
    let include_profile = criteria.event_context.include_profile;
    let include_state = criteria.include_state.unwrap_or(false);
    let response = services
        .blocking(move |s| {
            let found = s.rooms.search(&session, &query)?;
            let mut results = Vec::new();
            let mut state = serde_json::Map::new();
            for hit in &found.hits {
                let context = if before > 0 || after > 0 || include_profile {
                    Some(hit_context(
                        s,
                        &session,
                        &hit.room_id,
                        hit.count,
                        before.min(MAX_LIMIT),
                        after.min(MAX_LIMIT),
                        include_profile,
                    )?)
                } else {
                    None
                };
                results.push(hit_json(hit, context));
                if include_state && !state.contains_key(hit.room_id.as_str()) {
                    state.insert(
                        hit.room_id.to_string(),
                        json!(s.rooms.search_room_state(&session, &hit.room_id)?),
                    );
                }
            }
            let mut room_events =
                json!({ "results": results, "count": found.total, "highlights": found.highlights });
            if let Some(next) = found.next_offset {
                room_events["next_batch"] = json!(next.to_string());
            }
            if include_state {
                room_events["state"] = Value::Object(state);
            }
            Ok(json!({ "search_categories": { "room_events": room_events } }))
        })
        .await?;
    Ok(Json(response))
}
