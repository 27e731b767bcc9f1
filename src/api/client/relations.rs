//! `/relations` (all three forms) and `/threads`.

use axum::extract::State;
use ruma::api::{
    Direction,
    client::{
        relations::{
            get_relating_events, get_relating_events_with_rel_type,
            get_relating_events_with_rel_type_and_event_type,
        },
        threads::get_threads,
    },
};

use super::convert;
use crate::{
    api::{AppState, Ruma, RumaResponse},
    error::Result,
    service::rooms::relations::RelationsPage,
};

/// Default and largest page sizes.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1000;

fn limit(value: Option<ruma::UInt>) -> usize {
    value.map_or(DEFAULT_LIMIT, |l| {
        (u64::from(l) as usize).clamp(1, MAX_LIMIT)
    })
}

/// A page as the `chunk` and `next_batch` of a ruma response.
fn page_parts<T>(page: RelationsPage) -> Result<(Vec<ruma::serde::Raw<T>>, Option<String>)> {
    Ok((convert::raw_events(page.chunk)?, page.next_batch))
}

/// The shared body of the three `/relations` forms.
struct RelationsQuery {
    room_id: ruma::OwnedRoomId,
    event_id: ruma::OwnedEventId,
    rel_type: Option<String>,
    event_type: Option<String>,
    from: Option<String>,
    to: Option<String>,
    dir: Direction,
    limit: Option<ruma::UInt>,
}

async fn relations(
    services: AppState,
    session: crate::service::users::sessions::Session,
    q: RelationsQuery,
) -> Result<RelationsPage> {
    let from = convert::token("pagination", q.from.as_deref())?;
    let to = convert::token("pagination", q.to.as_deref())?;
    services
        .blocking(move |s| {
            s.rooms.relations_for_user(
                &session,
                &q.room_id,
                &q.event_id,
                q.rel_type.as_deref(),
                q.event_type.as_deref(),
                from,
                to,
                q.dir,
                limit(q.limit),
            )
        })
        .await
}

/// `GET /rooms/{roomId}/relations/{eventId}`
pub async fn all(
    State(services): State<AppState>,
    request: Ruma<get_relating_events::v1::Request>,
) -> Result<RumaResponse<get_relating_events::v1::Response>> {
    let session = request.session()?.clone();
    let b = request.body;
    let query = RelationsQuery {
        room_id: b.room_id,
        event_id: b.event_id,
        rel_type: None,
        event_type: None,
        from: b.from,
        to: b.to,
        dir: b.dir,
        limit: b.limit,
    };
    let (chunk, next_batch) = page_parts(relations(services, session, query).await?)?;
    let mut response = get_relating_events::v1::Response::new(chunk);
    response.next_batch = next_batch;
    Ok(RumaResponse(response))
}

/// `GET /rooms/{roomId}/relations/{eventId}/{relType}`
pub async fn by_rel_type(
    State(services): State<AppState>,
    request: Ruma<get_relating_events_with_rel_type::v1::Request>,
) -> Result<RumaResponse<get_relating_events_with_rel_type::v1::Response>> {
    let session = request.session()?.clone();
    let b = request.body;
    let query = RelationsQuery {
        room_id: b.room_id,
        event_id: b.event_id,
        rel_type: Some(b.rel_type.to_string()),
        event_type: None,
        from: b.from,
        to: b.to,
        dir: b.dir,
        limit: b.limit,
    };
    let (chunk, next_batch) = page_parts(relations(services, session, query).await?)?;
    let mut response = get_relating_events_with_rel_type::v1::Response::new(chunk);
    response.next_batch = next_batch;
    Ok(RumaResponse(response))
}

/// `GET /rooms/{roomId}/relations/{eventId}/{relType}/{eventType}`
pub async fn by_rel_and_event_type(
    State(services): State<AppState>,
    request: Ruma<get_relating_events_with_rel_type_and_event_type::v1::Request>,
) -> Result<RumaResponse<get_relating_events_with_rel_type_and_event_type::v1::Response>> {
    let session = request.session()?.clone();
    let b = request.body;
    let query = RelationsQuery {
        room_id: b.room_id,
        event_id: b.event_id,
        rel_type: Some(b.rel_type.to_string()),
        event_type: Some(b.event_type.to_string()),
        from: b.from,
        to: b.to,
        dir: b.dir,
        limit: b.limit,
    };
    let (chunk, next_batch) = page_parts(relations(services, session, query).await?)?;
    let mut response = get_relating_events_with_rel_type_and_event_type::v1::Response::new(chunk);
    response.next_batch = next_batch;
    Ok(RumaResponse(response))
}

/// `GET /rooms/{roomId}/threads`
pub async fn threads(
    State(services): State<AppState>,
    request: Ruma<get_threads::v1::Request>,
) -> Result<RumaResponse<get_threads::v1::Response>> {
    let session = request.session()?.clone();
    let b = request.body;
    let participated = b.include == get_threads::v1::IncludeThreads::Participated;
    let limit = limit(b.limit);
    let offset = convert::token("from", b.from.as_deref())?;
    let page = services
        .blocking(move |s| {
            s.rooms
                .threads_for_user(&session, &b.room_id, participated, offset, limit)
        })
        .await?;
    let (chunk, next_batch) = page_parts(page)?;
    let mut response = get_threads::v1::Response::new(chunk);
    response.next_batch = next_batch;
    Ok(RumaResponse(response))
}
