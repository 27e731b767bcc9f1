//! Server discovery: `/versions`, `/capabilities` and the `.well-known` documents.

use axum::{Json, extract::State};
use ruma::api::client::discovery::{
    discover_homeserver, discover_support, get_capabilities, get_supported_versions,
};
use serde_json::{Value, json};

use crate::{
    api::{AppState, Ruma, RumaResponse},
    error::{Error, Result},
};

/// Spec versions whose behaviour Hearth follows for every endpoint it serves. Endpoints of
/// these versions that are not built yet answer `M_UNRECOGNIZED` rather than pretending.
pub const SUPPORTED_VERSIONS: &[&str] = &[
    "r0.5.0", "r0.6.0", "r0.6.1", "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8",
    "v1.9", "v1.10", "v1.11",
];

/// Unstable features served, each complete: deleting account data (MSC3391), `state_after`
/// in `/sync` (MSC4222).
pub const UNSTABLE_FEATURES: &[&str] = &["org.matrix.msc3391", "org.matrix.msc4222"];

/// `GET /_matrix/client/versions`
pub async fn versions(
    State(_): State<AppState>,
    _: Ruma<get_supported_versions::Request>,
) -> Result<RumaResponse<get_supported_versions::Response>> {
    let versions = SUPPORTED_VERSIONS.iter().map(|v| (*v).to_owned()).collect();
    let mut response = get_supported_versions::Response::new(versions);
    response.unstable_features = UNSTABLE_FEATURES
        .iter()
        .map(|feature| ((*feature).to_owned(), true))
        .collect();
    Ok(RumaResponse(response))
}

/// `GET /_matrix/client/v3/capabilities`
pub async fn capabilities(
    State(services): State<AppState>,
    request: Ruma<get_capabilities::v3::Request>,
) -> Result<Json<Value>> {
    request.session()?;
    let available: serde_json::Map<String, Value> = services
        .supported_room_versions()
        .into_iter()
        .map(|version| (version.to_string(), json!("stable")))
        .collect();
    Ok(Json(json!({
        "capabilities": {
            "m.change_password": { "enabled": true },
            "m.room_versions": {
                "default": services.config.default_room_version,
                "available": available,
            },
            "m.set_displayname": { "enabled": true },
            "m.set_avatar_url": { "enabled": true },
            "m.3pid_changes": { "enabled": false },
            "m.get_login_token": { "enabled": false },
        }
    })))
}

/// `GET /.well-known/matrix/client`, when `well_known.client` is configured.
pub async fn well_known_client(
    State(services): State<AppState>,
    _: Ruma<discover_homeserver::Request>,
) -> Result<RumaResponse<discover_homeserver::Response>> {
    let base_url = services
        .config
        .well_known
        .client
        .clone()
        .ok_or_else(|| Error::not_found("No client discovery information is configured"))?;
    let homeserver = discover_homeserver::HomeserverInfo::new(base_url);
    Ok(RumaResponse(discover_homeserver::Response::new(homeserver)))
}

/// `GET /.well-known/matrix/server`, when `well_known.server` is configured.
pub async fn well_known_server(State(services): State<AppState>) -> Result<Json<Value>> {
    let server = services
        .config
        .well_known
        .server
        .clone()
        .ok_or_else(|| Error::not_found("No server delegation is configured"))?;
    Ok(Json(json!({ "m.server": server })))
}

/// `GET /.well-known/matrix/support`, when contacts or a support page are configured.
pub async fn well_known_support(
    State(services): State<AppState>,
    _: Ruma<discover_support::Request>,
) -> Result<RumaResponse<discover_support::Response>> {
    let config = &services.config.well_known;
    if config.support_contacts.is_empty() && config.support_page.is_none() {
        return Err(Error::not_found("No support information is configured"));
    }
    let mut contacts = Vec::new();
    for contact in &config.support_contacts {
        let role = discover_support::ContactRole::from(contact.role.as_str());
        let mut entry = match (&contact.matrix_id, &contact.email_address) {
            (Some(id), _) => {
                let id = ruma::UserId::parse(id)
                    .map_err(|e| Error::internal(format!("well_known.support_contacts: {e}")))?;
                discover_support::Contact::with_matrix_id(role, id)
            }
            (None, Some(email)) => {
                discover_support::Contact::with_email_address(role, email.clone())
            }
            (None, None) => continue,
        };
        if contact.matrix_id.is_some() {
            entry.email_address = contact.email_address.clone();
        }
        contacts.push(entry);
    }
    let mut response = discover_support::Response::with_contacts(contacts);
    response.support_page = config.support_page.clone();
    Ok(RumaResponse(response))
}
