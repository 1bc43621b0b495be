//! Requests for a patient–donor pair (extended and confirmatory typing, reservation,
//! workup) and workup milestones.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use registry::{Indexed, Page, RequestDetail, RequestFilter, RequestRecord};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::input::{ApiJson, ApiResult, ListQuery, PathId, StateIn, page_request};
use crate::AppState;
use crate::access::{Allowed, CaseManagers, CaseReaders, CaseWorkers};
use crate::error::Problem;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/requests", post(open_request).get(list_requests))
        .route("/v1/requests/{id}", get(get_request))
        .route("/v1/requests/{id}/close", post(close_request))
        .route("/v1/requests/{id}/milestones", post(record_milestone))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RequestIn {
    pub patient_id: i64,
    pub donor_id: i64,
    /// extended_typing, confirmatory_typing, reservation, workup
    pub kind: String,
}

/// Open a request for a patient–donor pair (coordinator; case managers open workups).
#[utoipa::path(post, path = "/v1/requests", request_body = RequestIn, responses((status = 201, description = "request id"), (status = 409, body = Problem)))]
pub async fn open_request(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<CaseWorkers>,
    ApiJson(r): ApiJson<RequestIn>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    // Which kinds a role may open is the registry's rule (case managers open workups).
    let Indexed { value: id, index } = state
        .registry
        .open_request(
            r.patient_id,
            r.donor_id,
            &r.kind,
            &caller.actor(),
            state.today(),
        )
        .await?;
    state.update_index(index)?;
    Ok((StatusCode::CREATED, Json(json!({"id": id}))))
}

/// Close a request: done, cancelled or refused.
#[utoipa::path(post, path = "/v1/requests/{id}/close", params(("id" = i64, Path)), request_body = StateIn, responses((status = 200, description = "closed"), (status = 409, body = Problem)))]
pub async fn close_request(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<CaseWorkers>,
    PathId(id): PathId,
    ApiJson(s): ApiJson<StateIn>,
) -> ApiResult<Json<Value>> {
    let index = state
        .registry
        .close_request(id, &s.state, &caller.actor())
        .await?
        .index;
    state.update_index(index)?;
    Ok(Json(json!({"id": id, "state": s.state})))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct MilestoneIn {
    pub milestone: String,
    /// `YYYY-MM-DD`.
    pub on: String,
    pub ok: Option<bool>,
}

/// Record a workup milestone (case manager).
#[utoipa::path(post, path = "/v1/requests/{id}/milestones", params(("id" = i64, Path)), request_body = MilestoneIn, responses((status = 201, description = "recorded"), (status = 409, body = Problem)))]
pub async fn record_milestone(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<CaseManagers>,
    PathId(id): PathId,
    ApiJson(m): ApiJson<MilestoneIn>,
) -> ApiResult<StatusCode> {
    state
        .registry
        .record_milestone(id, &m.milestone, &m.on, m.ok, &caller.actor())
        .await?;
    Ok(StatusCode::CREATED)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct RequestListQuery {
    /// extended_typing, confirmatory_typing, reservation, workup.
    pub kind: Option<String>,
    /// open, done, cancelled, refused.
    pub state: Option<String>,
    pub patient_id: Option<i64>,
    pub donor_id: Option<i64>,
    /// Open reservations whose last day is within this many days of today.
    pub expiring_within_days: Option<u32>,
    pub cursor: Option<String>,
    /// 1–500 (default 50).
    pub limit: Option<u32>,
}

/// Requests by kind, state, patient, donor, or reservations about to expire (coordinator,
/// case manager, auditor).
#[utoipa::path(get, path = "/v1/requests", params(RequestListQuery),
    responses((status = 200, description = "`{items, next_cursor}` of requests"), (status = 422, body = Problem)))]
pub async fn list_requests(
    State(state): State<AppState>,
    _: Allowed<CaseReaders>,
    query: ListQuery<RequestListQuery>,
) -> ApiResult<Json<Page<RequestRecord>>> {
    let Query(q) = query?;
    let filter = RequestFilter {
        kind: q.kind,
        state: q.state,
        patient_id: q.patient_id,
        donor_id: q.donor_id,
        expiring_within_days: q.expiring_within_days,
    };
    Ok(Json(
        state
            .registry
            .list_requests(&filter, &page_request(q.cursor, q.limit))
            .await?,
    ))
}

/// A request with its workup milestones (in the workup's order) and the warnings recorded
/// on the case (coordinator, case manager, auditor).
#[utoipa::path(get, path = "/v1/requests/{id}", params(("id" = i64, Path)),
    responses((status = 200, description = "the request"), (status = 404, body = Problem)))]
pub async fn get_request(
    State(state): State<AppState>,
    _: Allowed<CaseReaders>,
    PathId(id): PathId,
) -> ApiResult<Json<RequestDetail>> {
    Ok(Json(state.registry.request_detail(id).await?))
}
