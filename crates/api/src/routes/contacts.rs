//! Retention: contact attempts per donor (its station or a case manager), each donor's last
//! successful contact, and the reconfirmation list. The TU/UC rule is the registry's.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use registry::{ContactHistory, ContactOutcome, Indexed, NewContact, Page, ReconfirmationItem};
use serde::Deserialize;
use utoipa::ToSchema;

use super::input::{ApiJson, ApiResult, ListQuery, page_request};
use crate::AppState;
use crate::access::{Allowed, DonorAccess, StationsAndCaseManagers};
use crate::error::Problem;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/donors/{id}/contacts",
            post(record_contact).get(contact_history),
        )
        .route("/v1/retention/reconfirmation", get(reconfirmation_list))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ContactIn {
    /// `YYYY-MM-DD`, not after today.
    pub attempted_on: String,
    /// phone, sms, wechat, email, visit
    pub channel: String,
    /// reached, no_answer, wrong_number, declined
    pub outcome: String,
    #[serde(default)]
    pub note: Option<String>,
}

/// Record an attempt to reach a donor (its station, or a case manager). Failed attempts in
/// a row past the configured number make an available donor TU/UC; reaching a TU/UC donor
/// makes them AV again (declining: TU/PR). The answer says what changed.
#[utoipa::path(post, path = "/v1/donors/{id}/contacts", params(("id" = i64, Path)), request_body = ContactIn,
    responses((status = 201, description = "the attempt, the donor's last contact, failures since, and any status change"), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn record_contact(
    State(state): State<AppState>,
    DonorAccess { caller, donor, .. }: DonorAccess<StationsAndCaseManagers>,
    ApiJson(c): ApiJson<ContactIn>,
) -> ApiResult<(StatusCode, Json<ContactOutcome>)> {
    let Indexed { value, index } = state
        .registry
        .record_contact(
            donor.id,
            &NewContact {
                attempted_on: c.attempted_on,
                channel: c.channel,
                outcome: c.outcome,
                note: c.note,
            },
            &caller.actor(),
        )
        .await?;
    state.update_index(index)?;
    Ok((StatusCode::CREATED, Json(value)))
}

/// A donor's contact attempts (newest first), last successful contact and failures since.
#[utoipa::path(get, path = "/v1/donors/{id}/contacts", params(("id" = i64, Path)),
    responses((status = 200, description = "the contact history"), (status = 403, body = Problem)))]
pub async fn contact_history(
    State(state): State<AppState>,
    DonorAccess { caller, donor, .. }: DonorAccess<StationsAndCaseManagers>,
) -> ApiResult<Json<ContactHistory>> {
    Ok(Json(
        state
            .registry
            .contact_history(donor.id, &caller.actor())
            .await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ReconfirmationQuery {
    /// Not reached for this many years (default: the registry's setting, 2).
    pub years: Option<u32>,
    /// A case manager may ask for one station's; a station sees only its own.
    pub station: Option<String>,
    pub cursor: Option<String>,
    /// 1–500 (default 50).
    pub limit: Option<u32>,
}

/// Listed donors not reached for N years: the reconfirmation list (no identity data).
#[utoipa::path(get, path = "/v1/retention/reconfirmation", params(ReconfirmationQuery),
    responses((status = 200, description = "`{items, next_cursor}`"), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn reconfirmation_list(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<StationsAndCaseManagers>,
    query: ListQuery<ReconfirmationQuery>,
) -> ApiResult<Json<Page<ReconfirmationItem>>> {
    let Query(q) = query?;
    Ok(Json(
        state
            .registry
            .reconfirmation_list(
                &caller.actor(),
                q.station.as_deref(),
                q.years,
                &page_request(q.cursor, q.limit),
            )
            .await?,
    ))
}
