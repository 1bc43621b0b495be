//! Retention (志愿者保留): attempts to reach a donor, each donor's last successful contact,
//! the TU/UC rule, and the reconfirmation list.
//!
//! A donor's last contact is the date of the last attempt that reached them (`reached` or
//! `declined`), or the enrolment date before any. Failed attempts (`no_answer`,
//! `wrong_number`) count from that contact on; after [`RegistryConfig::contact_failures_to_uc`]
//! of them an available donor goes TU with reason UC. Once the failures since the last
//! contact fall below that number again — a later `reached`, or one recorded late with an
//! earlier date — a TU/UC donor is AV again; if that contact was `declined`, TU/PR instead
//! (reached, so no longer UC, but not available). Reserved and deferred donors keep their status: a reservation or a deferral
//! is closed by its own process.
//!
//! [`RegistryConfig::contact_failures_to_uc`]: crate::RegistryConfig

use matching::Status;
use matching::model::format_day;
use sqlx::Row;

use crate::audit::commit_audited;
use crate::donors::station_scope;
use crate::index_feed::Indexed;
use crate::model::StatusChange;
use crate::page::{Arg, Filter, Page, PageRequest};
use crate::support::{NAME_MAX, NOTE_MAX, check_one_of, check_text, past_date};
use crate::{Actor, Registry, RegistryError, Result};

pub const CONTACT_CHANNELS: [&str; 5] = ["phone", "sms", "wechat", "email", "visit"];
pub const CONTACT_OUTCOMES: [&str; 4] = ["reached", "no_answer", "wrong_number", "declined"];

/// The SQL expression of a donor's (`d`) last contact: enrolment counts as one.
pub(crate) const LAST_CONTACT_SQL: &str =
    "COALESCE(d.last_contact_on, SUBSTR(d.created_at, 1, 10))";

/// An attempt to record.
#[derive(Debug, Clone, Default)]
pub struct NewContact {
    /// `YYYY-MM-DD`, not after today.
    pub attempted_on: String,
    pub channel: String,
    pub outcome: String,
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ContactAttempt {
    pub id: i64,
    pub donor_id: i64,
    pub attempted_on: String,
    pub channel: String,
    pub outcome: String,
    /// Who made the attempt.
    pub by: String,
    pub note: Option<String>,
    pub recorded_at: String,
}

/// A donor's contact history with its summary.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ContactHistory {
    pub donor_id: i64,
    pub last_contact_on: String,
    pub failed_contacts: i64,
    pub attempts: Vec<ContactAttempt>,
}

/// What recording an attempt did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ContactOutcome {
    pub attempt: ContactAttempt,
    pub last_contact_on: String,
    pub failed_contacts: i64,
    /// The donor's status when it changed (`TU/UC`, `AV`, `TU/PR`).
    pub status_changed: Option<String>,
}

/// A listed donor due for reconfirmation (no identity data).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReconfirmationItem {
    pub donor_id: i64,
    pub grid: String,
    pub station: String,
    pub status: String,
    pub last_contact_on: String,
    pub failed_contacts: i64,
}

fn attempt_from_row(r: &sqlx::any::AnyRow) -> Result<ContactAttempt> {
    Ok(ContactAttempt {
        id: r.try_get("id")?,
        donor_id: r.try_get("donor_id")?,
        attempted_on: r.try_get("attempted_on")?,
        channel: r.try_get("channel")?,
        outcome: r.try_get("outcome")?,
        by: r.try_get("by_name")?,
        note: r.try_get("note")?,
        recorded_at: r.try_get("recorded_at")?,
    })
}

const ATTEMPT_SELECT: &str = "SELECT id, donor_id, attempted_on, channel, outcome, by_name, note, recorded_at FROM contact_attempts";

/// Stations record contacts of their own donors; case managers of any donor.
fn may_contact(actor: &Actor, donor_station: &str) -> Result<()> {
    match actor.role.as_str() {
        "case_manager" => Ok(()),
        "station" if actor.station.as_deref() == Some(donor_station) => Ok(()),
        "station" => Err(RegistryError::Forbidden(
            "a station records contacts with its own donors".into(),
        )),
        _ => Err(RegistryError::Forbidden(
            "contacts are recorded by the donor's station or a case manager".into(),
        )),
    }
}

