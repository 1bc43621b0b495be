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

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use hla::Expander;
use hla::input::{SubjectReader, SubjectRecord, SubjectTyping};
use matching::model::{age_in_years, format_day, parse_birth_date};
use matching::{Abo, Cmv, DonorType, Sex};
use sqlx::{Any, Row, Transaction};

use crate::store::{rh_code, rh_from_code, validate_gl_with};
use crate::{Actor, Backend, Registry, RegistryConfig, RegistryError, Result, make_grid, now_text};

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
    /// Rows per batch (one transaction each); 0 means 5,000.
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
struct ImportRow {
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

/// One batch as read and validated: rows to store and the rows' errors.
struct CheckedBatch {
    read: usize,
    rows: Vec<ImportRow>,
    errors: Vec<RowError>,
}

/// A record as read, before validation.
enum RawRecord {
    Subject(SubjectRecord),
    Csv(usize, csv::StringRecord),
    Bad(RowError),
}

/// Where the records come from.
enum Source {
    Subjects(SubjectReader),
    Csv {
        reader: csv::Reader<std::fs::File>,
        columns: HashMap<String, usize>,
        read: usize,
    },
}

impl Source {
    fn open(path: &Path) -> Result<Source> {
        let is_csv = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        if !is_csv {
            let reader = SubjectReader::open(path)
                .map_err(|e| RegistryError::invalid("file", e.to_string()))?;
            return Ok(Source::Subjects(reader));
        }
        let mut reader = csv::ReaderBuilder::new()
            .flexible(false)
            .from_path(path)
            .map_err(|e| RegistryError::invalid("file", e.to_string()))?;
        let headers = reader
            .headers()
            .map_err(|e| RegistryError::invalid("header", e.to_string()))?;
        let columns: HashMap<String, usize> = headers
            .iter()
            .enumerate()
            .map(|(i, h)| (h.trim().to_ascii_lowercase(), i))
            .collect();
        for required in ["external_id", "birth_date", "gl"] {
            if !columns.contains_key(required) {
                return Err(RegistryError::invalid(
                    "header",
                    format!("the enrolment CSV needs a `{required}` column"),
                ));
            }
        }
        Ok(Source::Csv {
            reader,
            columns,
            read: 0,
        })
    }

    fn is_csv(&self) -> bool {
        matches!(self, Source::Csv { .. })
    }

