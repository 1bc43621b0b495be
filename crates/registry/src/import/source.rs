//! Reading an import file batch by batch: `ID%GLSTRING`, Atlas-style TSV, enrolment CSV,
//! and Atlas's donor-import JSON (`.json`; read whole, then handed out in batches).

use std::collections::HashMap;
use std::path::Path;

use hla::input::{SubjectReader, SubjectRecord};

use crate::{RegistryError, Result};

use super::batch::{Expect, RowError, err};
use crate::atlas::{ATLAS_LOCI, AtlasDonor, AtlasLocus};

/// A record as read, before validation.
pub(crate) enum RawRecord {
    Subject(SubjectRecord),
    /// A donor of an Atlas JSON file: its typing as per-locus cells (`line` is the donor's
    /// position in `donors`, from 1), whether it must be new or known, its `ethn`.
    Atlas {
        subject: SubjectRecord,
        expect: Expect,
        population: Option<String>,
    },
    Csv(usize, csv::StringRecord),
    Bad(RowError),
}

/// Where the records come from.
pub(crate) enum Source {
    Subjects(SubjectReader),
    Atlas(std::vec::IntoIter<RawRecord>),
    Csv {
        reader: csv::Reader<std::fs::File>,
        columns: HashMap<String, usize>,
        read: usize,
    },
}

impl Source {
    pub(crate) fn open(path: &Path) -> Result<Source> {
        let is_csv = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        {
            let text = std::fs::read_to_string(path)
                .map_err(|e| RegistryError::invalid("file", e.to_string()))?;
            return Ok(Source::Atlas(atlas_records(&text)?.into_iter()));
        }
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

    pub(crate) fn is_csv(&self) -> bool {
        matches!(self, Source::Csv { .. })
    }

    /// Up to `n` records; empty at the end. Errors that are not about one row (I/O) end the
    /// import.
    pub(crate) fn next_batch(&mut self, n: usize) -> Result<Vec<RawRecord>> {
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
            Source::Atlas(records) => out.extend(records.by_ref().take(n)),
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

/// An Atlas donor-import file's donors as records; a donor that does not follow the format
/// is a record error naming its position; a file that is not such a document is refused
/// whole.
fn atlas_records(text: &str) -> Result<Vec<RawRecord>> {
    let doc: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| RegistryError::invalid("file", format!("not JSON: {e}")))?;
    let Some(top) = doc.as_object() else {
        return Err(RegistryError::invalid(
            "file",
            "an Atlas donor file is a JSON object",
        ));
    };
    if let Some(key) = top.keys().find(|k| *k != "updateMode" && *k != "donors") {
        return Err(RegistryError::invalid(
            key.as_str(),
            "not a field of an Atlas donor file (updateMode, donors)",
        ));
    }
    match top.get("updateMode").and_then(|m| m.as_str()) {
        Some(m) if m.eq_ignore_ascii_case("full") || m.eq_ignore_ascii_case("diff") => {}
        Some(m) => {
            return Err(RegistryError::invalid(
                "updateMode",
                format!("`{m}`: full or diff"),
            ));
        }
        None => {
            return Err(RegistryError::invalid(
                "updateMode",
                "missing: full or diff",
            ));
        }
    }
    let Some(donors) = top.get("donors").and_then(|d| d.as_array()) else {
        return Err(RegistryError::invalid(
            "donors",
            "missing: an array of donors",
        ));
    };
    if donors.is_empty() {
        return Err(RegistryError::invalid(
            "donors",
            "empty: an Atlas donor file holds at least one donor",
        ));
    }
    Ok(donors
        .iter()
        .enumerate()
        .map(|(i, value)| match atlas_record(i + 1, value) {
            Ok(r) => r,
            Err(e) => RawRecord::Bad(e),
        })
        .collect())
}

fn atlas_record(
    line: usize,
    value: &serde_json::Value,
) -> std::result::Result<RawRecord, RowError> {
    let donor: AtlasDonor = serde_json::from_value(value.clone()).map_err(|e| {
        err(
            line,
            "donor",
            format!("does not follow the Atlas donor format: {e}"),
        )
    })?;
    let id = donor.record_id.trim().to_string();
    if id.is_empty() {
        return Err(err(line, "recordId", "empty"));
    }
    let expect = match donor.change_type.as_str() {
        "N" => Expect::New,
        "U" => Expect::Existing,
        "NU" => Expect::Either,
        "D" => {
            return Err(err(
                line,
                "changeType",
                format!(
                    "D (delete) is not applied by import: donor {id} leaves searches by withdrawal or a status change, recorded with its reason"
                ),
            ));
        }
        other => return Err(err(line, "changeType", format!("`{other}`: N, U, NU or D"))),
    };
    let donor_type = match donor.donor_type.as_str() {
        "D" => "1",
        "C" => "2",
        "B" => {
            return Err(err(
                line,
                "donorType",
                "B (banked) is not supported (nor is it by Atlas)",
            ));
        }
        other => {
            return Err(err(
                line,
                "donorType",
                format!("`{other}`: D (donor) or C (cord)"),
            ));
        }
    };
    let cells = ATLAS_LOCI
        .iter()
        .filter_map(|(locus, _)| {
            let fields = donor.hla.locus(locus).and_then(typed_fields)?;
            Some((locus.to_string(), fields))
        })
        .collect();
    Ok(RawRecord::Atlas {
        subject: SubjectRecord {
            line,
            id,
            typing: hla::input::SubjectTyping::Cells(cells),
            donor_type: Some(donor_type.into()),
            external_code: None,
        },
        expect,
        population: donor.ethn.filter(|e| !e.trim().is_empty()),
    })
}

/// A locus's two cells: its DNA fields when it has any, else its serological ones.
fn typed_fields(locus: &AtlasLocus) -> Option<[Option<String>; 2]> {
    let cells = |f: &crate::atlas::AtlasFields| {
        let clean = |v: &Option<String>| {
            v.as_ref()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        };
        let pair = [clean(&f.field1), clean(&f.field2)];
        pair.iter().any(Option::is_some).then_some(pair)
    };
    locus
        .dna
        .as_ref()
        .and_then(cells)
        .or_else(|| locus.ser.as_ref().and_then(cells))
}
