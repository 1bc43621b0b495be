//! What an import's stages share: a validated row, a batch, how a batch's rows sort against
//! what the registry holds, the transaction a batch runs in, and the rows whose typing
//! changed (written the same way on both backends).

use std::collections::{HashMap, HashSet};

use matching::{Abo, Cmv, DonorType, Sex};
use sqlx::{Any, Transaction};

use crate::{Actor, Result};

/// A row that cannot be imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub line: usize,
    pub field: String,
    pub reason: String,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}: {}", self.line, self.field, self.reason)
    }
}

/// Identity cells of an enrolment row: family name, given name, national id, phone, email.
pub(crate) type IdentityCells = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// Whether a row must be new, must already exist, or may be either (Atlas's change types
/// `N`, `U` and `NU`; every other source: either).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Expect {
    New,
    Existing,
    #[default]
    Either,
}

/// One validated row ready to store.
#[derive(Debug, Clone)]
pub(crate) struct ImportRow {
    pub(crate) line: usize,
    pub(crate) expect: Expect,
    pub(crate) external_id: String,
    pub(crate) station: String,
    pub(crate) birth_date: Option<String>,
    pub(crate) sex: Sex,
    pub(crate) abo: Abo,
    pub(crate) rh: Option<bool>,
    pub(crate) cmv: Cmv,
    pub(crate) population: String,
    pub(crate) donor_type: DonorType,
    pub(crate) gl: String,
    pub(crate) lab: Option<String>,
    pub(crate) method: Option<String>,
    pub(crate) typed_on: Option<String>,
    pub(crate) identity: Option<IdentityCells>,
    pub(crate) consent_form: String,
    pub(crate) consent_note: Option<String>,
}

pub(crate) fn err(line: usize, field: &str, reason: impl Into<String>) -> RowError {
    RowError {
        line,
        field: field.into(),
        reason: reason.into(),
    }
}

/// One batch as read and validated: rows to store and the rows' errors.
pub(crate) struct CheckedBatch {
    pub(crate) read: usize,
    pub(crate) rows: Vec<ImportRow>,
    pub(crate) errors: Vec<RowError>,
}

/// The audit reason of a batch's creations: how many, from where, and which donor ids (each
/// created donor also names this entry in `donors.created_by_audit`).
pub(crate) fn batch_audit_reason(rows: &[(&ImportRow, i64)], source: &str) -> String {
    let lo = rows.iter().map(|(_, id)| *id).min().unwrap_or(0);
    let hi = rows.iter().map(|(_, id)| *id).max().unwrap_or(0);
    let first_line = rows.iter().map(|(r, _)| r.line).min().unwrap_or(0);
    let last_line = rows.iter().map(|(r, _)| r.line).max().unwrap_or(0);
    format!(
        "{} donors created by importing {source} (lines {first_line}–{last_line}, donor ids {lo}–{hi})",
        rows.len()
    )
}

/// The transaction an import batch runs in: SQLite through the shared pool, PostgreSQL on
/// a native connection (for `COPY`).
pub(crate) enum ImportTx {
    /// The transaction, then the writer's turn (dropped after it).
    Sqlite(Transaction<'static, Any>, crate::WriteTurn),
    Postgres(Transaction<'static, sqlx::Postgres>),
}

impl ImportTx {
    pub(crate) async fn commit(self) -> Result<()> {
        match self {
            ImportTx::Sqlite(tx, _turn) => tx.commit().await?,
            ImportTx::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }

    pub(crate) async fn rollback(self) -> Result<()> {
        match self {
            ImportTx::Sqlite(tx, _turn) => tx.rollback().await?,
            ImportTx::Postgres(tx) => tx.rollback().await?,
        }
        Ok(())
    }
}

/// National ids of a batch's rows that carry one.
pub(crate) fn national_ids(rows: &[ImportRow]) -> impl Iterator<Item = &str> {
    rows.iter()
        .filter_map(|r| r.identity.as_ref().and_then(|i| i.2.as_deref()))
}

/// A batch's rows sorted against what the registry holds.
pub(crate) struct Sorted<'r> {
    pub(crate) unchanged: usize,
    /// Known donors whose typing differs: (row, donor id).
    pub(crate) changed: Vec<(&'r ImportRow, i64)>,
    pub(crate) new: Vec<&'r ImportRow>,
    pub(crate) rejected: Vec<RowError>,
}

impl Sorted<'_> {
    pub(crate) fn outcome(&self) -> StoredBatch {
        StoredBatch {
            created: self.new.len(),
            updated: self.changed.len(),
            unchanged: self.unchanged,
            rejected: self.rejected.clone(),
        }
    }
}

pub(crate) fn classify<'r>(
    rows: &'r [ImportRow],
    existing: &HashMap<String, (i64, Option<String>)>,
    mut taken_national_ids: HashSet<String>,
) -> Sorted<'r> {
    let mut sorted = Sorted {
        unchanged: 0,
        changed: Vec::new(),
        new: Vec::new(),
        rejected: Vec::new(),
    };
    for r in rows {
        let known = existing.contains_key(&r.external_id);
        if known && r.expect == Expect::New {
            sorted.rejected.push(err(
                r.line,
                "changeType",
                format!(
                    "N (new), but donor {} is already in the registry",
                    r.external_id
                ),
            ));
            continue;
        }
        if !known && r.expect == Expect::Existing {
            sorted.rejected.push(err(
                r.line,
                "changeType",
                format!(
                    "U (update), but there is no donor {} to update",
                    r.external_id
                ),
            ));
            continue;
        }
        match existing.get(&r.external_id) {
            Some((_, gl)) if gl.as_deref() == Some(r.gl.as_str()) => sorted.unchanged += 1,
            Some((id, _)) => sorted.changed.push((r, *id)),
            None => {
                if let Some(n) = r.identity.as_ref().and_then(|i| i.2.as_ref())
                    && !taken_national_ids.insert(n.clone())
                {
                    sorted.rejected.push(err(
                        r.line,
                        "national_id",
                        "a donor with this national id is already enrolled",
                    ));
                    continue;
                }
                sorted.new.push(r);
            }
        }
    }
    sorted
}

