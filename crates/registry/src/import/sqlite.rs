//! A batch's rows written on SQLite: one `INSERT … SELECT` per table from one JSON
//! parameter, ids a block past the highest under the write lock.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use matching::model::format_day;
use sqlx::{Any, Row, Transaction};

use crate::model::rh_code;
use crate::{Registry, Result};

use super::batch::{
    BatchContext, IdentityCells, ImportRow, StoredBatch, batch_audit_reason, classify,
    national_ids, replace_typings,
};

/// One cell of a bulk-inserted row.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cell<'a> {
    Int(i64),
    Text(Option<&'a str>),
    /// SQL text, the same for every row.
    Lit(&'static str),
}

/// A column of a bulk insert: its name and how to get its cell from a row.
pub(crate) type Column<'c, 'v, R> = (&'static str, &'c dyn Fn(&R) -> Cell<'v>);

/// SQLite: `INSERT INTO table (columns) SELECT … FROM <JSON array of rows>`: one statement
/// and one row parameter however many rows. A column whose cell is the same in every row (the
/// station of a legacy listing, the import time) is bound once instead.
async fn bulk_insert<'v, R>(
    tx: &mut Transaction<'static, Any>,
    table: &str,
    rows: &[R],
    columns: &[Column<'_, 'v, R>],
) -> Result<()> {
    let Some(first) = rows.first() else {
        return Ok(());
    };
    let mut names = Vec::with_capacity(columns.len());
    let mut exprs = Vec::with_capacity(columns.len());
    let mut consts: Vec<Cell> = Vec::new();
    let mut varying: Vec<&dyn Fn(&R) -> Cell<'v>> = Vec::new();
    for (name, cell_of) in columns {
        names.push(*name);
        let cell = cell_of(first);
        let uniform = match cell {
            Cell::Lit(_) => true,
            _ => rows.iter().all(|r| cell_of(r) == cell),
        };
        exprs.push(match cell {
            Cell::Lit(sql) => sql.to_string(),
            _ if uniform => {
                consts.push(cell);
                "?".to_string()
            }
            Cell::Int(_) | Cell::Text(_) => {
                varying.push(*cell_of);
                format!("j.value ->> {}", varying.len() - 1)
            }
        });
    }
    let mut json = JsonRows::new();
    for r in rows {
        json.row();
        for cell_of in &varying {
            match cell_of(r) {
                Cell::Int(i) => json.int(i),
                Cell::Text(t) => json.opt(t),
                Cell::Lit(_) => unreachable!("literals are never per row"),
            }
        }
        json.end_row();
    }
    let sql = format!(
        "INSERT INTO {table} ({}) SELECT {} FROM jsonb_each(?) AS j",
        names.join(", "),
        exprs.join(", ")
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for c in consts {
        q = match c {
            Cell::Int(i) => q.bind(i),
            Cell::Text(t) => q.bind(t.map(str::to_string)),
            Cell::Lit(_) => unreachable!("literals are inlined"),
        };
    }
    let t0 = std::time::Instant::now();
    q.bind(json.finish()).execute(&mut **tx).await?;
    tracing::debug!(table, elapsed = ?t0.elapsed(), "bulk insert");
    Ok(())
}

/// A JSON array of rows (arrays) or of scalars, written directly.
pub(crate) struct JsonRows {
    pub(crate) buf: String,
    pub(crate) rows: usize,
    pub(crate) cells: usize,
}

impl JsonRows {
    fn new() -> JsonRows {
        JsonRows {
            buf: String::from("["),
            rows: 0,
            cells: 0,
        }
    }

    fn row(&mut self) {
        if self.rows > 0 {
            self.buf.push(',');
        }
        self.rows += 1;
        self.cells = 0;
        self.buf.push('[');
    }

    fn end_row(&mut self) {
        self.buf.push(']');
    }

    fn cell(&mut self) {
        if self.cells > 0 {
            self.buf.push(',');
        }
        self.cells += 1;
    }

    fn int(&mut self, v: i64) {
        self.cell();
        let _ = write!(self.buf, "{v}");
    }

    fn text(&mut self, s: &str) {
        self.cell();
        push_json_string(&mut self.buf, s);
    }

    fn opt(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.text(s),
            None => {
                self.cell();
                self.buf.push_str("null");
            }
        }
    }

    /// An element of a flat array of strings.
    fn scalar_text(&mut self, s: &str) {
        if self.rows > 0 {
            self.buf.push(',');
        }
        self.rows += 1;
        push_json_string(&mut self.buf, s);
    }

    /// An element of a flat array of integers.
    fn scalar_i64(&mut self, v: i64) {
        if self.rows > 0 {
            self.buf.push(',');
        }
        self.rows += 1;
        let _ = write!(self.buf, "{v}");
    }

    fn finish(mut self) -> String {
        self.buf.push(']');
        self.buf
    }
}

pub(crate) fn push_json_string(buf: &mut String, s: &str) {
    buf.push('"');
    for c in s.chars() {
        match c {
            '"' => buf.push_str("\\\""),
            '\\' => buf.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(buf, "\\u{:04x}", c as u32);
            }
            c => buf.push(c),
        }
    }
    buf.push('"');
}

