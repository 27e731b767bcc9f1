//! Server-server API handlers: the routes of the federation listener (its transport, plain or
//! TLS, is `crate::listener`). Every route but the key and version endpoints requires an
//! `X-Matrix` signature, checked by the extractor before a handler runs; paths not served
//! answer the spec's `404 M_UNRECOGNIZED`.

mod events;
mod keys;
mod membership;
mod transactions;

use std::time::Duration;

use axum::{Router, response::Response};
use tower_http::trace::TraceLayer;
use tracing::Span;

use super::{AppState, RouterExt};

/// The federation listener's routes.
pub fn router(services: AppState) -> Router {
    Router::new()
        .ruma(keys::server_keys)
        .ruma(keys::server_version)
        .ruma(membership::make_join)
        .ruma(membership::send_join)
        .ruma(transactions::send)
        .ruma(events::get_event)
        .ruma(events::state_ids)
        .fallback(super::unrecognized)
        .method_not_allowed_fallback(super::unrecognized)
        .with_state(services)
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &http::Request<_>| {
                    tracing::info_span!("federation", method = %request.method(), path = %request.uri().path())
                })
                .on_request(())
                .on_response(|response: &Response, latency: Duration, _span: &Span| {
                    tracing::info!(status = response.status().as_u16(), duration_ms = latency.as_secs_f64() * 1000.0, "response");
                })
                .on_failure(()),
        )
}
