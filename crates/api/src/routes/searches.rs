//! Searches: a patient's criteria run against the live index, paged results, re-runs with
//! what changed, and the search's lifecycle.

use std::borrow::Cow;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use matching::{DonorType, Locus, SearchError, SearchRequest};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::input::{ApiJson, ApiResult, PathId, StateIn, code};
use crate::AppState;
use crate::access::{Allowed, Coordinators};
use crate::error::{ApiError, Problem};
use crate::stored_run::{LocusDetail, SearchHitOut, SearchRun};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/searches", post(create_search))
        .route("/v1/searches/{id}", get(get_search))
        .route("/v1/searches/{id}/results", get(search_results))
        .route("/v1/searches/{id}/runs", post(rerun_search))
        .route("/v1/searches/{id}/state", post(set_search_state))
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct SearchIn {
    pub patient_id: i64,
    /// Total mismatches tolerated over the loci (0–5).
    pub max_mismatches: u8,
    /// Loci matched (default A, B, C, DRB1, DQB1).
    #[serde(default)]
    pub loci: Option<Vec<String>>,
    /// `adult`, `cord` or absent for both.
    #[serde(default)]
    pub donor_type: Option<String>,
    /// Hits kept per run (default 1000, at most 10000).
    #[serde(default)]
    pub keep: Option<usize>,
}

/// The engine's request for these criteria, checked against the request's limits (one
/// rule set: `SearchRequest::validate`) before anything is read.
fn request_for(criteria: &SearchIn, today: i64) -> ApiResult<SearchRequest> {
    // The subject is built under the index lock, sharing the index's expanded typings.
    let mut req = SearchRequest::new(Default::default(), criteria.max_mismatches);
    req.today = today;
    if let Some(loci) = &criteria.loci {
        req.loci = loci
            .iter()
            .map(|l| l.parse::<Locus>())
            .collect::<Result<_, _>>()
            .map_err(|e: String| ApiError::field(StatusCode::UNPROCESSABLE_ENTITY, "loci", e))?;
    }
    req.donor_type = match criteria.donor_type.as_deref() {
        None => None,
        Some(t) => Some(code(
            "donor_type",
            Some(t),
            DonorType::from_code,
            DonorType::Adult,
        )?),
    };
    req.limit = criteria.keep.unwrap_or(1000).min(10_000);
    req.validate().map_err(search_error)?;
    Ok(req)
}

/// A request the engine refused, naming the field at fault.
fn search_error(e: SearchError) -> ApiError {
    ApiError::field(StatusCode::UNPROCESSABLE_ENTITY, e.field(), e.reason())
}

