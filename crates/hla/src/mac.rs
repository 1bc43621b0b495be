//! NMDP multiple allele codes, in either of NMDP's layouts: `alpha.v3.txt`
//! (`[*]<TAB>CODE<TAB>EXPANSION`, `*` marking allele-specific codes) or `numer.v3.txt`
//! (`CODE<TAB>EXPANSION`; allele-specific codes are the ones whose entries carry a colon).

use std::io::Read;
use std::path::Path;

use rustc_hash::FxHashMap;

use crate::error::LoadError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mac {
    /// Allele-specific codes list whole names (`25:01/26:01`); generic codes list second
    /// fields to put after the typing's allele group (`01/02`).
    pub allele_specific: bool,
    pub entries: Vec<String>,
}

#[derive(Debug, Default)]
pub struct MacDictionary {
    codes: FxHashMap<String, Mac>,
    /// The `LAST UPDATED:` line, when present.
    pub last_updated: Option<String>,
}

impl MacDictionary {
    /// Load `alpha.v3.txt` or `numer.v3.txt` (plain, `.gz`, or `.zip` as NMDP publishes it).
    pub fn load(path: impl AsRef<Path>) -> Result<MacDictionary, LoadError> {
        let path = path.as_ref();
        let file = std::fs::File::open(path).map_err(|e| LoadError::io(path, e))?;
        let mut text = String::new();
        let read = if path.extension().is_some_and(|e| e == "gz") {
            flate2::read::MultiGzDecoder::new(file).read_to_string(&mut text)
        } else if path.extension().is_some_and(|e| e == "zip") {
            // NMDP publishes `alpha.v3.zip`, one text file inside.
            let mut archive = zip::ZipArchive::new(file)
                .map_err(|e| LoadError::format(path, 0, format!("not a zip archive: {e}")))?;
            let mut inner = archive
                .by_index(0)
                .map_err(|e| LoadError::format(path, 0, format!("an empty zip archive: {e}")))?;
            inner.read_to_string(&mut text)
        } else {
            std::io::BufReader::new(file).read_to_string(&mut text)
        };
        read.map_err(|e| LoadError::io(path, e))?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<MacDictionary, LoadError> {
        let mut dict = MacDictionary::default();
        for (i, raw) in text.lines().enumerate() {
            let line_no = i + 1;
            let line = raw.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("LAST UPDATED:") {
                dict.last_updated = Some(rest.trim().to_string());
                continue;
            }
            let cols: Vec<&str> = line.split('\t').map(str::trim).collect();
            // Column headers (`*  CODE  SUBTYPE`, `CODE  SUBTYPE`).
            if cols.contains(&"CODE") {
                continue;
            }
            let (marker, code, expansion) = match cols.as_slice() {
                [marker, code, expansion] => (Some(*marker), *code, *expansion),
                [code, expansion] => (None, *code, *expansion),
                _ => {
                    return Err(LoadError::format(
                        path,
                        line_no,
                        "expected `[*]<TAB>CODE<TAB>EXPANSION` or `CODE<TAB>EXPANSION`",
                    ));
                }
            };
            if code.is_empty() || !code.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(LoadError::format(
                    path,
                    line_no,
                    format!("`{code}` is not a MAC code (letters only)"),
                ));
            }
            let entries: Vec<String> = expansion.split('/').map(str::to_string).collect();
            if entries.iter().any(|e| {
                e.is_empty() || !e.starts_with(|c: char| c.is_ascii_digit()) || e.contains('*')
            }) {
                return Err(LoadError::format(
                    path,
                    line_no,
                    format!("malformed expansion `{expansion}` of code {code}"),
                ));
            }
            let allele_specific = match marker {
                Some("*") => true,
                Some("") => false,
                Some(other) => {
                    return Err(LoadError::format(
                        path,
                        line_no,
                        format!("unexpected marker `{other}` (expected `*` or nothing)"),
                    ));
                }
                None => entries.iter().any(|e| e.contains(':')),
            };
            dict.codes.insert(
                code.to_string(),
                Mac {
                    allele_specific,
                    entries,
                },
            );
        }
        if dict.codes.is_empty() {
            return Err(LoadError::File {
                path: path.to_path_buf(),
                reason: "no MAC codes".into(),
            });
        }
        Ok(dict)
    }

    pub fn get(&self, code: &str) -> Option<&Mac> {
        self.codes.get(code)
    }

    pub fn len(&self) -> usize {
        self.codes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }

    pub fn codes(&self) -> impl Iterator<Item = (&str, &Mac)> {
        self.codes.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The allele names a MAC stands for after allele group `group` at `locus`.
    pub fn names(&self, mac: &Mac, locus: &str, group: &str) -> Vec<String> {
        mac.entries
            .iter()
            .map(|e| {
                if mac.allele_specific {
                    format!("{locus}*{e}")
                } else {
                    format!("{locus}*{group}:{e}")
                }
            })
            .collect()
    }
}
