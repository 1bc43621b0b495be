//! Searches: a patient's criteria run against the live index; the report (§8) paged or
//! as CSV, each donor's status as it is now; re-runs with what changed; the search's
//! lifecycle; work lists of searches.

use std::borrow::Cow;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use matching::{
    Abo, Cmv, DefaultPolicy, DonorType, Locus, ProbabilityOptions, SearchError, SearchRequest, Sex,
    Status,
};
use registry::{Actor, Page, RunDiff, SearchFilter, SearchRunRecord, SearchSummary, rh_code};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::input::{ApiJson, ApiResult, ListQuery, PathId, StateIn, code, page_request};
use crate::AppState;
use crate::access::{Allowed, Coordinators};
use crate::error::{ApiError, Problem};
use crate::stored_run::{HitProbability, LocusDetail, SearchHitOut, SearchRun};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/searches", post(create_search).get(list_searches))
        .route("/v1/searches/{id}", get(get_search))
        .route("/v1/searches/{id}/results", get(search_results))
        .route("/v1/searches/{id}/results.csv", get(search_results_csv))
        .route("/v1/searches/{id}/results.gl", get(search_results_gl))
        .route("/v1/searches/{id}/runs", post(rerun_search).get(list_runs))
        .route("/v1/searches/{id}/state", post(set_search_state))
        .route("/v1/patients/{id}/searches", get(patient_searches))
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
    /// Per-locus mismatch limits (0–2), e.g. `{"DRB1": 0}`.
    #[serde(default)]
    pub locus_max: Option<BTreeMap<String, u8>>,
    /// The ranking policy by name: `hla-first-v1` (default) or
    /// `probability-within-grade-v1` (needs `probability`).
    #[serde(default)]
    pub policy: Option<String>,
    /// Add match probabilities (p0, p1, p2 and per locus) from the server's haplotype
    /// frequencies.
    #[serde(default)]
    pub probability: bool,
}

/// The ranking policies a search may name.
pub const POLICIES: [&str; 2] = ["hla-first-v1", "probability-within-grade-v1"];

/// The engine's request for these criteria, checked against the request's limits (one
/// rule set: `SearchRequest::validate`) before anything is read.
fn request_for(state: &AppState, criteria: &SearchIn) -> ApiResult<SearchRequest> {
    let invalid = |field: &str, reason: String| {
        ApiError::field(StatusCode::UNPROCESSABLE_ENTITY, field, reason)
    };
    // The subject is built under the index lock, sharing the index's expanded typings.
    let mut req = SearchRequest::new(Default::default(), criteria.max_mismatches);
    req.today = state.today();
    if let Some(loci) = &criteria.loci {
        req.loci = loci
            .iter()
            .map(|l| l.parse::<Locus>())
            .collect::<Result<_, _>>()
            .map_err(|e: String| invalid("loci", e))?;
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
    for (name, &limit) in criteria.locus_max.iter().flatten() {
        let locus = name.parse::<Locus>().map_err(|e| invalid("locus_max", e))?;
        req.locus_max[locus.index()] = limit;
    }
    req.limit = criteria.keep.unwrap_or(1000).min(10_000);
    req.policy = Arc::new(DefaultPolicy);
    let by_probability = match criteria.policy.as_deref() {
        None | Some("hla-first-v1") => false,
        Some("probability-within-grade-v1") => true,
        Some(other) => {
            return Err(invalid(
                "policy",
                format!("unknown ranking policy `{other}` ({})", POLICIES.join(", ")),
            ));
        }
    };
    if by_probability && !criteria.probability {
        return Err(invalid(
            "policy",
            "probability-within-grade-v1 ranks by match probability: ask for `\"probability\": true`".into(),
        ));
    }
    if criteria.probability {
        let set = state.haplotypes.clone().ok_or_else(|| {
            invalid(
                "probability",
                "this server has no haplotype frequency set (start it with --freqs)".into(),
            )
        })?;
        req.probability = Some(ProbabilityOptions { set });
        if by_probability {
            req.rank_by_probability();
        }
    }
    req.validate().map_err(search_error)?;
    Ok(req)
}

/// A request the engine refused, naming the field at fault.
fn search_error(e: SearchError) -> ApiError {
    ApiError::field(StatusCode::UNPROCESSABLE_ENTITY, e.field(), e.reason())
}

/// Run a search's criteria against the live index, RS donors of this patient included;
/// returns the run and the donors reserved for the patient. GRIDs and current statuses are
/// filled only where a run is shown (`mark_current`).
async fn run(state: &AppState, criteria: &SearchIn) -> ApiResult<(SearchRun, Vec<i64>)> {
    let mut req = request_for(state, criteria)?;
    // Every write committed before this search, through any server, is in the index first.
    state.feed.fresh(crate::follow::FRESHNESS_BOUND).await?;
    // The patient and the donors reserved for them (offered whatever their status).
    let (patient, reserved) = state
        .registry
        .patient_with_reserved(criteria.patient_id)
        .await?;
    req.patient_weight_kg = patient.weight_kg.map(|w| w as f32);
    req.also_offered = reserved.iter().map(|&id| id as u32).collect();
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
    let hits: Vec<SearchHitOut> = result
        .hits
        .iter()
        .map(|h| {
            let a = &h.attributes;
            let per_locus = |l: Locus| {
                h.probability.as_ref().and_then(|p| {
                    p.per_locus
                        .iter()
                        .find(|(pl, _)| *pl == l)
                        .and_then(|(_, v)| *v)
                })
            };
            SearchHitOut {
                rank: h.rank,
                donor_id: h.key as u64,
                grid: String::new(),
                mismatches: h.total,
                grade: h.grade(&loci),
                donor_type: Cow::Borrowed(a.donor_type.code()),
                age: h.age,
                sex: Cow::Borrowed(a.sex.code()),
                abo: Cow::Borrowed(a.abo.code()),
                rh: Cow::Borrowed(rh_code(a.rh_positive)),
                cmv: Cow::Borrowed(a.cmv.code()),
                status: Cow::Borrowed(a.status.code()),
                available: true,
                status_note: None,
                probability: h.probability.as_ref().map(|p| HitProbability {
                    p0: p.p0,
                    p1: p.p1,
                    p2: p.p2,
                    p_more: p.p_more,
                }),
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
                            resolution: Cow::Borrowed(""),
                            probability: per_locus(*l),
                        };
                        (Cow::Borrowed(l.name()), detail)
                    })
                    .collect(),
            }
        })
        .collect();
    let run = SearchRun {
        total: result.total,
        policy: result.policy,
        hits,
        search_ms: started.elapsed().as_secs_f64() * 1e3,
    };
    Ok((run, reserved))
}

