//! Validating a batch in parallel: typings of the common shape through `GlCanonicaliser`
//! (a cache of validated position texts), anything else through the full parser, which words
//! the errors.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;

use hla::Expander;
use hla::input::{SubjectRecord, SubjectTyping};
use matching::model::{age_in_years, parse_birth_date};
use matching::{Abo, Cmv, DonorType, Sex};

use crate::model::rh_from_code;
use crate::national_id::normalise_national_id;
use crate::support::{
    CODE_MAX, EMAIL_MAX, ID_MAX, NAME_MAX, PHONE_MAX, check_text, validate_gl_with,
};
use crate::{RegistryConfig, RegistryError, Result};

use super::batch::{CheckedBatch, Expect, ImportRow, RowError, err};
use super::source::{RawRecord, Source};

/// The canonical GL text of a typing-only record (`A+A^B+B^…`, one-copy loci doubled), from
/// a cache of validated positions: a million donors share a few tens of thousands of
/// position typings, and parsing and expanding each record anew costs more than storing it.
/// Only the common shape takes the cached path (`^`-joined loci of one or two `+`-joined
/// allele lists, printable ASCII, no namespace, `|` or `~`); anything else, and anything
/// invalid, returns `None` so the full parser decides and words the error.
pub struct GlCanonicaliser {
    expander: Arc<Expander>,
    /// Position text → (locus, canonical text), or `None` when it is not valid on its own.
    positions: hla::PositionCache<Option<(Box<str>, Box<str>)>>,
}

impl GlCanonicaliser {
    pub fn new(expander: Arc<Expander>) -> GlCanonicaliser {
        GlCanonicaliser {
            expander,
            positions: hla::PositionCache::new(),
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

    pub(crate) fn position(&self, text: &str) -> Option<(Box<str>, Box<str>)> {
        if text.is_empty() {
            return None;
        }
        self.positions.get_or_compute(text, |text| {
            hla::AlleleList::parse(text, None).ok().and_then(|list| {
                self.expander
                    .expand_list(&list)
                    .ok()
                    .map(|_| (Box::from(list.locus()), list.to_string().into_boxed_str()))
            })
        })
    }
}

/// Checks rows against the rules that need no database: HLA, ages, codes, stations.
pub(crate) struct Validator {
    pub(crate) expander: Arc<Expander>,
    pub(crate) canonicaliser: GlCanonicaliser,
    pub(crate) config: RegistryConfig,
    pub(crate) stations: HashSet<String>,
    pub(crate) default_station: Option<String>,
    pub(crate) legacy_note: String,
    pub(crate) today: i64,
    pub(crate) columns: HashMap<String, usize>,
}

impl Validator {
    pub(crate) fn check(&self, raw: &RawRecord) -> std::result::Result<ImportRow, RowError> {
        let row = match raw {
            RawRecord::Bad(e) => return Err(e.clone()),
            RawRecord::Subject(record) => self.check_subject(record)?,
            RawRecord::Atlas {
                subject,
                expect,
                population,
            } => {
                let mut row = self.check_subject(subject)?;
                if let Some(p) = population {
                    check_text("ethn", Some(p), false, ID_MAX)
                        .map_err(|e| err(subject.line, "ethn", e.to_string()))?;
                    row.population = p.clone();
                }
                row.expect = *expect;
                row
            }
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

    pub(crate) fn check_subject(
        &self,
        record: &SubjectRecord,
    ) -> std::result::Result<ImportRow, RowError> {
        let fast = match &record.typing {
            SubjectTyping::Gl(text) => self.canonicaliser.canonical(text),
            SubjectTyping::Cells(_) => None,
        };
        let gl = match fast {
            Some(gl) => gl,
            None => self.full_subject_gl(record)?,
        };
        Ok(ImportRow {
            expect: Expect::Either,
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
    pub(crate) fn full_subject_gl(
        &self,
        record: &SubjectRecord,
    ) -> std::result::Result<String, RowError> {
        let typings = record
            .locus_typings(self.expander.release())
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

    pub(crate) fn check_csv(
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
        if i64::from(birth) > self.today {
            return Err(err(
                line,
                "birth_date",
                format!("{birth_date} is after today"),
            ));
        }
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
        if let Some(d) = get("typing_date")
            && i64::from(parse_birth_date(&d).map_err(|r| err(line, "typing_date", r))?)
                > self.today
        {
            return Err(err(line, "typing_date", format!("{d} is after today")));
        }
        // The same limits as an enrolment through the API.
        for (field, max) in [
            ("external_id", ID_MAX),
            ("station", CODE_MAX),
            ("population", ID_MAX),
            ("family_name", NAME_MAX),
            ("given_name", NAME_MAX),
            ("phone", PHONE_MAX),
            ("email", EMAIL_MAX),
            ("consent_form_version", ID_MAX),
            ("typing_lab", NAME_MAX),
            ("typing_method", ID_MAX),
        ] {
            if let Some(v) = get(field) {
                check_text(field, Some(&v), false, max).map_err(|e| match e {
                    RegistryError::Invalid { field, reason } => err(line, &field, reason),
                    other => err(line, field, other.to_string()),
                })?;
            }
        }
        let national_id = get("national_id")
            .map(|n| normalise_national_id("national_id", &n))
            .transpose()
            .map_err(|e| match e {
                RegistryError::Invalid { field, reason } => err(line, &field, reason),
                other => err(line, "national_id", other.to_string()),
            })?;
        let identity = match (get("family_name"), get("given_name")) {
            (Some(f), Some(g)) => Some((f, g, national_id, get("phone"), get("email"))),
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
            expect: Expect::Either,
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
pub(crate) fn read_and_validate(
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