impl Registry {
    pub(crate) async fn store_batch_sqlite(
        &self,
        tx: &mut Transaction<'static, Any>,
        rows: &[ImportRow],
        ctx: &BatchContext<'_>,
    ) -> Result<StoredBatch> {
        let (actor, source, today) = (ctx.actor, ctx.source, ctx.today);
        // Existing donors of this batch, with their current typing.
        let mut ids_json = JsonRows::new();
        for r in rows {
            ids_json.scalar_text(&r.external_id);
        }
        let mut existing: HashMap<String, (i64, Option<String>)> = HashMap::new();
        for row in sqlx::query("SELECT d.id, d.external_id, (SELECT t.gl FROM typings t WHERE t.donor_id = d.id AND t.is_current) AS gl FROM donors d WHERE d.external_id IN (SELECT value FROM json_each(?))")
            .bind(ids_json.finish())
            .fetch_all(&mut **tx)
            .await?
        {
            existing.insert(
                row.try_get("external_id")?,
                (row.try_get("id")?, row.try_get("gl")?),
            );
        }
        // National ids already held by other donors.
        let mut national_json = JsonRows::new();
        let mut any_national = false;
        for n in national_ids(rows) {
            national_json.scalar_text(n);
            any_national = true;
        }
        let mut taken: HashSet<String> = HashSet::new();
        if any_national {
            taken.extend(
                sqlx::query_scalar::<_, String>("SELECT national_id FROM donor_identity WHERE national_id IN (SELECT value FROM json_each(?))")
                    .bind(national_json.finish())
                    .fetch_all(&mut **tx)
                    .await?,
            );
        }
        let sorted = classify(rows, &existing, taken);
        let now = self.now_text();
        let today_text = format_day(today as u16);
        let release = self.expander.release().version.clone();
        let refused = replace_typings::<sqlx::Any>(
            &mut **tx,
            &sorted.changed,
            &release,
            &now,
            &today_text,
            actor,
        )
        .await?;
        let mut outcome = sorted.outcome();
        outcome.updated -= refused.len();
        outcome.rejected.extend(refused);
        // The change feed learns of every donor this batch touches (a refused row's donor
        // included: refreshing an unchanged donor is harmless).
        let mut touched = JsonRows::new();
        for (_, id) in &sorted.changed {
            touched.scalar_i64(*id);
        }
        if sorted.new.is_empty() {
            append_changes_sqlite(tx, touched.finish(), &now).await?;
            return Ok(outcome);
        }
        // A block of ids past the highest: the transaction holds SQLite's only write lock.
        let max: i64 =
            sqlx::query_scalar("SELECT CAST(COALESCE(MAX(id), 0) AS BIGINT) FROM donors")
                .fetch_one(&mut **tx)
                .await?;
        let seq: Option<i64> = sqlx::query_scalar(
            "SELECT CAST(seq AS BIGINT) FROM sqlite_sequence WHERE name = 'donors'",
        )
        .fetch_optional(&mut **tx)
        .await?;
        let first = max.max(seq.unwrap_or(0)) + 1;
        let new_rows: Vec<(&ImportRow, i64)> = sorted.new.iter().copied().zip(first..).collect();
        let last_id = first + new_rows.len() as i64 - 1;
        let audit_id: i64 = sqlx::query_scalar("INSERT INTO audit_log (at, actor, role, action, entity, entity_id, reason, request_id) VALUES ($1, $2, $3, 'import.create', 'donor', NULL, $4, $5) RETURNING id")
            .bind(&now)
            .bind(&actor.name)
            .bind(&actor.role)
            .bind(batch_audit_reason(&new_rows, source))
            .bind(actor.request_id.as_deref())
            .fetch_one(&mut **tx)
            .await?;
        let grids = self.grids(&new_rows)?;
        let donors: Vec<(&ImportRow, i64, &str)> = new_rows
            .iter()
            .zip(&grids)
            .map(|((r, id), g)| (*r, *id, g.as_str()))
            .collect();
        use Cell::{Int, Lit, Text};
        bulk_insert(
            tx,
            "donors",
            &donors,
            &[
                ("id", &|(_, id, _)| Int(*id)),
                ("grid", &|(_, _, g)| Text(Some(g))),
                ("external_id", &|(r, _, _)| Text(Some(&r.external_id))),
                ("station_code", &|(r, _, _)| Text(Some(&r.station))),
                ("birth_date", &|(r, _, _)| Text(r.birth_date.as_deref())),
                ("sex", &|(r, _, _)| Text(Some(r.sex.code()))),
                ("abo", &|(r, _, _)| Text(Some(r.abo.code()))),
                ("rh", &|(r, _, _)| Text(Some(rh_code(r.rh)))),
                ("cmv", &|(r, _, _)| Text(Some(r.cmv.code()))),
                ("population", &|(r, _, _)| Text(Some(&r.population))),
                ("donor_type", &|(r, _, _)| Text(Some(r.donor_type.code()))),
                ("listed", &|_| Lit("TRUE")),
                ("created_by_audit", &|_| Int(audit_id)),
                ("created_at", &|_| Text(Some(&now))),
                ("updated_at", &|_| Text(Some(&now))),
            ],
        )
        .await?;
        let today_text = today_text.as_str();
        let release = release.as_str();
        bulk_insert(
            tx,
            "typings",
            &new_rows,
            &[
                ("donor_id", &|(_, id)| Int(*id)),
                ("gl", &|(r, _)| Text(Some(&r.gl))),
                ("release", &|_| Text(Some(release))),
                ("lab", &|(r, _)| Text(r.lab.as_deref())),
                ("method", &|(r, _)| Text(r.method.as_deref())),
                ("typed_on", &|(r, _)| {
                    Text(Some(r.typed_on.as_deref().unwrap_or(today_text)))
                }),
                ("is_current", &|_| Lit("TRUE")),
                ("recorded_at", &|_| Text(Some(&now))),
            ],
        )
        .await?;
        bulk_insert(
            tx,
            "consents",
            &new_rows,
            &[
                ("donor_id", &|(_, id)| Int(*id)),
                ("scope", &|_| Lit("'recruitment'")),
                ("form_version", &|(r, _)| Text(Some(&r.consent_form))),
                ("given_at", &|_| Text(Some(&now))),
                ("recorded_by", &|_| Text(Some(&actor.name))),
                ("note", &|(r, _)| Text(r.consent_note.as_deref())),
            ],
        )
        .await?;
        let identities: Vec<(&IdentityCells, i64)> = new_rows
            .iter()
            .filter_map(|(r, id)| r.identity.as_ref().map(|i| (i, *id)))
            .collect();
        bulk_insert(
            tx,
            "donor_identity",
            &identities,
            &[
                ("donor_id", &|(_, id)| Int(*id)),
                ("family_name", &|(i, _)| Text(Some(&i.0))),
                ("given_name", &|(i, _)| Text(Some(&i.1))),
                ("national_id", &|(i, _)| Text(i.2.as_deref())),
                ("phone", &|(i, _)| Text(i.3.as_deref())),
                ("email", &|(i, _)| Text(i.4.as_deref())),
            ],
        )
        .await?;
        // Keep AUTOINCREMENT's high-water mark past the reserved ids.
        sqlx::query("UPDATE sqlite_sequence SET seq = $1 WHERE name = 'donors' AND seq < $1")
            .bind(last_id)
            .execute(&mut **tx)
            .await?;
        sqlx::query("INSERT INTO sqlite_sequence (name, seq) SELECT 'donors', $1 WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'donors')").bind(last_id).execute(&mut **tx).await?;
        for id in first..=last_id {
            touched.scalar_i64(id);
        }
        append_changes_sqlite(tx, touched.finish(), &now).await?;
        Ok(outcome)
    }
}

/// Append a change for each donor id of the JSON array `ids` (the change feed).
async fn append_changes_sqlite(
    tx: &mut Transaction<'static, Any>,
    ids: String,
    now: &str,
) -> Result<()> {
    sqlx::query("INSERT INTO index_changes (donor_id, at) SELECT value, $2 FROM json_each($1)")
        .bind(ids)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