/// Each hit's GRID, and its sex, ABO, Rh, CMV, typing resolution per locus and status as
/// they are now: a donor withdrawn, deferred, temporarily unavailable or reserved for
/// another patient since the run is marked unavailable, never shown as available.
/// `reserved` are the donors reserved for this search's patient. Called for the hits shown
/// only (a page, the CSV), so a search pays nothing for the hits nobody reads.
async fn mark_current(
    state: &AppState,
    hits: &mut [SearchHitOut],
    reserved: &[i64],
) -> ApiResult<()> {
    let ion = state.registry.config.ion;
    let mut gone = Vec::new();
    {
        let index = state.index.read().expect("index lock");
        for (i, h) in hits.iter_mut().enumerate() {
            if h.grid.is_empty() {
                h.grid = registry::make_grid(ion, &h.donor_id.to_string()).unwrap_or_default();
            }
            match index.row(h.donor_id as u32) {
                Some(row) => {
                    let a = index.attributes(row);
                    set_attributes(h, a.sex, a.abo, a.rh_positive, a.cmv);
                    set_status(h, a.status, true, reserved);
                    let loci: Vec<Locus> = h.loci.keys().filter_map(|l| l.parse().ok()).collect();
                    for (locus, r) in loci.iter().zip(index.resolutions(row, &loci)) {
                        if let Some(d) = h.loci.get_mut(locus.name()) {
                            d.resolution = Cow::Borrowed(r.code());
                        }
                    }
                }
                None => gone.push(i),
            }
        }
    }
    // Out of the index: withdrawn, deferred or without a typing now; the store says which.
    for i in gone {
        let h = &mut hits[i];
        match state.registry.donor(h.donor_id as i64).await {
            Ok(d) => {
                set_attributes(h, d.sex, d.abo, d.rh_positive, d.cmv);
                set_status(h, d.status, d.listed, reserved);
            }
            Err(registry::RegistryError::NotFound(_)) => {
                h.available = false;
                h.status_note = Some("no longer in the registry".into());
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn set_attributes(h: &mut SearchHitOut, sex: Sex, abo: Abo, rh: Option<bool>, cmv: Cmv) {
    h.sex = Cow::Borrowed(sex.code());
    h.abo = Cow::Borrowed(abo.code());
    h.rh = Cow::Borrowed(rh_code(rh));
    h.cmv = Cow::Borrowed(cmv.code());
}

fn set_status(h: &mut SearchHitOut, status: Status, listed: bool, reserved: &[i64]) {
    h.status = Cow::Borrowed(status.code());
    let note = if !listed {
        Some("withdrawn")
    } else {
        match status {
            Status::Available => None,
            Status::Reserved if reserved.contains(&(h.donor_id as i64)) => None,
            Status::Reserved => Some("reserved for another patient"),
            Status::TemporarilyUnavailable => Some("temporarily unavailable"),
            Status::Deferred => Some("permanently unavailable"),
        }
    };
    h.available = note.is_none();
    h.status_note = note.map(str::to_string);
}

/// The stored last run of a search with each donor's status as it is now.
async fn current_run(state: &AppState, id: i64) -> ApiResult<(registry::SearchRecord, SearchRun)> {
    let s = state.registry.search_record(id).await?;
    let mut run = SearchRun::stored(s.id, s.last_result.as_deref())?;
    let reserved = state.registry.donors_reserved_for(s.patient_id).await?;
    mark_current(state, &mut run.hits, &reserved).await?;
    Ok((s, run))
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
    let (mut result, reserved) = run(&state, &criteria).await?;
    let text = serde_json::to_string(&criteria).expect("criteria serialise");
    let run_text = result.to_stored();
    let actor = caller.actor();
    let id = state
        .registry
        .open_search_with_run(criteria.patient_id, &text, &run_text, &actor)
        .await?;
    // The first page, as it is now; written straight from the run (no JSON tree between).
    const FIRST_PAGE: usize = 20;
    let shown = FIRST_PAGE.min(result.hits.len());
    mark_current(&state, &mut result.hits[..shown], &reserved).await?;
    Ok((
        StatusCode::CREATED,
        Json(result.page(Some(id), 0, FIRST_PAGE)),
    )
        .into_response())
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
        "criteria": serde_json::from_str::<Value>(&s.criteria).unwrap_or(Value::Null), "last_run_at": s.last_run_at,
        "suspended_on": s.suspended_on, "has_new": s.has_new()}),
    ))
}