/// Run a search's criteria against the live index, RS donors of this patient included.
async fn run(state: &AppState, criteria: &SearchIn) -> ApiResult<SearchRun> {
    let mut req = request_for(criteria, (state.today)())?;
    // The patient and the donors reserved for them (offered whatever their status).
    let (patient, reserved) = state
        .registry
        .patient_with_reserved(criteria.patient_id)
        .await?;
    req.patient_weight_kg = patient.weight_kg.map(|w| w as f32);
    req.also_offered = reserved.into_iter().map(|id| id as u32).collect();
    let index = state.index.clone();
    let started = std::time::Instant::now();
    let (result, loci) = state
        .search_slots
        .run(move || {
            let index = index.read().expect("index lock");
            req.patient = index.subject_from_gl(&patient.gl).map_err(|e| {
                ApiError::field(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "patient.gl",
                    e.to_string(),
                )
            })?;
            let result = index.search(&req).map_err(search_error)?;
            Ok::<_, ApiError>((result, req.loci))
        })
        .await??;
    let hits = result
        .hits
        .iter()
        .map(|h| SearchHitOut {
            rank: h.rank,
            donor_id: h.key as u64,
            mismatches: h.total,
            grade: h.grade(&loci),
            donor_type: Cow::Borrowed(h.attributes.donor_type.code()),
            age: h.age,
            loci: loci
                .iter()
                .map(|l| {
                    let s = h.score.locus(*l);
                    let detail = LocusDetail {
                        mismatches: s.mismatches,
                        gvh: s.gvh,
                        hvg: s.hvg,
                        typed: s.typed,
                        grades: s.grades.map(|g| Cow::Borrowed(g.code())),
                        antigen_mismatches: s.antigen_mismatches,
                        allele_mismatches: s.allele_mismatches,
                    };
                    (Cow::Borrowed(l.name()), detail)
                })
                .collect(),
        })
        .collect();
    Ok(SearchRun {
        total: result.total,
        policy: result.policy,
        hits,
        search_ms: started.elapsed().as_secs_f64() * 1e3,
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct PageQuery {
    #[serde(default)]
    pub offset: usize,
    pub limit: Option<usize>,
}

/// Create a search for a patient and run it (coordinator). Returns the search id and the
/// first page.
#[utoipa::path(post, path = "/v1/searches", request_body = SearchIn,
    responses((status = 201, description = "search id and first page"), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn create_search(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<Coordinators>,
    ApiJson(criteria): ApiJson<SearchIn>,
) -> ApiResult<axum::response::Response> {
    let result = run(&state, &criteria).await?;
    let text = serde_json::to_string(&criteria).expect("criteria serialise");
    let run_text = result.to_stored();
    let actor = caller.actor();
    let id = state
        .registry
        .open_search_with_run(criteria.patient_id, &text, &run_text, &actor)
        .await?;
    // Written straight from the run (no intermediate JSON tree).
    Ok((StatusCode::CREATED, Json(result.page(Some(id), 0, 20))).into_response())
}

/// A search's criteria and state (coordinator).
#[utoipa::path(get, path = "/v1/searches/{id}", params(("id" = i64, Path)), responses((status = 200, description = "the search")))]
pub async fn get_search(
    State(state): State<AppState>,
    _: Allowed<Coordinators>,
    PathId(id): PathId,
) -> ApiResult<Json<Value>> {
    let s = state.registry.search_record(id).await?;
    Ok(Json(
        json!({"id": s.id, "patient_id": s.patient_id, "state": s.state, "state_reason": s.state_reason,
        "criteria": serde_json::from_str::<Value>(&s.criteria).unwrap_or(Value::Null), "last_run_at": s.last_run_at}),
    ))
}

/// A page of the last run's results, with per-locus detail and the total count.
#[utoipa::path(get, path = "/v1/searches/{id}/results", params(("id" = i64, Path), PageQuery), responses((status = 200, description = "a page")))]
pub async fn search_results(
    State(state): State<AppState>,
    _: Allowed<Coordinators>,
    PathId(id): PathId,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<axum::response::Response> {
    let Query(q) = query?;
    let s = state.registry.search_record(id).await?;
    let result = SearchRun::stored(s.id, s.last_result.as_deref())?;
    Ok(Json(result.page(None, q.offset, q.limit.unwrap_or(20))).into_response())
}

/// Re-run a search against today's registry; returns what changed since the last run: new
/// donors, changed (mismatches or grade), gone.
#[utoipa::path(post, path = "/v1/searches/{id}/runs", params(("id" = i64, Path)), responses((status = 200, description = "the diff")))]
pub async fn rerun_search(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<Coordinators>,
    PathId(id): PathId,
) -> ApiResult<Json<Value>> {
    let s = state.registry.search_record(id).await?;
    if s.state == "STP" {
        return Err(ApiError::new(StatusCode::CONFLICT, "the search is stopped"));
    }
    let criteria: SearchIn = serde_json::from_str(&s.criteria).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("stored criteria: {e}"),
        )
    })?;
    let before = SearchRun::stored(s.id, s.last_result.as_deref())?;
    let after = run(&state, &criteria).await?;
    let by_donor = |v: &SearchRun| -> std::collections::BTreeMap<u64, (u8, String)> {
        v.hits
            .iter()
            .map(|h| (h.donor_id, (h.mismatches, h.grade.clone())))
            .collect()
    };
    let (old, new) = (by_donor(&before), by_donor(&after));
    let added: Vec<u64> = new
        .keys()
        .filter(|k| !old.contains_key(k))
        .copied()
        .collect();
    let gone: Vec<u64> = old
        .keys()
        .filter(|k| !new.contains_key(k))
        .copied()
        .collect();
    let changed: Vec<u64> = new
        .iter()
        .filter(|(k, v)| old.get(k).is_some_and(|o| o != *v))
        .map(|(k, _)| *k)
        .collect();
    state
        .registry
        .record_search_run(s.id, &after.to_stored(), &caller.actor())
        .await?;
    Ok(Json(
        json!({"id": s.id, "total": after.total, "new": added, "changed": changed, "gone": gone}),
    ))
}

/// Move a search through its lifecycle (NEW, PRE, ACT, SUS, STP with a reason).
#[utoipa::path(post, path = "/v1/searches/{id}/state", params(("id" = i64, Path)), request_body = StateIn, responses((status = 200, description = "done"), (status = 409, body = Problem)))]
pub async fn set_search_state(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<Coordinators>,
    PathId(id): PathId,
    ApiJson(s): ApiJson<StateIn>,
) -> ApiResult<Json<Value>> {
    state
        .registry
        .set_search_state(id, &s.state, s.reason.as_deref(), &caller.actor())
        .await?;
    Ok(Json(json!({"id": id, "state": s.state})))
}
