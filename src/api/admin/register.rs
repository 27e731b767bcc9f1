//! `/_synapse/admin/v1/register`: shared-secret registration (Synapse's documented protocol),
//! served only when `registration_shared_secret` is configured.

use axum::{Json, body::Body, extract::State};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    api::AppState,
    error::{Error, Result},
    service::users::shared_secret::SharedSecretRequest,
};

/// `GET`: a fresh single-use nonce.
pub async fn nonce(State(services): State<AppState>) -> Result<Json<Value>> {
    services.registration_shared_secret()?;
    Ok(Json(json!({ "nonce": services.shared_secret.new_nonce() })))
}

#[derive(Deserialize)]
struct RegisterBody {
    nonce: String,
    username: String,
    password: String,
    mac: String,
    #[serde(default)]
    admin: bool,
    displayname: Option<String>,
    user_type: Option<String>,
}

/// `POST`: creates the account if the MAC proves knowledge of the shared secret.
pub async fn register(State(services): State<AppState>, body: Body) -> Result<Json<Value>> {
    services.registration_shared_secret()?;
    let body: RegisterBody = super::read_json(body, services.config.max_request_size).await?;
    let request = SharedSecretRequest {
        nonce: body.nonce,
        username: body.username,
        password: body.password,
        mac_hex: body.mac,
        admin: body.admin,
        displayname: body.displayname,
        user_type: body.user_type,
    };
    let registered = services
        .blocking(move |s| s.register_with_shared_secret(request))
        .await?;
    let tokens = registered
        .tokens
        .ok_or_else(|| Error::internal("account created without a session"))?;
    let user_id = registered.user_id;
    Ok(Json(json!({
        "user_id": user_id,
        "access_token": tokens.access_token,
        "home_server": user_id.server_name(),
        "device_id": tokens.device_id,
    })))
}
