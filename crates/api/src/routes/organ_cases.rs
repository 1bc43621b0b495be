//! Death-donation cases, typed (organ, body, cornea): recorded by case managers with the
//! family's structured consent and the Red Cross witnesses, then completed or cancelled.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use registry::{CaseCompletion, FamilyConsent, NewOrganCase, OrganCase, OrganCaseFilter, Page};
use serde::Deserialize;
use utoipa::ToSchema;

use super::input::{ApiJson, ApiResult, ListQuery, PathId, page_request};
use crate::AppState;
use crate::access::{Allowed, CaseManagers, CaseReadersAndAdmins};
use crate::error::Problem;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/organ-cases",
            post(record_organ_case).get(list_organ_cases),
        )
        .route("/v1/organ-cases/{id}", get(get_organ_case))
        .route("/v1/organ-cases/{id}/completion", post(complete_organ_case))
        .route("/v1/organ-cases/{id}/cancellation", post(cancel_organ_case))
}

/// The family's consent: who (spouse, adult_children, parents, jointly), in writing, when.
#[derive(Debug, Deserialize, ToSchema)]
pub struct FamilyConsentIn {
    pub relations: Vec<String>,
    pub in_writing: bool,
    /// `YYYY-MM-DD`.
    pub consented_on: String,
    pub note: Option<String>,
}

/// What a completed case recovered.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CompletionIn {
    /// `YYYY-MM-DD`.
    pub completed_on: String,
    /// Organ or `cornea` → count (kidney, lung, cornea: 1–2; others 1).
    #[serde(default)]
    pub recovered: BTreeMap<String, i64>,
    #[serde(default)]
    pub recipients_helped: i64,
}

impl From<CompletionIn> for CaseCompletion {
    fn from(c: CompletionIn) -> CaseCompletion {
        CaseCompletion {
            completed_on: c.completed_on,
            recovered: c.recovered,
            recipients_helped: c.recipients_helped,
        }
    }
}

/// A death-donation case.
#[derive(Debug, Deserialize, ToSchema)]
pub struct OrganCaseIn {
    /// The deceased's registration of intent, when there is one (must not be revoked).
    pub registration_id: Option<i64>,
    /// organ, body, cornea
    pub kind: String,
    /// `YYYY-MM-DD`.
    pub died_on: String,
    pub family_consent: FamilyConsentIn,
    /// One or more Red Cross witnesses.
    pub witnesses: Vec<String>,
    /// The OPO, hospital or (body donation) medical school.
    pub opo: String,
    /// The Red Cross station recording it; default: the registration's.
    pub station: Option<String>,
    /// Default: the station's region.
    pub region: Option<String>,
    /// Recorded already completed.
    pub completion: Option<CompletionIn>,
}

/// Record a death-donation case (case managers). Refused without the family's written
/// consent or a witness.
#[utoipa::path(post, path = "/v1/organ-cases", request_body = OrganCaseIn,
    responses((status = 201, description = "the case"), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn record_organ_case(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<CaseManagers>,
    ApiJson(c): ApiJson<OrganCaseIn>,
) -> ApiResult<(StatusCode, Json<OrganCase>)> {
    let id = state
        .registry
        .record_organ_case(
            &NewOrganCase {
                registration_id: c.registration_id,
                kind: c.kind,
                died_on: c.died_on,
                family_consent: FamilyConsent {
                    relations: c.family_consent.relations,
                    in_writing: c.family_consent.in_writing,
                    consented_on: c.family_consent.consented_on,
                    note: c.family_consent.note,
                },
                witnesses: c.witnesses,
                opo: c.opo,
                station: c.station,
                region: c.region,
                completion: c.completion.map(Into::into),
            },
            &caller.actor(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(state.registry.organ_case(id).await?),
    ))
}

/// One case.
#[utoipa::path(get, path = "/v1/organ-cases/{id}", params(("id" = i64, Path)),
    responses((status = 200, description = "the case"), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_organ_case(
    State(state): State<AppState>,
    Allowed { .. }: Allowed<CaseReadersAndAdmins>,
    PathId(id): PathId,
) -> ApiResult<Json<OrganCase>> {
    Ok(Json(state.registry.organ_case(id).await?))
}

/// Complete an open case with what was recovered (case managers).
#[utoipa::path(post, path = "/v1/organ-cases/{id}/completion", params(("id" = i64, Path)), request_body = CompletionIn,
    responses((status = 200, description = "the case"), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn complete_organ_case(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<CaseManagers>,
    PathId(id): PathId,
    ApiJson(c): ApiJson<CompletionIn>,
) -> ApiResult<Json<OrganCase>> {
    Ok(Json(
        state
            .registry
            .complete_organ_case(id, &c.into(), &caller.actor())
            .await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CancellationIn {
    pub reason: String,
}

/// Cancel an open case, with the reason (case managers).
#[utoipa::path(post, path = "/v1/organ-cases/{id}/cancellation", params(("id" = i64, Path)), request_body = CancellationIn,
    responses((status = 200, description = "the case"), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn cancel_organ_case(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<CaseManagers>,
    PathId(id): PathId,
    ApiJson(c): ApiJson<CancellationIn>,
) -> ApiResult<Json<OrganCase>> {
    Ok(Json(
        state
            .registry
            .cancel_organ_case(id, &c.reason, &caller.actor())
            .await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct CaseListQuery {
    /// organ, body, cornea
    pub kind: Option<String>,
    /// open, completed, cancelled
    pub state: Option<String>,
    pub station: Option<String>,
    /// Completed (or, if not completed, died) in this year.
    pub year: Option<i32>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

/// Cases (case managers, auditors, admins).
#[utoipa::path(get, path = "/v1/organ-cases", params(CaseListQuery),
    responses((status = 200, description = "`{items, next_cursor}`"), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn list_organ_cases(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<CaseReadersAndAdmins>,
    query: ListQuery<CaseListQuery>,
) -> ApiResult<Json<Page<OrganCase>>> {
    let Query(q) = query?;
    Ok(Json(
        state
            .registry
            .list_organ_cases(
                &caller.actor(),
                &OrganCaseFilter {
                    kind: q.kind,
                    state: q.state,
                    station: q.station,
                    year: q.year,
                },
                &page_request(q.cursor, q.limit),
            )
            .await?,
    ))
}
