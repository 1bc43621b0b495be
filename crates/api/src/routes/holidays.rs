//! The registry's holidays: days that are not working days (reservations count working
//! days). Anyone reads them; an admin keeps them.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use registry::Holiday;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::input::{ApiJson, ApiResult, ListQuery};
use crate::AppState;
use crate::access::{Admins, Allowed, Anyone};
use crate::error::Problem;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/holidays", get(list_holidays).post(add_holiday))
        .route("/v1/holidays/{day}", delete(remove_holiday))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct HolidayQuery {
    pub year: Option<i32>,
}

/// The holidays of a year (or all), by date (any role).
#[utoipa::path(get, path = "/v1/holidays", params(HolidayQuery), responses((status = 200, description = "holidays")))]
pub async fn list_holidays(
    State(state): State<AppState>,
    _: Allowed<Anyone>,
    query: ListQuery<HolidayQuery>,
) -> ApiResult<Json<Vec<Holiday>>> {
    let Query(q) = query?;
    Ok(Json(state.registry.holidays(q.year).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct HolidayIn {
    /// `YYYY-MM-DD`.
    pub day: String,
    pub name: String,
}

/// Add (or rename) a holiday (admin).
#[utoipa::path(post, path = "/v1/holidays", request_body = HolidayIn,
    responses((status = 201, description = "added"), (status = 422, body = Problem)))]
pub async fn add_holiday(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<Admins>,
    ApiJson(h): ApiJson<HolidayIn>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    state
        .registry
        .add_holiday(&h.day, &h.name, &caller.actor())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"day": h.day, "name": h.name})),
    ))
}

/// Remove a holiday (admin).
#[utoipa::path(delete, path = "/v1/holidays/{day}", params(("day" = String, Path)),
    responses((status = 200, description = "removed"), (status = 404, body = Problem)))]
pub async fn remove_holiday(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<Admins>,
    Path(day): Path<String>,
) -> ApiResult<Json<Value>> {
    state.registry.remove_holiday(&day, &caller.actor()).await?;
    Ok(Json(json!({"day": day})))
}
