//! Searches for a patient (NEW → PRE → ACT ⇄ SUS → STP) and their stored last run.

use crate::audit::{audit, commit_audited};
use crate::{Actor, Registry, RegistryError, Result, now_text};

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
        .bind(now_text())
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
        if let (crate::Backend::Postgres, Some(result)) = (self.backend, result) {
            return self
                .insert_search_with_run_pg(patient_id, criteria, result, actor)
                .await;
        }
        let (_turn, mut tx) = self.begin().await?;
        let now = now_text();
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
        sqlx::query(
            "UPDATE searches SET state = $1, state_reason = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(state)
        .bind(reason)
        .bind(now_text())
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
        sqlx::query_as::<_, SearchRecord>("SELECT id, patient_id, state, state_reason, criteria, last_run_at, last_result FROM searches WHERE id = $1")
            .bind(search_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| RegistryError::NotFound(format!("search {search_id}")))
    }

    /// Keep a run's result (JSON) as the search's last, audited.
    pub async fn record_search_run(
        &self,
        search_id: i64,
        result: &str,
        actor: &Actor,
    ) -> Result<()> {
        let (_turn, mut tx) = self.begin().await?;
        let n = sqlx::query(
            "UPDATE searches SET last_run_at = $1, last_result = $2, updated_at = $1 WHERE id = $3",
        )
        .bind(now_text())
        .bind(result)
        .bind(search_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(RegistryError::NotFound(format!("search {search_id}")));
        }
        commit_audited(
            tx,
            actor,
            "search.run",
            "search",
            &search_id.to_string(),
            None,
        )
        .await?;
        Ok(())
    }
}
