//! The routes: one module per resource, each owning its router fragment and its request
//! and response types. Access is checked by the extractors of `crate::access` before a
//! handler runs; errors are problem responses (`crate::error`).

pub mod admin;
pub mod campaigns;
pub mod care;
pub mod consents;
pub mod contacts;
pub mod donations;
pub mod donors;
pub mod holidays;
mod input;
pub mod jobs;
pub mod organ;
pub mod organ_cases;
pub mod patients;
pub mod people;
pub mod reports;
pub mod requests;
pub mod samples;
pub mod searches;
pub mod typings;

use axum::Router;

use crate::AppState;

/// Every route of the API.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(admin::router())
        .merge(donors::router())
        .merge(samples::router())
        .merge(consents::router())
        .merge(patients::router())
        .merge(people::router())
        .merge(searches::router())
        .merge(requests::router())
        .merge(donations::router())
        .merge(organ::router())
        .merge(organ_cases::router())
        .merge(contacts::router())
        .merge(care::router())
        .merge(campaigns::router())
        .merge(reports::router())
        .merge(holidays::router())
        .merge(jobs::router())
        .merge(typings::router())
}
