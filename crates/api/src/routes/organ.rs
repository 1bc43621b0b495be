//! Organ, tissue and whole-body donation: registrations of intent and donation cases.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use registry::{OrganRegistration, Page};

use super::input::{ApiJson, ApiResult, ListQuery, PathId, page_request};
use crate::AppState;
use crate::access::{Allowed, CaseManagers, Stations, StationsAndAdmins};
use crate::error::Problem;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/organ-registrations",
            post(register_organ_donation).get(list_organ_registrations),
        )
        .route(
            "/v1/organ-registrations/{id}",
            post(change_organ_donation).get(get_organ_registration),
        )
        .route(
            "/v1/organ-registrations/{id}/revocation",
            post(revoke_organ_donation),
        )
        .route("/v1/organ-cases", post(record_organ_case))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct OrganIn {
    pub family_name: String,
    pub given_name: String,
    pub national_id: String,
    pub birth_date: String,
    #[serde(default)]
    pub organs: Vec<String>,
    #[serde(default)]
    pub tissues: Vec<String>,
    #[serde(default)]
    pub whole_body: bool,
}

/// Register an organ, tissue or whole-body donation wish (station).
#[utoipa::path(post, path = "/v1/organ-registrations", request_body = OrganIn, responses((status = 201, description = "registration id"), (status = 409, body = Problem)))]
pub async fn register_organ_donation(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<Stations>,
    ApiJson(o): ApiJson<OrganIn>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let organs: Vec<&str> = o.organs.iter().map(String::as_str).collect();
    let tissues: Vec<&str> = o.tissues.iter().map(String::as_str).collect();
    let id = state
        .registry
        .register_organ_donation(
            &o.family_name,
            &o.given_name,
            &o.national_id,
            &o.birth_date,
            &organs,
            &tissues,
            o.whole_body,
            &caller.actor(),
            state.today(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(json!({"id": id}))))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct OrganChangeIn {
    #[serde(default)]
    pub organs: Vec<String>,
    #[serde(default)]
    pub tissues: Vec<String>,
    #[serde(default)]
    pub whole_body: bool,
}

/// Change what an active registration gives (station).
#[utoipa::path(post, path = "/v1/organ-registrations/{id}", params(("id" = i64, Path)), request_body = OrganChangeIn, responses((status = 200, description = "changed"), (status = 404, body = Problem)))]
pub async fn change_organ_donation(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<Stations>,
    PathId(id): PathId,
    ApiJson(o): ApiJson<OrganChangeIn>,
) -> ApiResult<Json<Value>> {
    let organs: Vec<&str> = o.organs.iter().map(String::as_str).collect();
    let tissues: Vec<&str> = o.tissues.iter().map(String::as_str).collect();
    state
        .registry
        .change_organ_donation(id, &organs, &tissues, o.whole_body, &caller.actor())
        .await?;
    Ok(Json(json!({"id": id, "state": "active"})))
}

/// Revoke an organ donation registration (station).
#[utoipa::path(post, path = "/v1/organ-registrations/{id}/revocation", params(("id" = i64, Path)), responses((status = 200, description = "revoked"), (status = 404, body = Problem)))]
pub async fn revoke_organ_donation(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<Stations>,
    PathId(id): PathId,
) -> ApiResult<Json<Value>> {
    state
        .registry
        .revoke_organ_donation(id, &caller.actor())
        .await?;
    Ok(Json(json!({"id": id, "state": "revoked"})))
}

/// A donation case after death.
#[derive(Debug, Deserialize, ToSchema)]
pub struct OrganCaseIn {
    /// The deceased's registration of intent, when there is one (must not be revoked).
    #[serde(default)]
    pub registration_id: Option<i64>,
    /// `YYYY-MM-DD`.
    pub died_on: String,
    /// Who gave the family's written consent (spouse, adult children, parents, jointly).
    pub family_consent: String,
    /// The Red Cross witness of the case.
    pub witness: String,
    #[serde(default)]
    pub outcome: Option<String>,
}

/// Record an organ/tissue/body donation case: family consent and a Red Cross witness are
/// required (case manager).
#[utoipa::path(post, path = "/v1/organ-cases", request_body = OrganCaseIn, responses((status = 201, description = "case id"), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn record_organ_case(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<CaseManagers>,
    ApiJson(c): ApiJson<OrganCaseIn>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let id = state
        .registry
        .record_organ_case(
            c.registration_id,
            &c.died_on,
            &c.family_consent,
            &c.witness,
            c.outcome.as_deref(),
            &caller.actor(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(json!({"id": id}))))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct RegistrationListQuery {
    /// active or revoked.
    pub state: Option<String>,
    /// An admin may ask for one station's; a station sees only its own.
    pub station: Option<String>,
    pub cursor: Option<String>,
    /// 1–500 (default 50).
    pub limit: Option<u32>,
}

/// Registrations: a station's own (an admin: any), national ids masked; the read is
/// audited.
#[utoipa::path(get, path = "/v1/organ-registrations", params(RegistrationListQuery),
    responses((status = 200, description = "`{items, next_cursor}` of registrations"), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn list_organ_registrations(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<StationsAndAdmins>,
    query: ListQuery<RegistrationListQuery>,
) -> ApiResult<Json<Page<OrganRegistration>>> {
    let Query(q) = query?;
    Ok(Json(
        state
            .registry
            .list_organ_registrations(
                &caller.actor(),
                q.station.as_deref(),
                q.state.as_deref(),
                &page_request(q.cursor, q.limit),
            )
            .await?,
    ))
}

/// One registration in full, for the station that took it or an admin; audited.
#[utoipa::path(get, path = "/v1/organ-registrations/{id}", params(("id" = i64, Path)),
    responses((status = 200, description = "the registration"), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_organ_registration(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<StationsAndAdmins>,
    PathId(id): PathId,
) -> ApiResult<Json<OrganRegistration>> {
    Ok(Json(
        state
            .registry
            .organ_registration(id, &caller.actor())
            .await?,
    ))
}
