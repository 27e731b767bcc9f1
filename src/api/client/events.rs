//! Sending and reading room events: send, state, single events, `/messages`, redaction.

use axum::{Json, extract::State};
use ruma::{
    api::client::{
        context::get_context,
        message::{get_message_events, send_message_event},
        redact::redact_event,
        room::{get_event_by_timestamp, get_room_event},
        state::{get_state_event_for_key, get_state_events, send_state_event},
    },
    events::TimelineEventType,
};
use serde_json::{Value, json};

use super::convert;
use crate::{
    api::{AppState, Ruma, RumaResponse},
    error::Result,
    service::rooms::{NewEvent, Txn, TxnEndpoint},
};

/// `PUT /rooms/{roomId}/send/{eventType}/{txnId}`
pub async fn send(
    State(services): State<AppState>,
    request: Ruma<send_message_event::v3::Request>,
) -> Result<RumaResponse<send_message_event::v3::Response>> {
    let session = request.session()?.clone();
    let body = request.body;
    let kind = body.event_type.to_string();
    let content = convert::raw_object(&body.body)?;
    let event = NewEvent {
        kind: TimelineEventType::from(kind),
        content,
        state_key: None,
        redacts: None,
        txn: Some(Txn {
            device_id: session.device_id.to_string(),
            txn_id: body.txn_id.to_string(),
            endpoint: TxnEndpoint::Send,
        }),
    };
    let room_id = body.room_id;
    let pdu = services
        .blocking(move |s| s.rooms.append(&room_id, &session.user_id, event))
        .await?;
    Ok(RumaResponse(send_message_event::v3::Response::new(
        pdu.event_id,
    )))
}

/// `PUT /rooms/{roomId}/state/{eventType}/{stateKey}`
pub async fn put_state(
    State(services): State<AppState>,
    request: Ruma<send_state_event::v3::Request>,
) -> Result<RumaResponse<send_state_event::v3::Response>> {
    let session = request.session()?.clone();
    let body = request.body;
    let kind = body.event_type.to_string();
    let content = convert::raw_object(&body.body)?;
    let room_id = body.room_id;
    let pdu = services
        .blocking(move |s| {
            if kind == "m.room.canonical_alias" {
                s.check_canonical_alias_content(&room_id, &content)?;
            }
            let event = NewEvent::state(kind.as_str(), body.state_key, content);
            s.rooms.append(&room_id, &session.user_id, event)
        })
        .await?;
    Ok(RumaResponse(send_state_event::v3::Response::new(
        pdu.event_id,
    )))
}

/// `GET /rooms/{roomId}/state/{eventType}/{stateKey}` (content, or the whole event with
/// `format=event`)
pub async fn get_state_event(
    State(services): State<AppState>,
    request: Ruma<get_state_event_for_key::v3::Request>,
) -> Result<Json<Value>> {
    let user = request.session()?.user_id.clone();
    let body = request.body;
    let whole_event = body.format == get_state_event_for_key::v3::StateEventFormat::Event;
    let pdu = services
        .blocking(move |s| {
            s.rooms
                .state_event_for_user(&user, &body.room_id, &body.event_type, &body.state_key)
        })
        .await?;
    Ok(Json(if whole_event {
        pdu.to_client_format(crate::util::now_millis())
    } else {
        pdu.content_value()
    }))
}

/// `GET /rooms/{roomId}/state`
pub async fn get_state(
    State(services): State<AppState>,
    request: Ruma<get_state_events::v3::Request>,
) -> Result<RumaResponse<get_state_events::v3::Response>> {
    let user = request.session()?.user_id.clone();
    let room_id = request.body.room_id;
    let events = services
        .blocking(move |s| s.rooms.state_for_user(&user, &room_id))
        .await?;
    Ok(RumaResponse(get_state_events::v3::Response::new(
        convert::raw_events(events)?,
    )))
}

/// `GET /rooms/{roomId}/event/{eventId}`
pub async fn get_event(
    State(services): State<AppState>,
    request: Ruma<get_room_event::v3::Request>,
) -> Result<RumaResponse<get_room_event::v3::Response>> {
    let session = request.session()?.clone();
    let body = request.body;
    let event = services
        .blocking(move |s| {
            s.rooms
                .fetch_event_for_user(&session, &body.room_id, &body.event_id)
        })
        .await?;
    Ok(RumaResponse(get_room_event::v3::Response::new(
        convert::raw_event(&event)?,
    )))
}

