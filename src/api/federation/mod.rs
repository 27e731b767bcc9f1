//! Server-server API handlers: the routes of the federation listener (its transport, plain or
//! TLS, is `crate::listener`). Federation is not implemented yet, so there are no handlers.

use std::time::Duration;

use axum::{Router, response::Response};
use tower_http::trace::TraceLayer;
use tracing::Span;

/// The federation listener's routes. Federation is not implemented yet, so every path answers
/// the spec's `404 M_UNRECOGNIZED`, whatever the method: remote servers learn at once that
/// this server does not federate instead of waiting for requests that cannot succeed.
pub fn router() -> Router {
    Router::new().fallback(super::unrecognized).layer(
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