/// A page of the last run's results, with per-locus detail, the total count, and each
/// donor's status as it is now.
#[utoipa::path(get, path = "/v1/searches/{id}/results", params(("id" = i64, Path), PageQuery), responses((status = 200, description = "a page")))]
pub async fn search_results(
    State(state): State<AppState>,
    _: Allowed<Coordinators>,
    PathId(id): PathId,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<axum::response::Response> {
    let Query(q) = query?;
    let s = state.registry.search_record(id).await?;
    let mut result = SearchRun::stored(s.id, s.last_result.as_deref())?;
    // Only the page's donors are looked up.
    let limit = q.limit.unwrap_or(20).clamp(1, 1000);
    let from = q.offset.min(result.hits.len());
    let to = (from + limit).min(result.hits.len());
    let reserved = state.registry.donors_reserved_for(s.patient_id).await?;
    mark_current(&state, &mut result.hits[from..to], &reserved).await?;
    Ok(Json(result.page(None, q.offset, limit)).into_response())
}

/// The last run's ranked results as CSV (every kept hit), each donor's status as it is now.
#[utoipa::path(get, path = "/v1/searches/{id}/results.csv", params(("id" = i64, Path)),
    responses((status = 200, description = "text/csv", content_type = "text/csv")))]
pub async fn search_results_csv(
    State(state): State<AppState>,
    _: Allowed<Coordinators>,
    PathId(id): PathId,
) -> ApiResult<axum::response::Response> {
    let (_, run) = current_run(&state, id).await?;
    let body = run
        .to_csv()
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    Ok(attachment("text/csv", &format!("search-{id}.csv"), body))
}

/// The last run's ranked donors, one `DONOR_ID%GLSTRING` line each (its typing on record
/// now), in rank order; donors without a typing now are left out.
#[utoipa::path(get, path = "/v1/searches/{id}/results.gl", params(("id" = i64, Path)),
    responses((status = 200, description = "text/plain: DONOR_ID%GLSTRING lines", content_type = "text/plain")))]
pub async fn search_results_gl(
    State(state): State<AppState>,
    _: Allowed<Coordinators>,
    PathId(id): PathId,
) -> ApiResult<axum::response::Response> {
    let (_, run) = current_run(&state, id).await?;
    let mut body = String::new();
    for h in &run.hits {
        let donor = state.registry.donor(h.donor_id as i64).await?;
        if let Some(gl) = donor.current_typing {
            body.push_str(&format!("{}%{gl}\n", h.donor_id));
        }
    }
    Ok(attachment(
        "text/plain",
        &format!("search-{id}.gl.txt"),
        body,
    ))
}

