//! The internal HTTP API: versioned JSON resources under `/v1`, bearer tokens with roles,
//! `application/problem+json` errors, OpenAPI at `/openapi.json` and Swagger UI at `/docs`.
//!
//! The server owns the matching index: it is loaded from the registry at start, and every
//! write that changes a donor returns what that means for the index (`registry::Indexed`),
//! applied before the response goes out, so a new donor is searchable, and a withdrawn one
//! gone, as soon as the write returns.

pub mod access;
pub mod auth;
pub mod error;
pub mod extract;
pub mod jobs;
pub mod openapi;
pub mod routes;
pub mod state;
pub mod stored_run;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::http::{Request, StatusCode};
use axum::response::IntoResponse;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;

use crate::error::ApiError;
pub use crate::openapi::ApiDoc;
pub use crate::state::{AppState, SearchSlots};

/// Largest request body accepted (413 beyond).
pub const BODY_LIMIT: usize = 256 * 1024;
/// Requests served at once; more are refused with 503 instead of queueing without bound.
pub const CONCURRENCY_LIMIT: usize = 512;

/// The whole application: routes, docs, limits, request ids and tracing.
pub fn app(state: AppState) -> Router {
    let overload = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(|e: tower::BoxError| async move {
            if e.is::<tower::load_shed::error::Overloaded>() {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the server is at capacity; retry shortly",
                )
            } else if e.is::<tower::timeout::error::Elapsed>() {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the request took too long")
            } else {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
            .into_response()
        }))
        .load_shed()
        .concurrency_limit(CONCURRENCY_LIMIT)
        .timeout(Duration::from_secs(30));
    Router::new()
        .merge(routes::router())
        .merge(
            utoipa_swagger_ui::SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()),
        )
        .fallback(|| async { ApiError::not_found("route") })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(overload)
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                // Method and path only: paths carry ids, never identity data.
                tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path())
            }),
        )
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// Serve until `shutdown` resolves, then drain the requests in flight.
pub async fn serve(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr: SocketAddr = listener.local_addr()?;
    tracing::info!(%addr, "serving");
    // A make-service hands each connection a clone of one shared router; serving the
    // `Router` itself rebuilds every route per connection (axum's `with_state` on a shared
    // router), which was a tenth of the request threads' time under load.
    axum::serve(listener, app(state).into_make_service())
        .with_graceful_shutdown(shutdown)
        .await
}
