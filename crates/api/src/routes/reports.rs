//! The yearly report: JSON by default; CSV, Markdown or HTML (with its charts) on request.

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use registry::{ReportFormat, YearlyReport};
use serde::Deserialize;

use super::input::{ApiResult, ListQuery};
use crate::AppState;
use crate::access::{Allowed, Anyone};
use crate::error::{ApiError, Problem};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/reports/yearly", get(yearly_report))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct YearlyQuery {
    pub year: i32,
    pub branch: Option<String>,
    /// A station token reads only its own station's report.
    pub station: Option<String>,
    /// json (default), csv, md, html
    pub format: Option<String>,
}

/// The year's figures for the registry, a branch or a station (registry operations §10):
/// stem-cell samples against target, new listings, registry size by branch and age band,
/// utilisation, requests, donations with their ordinals, follow-up completion,
/// reachability, organ registrations and completed organ/body/cornea cases, care and
/// campaigns, with a summary in Chinese and English.
#[utoipa::path(get, path = "/v1/reports/yearly", params(YearlyQuery),
    responses((status = 200, description = "the report (JSON, CSV, Markdown or HTML)"), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn yearly_report(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<Anyone>,
    query: ListQuery<YearlyQuery>,
) -> ApiResult<Response> {
    let Query(q) = query?;
    let format = match q.format.as_deref() {
        None => ReportFormat::Json,
        Some(f) => ReportFormat::from_code(f).ok_or_else(|| {
            ApiError::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                "format",
                format!("`{f}` is not one of json, csv, md, html"),
            )
        })?,
    };
    let report: YearlyReport = state
        .registry
        .yearly_report(
            q.year,
            q.branch.as_deref(),
            q.station.as_deref(),
            &caller.actor(),
        )
        .await?;
    let content_type = match format {
        ReportFormat::Json => return Ok(Json(report).into_response()),
        ReportFormat::Csv => "text/csv; charset=utf-8",
        ReportFormat::Md => "text/markdown; charset=utf-8",
        ReportFormat::Html => "text/html; charset=utf-8",
    };
    let body = registry::report::render(&report, format)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}
