//! The donor-import JSON files of Atlas (Anthony Nolan's open-source WMDA search and match
//! engine; `Schemas/DonorUpdateFileSchema.json` in its repository): the format, and the
//! export that feeds an Atlas installation (or a registry moving its data).
//!
//! An export carries the listed donors a search of this registry would offer whose
//! `international_sharing` consent is in force (with `all_listed`, whatever their consent: a
//! registry moving its own data), each donor's current typing at A, B, C, DRB1, DQB1 and DPB1:
//! molecular names in `dna` (`*01:01`, `*02:AB`, `*01:01/01:02`, locus omitted as Atlas
//! writes them), serological typings in `ser` (`2`, `24`). A full export (`updateMode`
//! `full`) lists them as new (`N`); a differential one (`diff`, `since` an instant or a
//! local date) lists every donor changed since then: those still exported as new-or-update
//! (`NU`), the others that may have been sent before (withdrawn, de-listed, deferred, consent
//! withdrawn; a donor who never consented was never sent) as deleted (`D`). `since` is
//! inclusive: a donor changed in the very instant of the earlier export is sent again rather
//! than missed.

use std::io::Write;

use serde::{Deserialize, Serialize};

use crate::audit::commit_audited;
use crate::model::Donor;
use crate::support::{donor_from_row, donor_select};
use crate::{Actor, Registry, RegistryError, Result};

/// The loci an Atlas file carries, with their JSON keys.
pub const ATLAS_LOCI: [(&str, &str); 6] = [
    ("A", "a"),
    ("B", "b"),
    ("C", "c"),
    ("DPB1", "dpb1"),
    ("DQB1", "dqb1"),
    ("DRB1", "drb1"),
];

/// The two copies of one locus, as Atlas writes them (`field1`, `field2`; a missing second
/// copy is `null`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AtlasFields {
    pub field1: Option<String>,
    #[serde(default)]
    pub field2: Option<String>,
}

/// One locus: molecular (`dna`) and serological (`ser`) typings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AtlasLocus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dna: Option<AtlasFields>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ser: Option<AtlasFields>,
}

/// A donor's typing by locus (`a`, `b`, `drb1` required by the schema).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AtlasHla {
    pub a: AtlasLocus,
    pub b: AtlasLocus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub c: Option<AtlasLocus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpb1: Option<AtlasLocus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dqb1: Option<AtlasLocus>,
    pub drb1: AtlasLocus,
}

impl AtlasHla {
    /// The locus under its Boai name.
    pub fn locus(&self, name: &str) -> Option<&AtlasLocus> {
        match name {
            "A" => Some(&self.a),
            "B" => Some(&self.b),
            "C" => self.c.as_ref(),
            "DPB1" => self.dpb1.as_ref(),
            "DQB1" => self.dqb1.as_ref(),
            "DRB1" => Some(&self.drb1),
            _ => None,
        }
    }

    fn set(&mut self, name: &str, locus: AtlasLocus) {
        match name {
            "A" => self.a = locus,
            "B" => self.b = locus,
            "C" => self.c = Some(locus),
            "DPB1" => self.dpb1 = Some(locus),
            "DQB1" => self.dqb1 = Some(locus),
            "DRB1" => self.drb1 = locus,
            _ => {}
        }
    }
}

/// One donor record of the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AtlasDonor {
    #[serde(rename = "recordId")]
    pub record_id: String,
    /// `N` new, `U` updated, `NU` new or updated, `D` deleted.
    #[serde(rename = "changeType")]
    pub change_type: String,
    /// `D` adult donor, `C` cord unit, `B` banked (not supported by Atlas).
    #[serde(rename = "donorType")]
    pub donor_type: String,
    #[serde(rename = "donPool")]
    pub don_pool: Option<String>,
    pub ethn: Option<String>,
    pub hla: AtlasHla,
}

/// What an export wrote.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AtlasExport {
    /// `full` or `diff`.
    pub update_mode: String,
    /// Donors written as new or updated.
    pub donors: usize,
    /// Donors written as deleted (differential exports only).
    pub deleted: usize,
    /// Donors that could not be written in Atlas's format: (record id, why).
    pub skipped: Vec<(String, String)>,
    /// The instant the export read from: give it as `since` to the next differential one.
    pub position: String,
}

