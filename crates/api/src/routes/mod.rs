//! The routes: one module per resource, each owning its router fragment and its request
//! and response types. Access is checked by the extractors of `crate::access` before a
//! handler runs; errors are problem responses (`crate::error`).

pub mod admin;
pub mod donations;
pub mod donors;
mod input;
pub mod organ;
pub mod patients;
pub mod requests;
pub mod searches;

use axum::Router;

use crate::AppState;

/// Every route of the API.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(admin::router())
        .merge(donors::router())
        .merge(patients::router())
        .merge(searches::router())
        .merge(requests::router())
        .merge(donations::router())
        .merge(organ::router())
}
