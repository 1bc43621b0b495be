//! Bulk donor import: `ID%GLSTRING` files and the Atlas-style TSV (typing-only: a legacy
//! listing, each donor given a recruitment consent recorded as "legacy import" with the file
//! name), and the enrolment CSV (documented below). Every bad row is reported with its line,
//! field and reason; the good rows load (or none, with `all_or_nothing`). Re-running is
//! idempotent: rows upsert on external id.
//!
//! The file streams: a blocking thread reads a batch, validates it in parallel (rayon) and
//! hands it over while the next batch is validated; the async side stores each batch in one
//! transaction (all of them in one, with `all_or_nothing`), so memory stays bounded and a
//! killed import leaves whole batches that a rerun completes. Each table gets one statement
//! per batch: the rows travel as one JSON parameter that the database unpacks itself
//! (`json_each` on SQLite, `jsonb_array_elements` on PostgreSQL), which keeps the per-value
//! cost of binding thousands of parameters out of the hot path.
//!
//! Enrolment CSV columns (header required, order free; `*` required):
//! `external_id*, station, birth_date* (YYYY-MM-DD), sex (M/F/U), abo (O/A/B/AB), rh (+/-),
//! cmv (pos/neg), population, donor_type (adult/cord), family_name, given_name, national_id,
//! phone, email, consent_form_version, gl* (GL string), typing_lab, typing_method, typing_date`.

mod batch;
mod postgres;
mod source;
mod sqlite;
mod validate;

use std::collections::{HashMap, HashSet};
use std::path::Path;

use crate::{Actor, Backend, Registry, RegistryError, Result, make_grid};

pub use batch::RowError;
use batch::{BatchContext, CheckedBatch, ImportRow, ImportTx, StoredBatch};
use source::Source;
pub use validate::GlCanonicaliser;
use validate::{Validator, read_and_validate};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    pub read: usize,
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub rejected: usize,
    pub errors: Vec<RowError>,
}

#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Station for typing-only files (and CSV rows without one).
    pub station: Option<String>,
    pub all_or_nothing: bool,
    /// Rows per batch (one transaction each); 0 means 5,000.
    pub batch_size: usize,
}

