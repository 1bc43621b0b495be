//! Typing files: `ID%GLSTRING` lines (the WMDA validation layout) and the Atlas-style TSV
//! (`DonorId DonorType A_1 A_2 … ExternalDonorCode`), plain or gzip.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use crate::error::{LoadError, TypingError};
use crate::genotype::{LocusTyping, locus_typings};
use crate::gl::{AlleleList, GlString};
use crate::release::Release;

/// One person's typing as the file gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectTyping {
    Gl(String),
    /// Per-locus cells of the TSV layout: (locus, [cell 1, cell 2]); `NULL` cells are absent.
    Cells(Vec<(String, [Option<String>; 2])>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectRecord {
    /// 1-based line number in the file.
    pub line: usize,
    pub id: String,
    pub typing: SubjectTyping,
    /// TSV `DonorType` (1 adult, 2 cord), when the layout has it.
    pub donor_type: Option<String>,
    pub external_code: Option<String>,
}

/// A record whose typing cannot be read: the line, the field and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, field {field}: {error}")]
pub struct FieldError {
    pub line: usize,
    pub field: String,
    pub error: TypingError,
}

impl SubjectRecord {
    /// The locus positions of this subject (untyped loci are absent); a versioned GL string
    /// must name `release`.
    pub fn locus_typings(&self, release: &Release) -> Result<Vec<LocusTyping>, FieldError> {
        match &self.typing {
            SubjectTyping::Gl(text) => GlString::parse(text)
                .and_then(|gl| {
                    release.check_gl_version(&gl)?;
                    locus_typings(&gl)
                })
                .map_err(|error| FieldError {
                    line: self.line,
                    field: "GLSTRING".into(),
                    error,
                }),
            SubjectTyping::Cells(cells) => self.cell_typings(cells),
        }
    }

    fn cell_typings(
        &self,
        cells: &[(String, [Option<String>; 2])],
    ) -> Result<Vec<LocusTyping>, FieldError> {
        {
            {
                let mut out = Vec::new();
                for (locus, pair) in cells {
                    let mut lists: [Option<AlleleList>; 2] = [None, None];
                    for (i, cell) in pair.iter().enumerate() {
                        if let Some(text) = cell {
                            lists[i] =
                                Some(AlleleList::parse(text, Some(locus)).map_err(|error| {
                                    FieldError {
                                        line: self.line,
                                        field: format!("{locus}_{}", i + 1),
                                        error,
                                    }
                                })?);
                        }
                    }
                    let [a, b] = lists;
                    let (p1, p2, single) = match (a, b) {
                        (Some(a), Some(b)) => (a, b, false),
                        (Some(a), None) | (None, Some(a)) => (a.clone(), a, true),
                        (None, None) => continue,
                    };
                    out.push(LocusTyping {
                        locus: locus.clone(),
                        positions: [p1, p2],
                        single_copy: single,
                    });
                }
                Ok(out)
            }
        }
    }

    /// The typing as one GL string (TSV cells joined with `+` and `^`).
    pub fn gl_text(&self) -> Result<String, FieldError> {
        match &self.typing {
            SubjectTyping::Gl(t) => Ok(t.clone()),
            SubjectTyping::Cells(cells) => Ok(self
                .cell_typings(cells)?
                .iter()
                .map(|t| format!("{}+{}", t.positions[0], t.positions[1]))
                .collect::<Vec<_>>()
                .join("^")),
        }
    }
}

/// Open a typing file (plain or `.gz`) as a line reader.
pub fn open_lines(path: &Path) -> Result<Box<dyn BufRead + Send>, LoadError> {
    let file = std::fs::File::open(path).map_err(|e| LoadError::io(path, e))?;
    let reader: Box<dyn Read + Send> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    Ok(Box::new(BufReader::with_capacity(1 << 16, reader)))
}

enum Layout {
    IdGl,
    Tsv {
        id: usize,
        donor_type: Option<usize>,
        external: Option<usize>,
        /// (locus, column of copy 1, column of copy 2)
        loci: Vec<(String, Option<usize>, Option<usize>)>,
        columns: usize,
    },
}

/// Reads subjects one by one; a line that cannot be split into an id and a typing is an
/// error naming the line, and reading goes on.
pub struct SubjectReader {
    lines: Box<dyn BufRead + Send>,
    layout: Option<Layout>,
    line_no: usize,
    path: std::path::PathBuf,
    buf: String,
}

impl SubjectReader {
    pub fn open(path: impl AsRef<Path>) -> Result<SubjectReader, LoadError> {
        let path = path.as_ref();
        Ok(SubjectReader {
            lines: open_lines(path)?,
            layout: None,
            line_no: 0,
            path: path.to_path_buf(),
            buf: String::new(),
        })
    }

    pub fn from_reader(reader: Box<dyn BufRead + Send>, name: &str) -> SubjectReader {
        SubjectReader {
            lines: reader,
            layout: None,
            line_no: 0,
            path: name.into(),
            buf: String::new(),
        }
    }

    fn tsv_layout(header: &str) -> Option<Layout> {
        let cols: Vec<&str> = header.split('\t').map(str::trim).collect();
        let id = cols.iter().position(|c| {
            c.eq_ignore_ascii_case("DonorId")
                || c.eq_ignore_ascii_case("PatientId")
                || c.eq_ignore_ascii_case("Id")
        })?;
        let mut loci: Vec<(String, Option<usize>, Option<usize>)> = Vec::new();
        for (i, c) in cols.iter().enumerate() {
            if let Some((locus, copy)) = c.rsplit_once('_')
                && (copy == "1" || copy == "2")
                && locus
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            {
                let entry = match loci.iter_mut().position(|(l, _, _)| l == locus) {
                    Some(p) => &mut loci[p],
                    None => {
                        loci.push((locus.to_string(), None, None));
                        loci.last_mut().expect("pushed")
                    }
                };
                if copy == "1" {
                    entry.1 = Some(i);
                } else {
                    entry.2 = Some(i);
                }
            }
        }
        if loci.is_empty() {
            return None;
        }
        Some(Layout::Tsv {
            id,
            donor_type: cols
                .iter()
                .position(|c| c.eq_ignore_ascii_case("DonorType")),
            external: cols
                .iter()
                .position(|c| c.eq_ignore_ascii_case("ExternalDonorCode")),
            loci,
            columns: cols.len(),
        })
    }
}

impl Iterator for SubjectReader {
    type Item = Result<SubjectRecord, LoadError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.buf.clear();
            match self.lines.read_line(&mut self.buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => return Some(Err(LoadError::io(&self.path, e))),
            }
            self.line_no += 1;
            let line = self.buf.trim_end_matches(['\n', '\r']);
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            if self.layout.is_none() {
                if line.contains('\t') && !line.contains('%') {
                    match Self::tsv_layout(line) {
                        Some(layout) => {
                            self.layout = Some(layout);
                            continue;
                        }
                        None => {
                            return Some(Err(LoadError::format(
                                &self.path,
                                self.line_no,
                                "a tab-separated header needs an id column (DonorId) and locus columns (A_1, A_2, …)",
                            )));
                        }
                    }
                }
                self.layout = Some(Layout::IdGl);
            }
            let line_no = self.line_no;
            return Some(match self.layout.as_ref().expect("set above") {
                Layout::IdGl => match line.split_once('%') {
                    Some((id, gl)) if !id.trim().is_empty() && !gl.trim().is_empty() => {
                        Ok(SubjectRecord {
                            line: line_no,
                            id: id.trim().to_string(),
                            typing: SubjectTyping::Gl(gl.trim().to_string()),
                            donor_type: None,
                            external_code: None,
                        })
                    }
                    _ => Err(LoadError::format(
                        &self.path,
                        line_no,
                        "expected `ID%GLSTRING`",
                    )),
                },
                Layout::Tsv {
                    id,
                    donor_type,
                    external,
                    loci,
                    columns,
                } => {
                    let cols: Vec<&str> = line.split('\t').map(str::trim).collect();
                    if cols.len() != *columns {
                        Err(LoadError::format(
                            &self.path,
                            line_no,
                            format!("{} columns where the header has {columns}", cols.len()),
                        ))
                    } else if cols[*id].is_empty() {
                        Err(LoadError::format(&self.path, line_no, "empty id"))
                    } else {
                        let cell = |i: Option<usize>| {
                            i.map(|i| cols[i])
                                .filter(|v| !v.is_empty() && !v.eq_ignore_ascii_case("NULL"))
                                .map(str::to_string)
                        };
                        Ok(SubjectRecord {
                            line: line_no,
                            id: cols[*id].to_string(),
                            typing: SubjectTyping::Cells(
                                loci.iter()
                                    .map(|(l, a, b)| (l.clone(), [cell(*a), cell(*b)]))
                                    .collect(),
                            ),
                            donor_type: cell(*donor_type),
                            external_code: cell(*external),
                        })
                    }
                }
            });
        }
    }
}
