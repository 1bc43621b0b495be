//! Searches for a patient (NEW → PRE → ACT ⇄ SUS → STP) and their stored last run.

use matching::model::format_day;
use sqlx::Row;

use crate::audit::{audit, commit_audited};
use crate::page::{Arg, Filter, Page, PageRequest};
use crate::support::date;
use crate::{Actor, Registry, RegistryError, Result};

/// Search states (WMDA): NEW → PRE → ACT ⇄ SUS → STP.
pub const SEARCH_STATES: [&str; 5] = ["NEW", "PRE", "ACT", "SUS", "STP"];

/// A search for a patient that is not there is a 404, not a database error.
fn search_insert_error(e: sqlx::Error, patient_id: i64) -> RegistryError {
    match &e {
        sqlx::Error::Database(d) if d.message().to_lowercase().contains("foreign key") => {
            RegistryError::NotFound(format!("patient {patient_id}"))
        }
        _ => e.into(),
    }
}

/// A search: its patient, lifecycle state, criteria (JSON) and its last run's result (JSON).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SearchRecord {
    pub id: i64,
    pub patient_id: i64,
    pub state: String,
    pub state_reason: Option<String>,
    pub criteria: String,
    pub last_run_at: Option<String>,
    pub last_result: Option<String>,
    pub suspended_on: Option<String>,
    /// 1 when the last run found donors the run before did not have.
    #[sqlx(rename = "has_new")]
    pub has_new_flag: i64,
}

impl SearchRecord {
    /// The last run found donors the run before did not have.
    pub fn has_new(&self) -> bool {
        self.has_new_flag != 0
    }
}

/// A search as a work list shows it (without its stored result).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SearchSummary {
    pub id: i64,
    pub patient_id: i64,
    pub state: String,
    pub state_reason: Option<String>,
    pub created_at: String,
    pub last_run_at: Option<String>,
    pub suspended_on: Option<String>,
    /// The last run found donors the run before it did not have.
    pub has_new: bool,
}

/// Which searches a list shows.
#[derive(Debug, Clone, Default)]
pub struct SearchFilter {
    pub patient_id: Option<i64>,
    pub state: Option<String>,
    pub has_new: Option<bool>,
}

/// What a re-run changed against the run before it (donor ids).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunDiff {
    pub new: Vec<u64>,
    pub changed: Vec<u64>,
    pub gone: Vec<u64>,
}

/// A stored re-run of a search.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SearchRunRecord {
    pub id: i64,
    pub run_at: String,
    pub run_by: String,
    pub total: i64,
    #[serde(flatten)]
    pub diff: RunDiff,
}

fn summary_from_row(r: &sqlx::any::AnyRow) -> Result<SearchSummary> {
    Ok(SearchSummary {
        id: r.try_get("id")?,
        patient_id: r.try_get("patient_id")?,
        state: r.try_get("state")?,
        state_reason: r.try_get("state_reason")?,
        created_at: r.try_get("created_at")?,
        last_run_at: r.try_get("last_run_at")?,
        suspended_on: r.try_get("suspended_on")?,
        has_new: r.try_get::<i64, _>("has_new")? != 0,
    })
}

const SUMMARY_SELECT: &str = "SELECT id, patient_id, state, state_reason, created_at, last_run_at, suspended_on, \
     CAST(CASE WHEN has_new THEN 1 ELSE 0 END AS BIGINT) AS has_new FROM searches";

fn ids_json(ids: &[u64]) -> String {
    serde_json::to_string(ids).expect("ids serialise")
}

fn ids_from(text: &str) -> Result<Vec<u64>> {
    serde_json::from_str(text).map_err(|e| RegistryError::invalid("search_runs", e.to_string()))
}

impl Registry {
    /// Open a search for a patient (state NEW) with its criteria as JSON text.
    pub async fn open_search(&self, patient_id: i64, criteria: &str, actor: &Actor) -> Result<i64> {
        self.insert_search(patient_id, criteria, None, actor).await
    }

    /// Open a search and record its first run in one transaction (one commit per search
    /// created through the API); audited as `search.open` then `search.run`.
    pub async fn open_search_with_run(
        &self,
        patient_id: i64,
        criteria: &str,
        result: &str,
        actor: &Actor,
    ) -> Result<i64> {
        self.insert_search(patient_id, criteria, Some(result), actor)
            .await
    }

