//! Typing results from labs in HML 1.0.1: each sample matched to its donor (by the registry's
//! sample barcode, else the donor's GRID), its typings recorded the way a typing is recorded
//! by hand (same checks, same consent rules, audited), each bad element named by its path.
//!
//! A lab types the loci it was asked for: the loci a sample's typings give replace those of
//! the donor's current typing, and the donor's other loci are kept, so a confirmatory typing
//! of A, B, C, DRB1 and DQB1 does not drop DPB1. A sample with any bad element is not
//! recorded; the others are (or none, with `all_or_nothing`).

use hla::gl::GenotypeList;
use hla::hml::{HmlSample, read_hml};
use sqlx::{Any, Transaction};

use crate::audit::audit;
use crate::index_feed::IndexUpdate;
use crate::model::{Donor, TypingInput};
use crate::support::{past_date, validate_gl};
use crate::{Actor, Registry, RegistryError, Result, validate_grid};

#[derive(Debug, Clone, Copy, Default)]
pub struct HmlOptions {
    /// Record nothing when any element is bad.
    pub all_or_nothing: bool,
}

/// A problem, at the element it is about.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HmlProblem {
    pub path: String,
    pub reason: String,
}

/// A sample's typing as recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HmlRecorded {
    /// The sample element.
    pub path: String,
    /// The sample's id in the document.
    pub sample: String,
    pub donor_id: i64,
    pub typing_id: i64,
    /// The same result was already the donor's current typing (a file sent again): nothing
    /// new was recorded.
    pub unchanged: bool,
    /// The donor's typing now (the loci the lab gave, and the others kept).
    pub gl: String,
    pub method: Option<String>,
    pub lab: Option<String>,
}

/// What an HML document did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct HmlImport {
    pub hmlid: Option<String>,
    /// Samples in the document.
    pub samples: usize,
    pub recorded: Vec<HmlRecorded>,
    pub errors: Vec<HmlProblem>,
    /// Each recorded donor's change, for a served index (applied after the commit).
    #[serde(skip)]
    pub index: Vec<IndexUpdate>,
}

/// A sample read and checked, before the database is asked.
struct Prepared {
    path: String,
    id: String,
    /// Loci → GL piece, in the document's order.
    pieces: Vec<Piece>,
    typed_on: Option<String>,
    method: Option<String>,
    lab: Option<String>,
}

struct Piece {
    loci: Vec<String>,
    text: String,
}

/// The `^`-separated pieces of a GL string with the loci each covers (a phased piece covers
/// several).
fn gl_pieces(gl: &hla::GlString) -> Vec<Piece> {
    gl.loci
        .iter()
        .map(|list: &GenotypeList| {
            let mut loci: Vec<String> = Vec::new();
            for genotype in &list.0 {
                for haplotype in &genotype.0 {
                    for alleles in &haplotype.0 {
                        if !loci.iter().any(|l| l == alleles.locus()) {
                            loci.push(alleles.locus().to_string());
                        }
                    }
                }
            }
            let text = hla::GlString {
                version: None,
                loci: vec![list.clone()],
            }
            .to_string();
            Piece { loci, text }
        })
        .collect()
}

/// An `xs:date` (`2026-03-01`, optionally with a zone: `Z`, `+08:00`) as `YYYY-MM-DD`.
fn xs_date(text: &str) -> Option<&str> {
    let day = text.get(..10)?;
    let zone = &text[10..];
    let zone_ok = zone.is_empty()
        || zone == "Z"
        || (zone.len() == 6
            && (zone.starts_with('+') || zone.starts_with('-'))
            && zone.as_bytes()[3] == b':');
    zone_ok.then_some(day)
}

