//! The internal HTTP API: versioned JSON resources under `/v1`, bearer tokens with roles,
//! `application/problem+json` errors, OpenAPI at `/openapi.json` and Swagger UI at `/docs`;
//! and the web pages for people at `/` (`web`), which act through the same API.
//!
//! The server owns the matching index: it is loaded from the registry at start, and every
//! write that changes a donor returns what that means for the index (`registry::Indexed`),
//! applied before the response goes out, so a new donor is searchable, and a withdrawn one
//! gone, as soon as the write returns.

pub mod access;
pub mod admission;
pub mod auth;
pub mod error;
pub mod extract;
pub mod follow;
pub mod jobs;
pub mod metrics;
pub mod openapi;
pub mod routes;
pub mod server;
pub mod state;
pub mod stored_run;
pub mod web;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::http::{Request, StatusCode};
use axum::middleware;
use axum::response::IntoResponse;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::RequestBodyDeadlineLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;

pub use crate::admission::{Admission, CONCURRENCY_LIMIT, PER_CLIENT_LIMIT};
use crate::error::ApiError;
pub use crate::openapi::ApiDoc;
pub use crate::server::serve;
pub use crate::state::{AppState, IndexLoad, SearchSlots, Timeouts};

/// Largest request body accepted (413 beyond).
pub const BODY_LIMIT: usize = 256 * 1024;

/// The whole application: routes, docs, limits, request ids and tracing.
pub fn app(state: AppState) -> Router {
    // A request (its body read included) that takes longer is answered 503.
    let timeout = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(|e: tower::BoxError| async move {
            if e.is::<tower::timeout::error::Elapsed>() {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the request took too long")
            } else {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
            .into_response()
        }))
        .timeout(state.timeouts.request);
    // The pages act through the API's own routes, in process (`web::api`).
    let api = web::api::Api::new(routes::router().with_state(state.clone()));
    Router::new()
        .merge(routes::router())
        .merge(web::router().layer(axum::Extension(api)).layer(middleware::map_response(web::page_headers)))
        .merge(
            utoipa_swagger_ui::SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()),
        )
        .fallback(|| async { ApiError::not_found("route") })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        // A body that has not all arrived in time fails its read: a 408 problem.
        .layer(RequestBodyDeadlineLayer::new(state.timeouts.body))
        .layer(timeout)
        // `Router::layer` wraps each route on its own: the counts live in the shared
        // `Admission`, so the limits hold for the whole server.
        .layer(middleware::from_fn_with_state(
            state.admission.clone(),
            admission::admit,
        ))
        .layer(middleware::map_response(admission::retry_after))
        .layer(middleware::from_fn_with_state(state.clone(), metrics::count))
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
        .layer(middleware::map_request(admission::sanitise_request_id))
        .with_state(state)
}