/// A download: UTF-8 `content_type`, saved as `file_name`.
fn attachment(
    content_type: &str,
    file_name: &str,
    body: impl axum::response::IntoResponse,
) -> axum::response::Response {
    (
        [
            (
                header::CONTENT_TYPE,
                format!("{content_type}; charset=utf-8"),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file_name}\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// Re-run search `id` against today's registry and store the run with what changed since
/// the one before (new, changed, gone). The API and the nightly job both re-run this way.
pub(crate) async fn rerun(
    state: &AppState,
    id: i64,
    actor: &Actor,
) -> ApiResult<(SearchRun, RunDiff)> {
    let s = state.registry.search_record(id).await?;
    if s.state == "STP" {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("search {id} is stopped"),
        ));
    }
    let criteria: SearchIn = serde_json::from_str(&s.criteria).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("stored criteria: {e}"),
        )
    })?;
    let before = SearchRun::stored(s.id, s.last_result.as_deref())?;
    let (after, _) = run(state, &criteria).await?;
    let by_donor = |v: &SearchRun| -> BTreeMap<u64, (u8, String)> {
        v.hits
            .iter()
            .map(|h| (h.donor_id, (h.mismatches, h.grade.clone())))
            .collect()
    };
    let (old, new) = (by_donor(&before), by_donor(&after));
    let diff = RunDiff {
        new: new
            .keys()
            .filter(|k| !old.contains_key(k))
            .copied()
            .collect(),
        gone: old
            .keys()
            .filter(|k| !new.contains_key(k))
            .copied()
            .collect(),
        changed: new
            .iter()
            .filter(|(k, v)| old.get(k).is_some_and(|o| o != *v))
            .map(|(k, _)| *k)
            .collect(),
    };
    state
        .registry
        .record_search_run(s.id, &after.to_stored(), after.total, &diff, actor)
        .await?;
    Ok((after, diff))
}

/// Re-run a search against today's registry; returns what changed since the last run: new
/// donors, changed (mismatches or grade), gone.
#[utoipa::path(post, path = "/v1/searches/{id}/runs", params(("id" = i64, Path)), responses((status = 200, description = "the diff")))]
pub async fn rerun_search(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<Coordinators>,
    PathId(id): PathId,
) -> ApiResult<Json<Value>> {
    let (after, diff) = rerun(&state, id, &caller.actor()).await?;
    Ok(Json(
        json!({"id": id, "total": after.total, "new": diff.new, "changed": diff.changed, "gone": diff.gone}),
    ))
}

/// A search's stored re-runs with what each changed, oldest first (coordinator).
#[utoipa::path(get, path = "/v1/searches/{id}/runs", params(("id" = i64, Path)), responses((status = 200, description = "the runs")))]
pub async fn list_runs(
    State(state): State<AppState>,
    _: Allowed<Coordinators>,
    PathId(id): PathId,
) -> ApiResult<Json<Vec<SearchRunRecord>>> {
    Ok(Json(state.registry.search_runs(id).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct SearchListQuery {
    /// NEW, PRE, ACT, SUS or STP.
    pub state: Option<String>,
    /// Searches whose last run found donors the run before did not have.
    pub has_new: Option<bool>,
    pub patient_id: Option<i64>,
    pub cursor: Option<String>,
    /// 1–500 (default 50).
    pub limit: Option<u32>,
}

/// Searches by state, patient, and whether the last run found new donors (coordinator).
#[utoipa::path(get, path = "/v1/searches", params(SearchListQuery),
    responses((status = 200, description = "`{items, next_cursor}` of searches"), (status = 422, body = Problem)))]
pub async fn list_searches(
    State(state): State<AppState>,
    _: Allowed<Coordinators>,
    query: ListQuery<SearchListQuery>,
) -> ApiResult<Json<Page<SearchSummary>>> {
    let Query(q) = query?;
    let filter = SearchFilter {
        patient_id: q.patient_id,
        state: q.state,
        has_new: q.has_new,
    };
    Ok(Json(
        state
            .registry
            .list_searches(&filter, &page_request(q.cursor, q.limit))
            .await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct PatientSearchQuery {
    pub state: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

/// A patient's searches (coordinator); an unknown patient is 404.
#[utoipa::path(get, path = "/v1/patients/{id}/searches", params(("id" = i64, Path), PatientSearchQuery),
    responses((status = 200, description = "`{items, next_cursor}` of searches"), (status = 404, body = Problem)))]
pub async fn patient_searches(
    State(state): State<AppState>,
    _: Allowed<Coordinators>,
    PathId(id): PathId,
    query: ListQuery<PatientSearchQuery>,
) -> ApiResult<Json<Page<SearchSummary>>> {
    let Query(q) = query?;
    state.registry.patient(id).await?;
    let filter = SearchFilter {
        patient_id: Some(id),
        state: q.state,
        has_new: None,
    };
    Ok(Json(
        state
            .registry
            .list_searches(&filter, &page_request(q.cursor, q.limit))
            .await?,
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
