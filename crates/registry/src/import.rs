//! Bulk donor import: `ID%GLSTRING` files and the Atlas-style TSV (typing-only: a legacy
//! listing, each donor given a recruitment consent recorded as "legacy import" with the file
//! name), and the enrolment CSV (documented below). Every bad row is reported with its line,
//! field and reason; the good rows load (or none, with `all_or_nothing`). Re-running is
//! idempotent: rows upsert on external id. Rows load in batches, one transaction each, with
//! multi-row inserts and ids reserved up front, so a killed import leaves whole batches and a
//! rerun completes it.
//!
//! Enrolment CSV columns (header required, order free; `*` required):
//! `external_id*, station, birth_date* (YYYY-MM-DD), sex (M/F/U), abo (O/A/B/AB), rh (+/-),
//! cmv (pos/neg), population, donor_type (adult/cord), family_name, given_name, national_id,
//! phone, email, consent_form_version, gl* (GL string), typing_lab, typing_method, typing_date`.

use std::collections::HashSet;
use std::path::Path;

use hla::input::{SubjectReader, SubjectTyping};
use matching::model::{age_in_years, format_day, parse_birth_date};
use matching::{Abo, Cmv, DonorType, Sex};
use sqlx::{Any, Row, Transaction};

use crate::store::{rh_code, validate_gl};
use crate::{Actor, Backend, Registry, RegistryError, Result, make_grid, now_text};

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
    pub batch_size: usize,
}

/// Identity cells of an enrolment row: family name, given name, national id, phone, email.
type IdentityCells = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// One validated row ready to store.
#[derive(Debug, Clone)]
struct Row_ {
    line: usize,
    external_id: String,
    station: String,
    birth_date: Option<String>,
    sex: Sex,
    abo: Abo,
    rh: Option<bool>,
    cmv: Cmv,
    population: String,
    donor_type: DonorType,
    gl: String,
    lab: Option<String>,
    method: Option<String>,
    typed_on: Option<String>,
    /// family name, given name, national id, phone, email
    identity: Option<IdentityCells>,
    consent_form: String,
    consent_note: Option<String>,
}

