//! Typing results from labs: HML 1.0.1 documents (a donor's single typing is recorded at
//! `/v1/donors/{id}/typings`).

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;

use registry::hml::{HmlImport, HmlOptions};

use super::input::{ApiResult, ListQuery};
use crate::AppState;
use crate::access::{Allowed, StationsAndAdmins};
use crate::error::{ApiError, FieldError, Problem};

/// A lab's HML file carries consensus sequences besides the typings: far past the API's
/// usual body limit.
pub const HML_BODY_LIMIT: usize = 32 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/v1/typings/hml",
        post(import_hml).layer(axum::extract::DefaultBodyLimit::max(HML_BODY_LIMIT)),
    )
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct HmlQuery {
    /// Record nothing when any element is bad.
    #[serde(default)]
    pub all_or_nothing: bool,
}

/// Import an HML 1.0.1 document (UTF-8): each sample matched to its donor by the registry's
/// sample barcode or the donor's GRID (a station: its own donors only), its typings recorded
/// (the loci given replace the donor's current ones at those loci; the others are kept), the
/// methods (SBT, NGS, SSO, SSP) and the lab kept. Every bad element is named by its path;
/// the good samples are recorded (none with `all_or_nothing`): 200 with the report when
/// anything was recorded or nothing was wrong; a 422 problem naming each bad element (its
/// path as the field) when nothing was recorded because of them.
#[utoipa::path(post, path = "/v1/typings/hml", params(HmlQuery), request_body(content = String, content_type = "application/xml"),
    responses((status = 200, description = "`{hmlid, samples, recorded: [{path, sample, donor_id, typing_id, gl, method, lab}], errors: [{path, reason}]}`"),
        (status = 422, body = Problem), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn import_hml(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<StationsAndAdmins>,
    query: ListQuery<HmlQuery>,
    body: axum::body::Bytes,
) -> ApiResult<Json<HmlImport>> {
    let Query(q) = query?;
    let text = std::str::from_utf8(&body).map_err(|e| {
        ApiError::field(
            StatusCode::BAD_REQUEST,
            "body",
            format!("an HML document must be UTF-8: {e}"),
        )
    })?;
    let options = HmlOptions {
        all_or_nothing: q.all_or_nothing,
    };
    let mut report = state
        .registry
        .import_hml(text, &options, &caller.actor(), state.today())
        .await?;
    for update in std::mem::take(&mut report.index) {
        state.update_index(update)?;
    }
    if report.recorded.is_empty() && !report.errors.is_empty() {
        let mut problem = ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "nothing recorded: {} problem(s), each named by its path in the document",
                report.errors.len()
            ),
        );
        problem.errors = report
            .errors
            .into_iter()
            .map(|e| FieldError {
                field: e.path,
                reason: e.reason,
            })
            .collect();
        return Err(problem);
    }
    Ok(Json(report))
}
