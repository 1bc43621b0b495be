//! What every resource's SQL shares: unique-violation detection, date and GL checks, the
//! donor row and its decoder.

use matching::model::parse_birth_date;
use matching::{Abo, Cmv, CordCells, DonorType, Sex, Status};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::model::Donor;
use crate::{Registry, RegistryError, Result};

pub(crate) fn date(field: &str, text: &str) -> Result<i64> {
    parse_birth_date(text)
        .map(i64::from)
        .map_err(|r| RegistryError::invalid(field, r))
}

/// A text field's limits: required (not blank) or not, and at most `max` characters.
/// Longest person's name part, code, external id, phone, e-mail, address and free-text note
/// the registry keeps (characters); longer input is refused naming its field.
pub(crate) const NAME_MAX: usize = 100;
pub(crate) const CODE_MAX: usize = 16;
pub(crate) const ID_MAX: usize = 64;
pub(crate) const PHONE_MAX: usize = 40;
pub(crate) const EMAIL_MAX: usize = 200;
pub(crate) const ADDRESS_MAX: usize = 500;
pub(crate) const NOTE_MAX: usize = 2000;

pub(crate) fn check_text(
    field: &str,
    text: Option<&str>,
    required: bool,
    max: usize,
) -> Result<()> {
    match text {
        None if required => Err(RegistryError::invalid(field, "required")),
        Some(t) if required && t.trim().is_empty() => {
            Err(RegistryError::invalid(field, "must not be blank"))
        }
        Some(t) if t.chars().count() > max => Err(RegistryError::invalid(
            field,
            format!("at most {max} characters"),
        )),
        // Control characters (NUL above all, which PostgreSQL cannot store) are never part
        // of a name, code or note; line breaks and tabs are.
        Some(t) => match t
            .chars()
            .find(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            Some(c) => Err(RegistryError::invalid(
                field,
                format!("contains the control character U+{:04X}", c as u32),
            )),
            None => Ok(()),
        },
        None => Ok(()),
    }
}

/// How far ahead a planned date (a scheduled milestone, a TU end) may lie.
pub(crate) const PLAN_HORIZON_DAYS: i64 = 2 * 366;

/// The date of something that has happened (a birth, a sample, a typing, a donation, a
/// death, a check): ISO `YYYY-MM-DD`, from 1900, not after `today` (the registry's local
/// date).
pub(crate) fn past_date(field: &str, text: &str, today: i64) -> Result<i64> {
    let day = date(field, text)?;
    if day > today {
        return Err(RegistryError::invalid(
            field,
            format!(
                "{text} is after today ({}): it has not happened yet",
                matching::model::format_day(today.clamp(0, u16::MAX as i64) as u16)
            ),
        ));
    }
    Ok(day)
}

/// A planned date: ISO `YYYY-MM-DD`, from 1900, at most two years after `today`.
pub(crate) fn planned_date(field: &str, text: &str, today: i64) -> Result<i64> {
    let day = date(field, text)?;
    if day > today + PLAN_HORIZON_DAYS {
        return Err(RegistryError::invalid(
            field,
            format!("{text} is more than two years ahead"),
        ));
    }
    Ok(day)
}

/// A computed day as `YYYY-MM-DD`, refused rather than wrapped past what the store holds
/// (1900-01-01..2079-06-06).
pub(crate) fn day_text(field: &str, day: i64) -> Result<String> {
    u16::try_from(day)
        .map(matching::model::format_day)
        .map_err(|_| RegistryError::invalid(field, "the date falls outside 1900–2079"))
}

/// A coded value from its list, refused naming `field` and the list.
pub(crate) fn check_one_of(field: &str, value: &str, allowed: &[&str]) -> Result<()> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(RegistryError::invalid(
            field,
            format!("`{value}` is not one of {}", allowed.join(", ")),
        ))
    }
}

/// Validate a GL string against the release: every position must expand.
pub(crate) fn validate_gl(registry: &Registry, gl: &str) -> Result<String> {
    validate_gl_with(&registry.expander, gl)
}

