//! HTTP layer: the client router (every route in one readable list), the ruma
//! request/response glue, CORS, per-request tracing spans, and the JSON errors for unknown
//! paths and wrong methods. The federation listener's routes are in [`federation`].

pub mod admin;
pub mod client;
pub mod extract;
pub mod federation;
pub mod media;

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{MatchedPath, State},
    response::{IntoResponse, Response},
    routing::{MethodFilter, on},
};
use bytes::BytesMut;
use http::{Method, StatusCode, header};
use ruma::api::{
    IncomingRequest, OutgoingResponse, OutgoingResponseExt, path_builder::PathBuilder,
};
use tower_http::{
    catch_panic::CatchPanicLayer,
    cors::{Any, CorsLayer},
    trace::TraceLayer,
};
use tracing::Span;

pub use extract::Ruma;

use crate::{error::Error, service::Services};

/// What every handler receives as state.
pub type AppState = Arc<Services>;

/// A ruma response turned into an HTTP response.
pub struct RumaResponse<T>(pub T);

impl<T: OutgoingResponse> IntoResponse for RumaResponse<T> {
    fn into_response(self) -> Response {
        match self.0.try_into_http_response::<BytesMut>() {
            Ok(response) => response
                .map(|body| axum::body::Body::from(body.freeze()))
                .into_response(),
            Err(e) => Error::internal(format!("response serialization: {e}")).into_response(),
        }
    }
}

/// Registers a handler under every path (r0, v3, unstable…) ruma knows for its request type.
pub trait RumaHandler<Req>: Sized {
    fn add_to(self, router: Router<AppState>) -> Router<AppState>;
}

