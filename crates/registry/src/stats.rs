//! Counts for `boai db stats`.

use matching::model::format_day;
use sqlx::Row;

use crate::{Backend, Registry, Result};

impl Registry {
    /// Counts for `boai db stats`.
    pub async fn stats(&self, today: i64) -> Result<serde_json::Value> {
        let count = |sql: &'static str| async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&self.pool)
                .await
        };
        let mut by_status = serde_json::Map::new();
        for row in
            sqlx::query("SELECT status, COUNT(*) AS n FROM donors GROUP BY status ORDER BY status")
                .fetch_all(&self.pool)
                .await?
        {
            by_status.insert(
                row.try_get::<String, _>("status")?,
                row.try_get::<i64, _>("n")?.into(),
            );
        }
        let today_text = format_day(today as u16);
        let due: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM followups WHERE state = 'due' AND due_on >= $1",
        )
        .bind(&today_text)
        .fetch_one(&self.pool)
        .await?;
        let overdue: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM followups WHERE state = 'due' AND due_on < $1",
        )
        .bind(&today_text)
        .fetch_one(&self.pool)
        .await?;
        Ok(serde_json::json!({
            "backend": match self.backend { Backend::Sqlite => "sqlite", Backend::Postgres => "postgres" },
            "donors": count("SELECT COUNT(*) FROM donors").await?,
            "donors_by_status": by_status,
            "donors_listed": count("SELECT COUNT(*) FROM donors WHERE listed").await?,
            "typings": count("SELECT COUNT(*) FROM typings").await?,
            "consents": count("SELECT COUNT(*) FROM consents").await?,
            "consents_withdrawn": count("SELECT COUNT(*) FROM consents WHERE withdrawn_at IS NOT NULL").await?,
            "samples": count("SELECT COUNT(*) FROM samples").await?,
            "patients": count("SELECT COUNT(*) FROM patients").await?,
            "followups_due": due,
            "followups_overdue": overdue,
            "organ_registrations": count("SELECT COUNT(*) FROM organ_registrations WHERE state = 'active'").await?,
            "audit_entries": count("SELECT COUNT(*) FROM audit_log").await?,
        }))
    }
}
