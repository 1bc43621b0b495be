//! The yearly report of a registry, a branch or a station (registry operations §10): the
//! figures (`YearlyReport`, filled by the registry from its store), and their forms — CSV,
//! Markdown, HTML with SVG charts — and the summary paragraph in Chinese and English that
//! states them the way branch reports do. Pure: no IO, no database.
//!
//! Definitions (the registry's queries follow them; `docs/reports.md` explains each):
//! - `registry_size`: donors whose recruitment consent was in force at the end of the year
//!   and whose status then was not DE; age bands by age on 31 December.
//! - `donors_listed_new`: donors whose first recruitment consent was given in the year.
//! - `utilisation`: donors with a confirmatory-typing request opened in the year ÷
//!   `registry_size`.
//! - `reachability`: of the donors someone tried to contact in the year, those reached.
//! - `follow_up`: checks due in the year and already past: done ÷ (done + missed + overdue).

mod charts;
mod render;
mod summary;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use charts::{Chart, charts};
pub use render::{Format, RenderError, render};
pub use summary::{summary_en, summary_zh};

/// Age bands of the registry size (age on 31 December of the year).
pub const AGE_BANDS: [&str; 7] = [
    "18-25", "26-35", "36-45", "46-60", "other", "unknown", "cord",
];

/// The band of an adult donor of `age` (None: no birth date).
pub fn age_band(age: Option<i32>) -> &'static str {
    match age {
        None => "unknown",
        Some(18..=25) => "18-25",
        Some(26..=35) => "26-35",
        Some(36..=45) => "36-45",
        Some(46..=60) => "46-60",
        Some(_) => "other",
    }
}

/// What a report covers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Scope {
    pub year: i32,
    pub branch: Option<String>,
    pub station: Option<String>,
    /// The branch's or station's name, for the summary.
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StationSamples {
    pub station: String,
    pub name: String,
    pub branch: String,
    /// The station's yearly recruitment target (samples).
    pub target: i64,
    pub collected: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BranchSize {
    pub branch: String,
    pub size: i64,
    pub by_age_band: BTreeMap<String, i64>,
}

/// A donation of the year with the donor's ordinal in the branch: the n-th donor of the
/// branch ever to donate (a repeat donation keeps the donor's ordinal).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DonationOrdinal {
    pub donation_id: i64,
    pub donor_id: i64,
    pub donated_on: String,
    pub product: String,
    pub branch: String,
    pub ordinal: i64,
    pub repeat: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FollowUp {
    pub due: i64,
    pub done: i64,
    pub missed: i64,
    pub overdue: i64,
    /// Due later this year (not yet counted against completion).
    pub pending: i64,
    /// done ÷ (done + missed + overdue); none when nothing fell due.
    pub completion: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reachability {
    pub donors_contacted: i64,
    pub donors_reached: i64,
    pub attempts: i64,
    pub rate: Option<f64>,
    /// Donors made TU/UC in the year.
    pub made_unreachable: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OrganRegistrations {
    /// Registered in the year (by the form's date).
    pub new: i64,
    /// Active at the end of the year.
    pub in_force: i64,
    /// New in the year by channel (online, paper, drive).
    pub new_by_channel: BTreeMap<String, i64>,
    pub revoked: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Aid {
    pub count: i64,
    pub amount_fen: i64,
    /// Per fund: (records, fen).
    pub by_fund: BTreeMap<String, (i64, i64)>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Care {
    /// Visits and condolences.
    pub visits: i64,
    pub families_visited: i64,
    pub aid: Aid,
    pub benefits: i64,
    pub honours: i64,
    pub memorials: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CampaignYield {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub held_on: String,
    pub station: String,
    pub enrolments: i64,
    pub samples: i64,
    pub organ_registrations: i64,
}

/// One past year, for the charts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct YearPoint {
    pub year: i32,
    pub registry_size: i64,
    pub samples_collected: i64,
    pub donations: i64,
    pub completed_cases: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub zh: String,
    pub en: String,
}

/// The yearly figures. Keys as registries publish them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct YearlyReport {
    pub scope: Scope,
    /// The local date the report was computed (a year not yet over is partial).
    pub generated_on: String,
    pub samples_collected: i64,
    pub samples_by_station: Vec<StationSamples>,
    pub donors_listed_new: i64,
    pub registry_size: i64,
    pub registry_size_by_branch: Vec<BranchSize>,
    pub registry_size_by_age_band: BTreeMap<String, i64>,
    /// Donors with a confirmatory-typing request in the year ÷ `registry_size`.
    pub utilisation: Option<f64>,
    pub utilisation_donors: i64,
    pub ct_requests: i64,
    pub workups: i64,
    pub donations: i64,
    pub donation_ordinals: Vec<DonationOrdinal>,
    pub follow_up: FollowUp,
    pub reachability: Reachability,
    pub organ_registrations: OrganRegistrations,
    /// Death-donation cases completed in the year, by kind: organ, body, cornea.
    pub completed_cases: BTreeMap<String, i64>,
    pub organs_recovered: i64,
    pub corneas_recovered: i64,
    pub recipients_helped: i64,
    pub care: Care,
    pub campaigns: Vec<CampaignYield>,
    /// This year and the years before it (oldest first), for the charts.
    pub history: Vec<YearPoint>,
    pub summary: Summary,
}

impl YearlyReport {
    /// Fill `summary` from the figures.
    pub fn summarise(&mut self) {
        self.summary = Summary {
            zh: summary_zh(self),
            en: summary_en(self),
        };
    }
}

/// A ratio to show: `12.3%`.
pub fn percent(r: Option<f64>) -> String {
    r.map_or("–".into(), |r| format!("{:.1}%", r * 100.0))
}

/// Fen as yuan: `12,345.60`.
pub fn yuan(fen: i64) -> String {
    let whole = (fen / 100).to_string();
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{grouped}.{:02}", fen % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_and_money() {
        assert_eq!(age_band(Some(18)), "18-25");
        assert_eq!(age_band(Some(26)), "26-35");
        assert_eq!(age_band(Some(60)), "46-60");
        assert_eq!(age_band(Some(61)), "other");
        assert_eq!(age_band(None), "unknown");
        assert_eq!(yuan(12_345_678), "123,456.78");
        assert_eq!(yuan(5), "0.05");
        assert_eq!(percent(Some(0.1234)), "12.3%");
    }
}
