//! Loading typing files into the matching engine: donor files into a `DonorIndex`, patient
//! files into scorer subjects. Bad rows are reported with their line and field; the good
//! rows load.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use hla::Expander;
use hla::input::{SubjectReader, SubjectRecord, SubjectTyping};
use matching::{
    DonorAttributes, DonorIndex, DonorInput, DonorType, Locus, Subject, SubjectBuilder,
};

/// A donor file in the index. Keys are assigned in id order, so ties that break on key
/// break on the file's donor id.
pub struct LoadedDonors {
    pub index: DonorIndex,
    /// key → donor id (key 0 unused).
    pub ids: Vec<String>,
    pub rejected: usize,
}

/// One locus's two cells (with the locus implied).
type LocusCells = (Locus, [Option<String>; 2]);

/// Each record's six loci as cell texts.
fn cells(
    record: &SubjectRecord,
    release: &hla::Release,
) -> Result<Vec<LocusCells>, hla::input::FieldError> {
    let mut out = Vec::new();
    match &record.typing {
        SubjectTyping::Cells(loci) => {
            for (locus, pair) in loci {
                if let Some(l) = Locus::from_name(locus) {
                    out.push((l, pair.clone()));
                }
            }
            // Validate the other loci too.
            record.locus_typings(release)?;
        }
        SubjectTyping::Gl(_) => {
            for t in record.locus_typings(release)? {
                if let Some(l) = Locus::from_name(&t.locus) {
                    out.push((
                        l,
                        [
                            Some(t.positions[0].to_string()),
                            Some(t.positions[1].to_string()),
                        ],
                    ));
                }
            }
        }
    }
    Ok(out)
}

pub fn load_donor_file(path: &Path, expander: Arc<Expander>) -> Result<LoadedDonors> {
    let mut records = Vec::new();
    let mut rejected = 0;
    for record in
        SubjectReader::open(path).with_context(|| format!("opening {}", path.display()))?
    {
        match record {
            Ok(r) => records.push(r),
            Err(e) => {
                rejected += 1;
                eprintln!("{e}");
            }
        }
    }
    let mut order: Vec<usize> = (0..records.len()).collect();
    order.sort_by(|&a, &b| records[a].id.cmp(&records[b].id));
    let mut keys = vec![0u32; records.len()];
    let mut ids = vec![String::new()];
    for (k, &i) in order.iter().enumerate() {
        keys[i] = (k + 1) as u32;
        ids.push(records[i].id.clone());
    }
    let release = expander.release_arc().clone();
    let mut index = DonorIndex::new(expander);
    index.reserve(records.len());
    for (i, record) in records.iter().enumerate() {
        let result = cells(record, &release)
            .map_err(|e| e.to_string())
            .and_then(|cells| {
                let mut input = DonorInput {
                    key: keys[i],
                    attributes: DonorAttributes {
                        donor_type: if record.donor_type.as_deref() == Some("2") {
                            DonorType::Cord
                        } else {
                            DonorType::Adult
                        },
                        ..Default::default()
                    },
                    ..Default::default()
                };
                for (locus, pair) in &cells {
                    input.hla[locus.index()] = [pair[0].as_deref(), pair[1].as_deref()];
                }
                index
                    .upsert(&input)
                    .map(|_| ())
                    .map_err(|e| format!("line {}: {e}", record.line))
            });
        if let Err(e) = result {
            rejected += 1;
            eprintln!("{}: {}: {e}", path.display(), record.id);
        }
    }
    index.build_postings();
    Ok(LoadedDonors {
        index,
        ids,
        rejected,
    })
}

/// Patients (or any subjects) from a typing file, in file order; bad rows reported and skipped.
pub fn load_subjects(
    path: &Path,
    expander: Arc<Expander>,
) -> Result<(Vec<(String, Subject)>, usize)> {
    let release = expander.release_arc().clone();
    let mut builder = SubjectBuilder::new(expander);
    let mut out = Vec::new();
    let mut rejected = 0;
    for record in
        SubjectReader::open(path).with_context(|| format!("opening {}", path.display()))?
    {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                rejected += 1;
                eprintln!("{e}");
                continue;
            }
        };
        match record
            .locus_typings(&release)
            .map_err(|e| e.to_string())
            .and_then(|t| {
                builder
                    .subject(&t)
                    .map_err(|e| format!("line {}: {e}", record.line))
            }) {
            Ok(subject) => out.push((record.id, subject)),
            Err(e) => {
                rejected += 1;
                eprintln!("{}: {}: {e}", path.display(), record.id);
            }
        }
    }
    Ok((out, rejected))
}
