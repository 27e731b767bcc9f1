//! Registration, `whoami`, password change and deactivation.

use std::time::Duration;

use axum::extract::State;
use ruma::api::client::account::{
    change_password, check_registration_token_validity, deactivate, get_username_availability,
    register::{self, RegistrationKind},
    whoami,
};

use crate::{
    api::{AppState, Ruma, RumaResponse},
    error::{Error, Result},
    service::{
        ratelimit::Action, users::accounts::RegistrationRequest,
        users::password::MAX_PASSWORD_BYTES,
    },
};

/// `POST /register`
pub async fn register(
    State(services): State<AppState>,
    request: Ruma<register::v3::Request>,
) -> Result<RumaResponse<register::v3::Response>> {
    let body = request.body;
    if body.kind == RegistrationKind::Guest {
        return Err(Error::guest_access_forbidden());
    }
    services
        .rate_limiter
        .check(Action::Register, request.client_ip)?;
    if body
        .password
        .as_ref()
        .is_some_and(|p| p.len() > MAX_PASSWORD_BYTES)
    {
        return Err(Error::weak_password(format!(
            "Password is longer than {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    let registration = RegistrationRequest {
        username: body.username,
        password: body.password,
        device_id: body.device_id,
        initial_device_display_name: body.initial_device_display_name,
        inhibit_login: body.inhibit_login,
        refresh_token: body.refresh_token,
        auth: body.auth,
    };
    let registered = services.blocking(move |s| s.register(registration)).await?;
    let mut response = register::v3::Response::new(registered.user_id);
    if let Some(tokens) = registered.tokens {
        response.access_token = Some(tokens.access_token);
        response.device_id = Some(tokens.device_id);
        response.refresh_token = tokens.refresh_token;
        response.expires_in = tokens.expires_in_ms.map(Duration::from_millis);
    }
    Ok(RumaResponse(response))
}

/// `GET /register/available`
pub async fn username_available(
    State(services): State<AppState>,
    request: Ruma<get_username_availability::v3::Request>,
) -> Result<RumaResponse<get_username_availability::v3::Response>> {
    services
        .rate_limiter
        .check(Action::Register, request.client_ip)?;
    let username = request.body.username;
    services
        .blocking(move |s| s.username_available(&username))
        .await?;
    Ok(RumaResponse(get_username_availability::v3::Response::new(
        true,
    )))
}

/// `GET /register/m.login.registration_token/validity`
pub async fn registration_token_validity(
    State(services): State<AppState>,
    request: Ruma<check_registration_token_validity::v1::Request>,
) -> Result<RumaResponse<check_registration_token_validity::v1::Response>> {
    services
        .rate_limiter
        .check(Action::Register, request.client_ip)?;
    let valid = services.registration_token_valid(&request.body.token)?;
    Ok(RumaResponse(
        check_registration_token_validity::v1::Response::new(valid),
    ))
}

/// `GET /account/whoami`
pub async fn whoami(
    State(_): State<AppState>,
    request: Ruma<whoami::v3::Request>,
) -> Result<RumaResponse<whoami::v3::Response>> {
    let session = request.session()?;
    let mut response = whoami::v3::Response::new(session.user_id.clone(), false);
    response.device_id = Some(session.device_id.clone());
    Ok(RumaResponse(response))
}

/// `POST /account/password`
pub async fn change_password(
    State(services): State<AppState>,
    request: Ruma<change_password::v3::Request>,
) -> Result<RumaResponse<change_password::v3::Response>> {
    let session = request.session()?.clone();
    let body = request.body;
    services
        .blocking(move |s| {
            s.change_password(
                &session,
                body.auth.as_ref(),
                body.new_password,
                body.logout_devices,
            )
        })
        .await?;
    Ok(RumaResponse(change_password::v3::Response::new()))
}

/// `POST /account/deactivate`
pub async fn deactivate(
    State(services): State<AppState>,
    request: Ruma<deactivate::v3::Request>,
) -> Result<RumaResponse<deactivate::v3::Response>> {
    let session = request.session()?.clone();
    let auth = request.body.auth;
    services
        .blocking(move |s| s.deactivate(&session, auth.as_ref()))
        .await?;
    // No identity server bindings are ever made, so there is nothing to unbind.
    let unbind = ruma::api::client::account::ThirdPartyIdRemovalStatus::NoSupport;
    Ok(RumaResponse(deactivate::v3::Response::new(unbind)))
}
