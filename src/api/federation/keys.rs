//! `GET /_matrix/key/v2/server` (our signed signing keys) and `GET /_matrix/federation/v1/version`.

use axum::extract::State;
use ruma::{
    api::federation::discovery::{get_server_keys, get_server_version},
    serde::Raw,
};

use crate::{
    api::{AppState, Ruma, RumaResponse},
    error::{Error, Result},
    service::federation::keys::own_key_document,
};

pub async fn server_keys(
    State(services): State<AppState>,
    _request: Ruma<get_server_keys::v2::Request>,
) -> Result<RumaResponse<get_server_keys::v2::Response>> {
    let document = own_key_document(&services.keys)?;
    let raw = serde_json::value::to_raw_value(&document).map_err(Error::internal)?;
    Ok(RumaResponse(get_server_keys::v2::Response::new(
        Raw::from_json(raw),
    )))
}

pub async fn server_version(
    State(_services): State<AppState>,
    _request: Ruma<get_server_version::v1::Request>,
) -> Result<RumaResponse<get_server_version::v1::Response>> {
    let mut server = get_server_version::v1::Server::new();
    server.name = Some("Hearth".to_owned());
    server.version = Some(env!("CARGO_PKG_VERSION").to_owned());
    let mut response = get_server_version::v1::Response::new();
    response.server = Some(server);
    Ok(RumaResponse(response))
}