    /// PostgreSQL: the search and its two audit entries in one statement, so one round
    /// trip instead of five (begin, insert, two audits, commit): a coordinator's search
    /// writes this on every request. One statement is one transaction.
    async fn insert_search_with_run_pg(
        &self,
        patient_id: i64,
        criteria: &str,
        result: &str,
        actor: &Actor,
    ) -> Result<i64> {
        sqlx::query_scalar(
            "WITH s AS (INSERT INTO searches (patient_id, criteria, created_at, updated_at, last_run_at, last_result) \
               VALUES ($1, $2, $3, $3, $3, $4) RETURNING id), \
             a AS (INSERT INTO audit_log (at, actor, role, action, entity, entity_id, reason, request_id) \
               SELECT $3, $5, $6, v.action, 'search', CAST(s.id AS TEXT), NULL, $7 \
               FROM s CROSS JOIN (VALUES (1, 'search.open'), (2, 'search.run')) AS v(ord, action) ORDER BY v.ord) \
             SELECT id FROM s",
        )
        .bind(patient_id)
        .bind(criteria)
        .bind(self.now_text())
        .bind(result)
        .bind(&actor.name)
        .bind(&actor.role)
        .bind(actor.request_id.as_deref())
        .fetch_one(&self.pool)
        .await
        .map_err(|e| search_insert_error(e, patient_id))
    }

