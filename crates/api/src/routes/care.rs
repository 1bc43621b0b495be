//! Donor care (人道关怀): records for a donor or a deceased donor's family, by case
//! managers; read by case managers and auditors, per donor, case, kind or year.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use registry::{CareFilter, CareRecord, NewCare, Page};
use serde::Deserialize;
use utoipa::ToSchema;

use super::input::{ApiJson, ApiResult, ListQuery, page_request};
use crate::AppState;
use crate::access::{Allowed, CareReaders, CaseManagers};
use crate::error::Problem;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/care", post(record_care).get(list_care))
}

/// A care record: for a donor (`donor_id`) or a death-donation case's family
/// (`organ_case_id`). `aid` needs `amount_fen` and `fund`; `benefit` a `title`; `honour` a
/// `title` and `awarding_body`; `memorial` a `memorial_park`; `condolence` is for a family.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CareIn {
    pub donor_id: Option<i64>,
    pub organ_case_id: Option<i64>,
    #[serde(default)]
    pub for_family: bool,
    /// visit, condolence, aid, benefit, honour, memorial
    pub kind: String,
    /// `YYYY-MM-DD`, not after today.
    pub on_date: String,
    /// CNY in fen (¥12.50 is 1250).
    pub amount_fen: Option<i64>,
    pub fund: Option<String>,
    pub title: Option<String>,
    pub awarding_body: Option<String>,
    pub memorial_park: Option<String>,
    pub plot: Option<String>,
    /// e.g. 清明
    pub commemoration: Option<String>,
    pub note: Option<String>,
}

/// Record care (case managers); audited.
#[utoipa::path(post, path = "/v1/care", request_body = CareIn,
    responses((status = 201, description = "the record"), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn record_care(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<CaseManagers>,
    ApiJson(c): ApiJson<CareIn>,
) -> ApiResult<(StatusCode, Json<CareRecord>)> {
    let record = state
        .registry
        .record_care(
            &NewCare {
                donor_id: c.donor_id,
                organ_case_id: c.organ_case_id,
                for_family: c.for_family,
                kind: c.kind,
                on_date: c.on_date,
                amount_fen: c.amount_fen,
                fund: c.fund,
                title: c.title,
                awarding_body: c.awarding_body,
                memorial_park: c.memorial_park,
                plot: c.plot,
                commemoration: c.commemoration,
                note: c.note,
            },
            &caller.actor(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(record)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct CareQuery {
    pub donor_id: Option<i64>,
    pub organ_case_id: Option<i64>,
    pub kind: Option<String>,
    /// Records dated in this year.
    pub year: Option<i32>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

/// Care records (case managers, auditors).
#[utoipa::path(get, path = "/v1/care", params(CareQuery),
    responses((status = 200, description = "`{items, next_cursor}`"), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn list_care(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<CareReaders>,
    query: ListQuery<CareQuery>,
) -> ApiResult<Json<Page<CareRecord>>> {
    let Query(q) = query?;
    Ok(Json(
        state
            .registry
            .list_care(
                &caller.actor(),
                &CareFilter {
                    donor_id: q.donor_id,
                    organ_case_id: q.organ_case_id,
                    kind: q.kind,
                    year: q.year,
                },
                &page_request(q.cursor, q.limit),
            )
            .await?,
    ))
}
