//! Reading an import file batch by batch: `ID%GLSTRING`, Atlas-style TSV, enrolment CSV.

use std::collections::HashMap;
use std::path::Path;

use hla::input::{SubjectReader, SubjectRecord};

use crate::{RegistryError, Result};

use super::batch::{RowError, err};

/// A record as read, before validation.
pub(crate) enum RawRecord {
    Subject(SubjectRecord),
    Csv(usize, csv::StringRecord),
    Bad(RowError),
}

/// Where the records come from.
pub(crate) enum Source {
    Subjects(SubjectReader),
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