#[derive(Debug, Clone, Default)]
pub struct AtlasExportOptions {
    /// A differential export of the donors changed at or after this instant (RFC 3339, as
    /// an earlier export's `position`); a full one when `None`.
    pub since: Option<String>,
    /// Every listed donor, not only those consenting to international sharing.
    pub all_listed: bool,
}

/// A donor's current typing in Atlas's fields, or why it cannot be written there.
pub fn atlas_hla(gl: &str, expander: &hla::Expander) -> std::result::Result<AtlasHla, String> {
    let parsed = expander.parse_gl(gl).map_err(|e| e.to_string())?;
    let typings = hla::locus_typings(&parsed).map_err(|e| e.to_string())?;
    let mut out = AtlasHla::default();
    for t in &typings {
        let Some((_, key)) = ATLAS_LOCI.iter().find(|(l, _)| *l == t.locus) else {
            continue;
        };
        let mut dna: [Option<String>; 2] = [None, None];
        let mut ser: [Option<String>; 2] = [None, None];
        let copies = if t.single_copy { 1 } else { 2 };
        for (i, list) in t.positions.iter().take(copies).enumerate() {
            let serological = list
                .0
                .iter()
                .filter(|tok| matches!(tok, hla::Token::Serology { .. }))
                .count();
            if serological == 0 {
                let names: Vec<String> = list
                    .0
                    .iter()
                    .map(|tok| {
                        let text = tok.to_string();
                        text.split_once('*')
                            .map_or(text.clone(), |(_, n)| n.to_string())
                    })
                    .collect();
                dna[i] = Some(format!("*{}", names.join("/")));
            } else if serological == list.0.len() && *key != "dpb1" {
                let numbers: Vec<String> = list
                    .0
                    .iter()
                    .map(|tok| match tok {
                        hla::Token::Serology { antigen, .. } => antigen.clone(),
                        other => other.to_string(),
                    })
                    .collect();
                ser[i] = Some(numbers.join("/"));
            } else {
                return Err(format!(
                    "{}: `{list}` mixes serological and molecular names, or is serological at a locus Atlas types by DNA only",
                    t.locus
                ));
            }
        }
        let fields = |f: [Option<String>; 2]| {
            f.iter().any(Option::is_some).then(|| AtlasFields {
                field1: f[0].clone(),
                field2: f[1].clone(),
            })
        };
        let (dna, ser) = (fields(dna), fields(ser));
        if dna.is_some() && ser.is_some() {
            return Err(format!(
                "{}: one copy typed by DNA and the other by serology",
                t.locus
            ));
        }
        // The schema asks for both objects at A and B; an empty one says "not typed so".
        let empty = || {
            Some(AtlasFields {
                field1: None,
                field2: None,
            })
        };
        let both = matches!(t.locus.as_str(), "A" | "B");
        out.set(
            &t.locus,
            AtlasLocus {
                dna: dna.clone().or_else(|| if both { empty() } else { None }),
                ser: ser.or_else(|| if both { empty() } else { None }),
            },
        );
    }
    Ok(out)
}