fn err(line: usize, field: &str, reason: impl Into<String>) -> RowError {
    RowError {
        line,
        field: field.into(),
        reason: reason.into(),
    }
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
        let mut summary = ImportSummary::default();
        let file_name = path.file_name().map_or_else(
            || path.display().to_string(),
            |f| f.to_string_lossy().to_string(),
        );
        let is_csv = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        let mut rows: Vec<Row_> = Vec::new();
        if is_csv {
            self.read_csv(path, options, today, &mut rows, &mut summary)?;
        } else {
            let station = match &options.station {
                Some(s) => s.clone(),
                None => {
                    return Err(RegistryError::invalid(
                        "--station",
                        "typing-only files need the collection station of their donors",
                    ));
                }
            };
            let reader = SubjectReader::open(path)
                .map_err(|e| RegistryError::invalid("file", e.to_string()))?;
            let mut records = Vec::new();
            for record in reader {
                summary.read += 1;
                match record {
                    Ok(r) => records.push(r),
                    Err(e) => {
                        let line = match &e {
                            hla::LoadError::Format { line, .. } => *line,
                            _ => 0,
                        };
                        summary.errors.push(err(line, "line", e.to_string()));
                    }
                }
            }
            // Validate in parallel: one parse per record, each position expanded (memoised),
            // errors naming the column.
            use rayon::prelude::*;
            let checked: Vec<std::result::Result<Row_, RowError>> = records
                .par_iter()
                .map(|record| {
                    let typings = record.locus_typings().map_err(|e| err(record.line, &e.field, e.error.to_string()))?;
                    for t in &typings {
                        for (i, p) in t.positions.iter().enumerate() {
                            self.expander.expand_list(p).map_err(|e| {
                                let field = match record.typing {
                                    SubjectTyping::Cells(_) => format!("{}_{}", t.locus, i + 1),
                                    SubjectTyping::Gl(_) => "GLSTRING".into(),
                                };
                                err(record.line, &field, e.to_string())
                            })?;
                        }
                    }
                    for required in ["A", "B", "DRB1"] {
                        if !typings.iter().any(|t| t.locus == required) {
                            return Err(err(record.line, required, format!("a listed donor needs at least A, B and DRB1; {required} is missing")));
                        }
                    }
                    let gl = typings.iter().map(|t| format!("{}+{}", t.positions[0], t.positions[1])).collect::<Vec<_>>().join("^");
                    Ok(Row_ {
                        line: record.line,
                        external_id: record.id.clone(),
                        station: station.clone(),
                        birth_date: None,
                        sex: Sex::Unknown,
                        abo: Abo::Unknown,
                        rh: None,
                        cmv: Cmv::Unknown,
                        population: String::new(),
                        donor_type: if record.donor_type.as_deref() == Some("2") { DonorType::Cord } else { DonorType::Adult },
                        gl,
                        lab: None,
                        method: None,
                        typed_on: None,
                        identity: None,
                        consent_form: "legacy".into(),
                        consent_note: Some(format!("legacy import of {file_name}")),
                    })
                })
                .collect();
            for c in checked {
                match c {
                    Ok(r) => rows.push(r),
                    Err(e) => summary.errors.push(e),
                }
            }
        }
        // Duplicate external ids within the file: the first wins, the others are errors.
        let mut seen = HashSet::new();
        rows.retain(|r| {
            let fresh = seen.insert(r.external_id.clone());
            if !fresh {
                summary.errors.push(err(
                    r.line,
                    "external_id",
                    format!("`{}` appears earlier in the file", r.external_id),
                ));
            }
            fresh
        });
        // Stations must exist.
        let mut stations: Vec<String> = rows.iter().map(|r| r.station.clone()).collect();
        stations.sort();
        stations.dedup();
        for s in stations {
            if !self.station_exists(&s).await? {
                let before = rows.len();
                rows.retain(|r| {
                    if r.station == s {
                        summary.errors.push(err(
                            r.line,
                            "station",
                            format!("unknown station `{s}`"),
                        ));
                        false
                    } else {
                        true
                    }
                });
                debug_assert!(rows.len() < before);
            }
        }
        summary.errors.sort_by_key(|e| e.line);
        summary.rejected = summary.errors.len();
        if options.all_or_nothing && !summary.errors.is_empty() {
            return Ok(summary);
        }
        let batch = if options.batch_size == 0 {
            2000
        } else {
            options.batch_size
        };
        let mut stored = 0;
        for chunk in rows.chunks(batch) {
            let (created, updated, unchanged, rejected) =
                self.store_batch(chunk, actor, today).await?;
            summary.created += created;
            summary.updated += updated;
            summary.unchanged += unchanged;
            for e in rejected {
                summary.errors.push(e);
                summary.rejected += 1;
            }
            stored += chunk.len();
            progress(stored);
        }
        summary.errors.sort_by_key(|e| e.line);
        Ok(summary)
    }

    fn read_csv(
        &self,
        path: &Path,
        options: &ImportOptions,
        today: i64,
        rows: &mut Vec<Row_>,
        summary: &mut ImportSummary,
    ) -> Result<()> {
        let mut reader = csv::ReaderBuilder::new()
            .flexible(false)
            .from_path(path)
            .map_err(|e| RegistryError::invalid("file", e.to_string()))?;
        let headers = reader
            .headers()
            .map_err(|e| RegistryError::invalid("header", e.to_string()))?
            .clone();
        let col = |name: &str| {
            headers
                .iter()
                .position(|h| h.trim().eq_ignore_ascii_case(name))
        };
        for required in ["external_id", "birth_date", "gl"] {
            if col(required).is_none() {
                return Err(RegistryError::invalid(
                    "header",
                    format!("the enrolment CSV needs a `{required}` column"),
                ));
            }
        }
        for (i, record) in reader.records().enumerate() {
            let line = i + 2;
            summary.read += 1;
            let record = match record {
                Ok(r) => r,
                Err(e) => {
                    summary.errors.push(err(line, "line", e.to_string()));
                    continue;
                }
            };
            let get = |name: &str| {
                col(name)
                    .and_then(|c| record.get(c))
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(str::to_string)
            };
            let row = (|| -> std::result::Result<Row_, RowError> {
                let external_id =
                    get("external_id").ok_or_else(|| err(line, "external_id", "required"))?;
                let station = get("station")
                    .or_else(|| options.station.clone())
                    .ok_or_else(|| err(line, "station", "required (column or --station)"))?;
                let donor_type = match get("donor_type") {
                    None => DonorType::Adult,
                    Some(t) => DonorType::from_code(&t).ok_or_else(|| {
                        err(line, "donor_type", format!("`{t}` is not adult or cord"))
                    })?,
                };
                let birth_date =
                    get("birth_date").ok_or_else(|| err(line, "birth_date", "required"))?;
                let birth =
                    parse_birth_date(&birth_date).map_err(|r| err(line, "birth_date", r))?;
                if donor_type == DonorType::Adult {
                    let age = age_in_years(birth, today);
                    let (lo, hi) = (self.config.min_enrol_age, self.config.max_enrol_age);
                    if age < lo || age > hi {
                        return Err(err(
                            line,
                            "birth_date",
                            format!("age {age} is outside the enrolment limits {lo}–{hi}"),
                        ));
                    }
                }
                let sex = match get("sex") {
                    None => Sex::Unknown,
                    Some(s) => Sex::from_code(&s)
                        .ok_or_else(|| err(line, "sex", format!("`{s}` is not M, F or U")))?,
                };
                let abo = match get("abo").as_deref() {
                    None => Abo::Unknown,
                    Some("AB") => Abo::Ab,
                    Some(a) => Abo::from_code(a)
                        .filter(|a| *a != Abo::Unknown)
                        .ok_or_else(|| err(line, "abo", format!("`{a}` is not O, A, B or AB")))?,
                };
                let rh = match get("rh").as_deref() {
                    None => None,
                    Some("+") => Some(true),
                    Some("-") => Some(false),
                    Some(r) => return Err(err(line, "rh", format!("`{r}` is not + or -"))),
                };
                let cmv = match get("cmv") {
                    None => Cmv::Unknown,
                    Some(c) => Cmv::from_code(&c)
                        .ok_or_else(|| err(line, "cmv", format!("`{c}` is not pos or neg")))?,
                };
                let gl = validate_gl(self, &get("gl").ok_or_else(|| err(line, "gl", "required"))?)
                    .map_err(|e| err(line, "gl", e.to_string()))?;
                if let Some(d) = get("typing_date") {
                    parse_birth_date(&d).map_err(|r| err(line, "typing_date", r))?;
                }
                let identity = match (get("family_name"), get("given_name")) {
                    (Some(f), Some(g)) => {
                        Some((f, g, get("national_id"), get("phone"), get("email")))
                    }
                    (None, None) => None,
                    _ => {
                        return Err(err(
                            line,
                            "given_name",
                            "family_name and given_name go together",
                        ));
                    }
                };
                Ok(Row_ {
                    line,
                    external_id,
                    station,
                    birth_date: Some(birth_date),
                    sex,
                    abo,
                    rh,
                    cmv,
                    population: get("population").unwrap_or_default(),
                    donor_type,
                    gl,
                    lab: get("typing_lab"),
                    method: get("typing_method"),
                    typed_on: get("typing_date"),
                    identity,
                    consent_form: get("consent_form_version").ok_or_else(|| {
                        err(
                            line,
                            "consent_form_version",
                            "required: no listing without recruitment consent",
                        )
                    })?,
                    consent_note: None,
                })
            })();
            match row {
                Ok(r) => rows.push(r),
                Err(e) => summary.errors.push(e),
            }
        }
        Ok(())
    }

    /// Store one batch in one transaction. Returns (created, updated, unchanged, rejected).
    async fn store_batch(
        &self,
        rows: &[Row_],
        actor: &Actor,
        today: i64,
    ) -> Result<(usize, usize, usize, Vec<RowError>)> {
        let t0 = std::time::Instant::now();
        let mut tx = self.begin().await?;
        if self.backend == Backend::Postgres {
            // One importer at a time: ids are reserved for the batch.
            sqlx::query("LOCK TABLE donors IN SHARE ROW EXCLUSIVE MODE")
                .execute(&mut *tx)
                .await?;
            // The donors table grows during the import and its statistics go stale: the
            // cached generic plan of the external-id lookup then scans every donor. Plan
            // each execution, and never by sequential scan.
            sqlx::query("SET LOCAL plan_cache_mode = force_custom_plan")
                .execute(&mut *tx)
                .await?;
            sqlx::query("SET LOCAL enable_seqscan = off")
                .execute(&mut *tx)
                .await?;
        }
        // Existing donors of this batch, with their current typing.
        let mut existing: std::collections::HashMap<String, (i64, Option<String>)> =
            Default::default();
        for part in rows.chunks(500) {
            let params: Vec<String> = (1..=part.len())
                .map(|i| {
                    if self.backend == Backend::Sqlite {
                        "?".to_string()
                    } else {
                        format!("${i}")
                    }
                })
                .collect();
            let sql = format!(
                "SELECT d.id, d.external_id, (SELECT t.gl FROM typings t WHERE t.donor_id = d.id AND t.is_current) AS gl FROM donors d WHERE d.external_id IN ({})",
                params.join(", ")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for r in part {
                q = q.bind(&r.external_id);
            }
            for row in q.fetch_all(&mut *tx).await? {
                existing.insert(
                    row.try_get("external_id")?,
                    (row.try_get("id")?, row.try_get("gl")?),
                );
            }
        }
        let t1 = t0.elapsed();
        // National ids already held by other donors (and twice in this batch).
        let mut rejected = Vec::new();
        let mut taken: HashSet<String> = HashSet::new();
        let wanted: Vec<&str> = rows
            .iter()
            .filter_map(|r| r.identity.as_ref().and_then(|i| i.2.as_deref()))
            .collect();
        for part in wanted.chunks(500) {
            let params: Vec<String> = (1..=part.len())
                .map(|i| {
                    if self.backend == Backend::Sqlite {
                        "?".to_string()
                    } else {
                        format!("${i}")
                    }
                })
                .collect();
            let sql = format!(
                "SELECT national_id FROM donor_identity WHERE national_id IN ({})",
                params.join(", ")
            );
            let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql));
            for n in part {
                q = q.bind(*n);
            }
            taken.extend(q.fetch_all(&mut *tx).await?);
        }
        let now = now_text();
        let today_text = format_day(today as u16);
        let (mut updated, mut unchanged) = (0, 0);
        let mut new_rows: Vec<&Row_> = Vec::new();
        for r in rows {
            match existing.get(&r.external_id) {
                Some((id, gl)) => {
                    if gl.as_deref() == Some(r.gl.as_str()) {
                        unchanged += 1;
                    } else {
                        sqlx::query("UPDATE typings SET is_current = FALSE WHERE donor_id = $1 AND is_current").bind(id).execute(&mut *tx).await?;
                        sqlx::query("INSERT INTO typings (donor_id, gl, release, lab, method, typed_on, is_current, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, TRUE, $7)")
                            .bind(id)
                            .bind(&r.gl)
                            .bind(&self.expander.release().version)
                            .bind(r.lab.as_deref())
                            .bind(r.method.as_deref())
                            .bind(r.typed_on.as_deref().unwrap_or(&today_text))
                            .bind(&now)
                            .execute(&mut *tx)
                            .await?;
                        sqlx::query("UPDATE donors SET row_version = row_version + 1, updated_at = $2 WHERE id = $1").bind(id).bind(&now).execute(&mut *tx).await?;
                        crate::store::audit(
                            &mut tx,
                            actor,
                            "import.update",
                            "donor",
                            &id.to_string(),
                            Some("typing replaced"),
                        )
                        .await?;
                        updated += 1;
                    }
                }
                None => {
                    if let Some(n) = r.identity.as_ref().and_then(|i| i.2.as_ref())
                        && !taken.insert(n.clone())
                    {
                        rejected.push(err(
                            r.line,
                            "national_id",
                            "a donor with this national id is already enrolled",
                        ));
                        continue;
                    }
                    new_rows.push(r);
                }
            }
        }
        // Reserve ids for the new donors.
        let ids: Vec<i64> = if new_rows.is_empty() {
            Vec::new()
        } else {
            match self.backend {
                Backend::Sqlite => {
                    let max: i64 = sqlx::query_scalar("SELECT CAST(COALESCE(MAX(id), 0) AS BIGINT) FROM donors").fetch_one(&mut *tx).await?;
                    let seq: Option<i64> = sqlx::query_scalar("SELECT CAST(seq AS BIGINT) FROM sqlite_sequence WHERE name = 'donors'").fetch_optional(&mut *tx).await?;
                    let start = max.max(seq.unwrap_or(0)) + 1;
                    (start..start + new_rows.len() as i64).collect()
                }
                Backend::Postgres => sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT nextval(pg_get_serial_sequence('donors', 'id')) FROM generate_series(1, {})",
                    new_rows.len()
                )))
                .fetch_all(&mut *tx)
                .await?,
            }
        };
        let t2 = t0.elapsed();
        let release = self.expander.release().version.clone();
        for (part_rows, part_ids) in new_rows.chunks(400).zip(ids.chunks(400)) {
            let (lo, hi) = (part_ids[0], *part_ids.last().expect("non-empty"));
            insert_donors(self, &mut tx, part_rows, part_ids, &now).await?;
            // Per-row values only where rows differ; the rest bound once.
            insert_select(
                self.backend,
                &mut tx,
                "typings (donor_id, gl, release, lab, method, typed_on, is_current, recorded_at)",
                "v.column1, v.column2, {0}, v.column3, v.column4, v.column5, TRUE, {1}",
                vec![V::S(release.clone()), V::S(now.clone())],
                part_rows
                    .iter()
                    .zip(part_ids)
                    .map(|(r, id)| {
                        vec![
                            V::I(*id),
                            V::S(r.gl.clone()),
                            V::O(r.lab.clone()),
                            V::O(r.method.clone()),
                            V::S(r.typed_on.clone().unwrap_or_else(|| today_text.clone())),
                        ]
                    })
                    .collect(),
            )
            .await?;
            let first = &part_rows[0];
            if part_rows.iter().all(|r| {
                r.consent_form == first.consent_form && r.consent_note == first.consent_note
            }) {
                insert_select(
                    self.backend,
                    &mut tx,
                    "consents (donor_id, scope, form_version, given_at, recorded_by, note)",
                    "d.id, 'recruitment', {0}, {1}, {2}, {3} FROM donors d WHERE d.id BETWEEN {4} AND {5}",
                    vec![V::S(first.consent_form.clone()), V::S(now.clone()), V::S(actor.name.clone()), V::O(first.consent_note.clone()), V::I(lo), V::I(hi)],
                    Vec::new(),
                )
                .await?;
            } else {
                insert_select(
                    self.backend,
                    &mut tx,
                    "consents (donor_id, scope, form_version, given_at, recorded_by, note)",
                    "v.column1, 'recruitment', v.column2, {0}, {1}, v.column3",
                    vec![V::S(now.clone()), V::S(actor.name.clone())],
                    part_rows
                        .iter()
                        .zip(part_ids)
                        .map(|(r, id)| {
                            vec![
                                V::I(*id),
                                V::S(r.consent_form.clone()),
                                V::O(r.consent_note.clone()),
                            ]
                        })
                        .collect(),
                )
                .await?;
            }
            let with_identity: Vec<(&Row_, &i64)> = part_rows
                .iter()
                .copied()
                .zip(part_ids)
                .filter(|(r, _)| r.identity.is_some())
                .collect();
            insert_many(
                self.backend,
                &mut tx,
                "donor_identity (donor_id, family_name, given_name, national_id, phone, email)",
                6,
                with_identity.iter().map(|(r, id)| {
                    let i = r.identity.clone().expect("filtered");
                    vec![
                        V::I(**id),
                        V::S(i.0),
                        V::S(i.1),
                        V::O(i.2),
                        V::O(i.3),
                        V::O(i.4),
                    ]
                }),
            )
            .await?;
            insert_select(
                self.backend,
                &mut tx,
                "audit_log (at, actor, role, action, entity, entity_id, reason, request_id)",
                "{0}, {1}, {2}, 'import.create', 'donor', CAST(d.id AS TEXT), NULL, {3} FROM donors d WHERE d.id BETWEEN {4} AND {5}",
                vec![V::S(now.clone()), V::S(actor.name.clone()), V::S(actor.role.clone()), V::O(actor.request_id.clone()), V::I(lo), V::I(hi)],
                Vec::new(),
            )
            .await?;
        }
        if self.backend == Backend::Sqlite && !ids.is_empty() {
            // Keep AUTOINCREMENT's high-water mark past the reserved ids.
            sqlx::query("UPDATE sqlite_sequence SET seq = $1 WHERE name = 'donors' AND seq < $1")
                .bind(*ids.last().expect("non-empty"))
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO sqlite_sequence (name, seq) SELECT 'donors', $1 WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'donors')").bind(*ids.last().expect("non-empty")).execute(&mut *tx).await?;
        }
        let t3 = t0.elapsed();
        tx.commit().await?;
        tracing::debug!(?t1, ?t2, ?t3, total = ?t0.elapsed(), rows = rows.len(), "import batch");
        Ok((new_rows.len(), updated, unchanged, rejected))
    }
}

