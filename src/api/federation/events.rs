//! `GET /event/{eventId}` and `GET /state_ids/{roomId}?event_id=`: events of rooms the
//! calling server has a member in.

use axum::extract::State;
use ruma::{
    MilliSecondsSinceUnixEpoch, RoomId, ServerName,
    api::federation::event::{get_event, get_room_state_ids},
};

use crate::{
    api::{AppState, Ruma, RumaResponse},
    error::{Error, Result},
    service::Services,
};

/// Refuses servers with nobody in the room.
fn ensure_participates(services: &Services, room_id: &RoomId, origin: &ServerName) -> Result<()> {
    let (short_room, _) = services.rooms.registry.known_room(room_id)?;
    let servers = services.rooms.room_servers(short_room, room_id)?;
    if servers.iter().any(|server| server == origin) {
        Ok(())
    } else {
        Err(Error::forbidden("The server has no member in the room"))
    }
}

pub async fn get_event(
    State(services): State<AppState>,
    request: Ruma<get_event::v1::Request>,
) -> Result<RumaResponse<get_event::v1::Response>> {
    let origin = request.origin()?.to_owned();
    let event_id = request.body.event_id;
    let pdu = services
        .blocking(move |s| {
            let pdu = s
                .rooms
                .timeline
                .get_pdu(&event_id)?
                .ok_or_else(|| Error::not_found("Unknown event"))?;
            ensure_participates(s, &pdu.room_id, &origin)?;
            s.rooms
                .federation_form(&event_id)?
                .ok_or_else(|| Error::not_found("Unknown event"))
        })
        .await?;
    Ok(RumaResponse(get_event::v1::Response::new(
        services.federation.server_name().to_owned(),
        MilliSecondsSinceUnixEpoch::now(),
        pdu,
    )))
}

pub async fn state_ids(
    State(services): State<AppState>,
    request: Ruma<get_room_state_ids::v1::Request>,
) -> Result<RumaResponse<get_room_state_ids::v1::Response>> {
    let origin = request.origin()?.to_owned();
    let body = request.body;
    let (auth_chain_ids, pdu_ids) = services
        .blocking(move |s| {
            ensure_participates(s, &body.room_id, &origin)?;
            let pdu = s
                .rooms
                .timeline
                .get_pdu(&body.event_id)?
                .ok_or_else(|| Error::not_found("Unknown event"))?;
            if pdu.room_id != body.room_id {
                return Err(Error::not_found("The event is not in that room"));
            }
            let state = s.rooms.state_ids_before(&body.event_id)?;
            let chain = s.rooms.auth_chain(&state)?;
            Ok((chain, state))
        })
        .await?;
    Ok(RumaResponse(get_room_state_ids::v1::Response::new(
        auth_chain_ids,
        pdu_ids,
    )))
}
