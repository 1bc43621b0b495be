//! The donor record and the inputs that create or change it, shared by every resource.

use matching::model::parse_birth_date;
use matching::{Abo, Cmv, CordCells, DonorAttributes, DonorType, Sex, Status};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    pub family_name: String,
    pub given_name: String,
    pub national_id: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub address: Option<String>,
    pub emergency: [(Option<String>, Option<String>); 2],
}

#[derive(Debug, Clone, Default)]
pub struct TypingInput {
    pub gl: String,
    pub lab: Option<String>,
    pub method: Option<String>,
    /// `YYYY-MM-DD`; today when absent.
    pub typed_on: Option<String>,
    pub sample_id: Option<i64>,
}

#[derive(Debug, Clone, Default)]
pub struct ConsentInput {
    pub form_version: String,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct CordUnit {
    pub bank: Option<String>,
    pub volume_ml: Option<f64>,
    pub tnc_e7: Option<f64>,
    pub cd34_e5: Option<f64>,
}

/// A donor to enrol.
#[derive(Debug, Clone, Default)]
pub struct NewDonor {
    pub external_id: String,
    pub local_id: Option<String>,
    pub station: String,
    /// `YYYY-MM-DD`; required for enrolment (legacy listings may lack it).
    pub birth_date: Option<String>,
    pub sex: Sex,
    pub abo: Abo,
    pub rh_positive: Option<bool>,
    pub cmv: Cmv,
    pub cmv_date: Option<String>,
    pub population: String,
    pub donor_type: DonorType,
    pub cord: Option<CordUnit>,
    pub identity: Option<Identity>,
    pub recruitment_consent: Option<ConsentInput>,
    pub typing: Option<TypingInput>,
    /// The campaign the donor enrolled at (held by the donor's station).
    pub campaign_id: Option<i64>,
}

/// A donor as the registry holds it (never identity data).
#[derive(Debug, Clone, PartialEq)]
pub struct Donor {
    pub id: i64,
    pub grid: String,
    pub external_id: String,
    pub station: String,
    pub birth_date: Option<String>,
    pub sex: Sex,
    pub abo: Abo,
    pub rh_positive: Option<bool>,
    pub cmv: Cmv,
    pub population: String,
    pub donor_type: DonorType,
    pub cord: Option<CordCells>,
    pub status: Status,
    pub status_reason: Option<String>,
    pub status_until: Option<String>,
    pub reserved_for: Option<i64>,
    pub listed: bool,
    pub current_typing: Option<String>,
    /// The campaign the donor enrolled at.
    pub campaign_id: Option<i64>,
    /// The local date of the donor's last successful contact (enrolment before any).
    pub last_contact_on: Option<String>,
}

impl Donor {
    /// The attributes the matching index keeps for this donor.
    pub fn attributes(&self) -> DonorAttributes {
        DonorAttributes {
            donor_type: self.donor_type,
            status: self.status,
            birth_day: self
                .birth_date
                .as_deref()
                .and_then(|b| parse_birth_date(b).ok()),
            sex: self.sex,
            abo: self.abo,
            rh_positive: self.rh_positive,
            cmv: self.cmv,
            registry: self.station.clone(),
            population: self.population.clone(),
            cord: self.cord,
        }
    }
}

/// A status change (registry operations §5).
#[derive(Debug, Clone)]
pub struct StatusChange {
    pub status: Status,
    pub reason: Option<String>,
    /// For TU: the end date (`YYYY-MM-DD`), after which the donor is AV again.
    pub until: Option<String>,
    /// For RS: the patient the donor is reserved for.
    pub patient_id: Option<i64>,
}

impl StatusChange {
    /// Back to AV, with no reason, end date or patient.
    pub fn available() -> StatusChange {
        StatusChange {
            status: Status::Available,
            reason: None,
            until: None,
            patient_id: None,
        }
    }
}

/// Rh as its code: `+`, `-` or `?` (unknown).
pub fn rh_code(rh: Option<bool>) -> &'static str {
    match rh {
        Some(true) => "+",
        Some(false) => "-",
        None => "?",
    }
}

/// Rh from its code: `Some(Some(positive))` for `+`/`-`, `Some(None)` for `?` (unknown),
/// `None` for anything else.
pub fn rh_from_code(code: &str) -> Option<Option<bool>> {
    match code {
        "+" => Some(Some(true)),
        "-" => Some(Some(false)),
        "?" => Some(None),
        _ => None,
    }
}
