//! Login, logout and token refresh.

use std::time::Duration;

use axum::extract::State;
use ruma::api::client::{
    session::{
        get_login_types,
        login::{self, v3::LoginInfo},
        logout, logout_all, refresh_token,
    },
    uiaa::UserIdentifier,
};

use crate::{
    api::{AppState, Ruma, RumaResponse},
    error::{Error, Result},
    service::{ratelimit::Action, users::accounts::LoginName},
};

/// `GET /login`: only password login is offered.
pub async fn login_types(
    State(_): State<AppState>,
    _: Ruma<get_login_types::v3::Request>,
) -> Result<RumaResponse<get_login_types::v3::Response>> {
    let password = get_login_types::v3::LoginType::Password(Default::default());
    Ok(RumaResponse(get_login_types::v3::Response::new(vec![
        password,
    ])))
}

/// `POST /login`
#[allow(deprecated)] // the legacy `user`/`medium` fields are still sent by older clients
pub async fn login(
    State(services): State<AppState>,
    request: Ruma<login::v3::Request>,
) -> Result<RumaResponse<login::v3::Response>> {
    services
        .rate_limiter
        .check(Action::Login, request.client_ip)?;
    let body = request.body;
    let LoginInfo::Password(info) = body.login_info else {
        return Err(Error::unknown(
            http::StatusCode::BAD_REQUEST,
            "Unsupported login type",
        ));
    };
    let name = match (info.identifier, info.user, info.medium) {
        (Some(UserIdentifier::Matrix(id)), _, _) => LoginName::User(id.user),
        (Some(_), _, _) | (None, None, Some(_)) => LoginName::ThirdParty,
        (None, Some(user), _) => LoginName::User(user),
        (None, None, None) => return Err(Error::bad_json("Missing identifier")),
    };
    let password = info.password;
    let (device_id, device_name) = (body.device_id, body.initial_device_display_name);
    let want_refresh = body.refresh_token;
    let (user_id, tokens) = services
        .blocking(move |s| {
            s.login_with_password(name, &password, device_id, device_name, want_refresh)
        })
        .await?;
    let mut response =
        login::v3::Response::new(user_id.clone(), tokens.access_token, tokens.device_id);
    response.home_server = Some(user_id.server_name().to_owned());
    response.refresh_token = tokens.refresh_token;
    response.expires_in = tokens.expires_in_ms.map(Duration::from_millis);
    Ok(RumaResponse(response))
}

/// `POST /logout`: ends this device's session.
pub async fn logout(
    State(services): State<AppState>,
    request: Ruma<logout::v3::Request>,
) -> Result<RumaResponse<logout::v3::Response>> {
    let session = request.session()?.clone();
    services
        .blocking(move |s| {
            s.sessions
                .remove_devices(&session.user_id, std::slice::from_ref(&session.device_id))
        })
        .await?;
    Ok(RumaResponse(logout::v3::Response::new()))
}

/// `POST /logout/all`: ends every session of the user.
pub async fn logout_all(
    State(services): State<AppState>,
    request: Ruma<logout_all::v3::Request>,
) -> Result<RumaResponse<logout_all::v3::Response>> {
    let user = request.session()?.user_id.clone();
    services
        .blocking(move |s| {
            let all = s.sessions.device_ids_except(&user, None)?;
            s.sessions.remove_devices(&user, &all)
        })
        .await?;
    Ok(RumaResponse(logout_all::v3::Response::new()))
}

/// `POST /refresh`
pub async fn refresh(
    State(services): State<AppState>,
    request: Ruma<refresh_token::v3::Request>,
) -> Result<RumaResponse<refresh_token::v3::Response>> {
    let refresh_token = request.body.refresh_token;
    let tokens = services
        .blocking(move |s| s.sessions.refresh(&refresh_token))
        .await?;
    let mut response = refresh_token::v3::Response::new(tokens.access_token);
    response.refresh_token = tokens.refresh_token;
    response.expires_in_ms = tokens.expires_in_ms.map(Duration::from_millis);
    Ok(RumaResponse(response))
}
