//! Samples a station takes from a donor: recorded, moved through their states, listed per
//! donor and as a station's work list.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use registry::Page;
use registry::samples::{Sample, SampleFilter};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::input::{ApiJson, ApiResult, ListQuery, StateIn, page_request};
use crate::AppState;
use crate::access::{Allowed, DonorAccess, SampleAccess, Stations, StationsAndCaseManagers};
use crate::error::Problem;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/donors/{id}/samples",
            post(record_sample).get(list_samples),
        )
        .route("/v1/samples", get(sample_list))
        .route("/v1/samples/{id}/state", post(set_sample_state))
}

/// A sample as recorded.
#[derive(Debug, Serialize, ToSchema)]
pub struct SampleOut {
    pub id: i64,
    pub donor_id: i64,
    pub station: String,
    pub collected_on: String,
    pub volume_ml: Option<f64>,
    pub barcode: String,
    pub lab: Option<String>,
    pub state: String,
    pub request_id: Option<i64>,
}

impl From<Sample> for SampleOut {
    fn from(s: Sample) -> SampleOut {
        SampleOut {
            id: s.id,
            donor_id: s.donor_id,
            station: s.station,
            collected_on: s.collected_on,
            volume_ml: s.volume_ml,
            barcode: s.barcode,
            lab: s.lab,
            state: s.state,
            request_id: s.request_id,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SampleIn {
    pub collected_on: String,
    pub volume_ml: Option<f64>,
    pub barcode: String,
    pub lab: Option<String>,
    /// The typing request this sample is drawn for (a confirmatory-typing sample needs the
    /// donor's confirmatory-typing consent).
    pub request_id: Option<i64>,
    /// The campaign the sample was taken at (held by the donor's station).
    pub campaign_id: Option<i64>,
}

/// Record a sample (its own station).
#[utoipa::path(post, path = "/v1/donors/{id}/samples", params(("id" = i64, Path)), request_body = SampleIn,
    responses((status = 201, body = SampleOut), (status = 409, body = Problem)))]
pub async fn record_sample(
    State(state): State<AppState>,
    DonorAccess { caller, donor, .. }: DonorAccess<Stations>,
    ApiJson(s): ApiJson<SampleIn>,
) -> ApiResult<(StatusCode, Json<SampleOut>)> {
    let id = donor.id;
    let sample = registry::samples::NewSample {
        station: donor.station,
        collected_on: s.collected_on,
        volume_ml: s.volume_ml,
        barcode: s.barcode,
        lab: s.lab,
        request_id: s.request_id,
        campaign_id: s.campaign_id,
    };
    let s = state
        .registry
        .record_sample(id, &sample, &caller.actor())
        .await?;
    Ok((StatusCode::CREATED, Json(s.into())))
}

/// Move a sample to its next state (the station of its donor).
#[utoipa::path(post, path = "/v1/samples/{id}/state", params(("id" = i64, Path)), request_body = StateIn,
    responses((status = 200, description = "the sample"), (status = 409, body = Problem)))]
pub async fn set_sample_state(
    State(state): State<AppState>,
    SampleAccess { caller, sample }: SampleAccess,
    ApiJson(s): ApiJson<StateIn>,
) -> ApiResult<Json<Value>> {
    let s = state
        .registry
        .set_sample_state(sample.id, &s.state, &caller.actor())
        .await?;
    Ok(Json(json!({"id": s.id, "state": s.state})))
}

/// A donor's samples (its station, case managers).
#[utoipa::path(get, path = "/v1/donors/{id}/samples", params(("id" = i64, Path)), responses((status = 200, description = "samples")))]
pub async fn list_samples(
    State(state): State<AppState>,
    DonorAccess { donor, .. }: DonorAccess<StationsAndCaseManagers>,
) -> ApiResult<Json<Value>> {
    let id = donor.id;
    let samples: Vec<SampleOut> = state
        .registry
        .samples(id)
        .await?
        .into_iter()
        .map(SampleOut::from)
        .collect();
    Ok(Json(json!({"samples": samples})))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct SampleListQuery {
    /// A station's own samples only (a station token sees no others).
    pub station: Option<String>,
    /// collected, shipped, received, typed, failed, destroyed.
    pub state: Option<String>,
    pub cursor: Option<String>,
    /// 1–500 (default 50).
    pub limit: Option<u32>,
}

/// Samples by state: a station's own (case managers: any station's).
#[utoipa::path(get, path = "/v1/samples", params(SampleListQuery),
    responses((status = 200, description = "`{items, next_cursor}`"), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn sample_list(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<StationsAndCaseManagers>,
    query: ListQuery<SampleListQuery>,
) -> ApiResult<Json<Page<SampleOut>>> {
    let Query(q) = query?;
    let filter = SampleFilter {
        station: q.station,
        state: q.state,
        donor_id: None,
    };
    let page = state
        .registry
        .list_samples(&caller.actor(), &filter, &page_request(q.cursor, q.limit))
        .await?;
    Ok(Json(Page {
        items: page.items.into_iter().map(SampleOut::from).collect(),
        next_cursor: page.next_cursor,
    }))
}