impl Registry {
    /// Read a sample's typings into GL pieces per locus, its date, methods and lab; every
    /// problem named by its element.
    fn prepare_hml_sample(
        &self,
        s: &HmlSample,
        reporting_center: Option<&str>,
        today: i64,
        errors: &mut Vec<HmlProblem>,
    ) -> Option<Prepared> {
        let before = errors.len();
        errors.extend(s.errors.iter().map(|e| HmlProblem {
            path: e.path.clone(),
            reason: e.reason.clone(),
        }));
        let mut pieces: Vec<(Piece, String)> = Vec::new();
        let mut typed_on: Option<String> = None;
        let mut methods = Vec::new();
        for t in &s.typings {
            let parsed = self
                .expander
                .parse_gl(&t.gl)
                .and_then(|p| self.expander.expand_gl(&p).map(|_| p));
            match parsed {
                Ok(gl) => {
                    for piece in gl_pieces(&gl) {
                        if let Some((_, first)) = pieces
                            .iter()
                            .find(|(p, _)| p.loci.iter().any(|l| piece.loci.contains(l)))
                        {
                            errors.push(HmlProblem {
                                path: t.path.clone(),
                                reason: format!(
                                    "HLA-{} is typed twice in this sample (also at {first})",
                                    piece.loci.join("/")
                                ),
                            });
                        } else {
                            pieces.push((piece, t.path.clone()));
                        }
                    }
                }
                Err(e) => errors.push(HmlProblem {
                    path: t.path.clone(),
                    reason: format!("invalid HLA typing: {e}"),
                }),
            }
            if let Some((text, path)) = &t.date {
                match xs_date(text).map(|d| past_date(path, d, today)) {
                    Some(Ok(_)) => {
                        let day = xs_date(text).expect("checked").to_string();
                        if typed_on.as_ref().is_none_or(|d| *d < day) {
                            typed_on = Some(day);
                        }
                    }
                    Some(Err(e)) => errors.push(HmlProblem {
                        path: path.clone(),
                        reason: match e {
                            RegistryError::Invalid { reason, .. } => reason,
                            other => other.to_string(),
                        },
                    }),
                    None => errors.push(HmlProblem {
                        path: path.clone(),
                        reason: format!("`{text}` is not a date (YYYY-MM-DD)"),
                    }),
                }
            }
            for m in &t.methods {
                if !methods.contains(m) {
                    methods.push(*m);
                }
            }
        }
        if errors.len() > before {
            return None;
        }
        methods.sort();
        let method = (!methods.is_empty()).then(|| {
            methods
                .iter()
                .map(|m| m.code())
                .collect::<Vec<_>>()
                .join("+")
        });
        Some(Prepared {
            path: s.path.clone(),
            id: s.id.clone(),
            pieces: pieces.into_iter().map(|(p, _)| p).collect(),
            typed_on,
            method,
            lab: s
                .center_code
                .clone()
                .or_else(|| reporting_center.map(str::to_string)),
        })
    }