impl Registry {
    /// Record an attempt to reach a donor and apply the retention rule (see the module).
    pub async fn record_contact(
        &self,
        donor_id: i64,
        contact: &NewContact,
        actor: &Actor,
    ) -> Result<Indexed<ContactOutcome>> {
        let day = past_date("attempted_on", &contact.attempted_on, self.today())?;
        check_one_of("channel", &contact.channel, &CONTACT_CHANNELS)?;
        check_one_of("outcome", &contact.outcome, &CONTACT_OUTCOMES)?;
        check_text("note", contact.note.as_deref(), false, NOTE_MAX)?;
        check_text("by", Some(&actor.name), true, NAME_MAX)?;
        let (_turn, mut tx) = self.begin().await?;
        let donor = self.changed_donor(&mut tx, donor_id).await?;
        may_contact(actor, &donor.station)?;
        let enrolled: String =
            sqlx::query_scalar("SELECT SUBSTR(created_at, 1, 10) FROM donors WHERE id = $1")
                .bind(donor_id)
                .fetch_one(&mut *tx)
                .await?;
        // Enrolment is stored as a UTC instant: a day's grace for the time zone.
        if day + 1 < crate::support::date("created_at", &enrolled)? {
            return Err(RegistryError::invalid(
                "attempted_on",
                format!(
                    "{} is before the donor enrolled ({enrolled})",
                    contact.attempted_on
                ),
            ));
        }
        self.lock_donor(&mut tx, donor_id).await?;
        let id: i64 = sqlx::query_scalar("INSERT INTO contact_attempts (donor_id, attempted_on, channel, outcome, by_name, note, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id")
            .bind(donor_id)
            .bind(&contact.attempted_on)
            .bind(&contact.channel)
            .bind(&contact.outcome)
            .bind(&actor.name)
            .bind(contact.note.as_deref())
            .bind(self.now_text())
            .fetch_one(&mut *tx)
            .await?;
        // The summary is recomputed from the attempts, so one recorded late (an older date)
        // counts where it belongs.
        let last_made = sqlx::query("SELECT attempted_on, id, outcome FROM contact_attempts WHERE donor_id = $1 AND outcome IN ('reached', 'declined') ORDER BY attempted_on DESC, id DESC LIMIT 1")
            .bind(donor_id)
            .fetch_optional(&mut *tx)
            .await?;
        let (made_on, made_id, made_outcome) = match &last_made {
            Some(r) => (
                Some(r.try_get::<String, _>("attempted_on")?),
                r.try_get::<i64, _>("id")?,
                Some(r.try_get::<String, _>("outcome")?),
            ),
            None => (None, 0, None),
        };
        let failed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM contact_attempts WHERE donor_id = $1 AND outcome IN ('no_answer', 'wrong_number') AND (attempted_on > $2 OR (attempted_on = $2 AND id > $3))")
            .bind(donor_id)
            .bind(made_on.clone().unwrap_or_default())
            .bind(made_id)
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query("UPDATE donors SET last_contact_on = $1, failed_contacts = $2 WHERE id = $3")
            .bind(made_on.as_deref())
            .bind(failed)
            .bind(donor_id)
            .execute(&mut *tx)
            .await?;
        let uc = donor.status == Status::TemporarilyUnavailable
            && donor.status_reason.as_deref() == Some("UC");
        let threshold = self.config.contact_failures_to_uc as i64;
        let change = if failed >= threshold && donor.status == Status::Available {
            Some(StatusChange {
                status: Status::TemporarilyUnavailable,
                reason: Some("UC".into()),
                until: None,
                patient_id: None,
            })
        } else if uc && failed < threshold && made_outcome.as_deref() == Some("reached") {
            Some(StatusChange::available())
        } else if uc && failed < threshold && made_outcome.as_deref() == Some("declined") {
            Some(StatusChange {
                status: Status::TemporarilyUnavailable,
                reason: Some("PR".into()),
                until: None,
                patient_id: None,
            })
        } else {
            None
        };
        let status_changed = match &change {
            Some(c) => {
                self.change_status_in(&mut tx, donor_id, c, actor).await?;
                Some(match &c.reason {
                    Some(r) => format!("{}/{r}", c.status.code()),
                    None => c.status.code().to_string(),
                })
            }
            None => None,
        };
        let attempt = attempt_from_row(
            &sqlx::query(sqlx::AssertSqlSafe(format!(
                "{ATTEMPT_SELECT} WHERE id = $1"
            )))
            .bind(id)
            .fetch_one(&mut *tx)
            .await?,
        )?;
        let last_contact_on = made_on.unwrap_or(enrolled);
        let changed = self.changed_donor(&mut tx, donor_id).await?;
        commit_audited(
            tx,
            actor,
            "contact.record",
            "donor",
            &donor_id.to_string(),
            Some(&format!("{} {}", contact.channel, contact.outcome)),
        )
        .await?;
        self.indexed(
            ContactOutcome {
                attempt,
                last_contact_on,
                failed_contacts: failed,
                status_changed,
            },
            &changed,
        )
    }