    async fn insert_search(
        &self,
        patient_id: i64,
        criteria: &str,
        result: Option<&str>,
        actor: &Actor,
    ) -> Result<i64> {
        serde_json::from_str::<serde_json::Value>(criteria)
            .map_err(|e| RegistryError::invalid("criteria", e.to_string()))?;
        crate::audit::check_actor(actor)?;
        if let (crate::Backend::Postgres, Some(result)) = (self.backend, result) {
            return self
                .insert_search_with_run_pg(patient_id, criteria, result, actor)
                .await;
        }
        let (_turn, mut tx) = self.begin().await?;
        let now = self.now_text();
        let id: i64 = sqlx::query_scalar("INSERT INTO searches (patient_id, criteria, created_at, updated_at, last_run_at, last_result) VALUES ($1, $2, $3, $3, $4, $5) RETURNING id")
            .bind(patient_id)
            .bind(criteria)
            .bind(&now)
            .bind(result.map(|_| now.clone()))
            .bind(result)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| search_insert_error(e, patient_id))?;
        audit(
            &mut tx,
            actor,
            "search.open",
            "search",
            &id.to_string(),
            None,
        )
        .await?;
        if result.is_some() {
            audit(
                &mut tx,
                actor,
                "search.run",
                "search",
                &id.to_string(),
                None,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    /// Move a search through NEW → PRE → ACT ⇄ SUS → STP; STP needs a reason and is final.
    pub async fn set_search_state(
        &self,
        search_id: i64,
        state: &str,
        reason: Option<&str>,
        actor: &Actor,
    ) -> Result<()> {
        if !SEARCH_STATES.contains(&state) {
            return Err(RegistryError::invalid(
                "state",
                format!(
                    "unknown search state `{state}` ({})",
                    SEARCH_STATES.join(", ")
                ),
            ));
        }
        let (_turn, mut tx) = self.begin().await?;
        let current: String = sqlx::query_scalar("SELECT state FROM searches WHERE id = $1")
            .bind(search_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| RegistryError::NotFound(format!("search {search_id}")))?;
        let allowed = matches!(
            (current.as_str(), state),
            ("NEW", "PRE" | "ACT" | "STP")
                | ("PRE", "ACT" | "SUS" | "STP")
                | ("ACT", "SUS" | "STP")
                | ("SUS", "ACT" | "STP")
        );
        if !allowed {
            return Err(RegistryError::Conflict(format!(
                "search {search_id} cannot go from {current} to {state}"
            )));
        }
        if state == "STP" && reason.is_none_or(|r| r.trim().is_empty()) {
            return Err(RegistryError::invalid(
                "reason",
                "stopping a search needs a reason",
            ));
        }
        // SUS keeps results for a while (the date it began counts); STP keeps none.
        sqlx::query(
            "UPDATE searches SET state = $1, state_reason = $2, updated_at = $3, \
             suspended_on = CASE WHEN $1 = 'SUS' THEN $4 ELSE NULL END, \
             last_result = CASE WHEN $1 = 'STP' THEN NULL ELSE last_result END, \
             has_new = CASE WHEN $1 = 'STP' THEN FALSE ELSE has_new END WHERE id = $5",
        )
        .bind(state)
        .bind(reason)
        .bind(self.now_text())
        .bind(format_day(self.today() as u16))
        .bind(search_id)
        .execute(&mut *tx)
        .await?;
        commit_audited(
            tx,
            actor,
            "search.state",
            "search",
            &search_id.to_string(),
            Some(&format!("{current} → {state}")),
        )
        .await?;
        Ok(())
    }

    pub async fn search_record(&self, search_id: i64) -> Result<SearchRecord> {
        sqlx::query_as::<_, SearchRecord>("SELECT id, patient_id, state, state_reason, criteria, last_run_at, last_result, suspended_on, \
             CAST(CASE WHEN has_new THEN 1 ELSE 0 END AS BIGINT) AS has_new FROM searches WHERE id = $1")
            .bind(search_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| RegistryError::NotFound(format!("search {search_id}")))
    }

    /// Keep a re-run's result (JSON) as the search's last, with what changed since the run
    /// before (stored as a run of its own); audited. A stopped search keeps no results.
    pub async fn record_search_run(
        &self,
        search_id: i64,
        result: &str,
        total: usize,
        diff: &RunDiff,
        actor: &Actor,
    ) -> Result<()> {
        let (_turn, mut tx) = self.begin().await?;
        let now = self.now_text();
        let n = sqlx::query(
            "UPDATE searches SET last_run_at = $1, last_result = $2, updated_at = $1, has_new = $3 WHERE id = $4 AND state <> 'STP'",
        )
        .bind(&now)
        .bind(result)
        .bind(!diff.new.is_empty())
        .bind(search_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            let state: Option<String> =
                sqlx::query_scalar("SELECT state FROM searches WHERE id = $1")
                    .bind(search_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            return Err(match state {
                None => RegistryError::NotFound(format!("search {search_id}")),
                Some(_) => RegistryError::Conflict(format!("search {search_id} is stopped")),
            });
        }
        sqlx::query("INSERT INTO search_runs (search_id, run_at, run_by, total, new_donors, changed_donors, gone_donors) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(search_id)
            .bind(&now)
            .bind(&actor.name)
            .bind(total as i64)
            .bind(ids_json(&diff.new))
            .bind(ids_json(&diff.changed))
            .bind(ids_json(&diff.gone))
            .execute(&mut *tx)
            .await?;
        commit_audited(
            tx,
            actor,
            "search.run",
            "search",
            &search_id.to_string(),
            Some(&format!(
                "{} new, {} changed, {} gone",
                diff.new.len(),
                diff.changed.len(),
                diff.gone.len()
            )),
        )
        .await?;
        Ok(())
    }

    /// A search's stored re-runs, oldest first.
    pub async fn search_runs(&self, search_id: i64) -> Result<Vec<SearchRunRecord>> {
        self.search_record(search_id).await?;
        let rows = sqlx::query("SELECT id, run_at, run_by, total, new_donors, changed_donors, gone_donors FROM search_runs WHERE search_id = $1 ORDER BY id")
            .bind(search_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(SearchRunRecord {
                    id: r.try_get("id")?,
                    run_at: r.try_get("run_at")?,
                    run_by: r.try_get("run_by")?,
                    total: r.try_get("total")?,
                    diff: RunDiff {
                        new: ids_from(&r.try_get::<String, _>("new_donors")?)?,
                        changed: ids_from(&r.try_get::<String, _>("changed_donors")?)?,
                        gone: ids_from(&r.try_get::<String, _>("gone_donors")?)?,
                    },
                })
            })
            .collect()
    }

    /// A page of searches (a patient's, by state, those whose last run found new donors).
    pub async fn list_searches(
        &self,
        filter: &SearchFilter,
        page: &PageRequest,
    ) -> Result<Page<SearchSummary>> {
        let mut f = Filter::default();
        if let Some(p) = filter.patient_id {
            f.with("patient_id = ?", Arg::Int(p));
        }
        if let Some(state) = &filter.state {
            if !SEARCH_STATES.contains(&state.as_str()) {
                return Err(RegistryError::invalid(
                    "state",
                    format!(
                        "unknown search state `{state}` ({})",
                        SEARCH_STATES.join(", ")
                    ),
                ));
            }
            f.with("state = ?", Arg::Text(state.clone()));
        }
        match filter.has_new {
            Some(true) => f.fixed("has_new"),
            Some(false) => f.fixed("NOT has_new"),
            None => &mut f,
        };
        self.page(SUMMARY_SELECT, "id", f, page, summary_from_row, |s| s.id)
            .await
    }

    /// Every active (ACT) search id: the nightly job re-runs them.
    pub async fn active_searches(&self) -> Result<Vec<i64>> {
        Ok(
            sqlx::query_scalar("SELECT id FROM searches WHERE state = 'ACT' ORDER BY id")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Stop every search suspended for more than `suspended_search_days` before `today`
    /// (its results are dropped); returns their ids.
    pub async fn stop_stale_suspended(&self, today: i64, actor: &Actor) -> Result<Vec<i64>> {
        let days = self.config.suspended_search_days;
        let rows = sqlx::query(
            "SELECT id, COALESCE(suspended_on, SUBSTR(updated_at, 1, 10)) AS since FROM searches WHERE state = 'SUS' ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut stopped = Vec::new();
        for row in rows {
            let id: i64 = row.try_get("id")?;
            let since = date("suspended_on", &row.try_get::<String, _>("since")?)?;
            if today - since > days as i64 {
                let reason = format!("suspended more than {days} days");
                match self.set_search_state(id, "STP", Some(&reason), actor).await {
                    Ok(()) => stopped.push(id),
                    // Resumed or stopped meanwhile: nothing to do.
                    Err(RegistryError::Conflict(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(stopped)
    }
}
