//! `/relations` (all three forms) and `/threads`.

use axum::{Json, extract::State};
use ruma::api::{
    Direction as RumaDirection,
    client::{
        relations::{
            get_relating_events, get_relating_events_with_rel_type,
            get_relating_events_with_rel_type_and_event_type,
        },
        threads::get_threads,
    },
};
use serde_json::{Value, json};

use crate::{
    api::{AppState, Ruma},
    error::{Error, Result},
    service::rooms::{read::Direction, relations::RelationsPage},
};

/// Default and largest page sizes.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1000;

fn limit(value: Option<ruma::UInt>) -> usize {
    value.map_or(DEFAULT_LIMIT, |l| {
        (u64::from(l) as usize).clamp(1, MAX_LIMIT)
    })
}

fn token(value: Option<&str>) -> Result<Option<u64>> {
    value
        .map(|t| {
            t.parse()
                .map_err(|_| Error::invalid_param(format!("Invalid token {t:?}")))
        })
        .transpose()
}

fn direction(dir: RumaDirection) -> Direction {
    match dir {
        RumaDirection::Backward => Direction::Backward,
        RumaDirection::Forward => Direction::Forward,
    }
}

fn page_json(page: RelationsPage) -> Json<Value> {
    let mut response = json!({ "chunk": page.chunk });
    if let Some(next) = page.next_batch {
        response["next_batch"] = json!(next);
    }
    Json(response)
}

/// The shared body of the three `/relations` forms.
struct RelationsQuery {
    room_id: ruma::OwnedRoomId,
    event_id: ruma::OwnedEventId,
    rel_type: Option<String>,
    event_type: Option<String>,
    from: Option<String>,
    to: Option<String>,
    dir: RumaDirection,
    limit: Option<ruma::UInt>,
}

async fn relations(
    services: AppState,
    session: crate::service::users::sessions::Session,
    q: RelationsQuery,
) -> Result<Json<Value>> {
    let from = token(q.from.as_deref())?;
    let to = token(q.to.as_deref())?;
    let page = services
        .blocking(move |s| {
            s.rooms.relations_for_user(
                &session,
                &q.room_id,
                &q.event_id,
                q.rel_type.as_deref(),
                q.event_type.as_deref(),
                from,
                to,
                direction(q.dir),
                limit(q.limit),
            )
        })
        .await?;
    Ok(page_json(page))
}

/// `GET /rooms/{roomId}/relations/{eventId}`
pub async fn all(
    State(services): State<AppState>,
    request: Ruma<get_relating_events::v1::Request>,
) -> Result<Json<Value>> {
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
    relations(services, session, query).await
}

/// `GET /rooms/{roomId}/relations/{eventId}/{relType}`
pub async fn by_rel_type(
    State(services): State<AppState>,
    request: Ruma<get_relating_events_with_rel_type::v1::Request>,
) -> Result<Json<Value>> {
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
    relations(services, session, query).await
}

/// `GET /rooms/{roomId}/relations/{eventId}/{relType}/{eventType}`
pub async fn by_rel_and_event_type(
    State(services): State<AppState>,
    request: Ruma<get_relating_events_with_rel_type_and_event_type::v1::Request>,
) -> Result<Json<Value>> {
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
    relations(services, session, query).await
}

/// `GET /rooms/{roomId}/threads`
pub async fn threads(
    State(services): State<AppState>,
    request: Ruma<get_threads::v1::Request>,
) -> Result<Json<Value>> {
    let session = request.session()?.clone();
    let b = request.body;
    let participated = b.include == get_threads::v1::IncludeThreads::Participated;
    let limit = limit(b.limit);
    let page = services
        .blocking(move |s| {
            s.rooms
                .threads_for_user(&session, &b.room_id, participated, b.from.as_deref(), limit)
        })
        .await?;
    Ok(page_json(page))
}
