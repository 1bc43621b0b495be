//! A batch's rows written on PostgreSQL: `COPY` on a native connection, ids from the
//! sequence.

use std::collections::{HashMap, HashSet};

use matching::model::format_day;
use sqlx::Transaction;

use crate::model::rh_code;
use crate::{Registry, Result};

use super::batch::{
    BatchContext, ImportRow, StoredBatch, batch_audit_reason, classify, national_ids,
    replace_typings,
};

/// Rows in `COPY … FROM STDIN` text format.
#[derive(Default)]
pub(crate) struct CopyText(Vec<u8>);

impl CopyText {
    fn row(&mut self, cells: &[Option<&str>]) {
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                self.0.push(b'\t');
            }
            match cell {
                None => self.0.extend_from_slice(b"\\N"),
                Some(text) => {
                    for b in text.bytes() {
                        match b {
                            b'\\' => self.0.extend_from_slice(b"\\\\"),
                            b'\t' => self.0.extend_from_slice(b"\\t"),
                            b'\n' => self.0.extend_from_slice(b"\\n"),
                            b'\r' => self.0.extend_from_slice(b"\\r"),
                            b => self.0.push(b),
                        }
                    }
                }
            }
        }
        self.0.push(b'\n');
    }
}

impl Registry {
    /// PostgreSQL: lookups by array, new rows by `COPY` (several times cheaper per row than
    /// any `INSERT`), ids from the sequence so that concurrent batches never collide.
    pub(crate) async fn store_batch_pg(
        &self,
        tx: &mut Transaction<'static, sqlx::Postgres>,
        rows: &[ImportRow],
        ctx: &BatchContext<'_>,
    ) -> Result<StoredBatch> {
        let (actor, source, today) = (ctx.actor, ctx.source, ctx.today);
        let conn: &mut sqlx::PgConnection = tx;
        // The donors table grows during the import and its statistics go stale: a generic
        // plan of the lookups then scans every donor. Plan them each time, never by
        // sequential scan; then back to normal, as planning every foreign-key check of every
        // inserted row anew would cost more than the inserts.
        sqlx::query("SET LOCAL plan_cache_mode = force_custom_plan")
            .execute(&mut *conn)
            .await?;
        sqlx::query("SET LOCAL enable_seqscan = off")
            .execute(&mut *conn)
            .await?;
        let external_ids: Vec<&str> = rows.iter().map(|r| r.external_id.as_str()).collect();
        let found: Vec<(i64, String, Option<String>)> = sqlx::query_as("SELECT d.id, d.external_id, (SELECT t.gl FROM typings t WHERE t.donor_id = d.id AND t.is_current) FROM donors d WHERE d.external_id = ANY($1)")
            .bind(&external_ids)
            .fetch_all(&mut *conn)
            .await?;
        let existing: HashMap<String, (i64, Option<String>)> = found
            .into_iter()
            .map(|(id, external_id, gl)| (external_id, (id, gl)))
            .collect();
        let nationals: Vec<&str> = national_ids(rows).collect();
        let taken: HashSet<String> = if nationals.is_empty() {
            HashSet::new()
        } else {
            sqlx::query_scalar::<_, String>(
                "SELECT national_id FROM donor_identity WHERE national_id = ANY($1)",
            )
            .bind(&nationals)
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .collect()
        };
        sqlx::query("SET LOCAL enable_seqscan = on")
            .execute(&mut *conn)
            .await?;
        sqlx::query("SET LOCAL plan_cache_mode = auto")
            .execute(&mut *conn)
            .await?;
        let sorted = classify(rows, &existing, taken);
        let now = self.now_text();
        let today_text = format_day(today as u16);
        let release = self.expander.release().version.clone();
        let refused = replace_typings::<sqlx::Postgres>(
            &mut *conn,
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
        let mut touched: Vec<i64> = sorted.changed.iter().map(|(_, id)| *id).collect();
        if sorted.new.is_empty() {
            append_changes_pg(conn, &touched, &now).await?;
            return Ok(outcome);
        }
        // The sequence's name as a literal: `nextval(pg_get_serial_sequence(…))` would look
        // the name up again for every id.
        let sequence: String =
            sqlx::query_scalar("SELECT quote_literal(pg_get_serial_sequence('donors', 'id'))")
                .fetch_one(&mut *conn)
                .await?;
        let ids: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT nextval({sequence}::regclass) FROM generate_series(1, $1)"
        )))
        .bind(sorted.new.len() as i64)
        .fetch_all(&mut *conn)
        .await?;
        let new_rows: Vec<(&ImportRow, i64)> = sorted.new.iter().copied().zip(ids).collect();
        let grids = self.grids(&new_rows)?;
        let audit_id: i64 = sqlx::query_scalar("INSERT INTO audit_log (at, actor, role, action, entity, entity_id, reason, request_id) VALUES ($1, $2, $3, 'import.create', 'donor', NULL, $4, $5) RETURNING id")
            .bind(&now)
            .bind(&actor.name)
            .bind(&actor.role)
            .bind(batch_audit_reason(&new_rows, source))
            .bind(actor.request_id.as_deref())
            .fetch_one(&mut *conn)
            .await?;
        let audit_id = audit_id.to_string();
        let mut donors = CopyText::default();
        let mut typings = CopyText::default();
        let mut consents = CopyText::default();
        let mut identities = CopyText::default();
        for ((r, id), grid) in new_rows.iter().zip(&grids) {
            let id = id.to_string();
            donors.row(&[
                Some(&id),
                Some(grid),
                Some(&r.external_id),
                Some(&r.station),
                r.birth_date.as_deref(),
                Some(r.sex.code()),
                Some(r.abo.code()),
                Some(rh_code(r.rh)),
                Some(r.cmv.code()),
                Some(&r.population),
                Some(r.donor_type.code()),
                Some("t"),
                Some(&audit_id),
                Some(&now),
                Some(&now),
            ]);
            typings.row(&[
                Some(&id),
                Some(&r.gl),
                Some(&release),
                r.lab.as_deref(),
                r.method.as_deref(),
                Some(r.typed_on.as_deref().unwrap_or(&today_text)),
                Some("t"),
                Some(&now),
            ]);
            consents.row(&[
                Some(&id),
                Some("recruitment"),
                Some(&r.consent_form),
                Some(&now),
                Some(&actor.name),
                r.consent_note.as_deref(),
            ]);
            if let Some(i) = &r.identity {
                identities.row(&[
                    Some(&id),
                    Some(&i.0),
                    Some(&i.1),
                    i.2.as_deref(),
                    i.3.as_deref(),
                    i.4.as_deref(),
                ]);
            }
        }
        for (statement, data) in [
            (
                "COPY donors (id, grid, external_id, station_code, birth_date, sex, abo, rh, cmv, population, donor_type, listed, created_by_audit, created_at, updated_at) FROM STDIN",
                donors,
            ),
            (
                "COPY typings (donor_id, gl, release, lab, method, typed_on, is_current, recorded_at) FROM STDIN",
                typings,
            ),
            (
                "COPY consents (donor_id, scope, form_version, given_at, recorded_by, note) FROM STDIN",
                consents,
            ),
            (
                "COPY donor_identity (donor_id, family_name, given_name, national_id, phone, email) FROM STDIN",
                identities,
            ),
        ] {
            if data.0.is_empty() {
                continue;
            }
            let mut copy = conn.copy_in_raw(statement).await?;
            if let Err(e) = copy.send(data.0).await {
                copy.abort(e.to_string()).await.ok();
                return Err(e.into());
            }
            copy.finish().await?;
        }
        touched.extend(new_rows.iter().map(|(_, id)| *id));
        append_changes_pg(conn, &touched, &now).await?;
        Ok(outcome)
    }
}

/// Append a change for each of `ids` (the change feed) and wake the listening servers.
async fn append_changes_pg(conn: &mut sqlx::PgConnection, ids: &[i64], now: &str) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query("INSERT INTO index_changes (donor_id, at) SELECT unnest($1::bigint[]), $2")
        .bind(ids)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(crate::feed::CHANGE_CHANNEL)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
