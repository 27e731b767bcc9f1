//! `GET /make_join/{roomId}/{userId}` and `PUT /v2/send_join/{roomId}/{eventId}`.

use axum::extract::State;
use ruma::api::federation::membership::{create_join_event, prepare_join_event};

use crate::{
    api::{AppState, Ruma, RumaResponse},
    error::Result,
};

pub async fn make_join(
    State(services): State<AppState>,
    request: Ruma<prepare_join_event::v1::Request>,
) -> Result<RumaResponse<prepare_join_event::v1::Response>> {
    let origin = request.origin()?.to_owned();
    let body = request.body;
    let (version, event) = services
        .blocking(move |s| s.make_join(&origin, &body.room_id, &body.user_id, &body.ver))
        .await?;
    let mut response = prepare_join_event::v1::Response::new(event);
    response.room_version = Some(version);
    Ok(RumaResponse(response))
}

pub async fn send_join(
    State(services): State<AppState>,
    request: Ruma<create_join_event::v2::Request>,
) -> Result<RumaResponse<create_join_event::v2::Response>> {
    let origin = request.origin()?.to_owned();
    let room_state = services
        .send_join(&origin, &request.body.room_id, &request.body.pdu)
        .await?;
    Ok(RumaResponse(create_join_event::v2::Response::new(
        room_state,
    )))
}
