//! Consents per scope (registry operations §4): recorded by the donor's station or, for
//! the case scopes, by a case manager; withdrawn at any stage, with warnings on the case.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use registry::{ConsentInput, Indexed};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::input::{ApiJson, ApiResult};
use crate::AppState;
use crate::access::{DonorAccess, StationsAndCaseManagers};
use crate::error::Problem;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/donors/{id}/consents",
            post(give_consent).get(list_consents),
        )
        .route(
            "/v1/donors/{id}/consents/{scope}/withdrawal",
            post(withdraw_consent),
        )
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ConsentIn {
    /// recruitment, confirmatory_typing, workup, follow_up_contact, research, international_sharing
    pub scope: String,
    pub form_version: String,
    pub note: Option<String>,
}

/// Record a consent: the donor's own station (any scope), or a case manager
/// (confirmatory typing, workup, follow-up contact) for a donor in an open case; recruitment
/// consent lists the donor.
#[utoipa::path(post, path = "/v1/donors/{id}/consents", params(("id" = i64, Path)), request_body = ConsentIn,
    responses((status = 201, description = "consent id"), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn give_consent(
    State(state): State<AppState>,
    DonorAccess { caller, donor, .. }: DonorAccess<StationsAndCaseManagers>,
    ApiJson(c): ApiJson<ConsentIn>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let id = donor.id;
    let Indexed {
        value: consent_id,
        index,
    } = state
        .registry
        .give_consent(
            id,
            &c.scope,
            &ConsentInput {
                form_version: c.form_version,
                note: c.note,
            },
            &caller.actor(),
        )
        .await?;
    state.update_index(index)?;
    Ok((StatusCode::CREATED, Json(json!({"id": consent_id}))))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct WithdrawalIn {
    pub reason: Option<String>,
}

/// Withdraw a consent (its own station, or a case manager for a donor in an open case):
/// allowed at every stage. Withdrawing recruitment consent takes the donor out of search
/// before this returns; a withdrawal during an open workup returns warnings (loud after
/// G-CSF start) that are also recorded on the case.
#[utoipa::path(post, path = "/v1/donors/{id}/consents/{scope}/withdrawal", params(("id" = i64, Path), ("scope" = String, Path)),
    request_body = WithdrawalIn, responses((status = 200, description = "warnings"), (status = 422, body = Problem)))]
pub async fn withdraw_consent(
    State(state): State<AppState>,
    DonorAccess { caller, donor, .. }: DonorAccess<StationsAndCaseManagers>,
    Path((_id, scope)): Path<(i64, String)>,
    ApiJson(w): ApiJson<WithdrawalIn>,
) -> ApiResult<Json<Value>> {
    let id = donor.id;
    let Indexed {
        value: warnings,
        index,
    } = state
        .registry
        .withdraw_consent(id, &scope, &caller.actor(), w.reason.as_deref())
        .await?;
    state.update_index(index)?;
    Ok(Json(json!({"warnings": warnings})))
}

/// A donor's consent records (its station, case managers).
#[utoipa::path(get, path = "/v1/donors/{id}/consents", params(("id" = i64, Path)), responses((status = 200, description = "consents")))]
pub async fn list_consents(
    State(state): State<AppState>,
    DonorAccess { donor, .. }: DonorAccess<StationsAndCaseManagers>,
) -> ApiResult<Json<Value>> {
    let id = donor.id;
    Ok(Json(
        json!({"consents": state.registry.consents(id).await?}),
    ))
}