    /// Import an HML 1.0.1 document's typings. The report names every bad element; a
    /// document that is not well-formed HML records nothing.
    pub async fn import_hml(
        &self,
        text: &str,
        options: &HmlOptions,
        actor: &Actor,
        today: i64,
    ) -> Result<HmlImport> {
        let mut report = HmlImport::default();
        let doc = match read_hml(text, &self.expander.release().version) {
            Ok(doc) => doc,
            Err(e) => {
                report.errors.push(HmlProblem {
                    path: e.path,
                    reason: e.reason,
                });
                return Ok(report);
            }
        };
        report.hmlid = doc.hmlid.clone();
        report.samples = doc.samples.len();
        report.errors.extend(doc.errors.iter().map(|e| HmlProblem {
            path: e.path.clone(),
            reason: e.reason.clone(),
        }));
        // Problems in document order: each tagged with its sample's position.
        let mut problems: Vec<(usize, HmlProblem)> =
            report.errors.drain(..).map(|p| (0, p)).collect();
        let mut prepared: Vec<(usize, Prepared)> = Vec::new();
        for (i, s) in doc.samples.iter().enumerate() {
            let mut errors = Vec::new();
            if let Some(p) =
                self.prepare_hml_sample(s, doc.reporting_center.as_deref(), today, &mut errors)
            {
                prepared.push((i + 1, p));
            }
            problems.extend(errors.into_iter().map(|e| (i + 1, e)));
        }
        let finish = |mut report: HmlImport, mut problems: Vec<(usize, HmlProblem)>| {
            problems.sort_by_key(|(i, _)| *i);
            report.errors = problems.into_iter().map(|(_, p)| p).collect();
            report
        };
        if options.all_or_nothing && !problems.is_empty() {
            return Ok(finish(report, problems));
        }
        let mut changed: Vec<Donor> = Vec::new();
        if options.all_or_nothing {
            let (_turn, mut tx) = self.begin().await?;
            for (i, p) in &prepared {
                match self
                    .record_hml_sample(&mut tx, p, &doc.hmlid, actor, today)
                    .await
                {
                    Ok((recorded, donor)) => {
                        report.recorded.push(recorded);
                        changed.push(donor);
                    }
                    Err(e) if is_refusal(&e) => problems.push((*i, problem(&p.path, e))),
                    Err(e) => return Err(e),
                }
            }
            if !problems.is_empty() {
                tx.rollback().await?;
                report.recorded.clear();
                return Ok(finish(report, problems));
            }
            tx.commit().await?;
        } else {
            for (i, p) in &prepared {
                let (_turn, mut tx) = self.begin().await?;
                match self
                    .record_hml_sample(&mut tx, p, &doc.hmlid, actor, today)
                    .await
                {
                    Ok((recorded, donor)) => {
                        tx.commit().await?;
                        report.recorded.push(recorded);
                        changed.push(donor);
                    }
                    Err(e) if is_refusal(&e) => {
                        tx.rollback().await?;
                        problems.push((*i, problem(&p.path, e)));
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        for donor in &changed {
            report.index.push(self.index_update(donor)?);
        }
        Ok(finish(report, problems))
    }

    /// One sample inside `tx`: its donor found (a station only its own), the typing merged
    /// with the donor's current one, recorded and audited.
    async fn record_hml_sample(
        &self,
        tx: &mut Transaction<'_, Any>,
        p: &Prepared,
        hmlid: &Option<String>,
        actor: &Actor,
        today: i64,
    ) -> Result<(HmlRecorded, Donor)> {
        let (donor_id, sample_id) = self.hml_donor(tx, &p.id, actor).await?;
        type Row = (
            i64,
            String,
            Option<String>,
            Option<String>,
            String,
            Option<i64>,
        );
        let current_row: Option<Row> = sqlx::query_as(
            "SELECT id, gl, lab, method, typed_on, sample_id FROM typings WHERE donor_id = $1 AND is_current",
        )
        .bind(donor_id)
        .fetch_optional(&mut **tx)
        .await?;
        let current = current_row.as_ref().map(|r| r.1.clone());
        let mut merged: Vec<(Vec<String>, String)> = Vec::new();
        if let Some(current) = current
            && let Ok(parsed) = self.expander.parse_gl(&current)
        {
            for old in gl_pieces(&parsed) {
                if !p
                    .pieces
                    .iter()
                    .any(|n| n.loci.iter().any(|l| old.loci.contains(l)))
                {
                    merged.push((old.loci, old.text));
                }
            }
        }
        merged.extend(p.pieces.iter().map(|n| (n.loci.clone(), n.text.clone())));
        merged.sort_by_key(|(loci, _)| locus_rank(&loci[0]));
        let merged: Vec<String> = merged.into_iter().map(|(_, text)| text).collect();
        let gl = validate_gl(self, &merged.join("^"))?;
        let typing = TypingInput {
            gl: gl.clone(),
            lab: p.lab.clone(),
            method: p.method.clone(),
            typed_on: p.typed_on.clone(),
            sample_id,
        };
        let typed_on = typing
            .typed_on
            .clone()
            .unwrap_or_else(|| matching::model::format_day(today.clamp(0, u16::MAX as i64) as u16));
        if let Some((id, old_gl, lab, method, old_on, old_sample)) = current_row
            && (old_gl, lab, method, old_on, old_sample)
                == (
                    gl.clone(),
                    typing.lab.clone(),
                    typing.method.clone(),
                    typed_on,
                    sample_id,
                )
        {
            let donor = self.donor_in(tx, donor_id).await?;
            let recorded = HmlRecorded {
                path: p.path.clone(),
                sample: p.id.clone(),
                donor_id,
                typing_id: id,
                unchanged: true,
                gl,
                method: p.method.clone(),
                lab: p.lab.clone(),
            };
            return Ok((recorded, donor));
        }
        let typing_id = self
            .record_typing_in(tx, donor_id, &typing, &gl, today)
            .await?;
        let donor = self.changed_donor(tx, donor_id).await?;
        let reason = format!(
            "HML {} {}",
            hmlid.as_deref().unwrap_or("(no hmlid)"),
            p.path
        );
        let reason: String = reason.chars().take(crate::support::NOTE_MAX).collect();
        audit(
            tx,
            actor,
            "typing.record",
            "donor",
            &donor_id.to_string(),
            Some(&reason),
        )
        .await?;
        Ok((
            HmlRecorded {
                path: p.path.clone(),
                sample: p.id.clone(),
                donor_id,
                typing_id,
                unchanged: false,
                gl,
                method: p.method.clone(),
                lab: p.lab.clone(),
            },
            donor,
        ))
    }

    /// The donor (and sample) an HML sample id names: a sample barcode of this registry, else
    /// a donor's GRID (spaces and hyphens ignored). A station finds only its own donors.
    async fn hml_donor(
        &self,
        tx: &mut Transaction<'_, Any>,
        id: &str,
        actor: &Actor,
    ) -> Result<(i64, Option<i64>)> {
        let station = crate::donors::station_scope(actor, None)?;
        let by_sample: Option<(i64, i64, String)> = sqlx::query_as(
            "SELECT s.id, s.donor_id, d.station_code FROM samples s JOIN donors d ON d.id = s.donor_id WHERE s.barcode = $1",
        )
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
        let found = match by_sample {
            Some((sample, donor, own)) => Some((donor, Some(sample), own)),
            None => {
                let grid: String = id
                    .chars()
                    .filter(|c| !c.is_whitespace() && *c != '-')
                    .collect::<String>()
                    .to_ascii_uppercase();
                if validate_grid(&grid).is_ok() {
                    let row: Option<(i64, String)> =
                        sqlx::query_as("SELECT id, station_code FROM donors WHERE grid = $1")
                            .bind(&grid)
                            .fetch_optional(&mut **tx)
                            .await?;
                    row.map(|(donor, own)| (donor, None, own))
                } else {
                    None
                }
            }
        };
        match found {
            Some((donor, sample, own)) if station.as_ref().is_none_or(|s| *s == own) => {
                Ok((donor, sample))
            }
            _ => Err(RegistryError::invalid(
                "id",
                format!(
                    "`{id}` is neither a sample barcode nor the GRID of a donor of this registry{}",
                    if station.is_some() {
                        " at this station"
                    } else {
                        ""
                    }
                ),
            )),
        }
    }
}

/// Where a locus goes in a recorded typing: the usual order of a typing report, other loci
/// after, by name.
fn locus_rank(locus: &str) -> (usize, String) {
    const ORDER: [&str; 11] = [
        "A", "B", "C", "DRB1", "DRB3", "DRB4", "DRB5", "DQA1", "DQB1", "DPA1", "DPB1",
    ];
    let rank = ORDER
        .iter()
        .position(|l| *l == locus)
        .unwrap_or(ORDER.len());
    (rank, locus.to_string())
}

/// A refusal of one sample (reported against it), as against a failure of the store.
fn is_refusal(e: &RegistryError) -> bool {
    !matches!(
        e,
        RegistryError::Db(_) | RegistryError::Migrate(_) | RegistryError::Url(_)
    )
}

fn problem(path: &str, e: RegistryError) -> HmlProblem {
    let (path, reason) = match e {
        RegistryError::Invalid { field, reason } if field == "id" => {
            (format!("{path}/@id"), reason)
        }
        RegistryError::Invalid { field, reason } => {
            (path.to_string(), format!("{field}: {reason}"))
        }
        other => (path.to_string(), other.to_string()),
    };
    HmlProblem { path, reason }
}
