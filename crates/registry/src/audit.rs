//! The audit log: every change and identity read writes an entry in the same transaction
//! (`audit`, `commit_audited`); auditors read it newest first.

use sqlx::{Any, Transaction};

use crate::support::{NOTE_MAX, check_text};
use crate::{Actor, Registry, Result, now_text};

/// Longest client request id kept in the log (the API replaces a longer one with its own).
pub const REQUEST_ID_MAX: usize = 200;

/// What the log keeps of the actor is bounded: a request id of at most [`REQUEST_ID_MAX`]
/// printable characters. Checked by every path that writes the log (`audit`, the search's
/// one-statement insert, the bulk import), so no caller of the store gets past it.
pub(crate) fn check_actor(actor: &Actor) -> Result<()> {
    check_text(
        "request_id",
        actor.request_id.as_deref(),
        false,
        REQUEST_ID_MAX,
    )
}

/// The audit entry of a change, in the change's own transaction.
pub(crate) async fn audit(
    tx: &mut Transaction<'_, Any>,
    actor: &Actor,
    action: &str,
    entity: &str,
    entity_id: &str,
    reason: Option<&str>,
) -> Result<()> {
    // Every path checks its own text; this is the backstop that keeps the log bounded.
    check_text("reason", reason, false, NOTE_MAX)?;
    check_actor(actor)?;
    sqlx::query("INSERT INTO audit_log (at, actor, role, action, entity, entity_id, reason, request_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
        .bind(now_text())
        .bind(&actor.name)
        .bind(&actor.role)
        .bind(action)
        .bind(entity)
        .bind(entity_id)
        .bind(reason)
        .bind(actor.request_id.as_deref())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The end of every audited write: its entry, then the commit, so a change and its entry
/// land together or not at all.
pub(crate) async fn commit_audited(
    mut tx: Transaction<'_, Any>,
    actor: &Actor,
    action: &str,
    entity: &str,
    entity_id: &str,
    reason: Option<&str>,
) -> Result<()> {
    audit(&mut tx, actor, action, entity, entity_id, reason).await?;
    tx.commit().await?;
    Ok(())
}

/// One audit log entry.
#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct AuditEntry {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub role: String,
    pub action: String,
    pub entity: String,
    pub entity_id: Option<String>,
    pub reason: Option<String>,
    pub request_id: Option<String>,
}

impl Registry {
    /// Audit entries, newest first, optionally of one entity (and id), entries before
    /// `before_id` for paging.
    pub async fn audit_entries(
        &self,
        entity: Option<&str>,
        entity_id: Option<&str>,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>> {
        Ok(sqlx::query_as::<_, AuditEntry>("SELECT id, at, actor, role, action, entity, entity_id, reason, request_id FROM audit_log \
             WHERE ($1 IS NULL OR entity = $1) AND ($2 IS NULL OR entity_id = $2) AND ($3 IS NULL OR id < $3) ORDER BY id DESC LIMIT $4")
            .bind(entity)
            .bind(entity_id)
            .bind(before_id)
            .bind(limit.clamp(1, 1000))
            .fetch_all(&self.pool)
            .await?)
    }
}