impl Registry {
    /// Write an Atlas donor-import file to `out` and audit it with its counts. An export
    /// with no donor to write is refused (the format needs at least one) and writes nothing.
    pub async fn export_atlas<W: Write>(
        &self,
        mut out: W,
        options: &AtlasExportOptions,
        actor: &Actor,
    ) -> Result<AtlasExport> {
        crate::audit::check_actor(actor)?;
        // A local date (the registry's day from its start) or an instant (a position).
        let since = match options.since.as_deref().map(str::trim) {
            None => None,
            Some(text) => Some(if let Ok(day) = text.parse::<jiff::civil::Date>() {
                self.config.clock.start_of_day_text(day)
            } else if let Ok(at) = text.parse::<jiff::Timestamp>() {
                crate::instant_text(at)
            } else {
                return Err(RegistryError::invalid(
                    "since",
                    format!(
                        "`{text}` is neither a date (YYYY-MM-DD) nor an instant (an earlier export's position, RFC 3339)"
                    ),
                ));
            }),
        };
        let mut summary = AtlasExport {
            update_mode: if since.is_some() { "diff" } else { "full" }.into(),
            position: self.now_text(),
            ..AtlasExport::default()
        };
        let today = self.today();
        let pool = format!("{:04}", self.config.ion);
        let mut after = 0i64;
        let mut written = 0usize;
        loop {
            let rows = sqlx::query(donor_select!(
                "WHERE d.id > $1 AND ($2 IS NULL OR d.updated_at >= $2) ORDER BY d.id LIMIT 2000"
            ))
            .bind(after)
            .bind(since.as_deref())
            .fetch_all(&self.pool)
            .await?;
            let Some(last) = rows.last() else { break };
            let donors: Vec<Donor> = rows.iter().map(donor_from_row).collect::<Result<_>>()?;
            after = sqlx::Row::try_get(last, "id")?;
            // Each donor's international-sharing consent: in force (1), or only withdrawn (0).
            let sharing: std::collections::HashMap<i64, i64> = sqlx::query_as::<_, (i64, i64)>(
                "SELECT donor_id, MAX(CASE WHEN withdrawn_at IS NULL THEN 1 ELSE 0 END) FROM consents \
                 WHERE scope = 'international_sharing' AND donor_id >= $1 AND donor_id <= $2 GROUP BY donor_id",
            )
            .bind(donors[0].id)
            .bind(after)
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .collect();
            for donor in &donors {
                let consent = sharing.get(&donor.id).copied();
                let exported =
                    self.is_indexable(donor, today) && (options.all_listed || consent == Some(1));
                // A donor who never consented was never sent: no deletion to send either.
                let ever_sent = options.all_listed || consent.is_some();
                let record = if exported {
                    let gl = donor.current_typing.as_deref().unwrap_or_default();
                    match atlas_hla(gl, &self.expander) {
                        Ok(hla) => Some(AtlasDonor {
                            record_id: donor.external_id.clone(),
                            change_type: if since.is_some() { "NU" } else { "N" }.into(),
                            donor_type: match donor.donor_type {
                                matching::model::DonorType::Cord => "C",
                                _ => "D",
                            }
                            .into(),
                            don_pool: Some(pool.clone()),
                            ethn: (!donor.population.is_empty()).then(|| donor.population.clone()),
                            hla,
                        }),
                        Err(why) => {
                            summary.skipped.push((donor.external_id.clone(), why));
                            None
                        }
                    }
                } else if since.is_some() && ever_sent {
                    summary.deleted += 1;
                    Some(AtlasDonor {
                        record_id: donor.external_id.clone(),
                        change_type: "D".into(),
                        donor_type: match donor.donor_type {
                            matching::model::DonorType::Cord => "C",
                            _ => "D",
                        }
                        .into(),
                        don_pool: Some(pool.clone()),
                        ethn: None,
                        hla: AtlasHla::default(),
                    })
                } else {
                    None
                };
                let Some(record) = record else { continue };
                if written == 0 {
                    writeln!(
                        out,
                        "{{\"updateMode\":\"{}\",\"donors\":[",
                        summary.update_mode
                    )
                    .map_err(|e| RegistryError::invalid("out", e.to_string()))?;
                } else {
                    out.write_all(b",\n")
                        .map_err(|e| RegistryError::invalid("out", e.to_string()))?;
                }
                serde_json::to_writer(&mut out, &record)
                    .map_err(|e| RegistryError::invalid("out", e.to_string()))?;
                written += 1;
            }
        }
        if written == 0 {
            return Err(RegistryError::invalid(
                "donors",
                if options.all_listed {
                    "no listed donor to export (an Atlas file holds at least one donor)"
                } else {
                    "no listed donor with international_sharing consent in force to export (an Atlas file holds at least one donor; --all-listed exports every listed donor)"
                },
            ));
        }
        out.write_all(b"\n]}\n")
            .and_then(|()| out.flush())
            .map_err(|e| RegistryError::invalid("out", e.to_string()))?;
        summary.donors = written - summary.deleted;
        let (_turn, tx) = self.begin().await?;
        let reason = format!(
            "Atlas {} export: {} donors, {} deleted, {} skipped{}{}",
            summary.update_mode,
            summary.donors,
            summary.deleted,
            summary.skipped.len(),
            since
                .as_deref()
                .map(|s| format!(", since {s}"))
                .unwrap_or_default(),
            if options.all_listed {
                ", all listed donors"
            } else {
                ", international_sharing consent"
            }
        );
        commit_audited(tx, actor, "export.atlas", "donors", "", Some(&reason)).await?;
        Ok(summary)
    }
}
