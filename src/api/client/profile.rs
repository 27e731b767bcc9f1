//! Profiles: display name and avatar URL of local users.

use axum::extract::State;
use ruma::{
    OwnedMxcUri, OwnedUserId, UserId,
    api::client::profile::{
        get_avatar_url, get_display_name, get_profile, set_avatar_url, set_display_name,
    },
    profile::UserProfile,
};

use crate::{
    api::{AppState, Ruma, RumaResponse},
    error::{Error, Result},
    service::users::profiles::ProfileRecord,
};

/// The stored profile of a local user; 404 for unknown, deactivated or remote users
/// (remote profiles arrive with federation).
async fn profile_of(services: &AppState, user_id: OwnedUserId) -> Result<ProfileRecord> {
    if !services.users.is_local(&user_id) {
        return Err(Error::not_found(
            "Profiles of users on other servers are not available yet",
        ));
    }
    services
        .blocking(move |s| s.profiles.get(&user_id))
        .await?
        .ok_or_else(|| Error::not_found("Profile not found"))
}

/// Only the user may change their own profile.
fn ensure_own(request_user: &UserId, target: &UserId) -> Result<()> {
    if request_user == target {
        Ok(())
    } else {
        Err(Error::forbidden("You cannot change another user's profile"))
    }
}

/// `GET /profile/{userId}`
pub async fn get_profile(
    State(services): State<AppState>,
    request: Ruma<get_profile::v3::Request>,
) -> Result<RumaResponse<get_profile::v3::Response>> {
    let profile = profile_of(&services, request.body.user_id).await?;
    let mut data = UserProfile::new();
    if let Some(name) = profile.displayname {
        data.set("displayname".to_owned(), name.into());
    }
    if let Some(url) = profile.avatar_url {
        data.set("avatar_url".to_owned(), url.into());
    }
    Ok(RumaResponse(get_profile::v3::Response::from(data)))
}

/// `GET /profile/{userId}/displayname`
pub async fn get_displayname(
    State(services): State<AppState>,
    request: Ruma<get_display_name::v3::Request>,
) -> Result<RumaResponse<get_display_name::v3::Response>> {
    let profile = profile_of(&services, request.body.user_id).await?;
    Ok(RumaResponse(get_display_name::v3::Response::new(
        profile.displayname,
    )))
}

/// `PUT /profile/{userId}/displayname` (also sent to the user's rooms as `m.room.member`)
pub async fn set_displayname(
    State(services): State<AppState>,
    request: Ruma<set_display_name::v3::Request>,
) -> Result<RumaResponse<set_display_name::v3::Response>> {
    let user = request.session()?.user_id.clone();
    ensure_own(&user, &request.body.user_id)?;
    let name = request.body.displayname;
    services
        .blocking(move |s| {
            s.profiles.set_displayname(&user, name)?;
            s.propagate_profile(&user)
        })
        .await?;
    Ok(RumaResponse(set_display_name::v3::Response::new()))
}

/// `GET /profile/{userId}/avatar_url`
pub async fn get_avatar_url(
    State(services): State<AppState>,
    request: Ruma<get_avatar_url::v3::Request>,
) -> Result<RumaResponse<get_avatar_url::v3::Response>> {
    let profile = profile_of(&services, request.body.user_id).await?;
    let url = profile.avatar_url.map(OwnedMxcUri::from);
    Ok(RumaResponse(get_avatar_url::v3::Response::new(url)))
}

/// `PUT /profile/{userId}/avatar_url` (also sent to the user's rooms as `m.room.member`)
pub async fn set_avatar_url(
    State(services): State<AppState>,
    request: Ruma<set_avatar_url::v3::Request>,
) -> Result<RumaResponse<set_avatar_url::v3::Response>> {
    let user = request.session()?.user_id.clone();
    ensure_own(&user, &request.body.user_id)?;
    let url = request.body.avatar_url.as_ref().map(|url| url.to_string());
    services
        .blocking(move |s| {
            s.profiles.set_avatar_url(&user, url)?;
            s.propagate_profile(&user)
        })
        .await?;
    Ok(RumaResponse(set_avatar_url::v3::Response::new()))
}
