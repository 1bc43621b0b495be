//! Administration: health, stations, the audit log, HLA expansion.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::input::{ApiJson, ApiResult};
use crate::AppState;
use crate::access::{Admins, Allowed, Anyone, Auditors};
use crate::error::{ApiError, Problem};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/stations", post(create_station).get(list_stations))
        .route("/v1/audit", get(read_audit))
        .route("/v1/hla/expand", post(hla_expand))
}

/// Alive.
#[utoipa::path(get, path = "/healthz", security(()), responses((status = 200, description = "alive")))]
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Prometheus text format: requests and latencies by route, searches, the index, the
/// change feed's lag, the database pool (open, like the health checks: no identity data).
#[utoipa::path(get, path = "/metrics", security(()), responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(state: State<AppState>) -> axum::response::Response {
    crate::metrics::metrics(state).await
}

/// Ready: the matching index is loaded; `feed` shows how the index follows the changes
/// made through other servers (cycles, changes applied, the last cycle's age, an error).
#[utoipa::path(get, path = "/readyz", security(()), responses((status = 200, description = "index loaded"), (status = 503, body = Problem)))]
pub async fn readyz(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    if state.ready.load(std::sync::atomic::Ordering::SeqCst) {
        let donors = state.index.read().expect("index lock").len();
        Ok(Json(
            json!({"status": "ready", "indexed_donors": donors, "feed": state.feed.status()}),
        ))
    } else {
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the matching index is loading",
        ))
    }
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct StationIn {
    pub code: String,
    pub branch: String,
    pub name: String,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub yearly_target: i64,
}

/// Add a collection station (admin); its branch is created if new.
#[utoipa::path(post, path = "/v1/stations", request_body = StationIn,
    responses((status = 201, body = StationIn), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_station(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<Admins>,
    ApiJson(s): ApiJson<StationIn>,
) -> ApiResult<(StatusCode, Json<StationIn>)> {
    let actor = caller.actor();
    state
        .registry
        .add_station_and_branch(
            &s.code,
            &s.branch,
            &s.name,
            &s.region,
            s.yearly_target,
            &actor,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(s)))
}

/// List station codes (any role).
#[utoipa::path(get, path = "/v1/stations", responses((status = 200, description = "station codes")))]
pub async fn list_stations(
    State(state): State<AppState>,
    _: Allowed<Anyone>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({"stations": state.registry.station_codes().await?}),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    pub entity: Option<String>,
    pub entity_id: Option<String>,
    pub before_id: Option<i64>,
    pub limit: Option<i64>,
}

/// Read the audit log, newest first (auditor).
#[utoipa::path(get, path = "/v1/audit", params(AuditQuery), responses((status = 200, description = "entries")))]
pub async fn read_audit(
    State(state): State<AppState>,
    _: Allowed<Auditors>,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = query?;
    let entries = state
        .registry
        .audit_entries(
            q.entity.as_deref(),
            q.entity_id.as_deref(),
            q.before_id,
            q.limit.unwrap_or(100),
        )
        .await?;
    Ok(Json(json!({"entries": entries})))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ExpandIn {
    /// GL strings or single positions.
    pub typings: Vec<String>,
}

/// Expand typings to P groups (any role).
#[utoipa::path(post, path = "/v1/hla/expand", request_body = ExpandIn, responses((status = 200, description = "one result per typing"), (status = 422, body = Problem)))]
pub async fn hla_expand(
    State(state): State<AppState>,
    _: Allowed<Anyone>,
    ApiJson(e): ApiJson<ExpandIn>,
) -> ApiResult<Json<Value>> {
    if e.typings.len() > 1000 {
        return Err(ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "typings",
            "at most 1000 per call",
        ));
    }
    let expander = state.registry.expander().clone();
    let release = expander.release().version.clone();
    let results: Vec<Value> = e
        .typings
        .iter()
        .map(|t| match hla::GlString::parse(t).and_then(|gl| hla::locus_typings(&gl)) {
            Err(err) => json!({"typing": t, "error": err.to_string()}),
            Ok(loci) => {
                let mut positions = Vec::new();
                for l in &loci {
                    for p in &l.positions {
                        positions.push(match expander.expand_list(p) {
                            Ok(set) => json!({"locus": l.locus, "typing": p.to_string(),
                                "p_groups": set.p_key_names(expander.release()), "null": set.is_null()}),
                            Err(err) => json!({"locus": l.locus, "typing": p.to_string(), "error": err.to_string()}),
                        });
                    }
                }
                json!({"typing": t, "positions": positions})
            }
        })
        .collect();
    Ok(Json(json!({"release": release, "results": results})))
}