/// A value for a multi-row insert.
enum V {
    I(i64),
    S(String),
    O(Option<String>),
}

async fn insert_many(
    backend: Backend,
    tx: &mut Transaction<'_, Any>,
    table: &str,
    width: usize,
    rows: impl Iterator<Item = Vec<V>>,
) -> Result<()> {
    let rows: Vec<Vec<V>> = rows.collect();
    if rows.is_empty() {
        return Ok(());
    }
    let mut sql = format!("INSERT INTO {table} VALUES ");
    let mut n = 0;
    for (i, _) in rows.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..width {
            if c > 0 {
                sql.push_str(", ");
            }
            n += 1;
            // SQLite binds `?` by position; `$n` is looked up by name, which is quadratic in
            // the parameter count of a large multi-row insert.
            match backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => sql.push_str(&format!("${n}")),
            }
        }
        sql.push(')');
    }
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for row in rows {
        for v in row {
            q = match v {
                V::I(i) => q.bind(i),
                V::S(s) => q.bind(s),
                V::O(o) => q.bind(o),
            };
        }
    }
    q.execute(&mut **tx).await?;
    Ok(())
}

/// `INSERT INTO target SELECT select [FROM (VALUES …) AS v]`: `select` names constants as
/// `{0}`, `{1}`… (bound once) and per-row values as `v.column1`…; with no rows, `select`
/// carries its own FROM.
async fn insert_select(
    backend: Backend,
    tx: &mut Transaction<'_, Any>,
    target: &str,
    select: &str,
    consts: Vec<V>,
    rows: Vec<Vec<V>>,
) -> Result<()> {
    let mut n = 0;
    let mut next = || {
        n += 1;
        match backend {
            Backend::Sqlite => "?".to_string(),
            Backend::Postgres => format!("${n}"),
        }
    };
    // Constants in the order they appear in `select` (positional `?` binds in text order).
    let mut order = Vec::new();
    let mut sql_select = String::new();
    let mut rest = select;
    while let Some(i) = rest.find('{') {
        let j = rest[i..].find('}').expect("closing brace") + i;
        let k: usize = rest[i + 1..j].parse().expect("constant index");
        sql_select.push_str(&rest[..i]);
        sql_select.push_str(&next());
        order.push(k);
        rest = &rest[j + 1..];
    }
    sql_select.push_str(rest);
    let mut sql = format!("INSERT INTO {target} SELECT {sql_select}");
    if !rows.is_empty() {
        sql.push_str(" FROM (VALUES ");
        for (r, row) in rows.iter().enumerate() {
            if r > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for c in 0..row.len() {
                if c > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&next());
            }
            sql.push(')');
        }
        sql.push_str(") AS v");
    }
    let mut consts: Vec<Option<V>> = consts.into_iter().map(Some).collect();
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    let bind = |q: sqlx::query::Query<'static, Any, sqlx::any::AnyArguments>, v: V| match v {
        V::I(i) => q.bind(i),
        V::S(s) => q.bind(s),
        V::O(o) => q.bind(o),
    };
    for k in order {
        // A constant used twice is bound twice.
        let v = match consts[k].take() {
            Some(v) => v,
            None => panic!("constant {{{k}}} used twice"),
        };
        q = bind(q, v);
    }
    for row in rows {
        for v in row {
            q = bind(q, v);
        }
    }
    q.execute(&mut **tx).await?;
    Ok(())
}