/// Largest page `/messages` serves.
const MAX_MESSAGES_LIMIT: usize = 1000;

/// `GET /rooms/{roomId}/messages`
pub async fn messages(
    State(services): State<AppState>,
    request: Ruma<get_message_events::v3::Request>,
) -> Result<RumaResponse<get_message_events::v3::Response>> {
    let session = request.session()?.clone();
    let body = request.body;
    let from = convert::token("pagination", body.from.as_deref())?;
    let to = convert::token("pagination", body.to.as_deref())?;
    let limit = u64::from(body.limit).clamp(1, MAX_MESSAGES_LIMIT as u64) as usize;
    let room_id = body.room_id;
    let page = services
        .blocking(move |s| {
            let filter = convert::visible_events_filter(s, &session.user_id, &body.filter)?;
            s.rooms
                .messages(&session, &room_id, from, to, body.dir, limit, &filter)
        })
        .await?;
    let mut response = get_message_events::v3::Response::new();
    response.start = page.start.to_string();
    response.end = page.end.map(|end| end.to_string());
    response.chunk = convert::raw_events(page.chunk)?;
    response.state = convert::raw_events(page.state)?;
    Ok(RumaResponse(response))
}

/// `PUT /rooms/{roomId}/redact/{eventId}/{txnId}`
pub async fn redact(
    State(services): State<AppState>,
    request: Ruma<redact_event::v3::Request>,
) -> Result<RumaResponse<redact_event::v3::Response>> {
    let session = request.session()?.clone();
    let body = request.body;
    let mut content = json!({});
    if let Some(reason) = body.reason {
        content["reason"] = json!(reason);
    }
    // Who may redact what is decided in the room service, for this path and for
    // `/send/m.room.redaction` alike.
    let event = NewEvent {
        kind: TimelineEventType::RoomRedaction,
        content,
        state_key: None,
        redacts: Some(body.event_id),
        txn: Some(Txn {
            device_id: session.device_id.to_string(),
            txn_id: body.txn_id.to_string(),
            endpoint: TxnEndpoint::Redact,
        }),
    };
    let room_id = body.room_id;
    let pdu = services
        .blocking(move |s| s.rooms.append(&room_id, &session.user_id, event))
        .await?;
    Ok(RumaResponse(redact_event::v3::Response::new(pdu.event_id)))
}

/// Largest `limit` `/context` serves.
const MAX_CONTEXT_LIMIT: usize = 100;

/// `GET /rooms/{roomId}/context/{eventId}`. Stays hand-built: ruma's response leaves out empty
/// `events_before`, `events_after` and `state`, which this endpoint has always sent.
pub async fn context(
    State(services): State<AppState>,
    request: Ruma<get_context::v3::Request>,
) -> Result<Json<Value>> {
    let session = request.session()?.clone();
    let body = request.body;
    let limit = (u64::from(body.limit) as usize).min(MAX_CONTEXT_LIMIT);
    let context = services
        .blocking(move |s| {
            let filter = convert::visible_events_filter(s, &session.user_id, &body.filter)?;
            s.rooms
                .context(&session, &body.room_id, &body.event_id, limit, &filter)
        })
        .await?;
    let mut response = json!({
        "event": context.event,
        "events_before": context.before.chunk,
        "events_after": context.after.chunk,
        "state": context.state,
    });
    if let Some(start) = context.before.end {
        response["start"] = json!(start.to_string());
    }
    if let Some(end) = context.after.end {
        response["end"] = json!(end.to_string());
    }
    Ok(Json(response))
}

/// `GET /rooms/{roomId}/timestamp_to_event`
pub async fn timestamp_to_event(
    State(services): State<AppState>,
    request: Ruma<get_event_by_timestamp::v1::Request>,
) -> Result<RumaResponse<get_event_by_timestamp::v1::Response>> {
    let session = request.session()?.clone();
    let body = request.body;
    let ts = u64::from(body.ts.get());
    let (event_id, sent) = services
        .blocking(move |s| {
            s.rooms
                .event_at_timestamp(&session, &body.room_id, ts, body.dir)
        })
        .await?;
    Ok(RumaResponse(get_event_by_timestamp::v1::Response::new(
        event_id, sent,
    )))
}
