//! Campaigns: events donors, samples and organ registrations are linked to, with their yield.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use registry::{Campaign, NewCampaign, Page};
use serde::Deserialize;
use utoipa::ToSchema;

use super::input::{ApiJson, ApiResult, ListQuery, PathId, page_request};
use crate::AppState;
use crate::access::{Allowed, Anyone, StationsAndAdmins};
use crate::error::Problem;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/campaigns", post(create_campaign).get(list_campaigns))
        .route("/v1/campaigns/{id}", get(get_campaign))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CampaignIn {
    pub name: String,
    /// world_marrow_donor_day, qingming, school_drive, collective_registration, blood_drive, other
    pub kind: String,
    /// `YYYY-MM-DD` (may be planned up to two years ahead).
    pub held_on: String,
    /// The station holding it (a station token: its own).
    pub station: String,
    pub place: String,
    #[serde(default)]
    pub note: Option<String>,
}

/// Create a campaign (a station for itself, or an admin).
#[utoipa::path(post, path = "/v1/campaigns", request_body = CampaignIn,
    responses((status = 201, description = "the campaign"), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create_campaign(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<StationsAndAdmins>,
    ApiJson(c): ApiJson<CampaignIn>,
) -> ApiResult<(StatusCode, Json<Campaign>)> {
    let campaign = state
        .registry
        .create_campaign(
            &NewCampaign {
                name: c.name,
                kind: c.kind,
                held_on: c.held_on,
                station: c.station,
                place: c.place,
                note: c.note,
            },
            &caller.actor(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(campaign)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct CampaignListQuery {
    pub station: Option<String>,
    /// Campaigns held in this year.
    pub year: Option<i32>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

/// Campaigns with their yield (enrolments, samples, registrations); a station sees its own.
#[utoipa::path(get, path = "/v1/campaigns", params(CampaignListQuery),
    responses((status = 200, description = "`{items, next_cursor}`"), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn list_campaigns(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<Anyone>,
    query: ListQuery<CampaignListQuery>,
) -> ApiResult<Json<Page<Campaign>>> {
    let Query(q) = query?;
    Ok(Json(
        state
            .registry
            .list_campaigns(
                &caller.actor(),
                q.station.as_deref(),
                q.year,
                &page_request(q.cursor, q.limit),
            )
            .await?,
    ))
}

/// One campaign with its yield.
#[utoipa::path(get, path = "/v1/campaigns/{id}", params(("id" = i64, Path)),
    responses((status = 200, description = "the campaign"), (status = 404, body = Problem)))]
pub async fn get_campaign(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<Anyone>,
    PathId(id): PathId,
) -> ApiResult<Json<Campaign>> {
    let campaign = state.registry.campaign(id).await?;
    caller.own_station(&campaign.station)?;
    Ok(Json(campaign))
}
