//! The jobs a registry runs by itself. The daily job runs at the registry's configured local
//! time (`RegistryConfig::daily_job_at`, in its time zone), and at start when that day's run
//! was missed; `boai db daily` runs the same job from cron. Each day's run is claimed in the
//! store first, so it runs once however many servers there are.
//!
//! The daily job: TU past its end date back to AV, reservations past their last working day
//! cancelled (donor back to AV), donors at the age-out birthday to DE/DO, the index
//! refreshed for each; searches suspended longer than the limit stopped (their results
//! dropped); every active (ACT) search re-run, each run stored with what changed.

use std::time::Duration;

use jiff::ToSpan;
use registry::Actor;
use serde::Serialize;

use crate::AppState;
use crate::error::ApiError;

/// The daily job's name in the store (`job_runs`, audit action `job.daily`).
pub const DAILY: &str = "daily";

/// What a daily run did (counts and ids), recorded in the audit log.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct DailyOutcome {
    /// The local date the run was for.
    pub run_on: String,
    pub tu_expired: usize,
    pub reservations_released: usize,
    pub aged_out: usize,
    pub searches_stopped: usize,
    pub searches_rerun: usize,
    /// Re-runs that found new donors.
    pub searches_with_new: usize,
    /// Active searches whose re-run failed (named in the log; the job goes on).
    pub searches_failed: usize,
}

/// The local date whose daily run is due now: today once the configured time has passed,
/// else yesterday.
pub fn due_date(state: &AppState) -> jiff::civil::Date {
    let config = &state.registry.config;
    let (date, time) = config.clock.local_now();
    if time >= config.daily_job_at {
        date
    } else {
        date.checked_sub(1.day()).unwrap_or(date)
    }
}

/// Run the daily job if the run due now has not been claimed; `None` when it had.
pub async fn run_daily_if_due(
    state: &AppState,
    actor: &Actor,
) -> Result<Option<DailyOutcome>, ApiError> {
    let run_on = due_date(state).to_string();
    // A read first: the scheduler asks every tick, and most ticks the day has run.
    if state
        .registry
        .last_job_run(DAILY)
        .await?
        .is_some_and(|last| last >= run_on)
    {
        return Ok(None);
    }
    if !state.registry.claim_job(DAILY, &run_on).await? {
        return Ok(None);
    }
    match daily_work(state, &run_on, actor).await {
        Ok(outcome) => {
            let counts = serde_json::to_string(&outcome).expect("outcome serialises");
            state
                .registry
                .finish_job(DAILY, &run_on, &counts, actor)
                .await?;
            Ok(Some(outcome))
        }
        Err(e) => {
            // Give the day back so the next tick retries it.
            state.registry.release_job(DAILY, &run_on).await?;
            Err(e)
        }
    }
}

async fn daily_work(
    state: &AppState,
    run_on: &str,
    actor: &Actor,
) -> Result<DailyOutcome, ApiError> {
    let registry = &state.registry;
    let today = registry.today();
    let donors = registry.run_daily(today, actor).await?;
    for id in donors.donors() {
        state.update_index(registry.index_update_of(id).await?)?;
    }
    let stopped = registry.stop_stale_suspended(today, actor).await?;
    let mut outcome = DailyOutcome {
        run_on: run_on.to_string(),
        tu_expired: donors.tu_expired.len(),
        reservations_released: donors.reservations_released.len(),
        aged_out: donors.aged_out.len(),
        searches_stopped: stopped.len(),
        ..Default::default()
    };
    for id in registry.active_searches().await? {
        match crate::routes::searches::rerun(state, id, actor).await {
            Ok((_, diff)) => {
                outcome.searches_rerun += 1;
                outcome.searches_with_new += usize::from(!diff.new.is_empty());
            }
            Err(e) => {
                // One search's trouble (e.g. its patient's typing no longer reads) must not
                // hold back the others or the donor changes above.
                tracing::warn!(search = id, error = %e.detail, "nightly re-run failed");
                outcome.searches_failed += 1;
            }
        }
    }
    tracing::info!(?outcome, "daily job done");
    Ok(outcome)
}

/// Check every `tick` whether the daily run is due and run it; runs until the runtime
/// stops. Errors are logged and retried at the next tick.
pub fn spawn_scheduler(state: AppState, tick: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let actor = Actor::system();
        loop {
            if state.ready.load(std::sync::atomic::Ordering::SeqCst)
                && let Err(e) = run_daily_if_due(&state, &actor).await
            {
                tracing::error!(error = %e.detail, "daily job failed; retrying at the next tick");
            }
            tokio::time::sleep(tick).await;
        }
    })
}