/// What every batch of one import shares.
pub(crate) struct BatchContext<'a> {
    /// The native PostgreSQL pool (for `COPY`); `None` on SQLite.
    pub(crate) pg: Option<&'a sqlx::PgPool>,
    pub(crate) actor: &'a Actor,
    /// The file's name, for the audit log.
    pub(crate) source: &'a str,
    pub(crate) today: i64,
}

/// What storing one batch did.
#[derive(Default)]
pub(crate) struct StoredBatch {
    pub(crate) created: usize,
    pub(crate) updated: usize,
    pub(crate) unchanged: usize,
    pub(crate) rejected: Vec<RowError>,
}

/// Rows whose typing changed: the new typing becomes current and the old one stays in the
/// history, the donor's version moves on, and each gets an `import.update` entry. One loop
/// for both backends (SQLite through the `Any` transaction, PostgreSQL on the native one).
/// A donor in confirmatory typing without that consent in force keeps its typing: the row
/// is refused (returned), as the API refuses such a result.
pub(crate) async fn replace_typings<DB>(
    conn: &mut DB::Connection,
    changed: &[(&ImportRow, i64)],
    release: &str,
    now: &str,
    today_text: &str,
    actor: &Actor,
) -> Result<Vec<RowError>>
where
    DB: sqlx::Database,
    (i64,): for<'r> sqlx::FromRow<'r, DB::Row>,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'t> i64: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> &'t str: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> Option<&'t str>: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> String: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    let mut refused = Vec::new();
    for (r, id) in changed {
        let unconsented: i64 = sqlx::query_scalar::<DB, i64>(
            "SELECT COUNT(*) FROM requests q WHERE q.donor_id = $1 AND q.kind = 'confirmatory_typing' AND q.state = 'open' \
             AND NOT EXISTS (SELECT 1 FROM consents c WHERE c.donor_id = q.donor_id AND c.scope = 'confirmatory_typing' AND c.withdrawn_at IS NULL)",
        )
        .bind(*id)
        .fetch_one(&mut *conn)
        .await?;
        if unconsented > 0 {
            refused.push(err(
                r.line,
                "consent",
                format!("donor {id} is in confirmatory typing without confirmatory_typing consent: its typing is not replaced"),
            ));
            continue;
        }
        sqlx::query::<DB>(
            "UPDATE typings SET is_current = FALSE WHERE donor_id = $1 AND is_current",
        )
        .bind(*id)
        .execute(&mut *conn)
        .await?;
        sqlx::query::<DB>("INSERT INTO typings (donor_id, gl, release, lab, method, typed_on, is_current, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, TRUE, $7)")
            .bind(*id)
            .bind(r.gl.as_str())
            .bind(release)
            .bind(r.lab.as_deref())
            .bind(r.method.as_deref())
            .bind(r.typed_on.as_deref().unwrap_or(today_text))
            .bind(now)
            .execute(&mut *conn)
            .await?;
        sqlx::query::<DB>(
            "UPDATE donors SET row_version = row_version + 1, updated_at = $2 WHERE id = $1",
        )
        .bind(*id)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        sqlx::query::<DB>("INSERT INTO audit_log (at, actor, role, action, entity, entity_id, reason, request_id) VALUES ($1, $2, $3, 'import.update', 'donor', $4, 'typing replaced', $5)")
            .bind(now)
            .bind(actor.name.as_str())
            .bind(actor.role.as_str())
            .bind(id.to_string())
            .bind(actor.request_id.as_deref())
            .execute(&mut *conn)
            .await?;
    }
    Ok(refused)
}
