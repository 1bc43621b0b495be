//! Paper registrations of intent, imported in bulk from CSV: every line checked by the same
//! rules as one made online ([`Registry::check_registration`]), every bad line named with
//! its field and reason, the good ones kept (one transaction; a national id already active,
//! or repeated in the file, is a bad line, not a failed import).
//!
//! Columns (a header line names them, in any order; unknown columns are refused):
//! `family_name, given_name, national_id, birth_date` (required), `organs` and `tissues`
//! (`;`-separated), `whole_body` (yes/no, true/false, 1/0, 是/否), `registered_on` (the
//! form's date; default today), `region`, `ethnicity`, `campaign_id`.

use std::collections::HashMap;
use std::io::Read;

use crate::audit::audit;
use crate::organ::NewOrganRegistration;
use crate::{Actor, Registry, RegistryError, Result};

const COLUMNS: [&str; 11] = [
    "family_name",
    "given_name",
    "national_id",
    "birth_date",
    "organs",
    "tissues",
    "whole_body",
    "registered_on",
    "region",
    "ethnicity",
    "campaign_id",
];
const REQUIRED: [&str; 4] = ["family_name", "given_name", "national_id", "birth_date"];
/// The most lines one import takes.
pub const MAX_IMPORT_LINES: usize = 100_000;

/// A line refused, by its line number in the file (the header is line 1).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LineError {
    pub line: u64,
    pub field: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RegistrationImport {
    pub created: usize,
    pub ids: Vec<i64>,
    pub errors: Vec<LineError>,
}

fn yes_no(text: &str) -> Option<bool> {
    match text.trim().to_lowercase().as_str() {
        "" | "no" | "n" | "false" | "0" | "否" => Some(false),
        "yes" | "y" | "true" | "1" | "是" => Some(true),
        _ => None,
    }
}

fn list(text: &str) -> Vec<String> {
    text.split([';', '；'])
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

impl Registry {
    /// Import paper registrations for `station` (a station's own; an admin names one).
    pub async fn import_organ_registrations(
        &self,
        input: impl Read,
        station: Option<&str>,
        actor: &Actor,
    ) -> Result<RegistrationImport> {
        let mut reader = csv::ReaderBuilder::new()
            .flexible(false)
            .trim(csv::Trim::All)
            .from_reader(input);
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| RegistryError::invalid("header", e.to_string()))?
            .iter()
            .map(|h| h.trim_start_matches('\u{feff}').trim().to_lowercase())
            .collect();
        let mut at = HashMap::new();
        for (i, h) in header.iter().enumerate() {
            if !COLUMNS.contains(&h.as_str()) {
                return Err(RegistryError::invalid(
                    "header",
                    format!("unknown column `{h}` (columns: {})", COLUMNS.join(", ")),
                ));
            }
            if at.insert(h.clone(), i).is_some() {
                return Err(RegistryError::invalid(
                    "header",
                    format!("column `{h}` appears twice"),
                ));
            }
        }
        for r in REQUIRED {
            if !at.contains_key(r) {
                return Err(RegistryError::invalid(
                    "header",
                    format!("column `{r}` is missing"),
                ));
            }
        }
        let mut report = RegistrationImport::default();
        let mut good = Vec::new();
        let mut seen: HashMap<String, u64> = HashMap::new();
        for (n, record) in reader.records().enumerate() {
            let line = n as u64 + 2;
            if n >= MAX_IMPORT_LINES {
                return Err(RegistryError::invalid(
                    "file",
                    format!("more than {MAX_IMPORT_LINES} lines: split the file"),
                ));
            }
            let record = match record {
                Ok(r) => r,
                Err(e) => {
                    report.errors.push(LineError {
                        line,
                        field: "line".into(),
                        reason: e.to_string(),
                    });
                    continue;
                }
            };
            let cell = |c: &str| {
                at.get(c)
                    .and_then(|&i| record.get(i))
                    .unwrap_or("")
                    .to_string()
            };
            let opt = |c: &str| Some(cell(c)).filter(|v| !v.is_empty());
            let mut fail = |field: &str, reason: String| {
                report.errors.push(LineError {
                    line,
                    field: field.into(),
                    reason,
                });
            };
            let Some(whole_body) = yes_no(&cell("whole_body")) else {
                fail(
                    "whole_body",
                    format!("`{}` is not yes or no", cell("whole_body")),
                );
                continue;
            };
            let campaign_id = match opt("campaign_id").map(|c| c.parse::<i64>()) {
                None => None,
                Some(Ok(c)) => Some(c),
                Some(Err(_)) => {
                    fail(
                        "campaign_id",
                        format!("`{}` is not a campaign id", cell("campaign_id")),
                    );
                    continue;
                }
            };
            let new = NewOrganRegistration {
                family_name: cell("family_name"),
                given_name: cell("given_name"),
                national_id: cell("national_id"),
                birth_date: cell("birth_date"),
                organs: list(&cell("organs")),
                tissues: list(&cell("tissues")),
                whole_body,
                station: station.map(str::to_string),
                region: opt("region"),
                ethnicity: opt("ethnicity"),
                channel: "paper".into(),
                registered_on: opt("registered_on"),
                campaign_id,
            };
            match self.check_registration(&new, actor).await {
                Ok(checked) => {
                    if let Some(first) = seen.insert(checked.national_id.clone(), line) {
                        fail(
                            "national_id",
                            format!("the same national id as line {first}"),
                        );
                        continue;
                    }
                    good.push((line, new, checked));
                }
                // Who may import is not a line's fault: the whole import is refused.
                Err(e @ RegistryError::Forbidden(_)) => return Err(e),
                Err(RegistryError::Invalid { field, reason }) => fail(&field, reason),
                Err(e) => fail("line", e.to_string()),
            }
        }
        let (_turn, mut tx) = self.begin().await?;
        for (line, new, checked) in &good {
            let active: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM organ_registrations WHERE national_id = $1 AND state = 'active'",
            )
            .bind(&checked.national_id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(r) = active {
                report.errors.push(LineError {
                    line: *line,
                    field: "national_id".into(),
                    reason: format!("an active registration exists for this national id ({r})"),
                });
                continue;
            }
            match self.insert_registration(&mut tx, new, checked, actor).await {
                Ok(id) => report.ids.push(id),
                Err(RegistryError::Invalid { field, reason }) => report.errors.push(LineError {
                    line: *line,
                    field,
                    reason,
                }),
                Err(e) => return Err(e),
            }
        }
        report.created = report.ids.len();
        report.errors.sort_by_key(|e| e.line);
        audit(
            &mut tx,
            actor,
            "organ.import",
            "organ_registration",
            "*",
            Some(&format!(
                "{} created, {} lines refused",
                report.created,
                report.errors.len()
            )),
        )
        .await?;
        tx.commit().await?;
        Ok(report)
    }
}