    /// A donor's attempts, newest first, with the last contact and the failures since.
    pub async fn contact_history(&self, donor_id: i64, actor: &Actor) -> Result<ContactHistory> {
        let donor = self.donor(donor_id).await?;
        may_contact(actor, &donor.station)?;
        let summary = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {LAST_CONTACT_SQL} AS last_contact_on, d.failed_contacts FROM donors d WHERE d.id = $1"
        )))
        .bind(donor_id)
        .fetch_one(&self.pool)
        .await?;
        let attempts = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{ATTEMPT_SELECT} WHERE donor_id = $1 ORDER BY attempted_on DESC, id DESC"
        )))
        .bind(donor_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(attempt_from_row)
        .collect::<Result<Vec<_>>>()?;
        Ok(ContactHistory {
            donor_id,
            last_contact_on: summary.try_get("last_contact_on")?,
            failed_contacts: summary.try_get("failed_contacts")?,
            attempts,
        })
    }

    /// Listed donors (not DE) whose last contact is more than `years` years before today
    /// (default: the configured period), a station's own; in donor id order.
    pub async fn reconfirmation_list(
        &self,
        actor: &Actor,
        station: Option<&str>,
        years: Option<u32>,
        page: &PageRequest,
    ) -> Result<Page<ReconfirmationItem>> {
        if !matches!(actor.role.as_str(), "station" | "case_manager") {
            return Err(RegistryError::Forbidden(
                "the reconfirmation list is for stations and case managers".into(),
            ));
        }
        let years = years.unwrap_or(self.config.reconfirm_after_years);
        if !(1..=50).contains(&years) {
            return Err(RegistryError::invalid(
                "years",
                format!("{years} is not between 1 and 50"),
            ));
        }
        let (y, m, d) = matching::model::civil_from_days(self.today());
        let mut day = d;
        // 29 February less N years is 28 February in a common year.
        while matching::model::civil_from_days(matching::model::days_from_civil(
            y - years as i32,
            m,
            day,
        )) != (y - years as i32, m, day)
        {
            day -= 1;
        }
        let cutoff = format_day(
            matching::model::days_from_civil(y - years as i32, m, day).clamp(0, u16::MAX as i64)
                as u16,
        );
        let mut f = Filter::default();
        f.fixed("d.listed AND d.status <> 'DE'");
        f.with(&format!("{LAST_CONTACT_SQL} < ?"), Arg::Text(cutoff));
        if let Some(station) = station_scope(actor, station)? {
            f.with("d.station_code = ?", Arg::Text(station));
        }
        self.page(
            &format!(
                "SELECT d.id, d.grid, d.station_code, d.status, {LAST_CONTACT_SQL} AS last_contact_on, d.failed_contacts FROM donors d"
            ),
            "d.id",
            f,
            page,
            |r| {
                Ok(ReconfirmationItem {
                    donor_id: r.try_get("id")?,
                    grid: r.try_get("grid")?,
                    station: r.try_get("station_code")?,
                    status: r.try_get("status")?,
                    last_contact_on: r.try_get("last_contact_on")?,
                    failed_contacts: r.try_get("failed_contacts")?,
                })
            },
            |i| i.donor_id,
        )
        .await
    }
}
