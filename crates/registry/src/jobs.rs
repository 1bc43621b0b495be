//! Scheduled jobs' runs: one row per job and local date. Claiming a day's run inserts the
//! row, so with several servers (or a server and a cron `boai db daily`) a day's job runs
//! once; a run that failed gives its claim back so the next attempt can retry.

use crate::audit::commit_audited;
use crate::support::is_unique_violation;
use crate::{Actor, Registry, Result};

impl Registry {
    /// Claim job `job`'s run for local date `run_on`; false when it was already claimed.
    pub async fn claim_job(&self, job: &str, run_on: &str) -> Result<bool> {
        let (_turn, mut tx) = self.begin().await?;
        match sqlx::query("INSERT INTO job_runs (job, run_on, started_at) VALUES ($1, $2, $3)")
            .bind(job)
            .bind(run_on)
            .bind(self.now_text())
            .execute(&mut *tx)
            .await
        {
            Ok(_) => {
                tx.commit().await?;
                Ok(true)
            }
            Err(e) if is_unique_violation(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Record a claimed run as finished with its counts (JSON), audited as `job.<job>`.
    pub async fn finish_job(
        &self,
        job: &str,
        run_on: &str,
        counts: &str,
        actor: &Actor,
    ) -> Result<()> {
        let (_turn, mut tx) = self.begin().await?;
        sqlx::query(
            "UPDATE job_runs SET finished_at = $1, counts = $2 WHERE job = $3 AND run_on = $4",
        )
        .bind(self.now_text())
        .bind(counts)
        .bind(job)
        .bind(run_on)
        .execute(&mut *tx)
        .await?;
        commit_audited(
            tx,
            actor,
            &format!("job.{job}"),
            "job",
            run_on,
            Some(counts),
        )
        .await
    }

    /// Give back a claim whose run failed.
    pub async fn release_job(&self, job: &str, run_on: &str) -> Result<()> {
        let (_turn, mut tx) = self.begin().await?;
        sqlx::query("DELETE FROM job_runs WHERE job = $1 AND run_on = $2 AND finished_at IS NULL")
            .bind(job)
            .bind(run_on)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The latest local date job `job` was claimed for.
    pub async fn last_job_run(&self, job: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT MAX(run_on) FROM job_runs WHERE job = $1")
                .bind(job)
                .fetch_one(&self.pool)
                .await?,
        )
    }
}