impl Registry {
    /// Import a donor file; `progress` is called with rows stored so far.
    pub async fn import_donors(
        &self,
        path: &Path,
        options: &ImportOptions,
        actor: &Actor,
        today: i64,
        progress: &dyn Fn(usize),
    ) -> Result<ImportSummary> {
        crate::audit::check_actor(actor)?;
        let file_name = path.file_name().map_or_else(
            || path.display().to_string(),
            |f| f.to_string_lossy().to_string(),
        );
        let source = Source::open(path)?;
        let stations: HashSet<String> = sqlx::query_scalar("SELECT code FROM stations")
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .collect();
        if !source.is_csv() {
            match &options.station {
                None => {
                    return Err(RegistryError::invalid(
                        "--station",
                        "typing-only files need the collection station of their donors",
                    ));
                }
                Some(s) if !stations.contains(s) => {
                    return Err(RegistryError::invalid(
                        "--station",
                        format!("unknown station `{s}`"),
                    ));
                }
                Some(_) => {}
            }
        }
        let columns = match &source {
            Source::Csv { columns, .. } => columns.clone(),
            Source::Subjects(_) | Source::Atlas(_) => HashMap::new(),
        };
        let validator = Validator {
            expander: self.expander.clone(),
            canonicaliser: GlCanonicaliser::new(self.expander.clone()),
            config: self.config.clone(),
            stations,
            default_station: options.station.clone(),
            legacy_note: format!("legacy import of {file_name}"),
            today,
            columns,
        };
        let batch = if options.batch_size == 0 {
            5000
        } else {
            options.batch_size
        };
        // Two batches in flight: one being validated while one is stored.
        let (sender, mut batches) = tokio::sync::mpsc::channel(1);
        let reader = tokio::task::spawn_blocking(move || {
            read_and_validate(source, validator, batch, sender)
        });

        let mut summary = ImportSummary::default();
        // PostgreSQL batches go through a native connection of their own, for `COPY`.
        let pg = match self.backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(3)
                    .connect(&self.url)
                    .await?,
            ),
        };
        let ctx = BatchContext {
            pg: pg.as_ref(),
            actor,
            source: &file_name,
            today,
        };
        let outcome = if options.all_or_nothing {
            self.store_all_or_nothing(&ctx, &mut batches, &mut summary, progress)
                .await
        } else {
            self.store_batches(&ctx, batches, &mut summary, progress)
                .await
        };
        if let Some(pool) = pg {
            pool.close().await;
        }
        reader
            .await
            .map_err(|e| RegistryError::invalid("file", format!("reader stopped: {e}")))?;
        outcome?;
        summary.errors.sort_by_key(|e| e.line);
        summary.rejected = summary.errors.len();
        Ok(summary)
    }

    /// Each batch in its own transaction. PostgreSQL stores three batches at once (its server
    /// runs each transaction in its own process, and one waits on the network while others
    /// work); SQLite has one writer.
    async fn store_batches(
        &self,
        ctx: &BatchContext<'_>,
        batches: tokio::sync::mpsc::Receiver<Result<CheckedBatch>>,
        summary: &mut ImportSummary,
        progress: &dyn Fn(usize),
    ) -> Result<()> {
        use futures_util::StreamExt;
        let in_flight = match self.backend {
            Backend::Sqlite => 1,
            Backend::Postgres => 3,
        };
        let stored_batches = futures_util::stream::unfold(batches, |mut rx| async move {
            rx.recv().await.map(|b| (b, rx))
        })
        .map(|checked| async move {
            let checked = checked?;
            let outcome = self.store_in_own_transaction(ctx, &checked.rows).await?;
            Ok::<_, RegistryError>((checked, outcome))
        })
        .buffered(in_flight);
        let mut stored_batches = std::pin::pin!(stored_batches);
        let mut stored = 0;
        while let Some(done) = stored_batches.next().await {
            let (checked, outcome) = done?;
            summary.read += checked.read;
            summary.errors.extend(checked.errors);
            summary.created += outcome.created;
            summary.updated += outcome.updated;
            summary.unchanged += outcome.unchanged;
            summary.errors.extend(outcome.rejected);
            stored += checked.rows.len();
            progress(stored);
        }
        Ok(())
    }

    async fn store_in_own_transaction(
        &self,
        ctx: &BatchContext<'_>,
        rows: &[ImportRow],
    ) -> Result<StoredBatch> {
        if rows.is_empty() {
            return Ok(StoredBatch::default());
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut tx = self.begin_import(ctx.pg).await?;
            match self.store_batch(&mut tx, rows, ctx).await {
                Ok(outcome) => {
                    tx.commit().await?;
                    return Ok(outcome);
                }
                // A donor enrolled by someone else between our lookup and our insert: look
                // again (the rerun sees it as existing).
                Err(RegistryError::Db(e))
                    if attempt == 1 && crate::support::is_unique_violation(&e) =>
                {
                    tx.rollback().await?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Every batch joins one transaction, committed only when no row anywhere (including
    /// those the store refuses) was bad; validation carries on after the first error so that
    /// every bad row is reported.
    async fn store_all_or_nothing(
        &self,
        ctx: &BatchContext<'_>,
        batches: &mut tokio::sync::mpsc::Receiver<Result<CheckedBatch>>,
        summary: &mut ImportSummary,
        progress: &dyn Fn(usize),
    ) -> Result<()> {
        let mut tx = self.begin_import(ctx.pg).await?;
        let mut stored = 0;
        while let Some(checked) = batches.recv().await {
            let checked = checked?;
            summary.read += checked.read;
            summary.errors.extend(checked.errors);
            if checked.rows.is_empty() || !summary.errors.is_empty() {
                continue;
            }
            let outcome = self.store_batch(&mut tx, &checked.rows, ctx).await?;
            summary.created += outcome.created;
            summary.updated += outcome.updated;
            summary.unchanged += outcome.unchanged;
            summary.errors.extend(outcome.rejected);
            stored += checked.rows.len();
            progress(stored);
        }
        if summary.errors.is_empty() {
            tx.commit().await?;
        } else {
            tx.rollback().await?;
            summary.created = 0;
            summary.updated = 0;
            summary.unchanged = 0;
        }
        Ok(())
    }

    async fn begin_import(&self, pg: Option<&sqlx::PgPool>) -> Result<ImportTx> {
        Ok(match pg {
            Some(pool) => ImportTx::Postgres(pool.begin().await?),
            None => {
                let (turn, tx) = self.begin().await?;
                ImportTx::Sqlite(tx, turn)
            }
        })
    }

    /// Store one batch inside `tx`.
    async fn store_batch(
        &self,
        tx: &mut ImportTx,
        rows: &[ImportRow],
        ctx: &BatchContext<'_>,
    ) -> Result<StoredBatch> {
        match tx {
            ImportTx::Sqlite(tx, _) => self.store_batch_sqlite(tx, rows, ctx).await,
            ImportTx::Postgres(tx) => self.store_batch_pg(tx, rows, ctx).await,
        }
    }

    fn grids(&self, rows: &[(&ImportRow, i64)]) -> Result<Vec<String>> {
        let ion = self.config.ion;
        Ok(rows
            .iter()
            .map(|(_, id)| make_grid(ion, &id.to_string()))
            .collect::<std::result::Result<_, _>>()?)
    }
}
