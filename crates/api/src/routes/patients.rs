//! Patients, registered by search coordinators.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use registry::{Page, Patient};

use super::input::{ApiJson, ApiResult, ListQuery, PathId, page_request};
use crate::AppState;
use crate::access::{Allowed, CaseWorkers, Coordinators};
use crate::error::Problem;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/patients", post(register_patient).get(list_patients))
        .route("/v1/patients/{id}", get(get_patient))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PatientIn {
    pub external_id: String,
    pub gl: String,
    pub birth_date: Option<String>,
    pub sex: Option<String>,
    pub abo: Option<String>,
    pub cmv: Option<String>,
    pub weight_kg: Option<f64>,
    pub diagnosis: Option<String>,
    pub transplant_centre: Option<String>,
}

/// Register a patient (coordinator).
#[utoipa::path(post, path = "/v1/patients", request_body = PatientIn,
    responses((status = 201, description = "patient id"), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn register_patient(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<Coordinators>,
    ApiJson(p): ApiJson<PatientIn>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let new = registry::NewPatient {
        external_id: p.external_id,
        gl: p.gl,
        birth_date: p.birth_date,
        sex: p.sex,
        abo: p.abo,
        cmv: p.cmv,
        weight_kg: p.weight_kg,
        diagnosis: p.diagnosis,
        transplant_centre: p.transplant_centre,
    };
    let id = state
        .registry
        .register_patient(&new, &caller.actor())
        .await?;
    Ok((StatusCode::CREATED, Json(json!({"id": id}))))
}

/// A patient (coordinator, case manager).
#[utoipa::path(get, path = "/v1/patients/{id}", params(("id" = i64, Path)), responses((status = 200, description = "the patient"), (status = 404, body = Problem)))]
pub async fn get_patient(
    State(state): State<AppState>,
    _: Allowed<CaseWorkers>,
    PathId(id): PathId,
) -> ApiResult<Json<Value>> {
    let p = state.registry.patient(id).await?;
    Ok(Json(
        json!({"id": p.id, "external_id": p.external_id, "gl": p.gl, "birth_date": p.birth_date,
        "sex": p.sex, "abo": p.abo, "cmv": p.cmv, "weight_kg": p.weight_kg, "diagnosis": p.diagnosis,
        "transplant_centre": p.transplant_centre}),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct PatientListQuery {
    pub cursor: Option<String>,
    /// 1–500 (default 50).
    pub limit: Option<u32>,
}

/// Patients, oldest first (coordinator, case manager).
#[utoipa::path(get, path = "/v1/patients", params(PatientListQuery),
    responses((status = 200, description = "`{items, next_cursor}` of patients"), (status = 422, body = Problem)))]
pub async fn list_patients(
    State(state): State<AppState>,
    _: Allowed<CaseWorkers>,
    query: ListQuery<PatientListQuery>,
) -> ApiResult<Json<Page<Patient>>> {
    let Query(q) = query?;
    Ok(Json(
        state
            .registry
            .list_patients(&page_request(q.cursor, q.limit))
            .await?,
    ))
}
