//! The registry's jobs, run now by an admin (they also run by themselves: `crate::jobs`).

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::input::ApiResult;
use crate::AppState;
use crate::access::{Admins, Allowed};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/jobs/daily", post(run_daily))
}

/// Run the daily job now if the run due now has not run yet (admin); answers its counts,
/// or `ran: false` when it had already run.
#[utoipa::path(post, path = "/v1/jobs/daily", responses((status = 200, description = "the run's counts")))]
pub async fn run_daily(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<Admins>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        match crate::jobs::run_daily_if_due(&state, &caller.actor()).await? {
            Some(outcome) => json!({"ran": true, "outcome": outcome}),
            None => json!({"ran": false, "run_on": crate::jobs::due_date(&state).to_string()}),
        },
    ))
}
