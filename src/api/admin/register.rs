//! `/_synapse/admin/v1/register`: shared-secret registration (Synapse's documented protocol),
//! served only when `registration_shared_secret` is configured.

use axum::{Json, body::Body, extract::State};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    api::{AppState, extract::read_body},
    error::{Error, Result},
    service::{users::password::MAX_PASSWORD_BYTES, users::shared_secret::SignedRegistration},
};

fn secret(services: &AppState) -> Result<&str> {
    services
        .config
        .registration_shared_secret
        .as_deref()
        .ok_or_else(|| {
            Error::unrecognized(
                http::StatusCode::NOT_FOUND,
                "Shared-secret registration is not enabled",
            )
        })
}

/// `GET`: a fresh single-use nonce.
pub async fn nonce(State(services): State<AppState>) -> Result<Json<Value>> {
    secret(&services)?;
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
    let secret = secret(&services)?;
    let bytes = read_body(body, services.config.max_request_size).await?;
    let value: Value =
        serde_json::from_slice(&bytes).map_err(|_| Error::not_json("Body is not JSON"))?;
    let body: RegisterBody =
        serde_json::from_value(value).map_err(|e| Error::bad_json(format!("Invalid body: {e}")))?;
    services.shared_secret.verify(
        secret,
        &SignedRegistration {
            nonce: &body.nonce,
            username: &body.username,
            password: &body.password,
            admin: body.admin,
            user_type: body.user_type.as_deref(),
            mac_hex: &body.mac,
        },
    )?;
    if body.password.len() > MAX_PASSWORD_BYTES {
        return Err(Error::weak_password(format!(
            "Password is longer than {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    let user_id = services.users.validate_new_localpart(&body.username)?;
    let new_user = user_id.clone();
    let tokens = services
        .blocking(move |s| {
            let login = Some((None, None, false));
            s.create_account(
                &new_user,
                Some(body.password),
                body.admin,
                body.displayname,
                login,
            )
        })
        .await?
        .ok_or_else(|| Error::internal("account created without a session"))?;
    Ok(Json(json!({
        "user_id": user_id,
        "access_token": tokens.access_token,
        "home_server": user_id.server_name(),
        "device_id": tokens.device_id,
    })))
}
