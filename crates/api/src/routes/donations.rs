//! Donations and the donor follow-ups they schedule.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use registry::{DonationRecord, FollowupRecord, Indexed, Page};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::input::{ApiJson, ApiResult, ListQuery, PathId, page_request};
use crate::AppState;
use crate::access::{Allowed, CaseManagers, CaseReaders};
use crate::error::{ApiError, Problem};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/donations", post(record_donation).get(list_donations))
        .route("/v1/followups", get(list_followups))
        .route("/v1/followups/due", get(followups_due))
        .route("/v1/followups/{id}", post(record_followup))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct DonationIn {
    pub donor_id: i64,
    pub patient_id: Option<i64>,
    /// pbsc, bone_marrow, dli, …
    pub product: String,
    pub donated_on: String,
    pub station: Option<String>,
}

/// Record a donation (case manager); the follow-up schedule is created with it.
#[utoipa::path(post, path = "/v1/donations", request_body = DonationIn, responses((status = 201, description = "donation id"), (status = 422, body = Problem)))]
pub async fn record_donation(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<CaseManagers>,
    ApiJson(d): ApiJson<DonationIn>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let Indexed { value: id, index } = state
        .registry
        .record_donation(
            d.donor_id,
            d.patient_id,
            &d.product,
            &d.donated_on,
            d.station.as_deref(),
            &caller.actor(),
        )
        .await?;
    state.update_index(index)?;
    Ok((StatusCode::CREATED, Json(json!({"id": id}))))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct DueQuery {
    #[serde(default)]
    pub overdue: bool,
    /// `YYYY-MM-DD` (default today).
    pub on: Option<String>,
}

/// Follow-ups due (or overdue) (case manager).
#[utoipa::path(get, path = "/v1/followups/due", params(DueQuery), responses((status = 200, description = "follow-ups")))]
pub async fn followups_due(
    State(state): State<AppState>,
    _: Allowed<CaseManagers>,
    query: Result<Query<DueQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = query?;
    let day = match q.on.as_deref() {
        None => state.today(),
        Some(d) => matching::model::parse_birth_date(d)
            .map_err(|r| ApiError::field(StatusCode::BAD_REQUEST, "on", r))?
            as i64,
    };
    let due = state.registry.followups_due(day, q.overdue).await?;
    let items: Vec<Value> = due.into_iter().map(|(id, donor, label, due_on)| json!({"id": id, "donor_id": donor, "label": label, "due_on": due_on})).collect();
    Ok(Json(json!({"followups": items})))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct FollowupIn {
    /// done or missed
    pub state: String,
    pub on: String,
    pub outcome: Option<String>,
    pub adverse_event: Option<String>,
}

/// Record a follow-up (case manager).
#[utoipa::path(post, path = "/v1/followups/{id}", params(("id" = i64, Path)), request_body = FollowupIn, responses((status = 200, description = "recorded"), (status = 409, body = Problem)))]
pub async fn record_followup(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<CaseManagers>,
    PathId(id): PathId,
    ApiJson(f): ApiJson<FollowupIn>,
) -> ApiResult<Json<Value>> {
    state
        .registry
        .record_followup(
            id,
            &f.state,
            &f.on,
            f.outcome.as_deref(),
            f.adverse_event.as_deref(),
            &caller.actor(),
        )
        .await?;
    Ok(Json(json!({"id": id, "state": f.state})))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct DonationListQuery {
    /// Donations dated in this year.
    pub year: Option<i32>,
    pub donor_id: Option<i64>,
    pub cursor: Option<String>,
    /// 1–500 (default 50).
    pub limit: Option<u32>,
}

/// Donations, of a year or all (coordinator, case manager, auditor).
#[utoipa::path(get, path = "/v1/donations", params(DonationListQuery),
    responses((status = 200, description = "`{items, next_cursor}` of donations"), (status = 422, body = Problem)))]
pub async fn list_donations(
    State(state): State<AppState>,
    _: Allowed<CaseReaders>,
    query: ListQuery<DonationListQuery>,
) -> ApiResult<Json<Page<DonationRecord>>> {
    let Query(q) = query?;
    Ok(Json(
        state
            .registry
            .list_donations(q.year, q.donor_id, &page_request(q.cursor, q.limit))
            .await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct FollowupListQuery {
    /// due (by today), overdue (before today), scheduled (later), done, missed.
    pub state: String,
    pub cursor: Option<String>,
    /// 1–500 (default 50).
    pub limit: Option<u32>,
}

/// Follow-up checks by state, in the registry's local "today" (case manager): due and
/// overdue lists leave out donors who withdrew follow-up contact consent.
#[utoipa::path(get, path = "/v1/followups", params(FollowupListQuery),
    responses((status = 200, description = "`{items, next_cursor}` of follow-ups"), (status = 422, body = Problem)))]
pub async fn list_followups(
    State(state): State<AppState>,
    _: Allowed<CaseManagers>,
    query: ListQuery<FollowupListQuery>,
) -> ApiResult<Json<Page<FollowupRecord>>> {
    let Query(q) = query?;
    Ok(Json(
        state
            .registry
            .list_followups(&q.state, &page_request(q.cursor, q.limit))
            .await?,
    ))
}