    /// Up to `n` records; empty at the end. Errors that are not about one row (I/O) end the
    /// import.
    fn next_batch(&mut self, n: usize) -> Result<Vec<RawRecord>> {
        let mut out = Vec::with_capacity(n);
        match self {
            Source::Subjects(reader) => {
                for record in reader.by_ref() {
                    match record {
                        Ok(r) => out.push(RawRecord::Subject(r)),
                        Err(hla::LoadError::Format { line, reason, .. }) => {
                            out.push(RawRecord::Bad(err(line, "line", reason)))
                        }
                        Err(e) => return Err(RegistryError::invalid("file", e.to_string())),
                    }
                    if out.len() == n {
                        break;
                    }
                }
            }
            Source::Csv { reader, read, .. } => {
                let mut record = csv::StringRecord::new();
                while out.len() < n {
                    *read += 1;
                    // Header is line 1; quoted fields may span lines, so ask the reader.
                    let fallback = *read + 1;
                    match reader.read_record(&mut record) {
                        Ok(false) => break,
                        Ok(true) => {
                            let line = record.position().map_or(fallback, |p| p.line() as usize);
                            out.push(RawRecord::Csv(line, record.clone()));
                        }
                        Err(e) => {
                            if e.is_io_error() {
                                return Err(RegistryError::invalid("file", e.to_string()));
                            }
                            let line = e.position().map_or(fallback, |p| p.line() as usize);
                            out.push(RawRecord::Bad(err(line, "line", e.to_string())));
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

/// The canonical GL text of a typing-only record (`A+A^B+B^…`, one-copy loci doubled), from
/// a cache of validated positions: a million donors share a few tens of thousands of
/// position typings, and parsing and expanding each record anew costs more than storing it.
/// Only the common shape takes the cached path (`^`-joined loci of one or two `+`-joined
/// allele lists, printable ASCII, no namespace, `|` or `~`); anything else, and anything
/// invalid, returns `None` so the full parser decides and words the error.
pub struct GlCanonicaliser {
    expander: Arc<Expander>,
    shards: Vec<std::sync::Mutex<PositionCache>>,
}

/// Position text → (locus, canonical text), or `None` when it is not valid on its own.
type PositionCache = rustc_hash::FxHashMap<Box<str>, Option<(Box<str>, Box<str>)>>;

const CACHE_SHARDS: usize = 32;
/// Past this many entries a shard stops learning (a pathological file cannot grow it).
const CACHE_SHARD_LIMIT: usize = 1 << 16;

impl GlCanonicaliser {
    pub fn new(expander: Arc<Expander>) -> GlCanonicaliser {
        GlCanonicaliser {
            expander,
            shards: (0..CACHE_SHARDS).map(|_| Default::default()).collect(),
        }
    }

    /// Canonical text when `text` has the common shape and is valid, with A, B and DRB1.
    pub fn canonical(&self, text: &str) -> Option<String> {
        if text.is_empty()
            || !text.bytes().all(|b| b.is_ascii_graphic())
            || text.bytes().any(|b| matches!(b, b'#' | b'|' | b'~'))
        {
            return None;
        }
        let mut out = String::with_capacity(text.len() + 16);
        let mut loci: Vec<Box<str>> = Vec::with_capacity(8);
        for (i, piece) in text.split('^').enumerate() {
            let mut parts = piece.split('+');
            let first = self.position(parts.next()?)?;
            let second = match parts.next() {
                Some(p) => self.position(p)?,
                None => first.clone(),
            };
            if parts.next().is_some() || first.0 != second.0 || loci.contains(&first.0) {
                return None;
            }
            if i > 0 {
                out.push('^');
            }
            out.push_str(&first.1);
            out.push('+');
            out.push_str(&second.1);
            loci.push(first.0);
        }
        ["A", "B", "DRB1"]
            .iter()
            .all(|l| loci.iter().any(|x| &**x == *l))
            .then_some(out)
    }

    fn position(&self, text: &str) -> Option<(Box<str>, Box<str>)> {
        use std::hash::BuildHasher;
        if text.is_empty() {
            return None;
        }
        let hash = rustc_hash::FxBuildHasher.hash_one(text);
        let shard = &self.shards[(hash as usize) % CACHE_SHARDS];
        if let Some(hit) = shard.lock().expect("cache lock").get(text) {
            return hit.clone();
        }
        let value = hla::AlleleList::parse(text, None).ok().and_then(|list| {
            self.expander
                .expand_list(&list)
                .ok()
                .map(|_| (Box::from(list.locus()), list.to_string().into_boxed_str()))
        });
        let mut shard = shard.lock().expect("cache lock");
        if shard.len() < CACHE_SHARD_LIMIT {
            shard.insert(text.into(), value.clone());
        }
        value
    }
}

/// Checks rows against the rules that need no database: HLA, ages, codes, stations.
struct Validator {
    expander: Arc<Expander>,
    canonicaliser: GlCanonicaliser,
    config: RegistryConfig,
    stations: HashSet<String>,
    default_station: Option<String>,
    legacy_note: String,
    today: i64,
    columns: HashMap<String, usize>,
}

impl Validator {
    fn check(&self, raw: &RawRecord) -> std::result::Result<ImportRow, RowError> {
        let row = match raw {
            RawRecord::Bad(e) => return Err(e.clone()),
            RawRecord::Subject(record) => self.check_subject(record)?,
            RawRecord::Csv(line, record) => self.check_csv(*line, record)?,
        };
        if !self.stations.contains(&row.station) {
            return Err(err(
                row.line,
                "station",
                format!("unknown station `{}`", row.station),
            ));
        }
        Ok(row)
    }

    fn check_subject(&self, record: &SubjectRecord) -> std::result::Result<ImportRow, RowError> {
        let fast = match &record.typing {
            SubjectTyping::Gl(text) => self.canonicaliser.canonical(text),
            SubjectTyping::Cells(_) => None,
        };
        let gl = match fast {
            Some(gl) => gl,
            None => self.full_subject_gl(record)?,
        };
        Ok(ImportRow {
            line: record.line,
            external_id: record.id.clone(),
            station: self.default_station.clone().unwrap_or_default(),
            birth_date: None,
            sex: Sex::Unknown,
            abo: Abo::Unknown,
            rh: None,
            cmv: Cmv::Unknown,
            population: String::new(),
            donor_type: if record.donor_type.as_deref() == Some("2") {
                DonorType::Cord
            } else {
                DonorType::Adult
            },
            gl,
            lab: None,
            method: None,
            typed_on: None,
            identity: None,
            consent_form: "legacy".into(),
            consent_note: Some(self.legacy_note.clone()),
        })
    }

    /// Parse and expand the whole record: the general path, and the one that words errors.
    fn full_subject_gl(&self, record: &SubjectRecord) -> std::result::Result<String, RowError> {
        let typings = record
            .locus_typings()
            .map_err(|e| err(record.line, &e.field, e.error.to_string()))?;
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
                return Err(err(
                    record.line,
                    required,
                    format!("a listed donor needs at least A, B and DRB1; {required} is missing"),
                ));
            }
        }
        let mut gl = String::with_capacity(96);
        for (i, t) in typings.iter().enumerate() {
            if i > 0 {
                gl.push('^');
            }
            let _ = write!(gl, "{}+{}", t.positions[0], t.positions[1]);
        }
        Ok(gl)
    }

    fn check_csv(
        &self,
        line: usize,
        record: &csv::StringRecord,
    ) -> std::result::Result<ImportRow, RowError> {
        let get = |name: &str| {
            self.columns
                .get(name)
                .and_then(|c| record.get(*c))
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let external_id = get("external_id").ok_or_else(|| err(line, "external_id", "required"))?;
        let station = get("station")
            .or_else(|| self.default_station.clone())
            .ok_or_else(|| err(line, "station", "required (column or --station)"))?;
        let donor_type = match get("donor_type") {
            None => DonorType::Adult,
            Some(t) => DonorType::from_code(&t)
                .ok_or_else(|| err(line, "donor_type", format!("`{t}` is not adult or cord")))?,
        };
        let birth_date = get("birth_date").ok_or_else(|| err(line, "birth_date", "required"))?;
        let birth = parse_birth_date(&birth_date).map_err(|r| err(line, "birth_date", r))?;
        if donor_type == DonorType::Adult {
            let age = age_in_years(birth, self.today);
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
            Some(a) => Abo::from_code(a)
                .filter(|a| *a != Abo::Unknown)
                .ok_or_else(|| err(line, "abo", format!("`{a}` is not O, A, B or AB")))?,
        };
        let rh = match get("rh").as_deref() {
            None => None,
            Some(r) => rh_from_code(r)
                .filter(Option::is_some)
                .ok_or_else(|| err(line, "rh", format!("`{r}` is not + or -")))?,
        };
        let cmv = match get("cmv") {
            None => Cmv::Unknown,
            Some(c) => Cmv::from_code(&c)
                .ok_or_else(|| err(line, "cmv", format!("`{c}` is not pos or neg")))?,
        };
        let gl = validate_gl_with(
            &self.expander,
            &get("gl").ok_or_else(|| err(line, "gl", "required"))?,
        )
        .map_err(|e| err(line, "gl", e.to_string()))?;
        if let Some(d) = get("typing_date") {
            parse_birth_date(&d).map_err(|r| err(line, "typing_date", r))?;
        }
        let identity = match (get("family_name"), get("given_name")) {
            (Some(f), Some(g)) => Some((f, g, get("national_id"), get("phone"), get("email"))),
            (None, None) => None,
            _ => {
                return Err(err(
                    line,
                    "given_name",
                    "family_name and given_name go together",
                ));
            }
        };
        let consent_form = get("consent_form_version").ok_or_else(|| {
            err(
                line,
                "consent_form_version",
                "required: no listing without recruitment consent",
            )
        })?;
        Ok(ImportRow {
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
            consent_form,
            consent_note: None,
        })
    }
}

/// Read, validate and hand over batches until the file ends or the receiver goes away.
fn read_and_validate(
    mut source: Source,
    validator: Validator,
    batch: usize,
    out: tokio::sync::mpsc::Sender<Result<CheckedBatch>>,
) {
    use rayon::prelude::*;
    // Duplicate external ids within the file: the first wins, the others are errors.
    let mut seen: HashSet<String> = HashSet::new();
    loop {
        let raw = match source.next_batch(batch) {
            Ok(raw) => raw,
            Err(e) => {
                let _ = out.blocking_send(Err(e));
                return;
            }
        };
        if raw.is_empty() {
            return;
        }
        let checked: Vec<std::result::Result<ImportRow, RowError>> =
            raw.par_iter().map(|r| validator.check(r)).collect();
        let mut done = CheckedBatch {
            read: raw.len(),
            rows: Vec::with_capacity(raw.len()),
            errors: Vec::new(),
        };
        for c in checked {
            match c {
                Ok(r) => {
                    if seen.contains(&r.external_id) {
                        done.errors.push(err(
                            r.line,
                            "external_id",
                            format!("`{}` appears earlier in the file", r.external_id),
                        ));
                    } else {
                        seen.insert(r.external_id.clone());
                        done.rows.push(r);
                    }
                }
                Err(e) => done.errors.push(e),
            }
        }
        if out.blocking_send(Ok(done)).is_err() {
            return;
        }
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
            Source::Subjects(_) => HashMap::new(),
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
                    if attempt == 1 && crate::store::is_unique_violation(&e) =>
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

    async fn store_batch_sqlite(
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
        let now = now_text();
        let today_text = format_day(today as u16);
        let release = self.expander.release().version.clone();
        for (r, id) in &sorted.changed {
            // A changed typing: the new one becomes current, the old stays in history.
            sqlx::query("UPDATE typings SET is_current = FALSE WHERE donor_id = $1 AND is_current")
                .bind(id)
                .execute(&mut **tx)
                .await?;
            sqlx::query("INSERT INTO typings (donor_id, gl, release, lab, method, typed_on, is_current, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, TRUE, $7)")
                .bind(id)
                .bind(&r.gl)
                .bind(&release)
                .bind(r.lab.as_deref())
                .bind(r.method.as_deref())
                .bind(r.typed_on.as_deref().unwrap_or(&today_text))
                .bind(&now)
                .execute(&mut **tx)
                .await?;
            sqlx::query(
                "UPDATE donors SET row_version = row_version + 1, updated_at = $2 WHERE id = $1",
            )
            .bind(id)
            .bind(&now)
            .execute(&mut **tx)
            .await?;
            crate::store::audit(
                tx,
                actor,
                "import.update",
                "donor",
                &id.to_string(),
                Some("typing replaced"),
            )
            .await?;
        }
        let outcome = sorted.outcome();
        if sorted.new.is_empty() {
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
        Ok(outcome)
    }

    /// PostgreSQL: lookups by array, new rows by `COPY` (several times cheaper per row than
    /// any `INSERT`), ids from the sequence so that concurrent batches never collide.
    async fn store_batch_pg(
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
        let now = now_text();
        let today_text = format_day(today as u16);
        let release = self.expander.release().version.clone();
        for (r, id) in &sorted.changed {
            sqlx::query("UPDATE typings SET is_current = FALSE WHERE donor_id = $1 AND is_current")
                .bind(id)
                .execute(&mut *conn)
                .await?;
            sqlx::query("INSERT INTO typings (donor_id, gl, release, lab, method, typed_on, is_current, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, TRUE, $7)")
                .bind(id)
                .bind(&r.gl)
                .bind(&release)
                .bind(r.lab.as_deref())
                .bind(r.method.as_deref())
                .bind(r.typed_on.as_deref().unwrap_or(&today_text))
                .bind(&now)
                .execute(&mut *conn)
                .await?;
            sqlx::query(
                "UPDATE donors SET row_version = row_version + 1, updated_at = $2 WHERE id = $1",
            )
            .bind(id)
            .bind(&now)
            .execute(&mut *conn)
            .await?;
            sqlx::query("INSERT INTO audit_log (at, actor, role, action, entity, entity_id, reason, request_id) VALUES ($1, $2, $3, 'import.update', 'donor', $4, 'typing replaced', $5)")
                .bind(&now)
                .bind(&actor.name)
                .bind(&actor.role)
                .bind(id.to_string())
                .bind(actor.request_id.as_deref())
                .execute(&mut *conn)
                .await?;
        }
        let outcome = sorted.outcome();
        if sorted.new.is_empty() {
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
        Ok(outcome)
    }

    fn grids(&self, rows: &[(&ImportRow, i64)]) -> Result<Vec<String>> {
        let ion = self.config.ion;
        Ok(rows
            .iter()
            .map(|(_, id)| make_grid(ion, &id.to_string()))
            .collect::<std::result::Result<_, _>>()?)
    }
}

/// The audit reason of a batch's creations: how many, from where, and which donor ids (each
/// created donor also names this entry in `donors.created_by_audit`).
fn batch_audit_reason(rows: &[(&ImportRow, i64)], source: &str) -> String {
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
enum ImportTx {
    /// The transaction, then the writer's turn (dropped after it).
    Sqlite(Transaction<'static, Any>, crate::WriteTurn),
    Postgres(Transaction<'static, sqlx::Postgres>),
}

impl ImportTx {
    async fn commit(self) -> Result<()> {
        match self {
            ImportTx::Sqlite(tx, _turn) => tx.commit().await?,
            ImportTx::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }

    async fn rollback(self) -> Result<()> {
        match self {
            ImportTx::Sqlite(tx, _turn) => tx.rollback().await?,
            ImportTx::Postgres(tx) => tx.rollback().await?,
        }
        Ok(())
    }
}

/// National ids of a batch's rows that carry one.
fn national_ids(rows: &[ImportRow]) -> impl Iterator<Item = &str> {
    rows.iter()
        .filter_map(|r| r.identity.as_ref().and_then(|i| i.2.as_deref()))
}

/// A batch's rows sorted against what the registry holds.
struct Sorted<'r> {
    unchanged: usize,
    /// Known donors whose typing differs: (row, donor id).
    changed: Vec<(&'r ImportRow, i64)>,
    new: Vec<&'r ImportRow>,
    rejected: Vec<RowError>,
}

impl Sorted<'_> {
    fn outcome(&self) -> StoredBatch {
        StoredBatch {
            created: self.new.len(),
            updated: self.changed.len(),
            unchanged: self.unchanged,
            rejected: self.rejected.clone(),
        }
    }
}

fn classify<'r>(
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

/// Rows in `COPY … FROM STDIN` text format.
#[derive(Default)]
struct CopyText(Vec<u8>);

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

/// What every batch of one import shares.
struct BatchContext<'a> {
    /// The native PostgreSQL pool (for `COPY`); `None` on SQLite.
    pg: Option<&'a sqlx::PgPool>,
    actor: &'a Actor,
    /// The file's name, for the audit log.
    source: &'a str,
    today: i64,
}

/// What storing one batch did.
#[derive(Default)]
struct StoredBatch {
    created: usize,
    updated: usize,
    unchanged: usize,
    rejected: Vec<RowError>,
}

/// One cell of a bulk-inserted row.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cell<'a> {
    Int(i64),
    Text(Option<&'a str>),
    /// SQL text, the same for every row.
    Lit(&'static str),
}

/// A column of a bulk insert: its name and how to get its cell from a row.
type Column<'c, 'v, R> = (&'static str, &'c dyn Fn(&R) -> Cell<'v>);

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
struct JsonRows {
    buf: String,
    rows: usize,
    cells: usize,
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

    fn finish(mut self) -> String {
        self.buf.push(']');
        self.buf
    }
}

fn push_json_string(buf: &mut String, s: &str) {
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