impl<Req, F, Fut, Resp> RumaHandler<Req> for F
where
    Req: IncomingRequest + Send + 'static,
    Req::Authentication: extract::AuthRequirement,
    F: FnOnce(State<AppState>, Ruma<Req>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Resp, Error>> + Send + 'static,
    Resp: IntoResponse,
{
    #[allow(clippy::expect_used, reason = "startup: router construction")]
    fn add_to(self, router: Router<AppState>) -> Router<AppState> {
        let filter =
            MethodFilter::try_from(Req::METHOD).expect("ruma endpoints use standard methods");
        Req::PATH_BUILDER.all_paths().fold(router, |router, path| {
            let router = router.route(path, on(filter, self.clone()));
            // State endpoints with an empty state key are also called without the last
            // segment (`…/state/m.room.name` and `…/state/m.room.name/`).
            match path.strip_suffix("/{state_key}") {
                Some(short) => router
                    .route(short, on(filter, self.clone()))
                    .route(&format!("{short}/"), on(filter, self.clone())),
                None => router,
            }
        })
    }
}

/// `router.ruma(handler)`: adds a ruma-typed handler under all of its paths.
pub trait RouterExt {
    fn ruma<Req, H: RumaHandler<Req>>(self, handler: H) -> Self;
}

impl RouterExt for Router<AppState> {
    fn ruma<Req, H: RumaHandler<Req>>(self, handler: H) -> Self {
        handler.add_to(self)
    }
}

/// Every route Hearth serves.
#[allow(
    deprecated,
    reason = "the legacy media endpoints are served on purpose"
)]
pub fn router(services: AppState) -> Router {
    use axum::routing::{get, post, put};
    use client::{
        account, account_data, backup, devices, directory, discovery, ephemeral, events, keys,
        profile, push_rules, pushers, relations, reporting, rooms, search, session, sync,
        user_directory,
    };
    use media::MediaRouterExt;
    use ruma::api::client::{
        authenticated_media as v1_media,
        media::{self as v3_media, create_content, create_content_async},
    };
    let routes = Router::new()
        // Discovery and capabilities
        .ruma(discovery::versions)
        .ruma(discovery::capabilities)
        .route(
            "/.well-known/matrix/client",
            axum::routing::get(discovery::well_known_client),
        )
        .route(
            "/.well-known/matrix/server",
            axum::routing::get(discovery::well_known_server),
        )
        .route(
            "/.well-known/matrix/support",
            axum::routing::get(discovery::well_known_support),
        )
        // Sessions
        .ruma(session::login_types)
        .ruma(session::login)
        .ruma(session::logout)
        .ruma(session::logout_all)
        .ruma(session::refresh)
        // Accounts
        .ruma(account::register)
        .ruma(account::username_available)
        .ruma(account::registration_token_validity)
        .ruma(account::whoami)
        .ruma(account::change_password)
        .ruma(account::deactivate)
        // Devices
        .ruma(devices::list)
        .ruma(devices::get)
        .ruma(devices::update)
        .ruma(devices::delete)
        .ruma(devices::delete_many)
        // Profiles
        .ruma(profile::get_profile)
        .ruma(profile::get_displayname)
        .ruma(profile::set_displayname)
        .ruma(profile::get_avatar_url)
        .ruma(profile::set_avatar_url)
        // Sync
        .ruma(sync::sync)
        .ruma(sync::create_filter)
        .ruma(sync::get_filter)
        .route(
            "/_hearth/client/v1/sync/ws",
            axum::routing::get(client::sync_ws::sync_ws),
        )
        .ruma(ephemeral::typing)
        .ruma(ephemeral::receipt)
        .ruma(ephemeral::read_markers)
        .ruma(ephemeral::send_to_device)
        .ruma(ephemeral::put_presence)
        .ruma(ephemeral::get_presence)
        // Account data and tags
        .ruma(account_data::set_global)
        .ruma(account_data::get_global)
        .ruma(account_data::set_room)
        .ruma(account_data::get_room)
        .route(
            "/_matrix/client/unstable/org.matrix.msc3391/user/{user_id}/account_data/{kind}",
            axum::routing::delete(account_data::delete_global),
        )
        .route(
            "/_matrix/client/unstable/org.matrix.msc3391/user/{user_id}/rooms/{room_id}/account_data/{kind}",
            axum::routing::delete(account_data::delete_room),
        )
        .ruma(account_data::get_tags)
        .ruma(account_data::put_tag)
        .ruma(account_data::delete_tag)
        // End-to-end encryption: keys, cross-signing, key backup
        .ruma(keys::upload)
        .ruma(keys::query)
        .ruma(keys::claim)
        .ruma(keys::changes)
        .ruma(keys::upload_signing_keys)
        .ruma(keys::upload_signatures)
        .ruma(backup::create_version)
        .ruma(backup::latest_version)
        .ruma(backup::get_version)
        .ruma(backup::update_version)
        .ruma(backup::delete_version)
        .ruma(backup::put_keys)
        .ruma(backup::put_room_keys)
        .ruma(backup::put_session_key)
        .ruma(backup::get_keys)
        .ruma(backup::get_room_keys)
        .ruma(backup::get_session_key)
        .ruma(backup::delete_keys)
        .ruma(backup::delete_room_keys)
        .ruma(backup::delete_session_key)
        // Push rules, pushers and notifications
        .ruma(push_rules::get_all)
        .ruma(push_rules::get_global)
        .ruma(push_rules::get_rule)
        .ruma(push_rules::set_rule)
        .ruma(push_rules::delete_rule)
        .ruma(push_rules::get_enabled)
        .ruma(push_rules::set_enabled)
        .ruma(push_rules::get_actions)
        .ruma(push_rules::set_actions)
        .ruma(pushers::get)
        .ruma(pushers::set)
        .ruma(pushers::notifications)
        // Rooms and membership
        .ruma(rooms::create)
        .ruma(rooms::joined)
        .ruma(rooms::join_by_id_or_alias)
        .ruma(rooms::join_by_id)
        .ruma(rooms::invite)
        .ruma(rooms::leave)
        .ruma(rooms::kick)
        .ruma(rooms::ban)
        .ruma(rooms::unban)
        .ruma(rooms::forget)
        .ruma(rooms::members)
        .ruma(rooms::joined_members)
        .ruma(rooms::knock)
        .ruma(rooms::upgrade)
        // Events
        .ruma(events::send)
        .ruma(events::put_state)
        .ruma(events::get_state_event)
        .ruma(events::get_state)
        .ruma(events::get_event)
        .ruma(events::messages)
        .ruma(events::redact)
        .ruma(events::context)
        .ruma(relations::all)
        .ruma(relations::by_rel_type)
        .ruma(relations::by_rel_and_event_type)
        .ruma(relations::threads)
        .ruma(events::timestamp_to_event)
        // Reports and the user directory
        .ruma(reporting::report_event)
        .ruma(reporting::report_room)
        .ruma(reporting::report_user)
        .ruma(user_directory::search)
        .ruma(search::search)
        // Aliases and directory
        .ruma(directory::put_alias)
        .ruma(directory::get_alias)
        .ruma(directory::delete_alias)
        .ruma(directory::room_aliases)
        .ruma(directory::get_visibility)
        .ruma(directory::set_visibility)
        .ruma(directory::public_rooms)
        .ruma(directory::public_rooms_filtered)
        // Media repository (uploads stream their bodies: no ruma extractor)
        .ruma(media::config)
        .ruma(media::config_legacy)
        .ruma(media::create)
        .on_ruma_paths::<create_content::v3::Request>(post(media::upload::upload))
        .on_ruma_paths::<create_content_async::v3::Request>(put(media::upload::upload_reserved))
        .ruma(media::download::get)
        .with_trailing_slash::<v1_media::get_content::v1::Request>(get(media::download::get))
        .ruma(media::download::get_named)
        .ruma(media::download::get_legacy)
        .with_trailing_slash::<v3_media::get_content::v3::Request>(get(media::download::get_legacy))
        .ruma(media::download::get_legacy_named)
        .ruma(media::download::get_thumbnail)
        .ruma(media::download::get_thumbnail_legacy)
        .ruma(media::preview)
        .ruma(media::preview_legacy)
        // Synapse-compatible admin API
        .route(
            "/_synapse/admin/v1/register",
            axum::routing::get(admin::register::nonce).post(admin::register::register),
        )
        .route(
            "/_synapse/admin/v1/send_server_notice",
            post(admin::server_notice::send),
        )
        .route(
            "/_synapse/admin/v1/send_server_notice/{txn_id}",
            put(admin::server_notice::send_with_txn),
        )
        .fallback(unrecognized)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(services);

    routes
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(cors())
        .layer(
        TraceLayer::new_for_http()
            .make_span_with(|request: &http::Request<_>| {
                let template = request
                    .extensions()
                    .get::<MatchedPath>()
                    .map_or("<unmatched>", MatchedPath::as_str)
                    .to_owned();
                tracing::info_span!("request", method = %request.method(), path = %template, status = tracing::field::Empty)
            })
            .on_request(())
            .on_response(|response: &Response, latency: Duration, span: &Span| {
                span.record("status", response.status().as_u16());
                tracing::info!(status = response.status().as_u16(), duration_ms = latency.as_secs_f64() * 1000.0, "response");
            })
            .on_failure(()),
    )
}

/// A handler that panicked: the panic is a bug, logged as one; the client gets the spec's
/// internal error instead of a dropped connection.
fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    Error::internal(format!("handler panicked: {message}")).into_response()
}

/// CORS as the client-server spec asks: any origin, the methods and headers clients use.
fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            header::HeaderName::from_static("x-requested-with"),
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
        ])
}

/// The spec's answer to a path no route knows.
pub(crate) async fn unrecognized() -> Error {
    Error::unrecognized(StatusCode::NOT_FOUND, "Unrecognized request")
}

async fn method_not_allowed() -> Error {
    Error::unrecognized(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method not allowed for this endpoint",
    )
}