async fn insert_donors(
    registry: &Registry,
    tx: &mut Transaction<'_, Any>,
    rows: &[&Row_],
    ids: &[i64],
    now: &str,
) -> Result<()> {
    let mut values = Vec::with_capacity(rows.len());
    let station = rows[0].station.clone();
    let same_station = rows.iter().all(|r| r.station == station);
    for (r, id) in rows.iter().zip(ids) {
        let grid = make_grid(registry.config.ion, &id.to_string())?;
        values.push(vec![
            V::I(*id),
            V::S(grid),
            V::S(r.external_id.clone()),
            V::O(r.birth_date.clone()),
            V::S(r.sex.code().into()),
            V::S(r.abo.code().into()),
            V::S(rh_code(r.rh).into()),
            V::S(r.cmv.code().into()),
            V::S(r.population.clone()),
            V::S(r.donor_type.code().into()),
            V::S(if same_station {
                String::new()
            } else {
                r.station.clone()
            }),
        ]);
    }
    let station_expr = if same_station { "{0}" } else { "v.column11" };
    let select = format!(
        "v.column1, v.column2, v.column3, {station_expr}, v.column4, v.column5, v.column6, v.column7, v.column8, v.column9, v.column10, TRUE, {{1}}, {{2}}"
    );
    insert_select(
        registry.backend,
        tx,
        "donors (id, grid, external_id, station_code, birth_date, sex, abo, rh, cmv, population, donor_type, listed, created_at, updated_at)",
        &select,
        vec![V::S(station), V::S(now.to_string()), V::S(now.to_string())],
        values,
    )
    .await
}