/// [`validate_gl`] without a registry at hand (the import's validation threads).
pub(crate) fn validate_gl_with(expander: &hla::Expander, gl: &str) -> Result<String> {
    let parsed = expander.parse_gl(gl)?;
    expander.expand_gl(&parsed)?;
    let loci = hla::locus_typings(&parsed)?;
    for required in ["A", "B", "DRB1"] {
        if !loci.iter().any(|t| t.locus == required) {
            return Err(RegistryError::invalid(
                "typing",
                format!("a listed donor needs at least A, B and DRB1; {required} is missing"),
            ));
        }
    }
    Ok(parsed.to_string())
}

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            d.is_unique_violation()
                || d.message().contains("UNIQUE constraint failed")
                || d.code().as_deref() == Some("23505")
        }
        _ => false,
    }
}

pub(crate) fn check_choice(chosen: &[&str], allowed: &[&str], field: &str) -> Result<()> {
    for (i, c) in chosen.iter().enumerate() {
        if !allowed.contains(c) {
            return Err(RegistryError::invalid(
                field,
                format!("unknown choice `{c}` ({})", allowed.join(", ")),
            ));
        }
        // Each choice once, so a list is never longer than its choices.
        if chosen[..i].contains(c) {
            return Err(RegistryError::invalid(
                field,
                format!("`{c}` is listed twice"),
            ));
        }
    }
    Ok(())
}

macro_rules! donor_select {
    ($rest:literal) => {
        concat!(
            "SELECT d.id, d.grid, d.external_id, d.station_code, d.birth_date, d.sex, d.abo, d.rh, d.cmv, d.population, d.donor_type, \
             d.cord_tnc_e7, d.cord_cd34_e5, d.status, d.status_reason, d.status_until, d.reserved_for, CAST(CASE WHEN d.listed THEN 1 ELSE 0 END AS BIGINT) AS listed, \
             d.campaign_id, COALESCE(d.last_contact_on, SUBSTR(d.created_at, 1, 10)) AS last_contact_on, \
             (SELECT t.gl FROM typings t WHERE t.donor_id = d.id AND t.is_current) AS current_typing FROM donors d ",
            $rest
        )
    };
}

/// Decode a donor row; generated for the `Any`, SQLite and PostgreSQL row types (the bulk
/// index load reads through the native drivers: the `Any` row conversion dominated it).
pub(crate) use donor_select;

macro_rules! donor_decoder {
    ($name:ident, $row:ty) => {
        pub(crate) fn $name(row: &$row) -> Result<Donor> {
            let code = |c: &str| -> Result<String> { Ok(row.try_get::<String, _>(c)?) };
            let tnc: Option<f64> = row.try_get("cord_tnc_e7")?;
            let cd34: Option<f64> = row.try_get("cord_cd34_e5")?;
            let donor_type = DonorType::from_code(&code("donor_type")?).unwrap_or_default();
            Ok(Donor {
                id: row.try_get("id")?,
                grid: code("grid")?,
                external_id: code("external_id")?,
                station: code("station_code")?,
                birth_date: row.try_get("birth_date")?,
                sex: Sex::from_code(&code("sex")?).unwrap_or_default(),
                abo: Abo::from_code(&code("abo")?).unwrap_or_default(),
                rh_positive: match code("rh")?.as_str() {
                    "+" => Some(true),
                    "-" => Some(false),
                    _ => None,
                },
                cmv: Cmv::from_code(&code("cmv")?).unwrap_or_default(),
                population: code("population")?,
                donor_type,
                cord: (donor_type == DonorType::Cord).then(|| CordCells {
                    tnc_e7: tnc.unwrap_or(0.0) as f32,
                    cd34_e5: cd34.unwrap_or(0.0) as f32,
                }),
                status: Status::from_code(&code("status")?).unwrap_or_default(),
                status_reason: row.try_get("status_reason")?,
                status_until: row.try_get("status_until")?,
                reserved_for: row.try_get("reserved_for")?,
                listed: row.try_get::<i64, _>("listed")? != 0,
                current_typing: row.try_get("current_typing")?,
                campaign_id: row.try_get("campaign_id")?,
                last_contact_on: row.try_get("last_contact_on")?,
            })
        }
    };
}

donor_decoder!(donor_from_row, AnyRow);
