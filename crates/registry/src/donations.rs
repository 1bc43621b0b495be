//! Donations (interval per product, per-product limit, donor TU/TX) and the follow-ups they
//! schedule (2 days, 1 week, 1 month, 6 months, yearly to 10 years).

use matching::Status;
use matching::model::{civil_from_days, days_from_civil, format_day};
use sqlx::Row;

use crate::audit::{audit, commit_audited};
use crate::consents::require_consent;
use crate::index_feed::Indexed;
use crate::model::StatusChange;
use crate::page::{Arg, Filter, Page, PageRequest};
use crate::support::{NOTE_MAX, check_text, date, day_text, past_date};
use crate::{Actor, Registry, RegistryError, Result};

pub const PRODUCTS: [&str; 3] = ["PBSC", "BM", "DLI"];

/// The follow-up schedule after a donation: (label, days after).
pub fn follow_up_schedule() -> Vec<(String, i64)> {
    let mut v = vec![
        ("2 days".to_string(), 2),
        ("1 week".to_string(), 7),
        ("1 month".to_string(), 30),
        ("6 months".to_string(), 182),
    ];
    for y in 1..=10 {
        v.push((format!("{y} year{}", if y > 1 { "s" } else { "" }), 365 * y));
    }
    v
}

fn add_years(day: i64, years: i32) -> i64 {
    let (y, m, d) = civil_from_days(day);
    let mut dd = d;
    while civil_from_days(days_from_civil(y + years, m, dd)) != (y + years, m, dd) {
        dd -= 1;
    }
    days_from_civil(y + years, m, dd)
}

impl Registry {
    /// Record a donation: a product the registry collects (CMDP: PBSC, and DLI after a PBSC
    /// donation), dated no later than today, from a donor who is not deferred, not TU for a
    /// reason other than a donation, and not reserved for another patient; the interval
    /// since the donor's last donation of any product and the per-product limit held;
    /// creates the follow-up schedule; the donor goes TU (reason TX). Returns the id.
    pub async fn record_donation(
        &self,
        donor_id: i64,
        patient_id: Option<i64>,
        product: &str,
        donated_on: &str,
        station: Option<&str>,
        actor: &Actor,
    ) -> Result<Indexed<i64>> {
        if !PRODUCTS.contains(&product) {
            return Err(RegistryError::invalid(
                "product",
                format!("unknown product `{product}` ({})", PRODUCTS.join(", ")),
            ));
        }
        if !self.config.products.iter().any(|p| p == product) {
            return Err(RegistryError::invalid(
                "product",
                format!(
                    "this registry does not collect {product}: it collects {}",
                    self.config.products.join(", ")
                ),
            ));
        }
        let day = past_date("donated_on", donated_on, self.today())?;
        if let Some(code) = station
            && !self.station_exists(code).await?
        {
            return Err(RegistryError::invalid(
                "station",
                format!("unknown station `{code}`"),
            ));
        }
        let (_turn, mut tx) = self.begin().await?;
        let donor = self.changed_donor(&mut tx, donor_id).await?;
        self.lock_donor(&mut tx, donor_id).await?;
        if let Some(p) = patient_id {
            self.patient_exists_in(&mut tx, p).await?;
        }
        match donor.status {
            Status::Deferred => {
                return Err(RegistryError::Conflict(format!(
                    "donor {donor_id} is DE (permanently unavailable)"
                )));
            }
            Status::TemporarilyUnavailable if donor.status_reason.as_deref() != Some("TX") => {
                return Err(RegistryError::Conflict(format!(
                    "donor {donor_id} is TU ({}): a temporarily unavailable donor does not donate",
                    donor.status_reason.as_deref().unwrap_or("no reason")
                )));
            }
            Status::Reserved if patient_id.is_some() && donor.reserved_for != patient_id => {
                return Err(RegistryError::Conflict(format!(
                    "donor {donor_id} is reserved for another patient"
                )));
            }
            _ => {}
        }
        require_consent(&mut tx, donor_id, "workup", "a donation").await?;
        let history = sqlx::query(
            "SELECT product, donated_on FROM donations WHERE donor_id = $1 ORDER BY donated_on",
        )
        .bind(donor_id)
        .fetch_all(&mut *tx)
        .await?;
        let history: Vec<(String, i64)> = history
            .iter()
            .map(|r| {
                Ok((
                    r.try_get("product")?,
                    date("donated_on", &r.try_get::<String, _>("donated_on")?)?,
                ))
            })
            .collect::<Result<_>>()?;
        let previous: Vec<i64> = history
            .iter()
            .filter(|(p, _)| p == product)
            .map(|(_, d)| *d)
            .collect();
        if product == "DLI" && !history.iter().any(|(p, d)| p != "DLI" && *d <= day) {
            return Err(RegistryError::Conflict(format!(
                "DLI is collected from a donor who has already given stem cells; donor {donor_id} has not"
            )));
        }
        if previous.len() as u32 >= self.config.max_donations_per_product {
            return Err(RegistryError::Conflict(format!(
                "donor {donor_id} has reached the limit of {} {product} donations",
                self.config.max_donations_per_product
            )));
        }
        let interval = if product == "DLI" {
            self.config.dli_interval_days
        } else {
            self.config.pbsc_interval_days
        } as i64;
        // The interval counts from the donor's nearest donation of any product, before or
        // after this one (a donation may be recorded late).
        if let Some((last_product, last)) = history.iter().min_by_key(|(_, d)| (d - day).abs()) {
            let since = (day - last).abs();
            if since < interval {
                return Err(RegistryError::Conflict(format!(
                    "only {since} days from the {last_product} donation of {}; a {product} donation needs at least {interval}",
                    day_text("donated_on", *last)?
                )));
            }
        }
        let id: i64 = sqlx::query_scalar("INSERT INTO donations (donor_id, patient_id, product, donated_on, station_code, recorded_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id")
            .bind(donor_id)
            .bind(patient_id)
            .bind(product)
            .bind(donated_on)
            .bind(station)
            .bind(self.now_text())
            .fetch_one(&mut *tx)
            .await?;
        for (label, days) in follow_up_schedule() {
            let due = if days >= 365 {
                add_years(day, (days / 365) as i32)
            } else {
                day + days
            };
            sqlx::query("INSERT INTO followups (donation_id, donor_id, label, due_on) VALUES ($1, $2, $3, $4)")
                .bind(id)
                .bind(donor_id)
                .bind(&label)
                .bind(day_text("donated_on", due)?)
                .execute(&mut *tx)
                .await?;
        }
        audit(
            &mut tx,
            actor,
            "donation.record",
            "donor",
            &donor_id.to_string(),
            Some(product),
        )
        .await?;
        let until = day_text("donated_on", day + interval)?;
        self.change_status_in(
            &mut tx,
            donor_id,
            &StatusChange {
                status: Status::TemporarilyUnavailable,
                reason: Some("TX".into()),
                until: Some(until),
                patient_id: None,
            },
            actor,
        )
        .await?;
        let changed = self.changed_donor(&mut tx, donor_id).await?;
        tx.commit().await?;
        self.indexed(id, &changed)
    }

    /// Follow-ups due on or before `until` (`overdue_only`: before `today`), for donors who
    /// have not withdrawn follow-up contact consent: (id, donor id, label, due date).
    pub async fn followups_due(
        &self,
        today: i64,
        overdue_only: bool,
    ) -> Result<Vec<(i64, i64, String, String)>> {
        let today_text = format_day(today as u16);
        let sql = if overdue_only {
            "SELECT f.id, f.donor_id, f.label, f.due_on FROM followups f WHERE f.state = 'due' AND f.due_on < $1 \
             AND NOT EXISTS (SELECT 1 FROM consents c WHERE c.donor_id = f.donor_id AND c.scope = 'follow_up_contact' AND c.withdrawn_at IS NOT NULL) ORDER BY f.due_on, f.id"
        } else {
            "SELECT f.id, f.donor_id, f.label, f.due_on FROM followups f WHERE f.state = 'due' AND f.due_on <= $1 \
             AND NOT EXISTS (SELECT 1 FROM consents c WHERE c.donor_id = f.donor_id AND c.scope = 'follow_up_contact' AND c.withdrawn_at IS NOT NULL) ORDER BY f.due_on, f.id"
        };
        let rows = sqlx::query(sql)
            .bind(&today_text)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("id")?,
                    r.try_get("donor_id")?,
                    r.try_get("label")?,
                    r.try_get("due_on")?,
                ))
            })
            .collect()
    }

    /// Record a follow-up as done (with outcome and any adverse event) or missed.
    pub async fn record_followup(
        &self,
        followup_id: i64,
        state: &str,
        on: &str,
        outcome: Option<&str>,
        adverse_event: Option<&str>,
        actor: &Actor,
    ) -> Result<()> {
        if !["done", "missed"].contains(&state) {
            return Err(RegistryError::invalid("state", "done or missed"));
        }
        past_date("on", on, self.today())?;
        check_text("outcome", outcome, false, NOTE_MAX)?;
        check_text("adverse_event", adverse_event, false, NOTE_MAX)?;
        if state == "done" && outcome.is_none_or(|o| o.trim().is_empty()) {
            return Err(RegistryError::invalid(
                "outcome",
                "a done follow-up records its outcome",
            ));
        }
        let (_turn, mut tx) = self.begin().await?;
        let donor_id: i64 = sqlx::query_scalar("SELECT donor_id FROM followups WHERE id = $1")
            .bind(followup_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| RegistryError::NotFound(format!("follow-up {followup_id}")))?;
        // A check that was done contacted the donor; a missed one did not.
        if state == "done" {
            require_consent(
                &mut tx,
                donor_id,
                "follow_up_contact",
                "a follow-up contact",
            )
            .await?;
        }
        let n = sqlx::query("UPDATE followups SET state = $1, done_on = $2, outcome = $3, adverse_event = $4 WHERE id = $5 AND state = 'due'")
            .bind(state)
            .bind(on)
            .bind(outcome)
            .bind(adverse_event)
            .bind(followup_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(RegistryError::Conflict(format!(
                "follow-up {followup_id} is not due (unknown or already recorded)"
            )));
        }
        commit_audited(
            tx,
            actor,
            "followup.record",
            "followup",
            &followup_id.to_string(),
            Some(state),
        )
        .await?;
        Ok(())
    }
}

/// A donation as recorded.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DonationRecord {
    pub id: i64,
    pub donor_id: i64,
    pub patient_id: Option<i64>,
    pub product: String,
    pub donated_on: String,
    pub station: Option<String>,
    pub recorded_at: String,
}

/// A follow-up check as a work list shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FollowupRecord {
    pub id: i64,
    pub donation_id: i64,
    pub donor_id: i64,
    pub label: String,
    pub due_on: String,
    pub state: String,
    pub done_on: Option<String>,
    pub outcome: Option<String>,
    pub adverse_event: Option<String>,
    /// The donor's follow-up contact consent is in force (a check needs it).
    pub contact_consent: bool,
}

/// Follow-up lists: `due` (due by today), `overdue` (due before today), `scheduled` (due
/// later), `done`, `missed`.
pub const FOLLOWUP_LISTS: [&str; 5] = ["due", "overdue", "scheduled", "done", "missed"];

impl Registry {
    /// A page of donations, of a year (by donation date) or all.
    pub async fn list_donations(
        &self,
        year: Option<i32>,
        donor_id: Option<i64>,
        page: &PageRequest,
    ) -> Result<Page<DonationRecord>> {
        let mut f = Filter::default();
        if let Some(y) = year {
            if !(1900..=9999).contains(&y) {
                return Err(RegistryError::invalid("year", format!("{y} is not a year")));
            }
            f.with("donated_on >= ?", Arg::Text(format!("{y:04}-01-01")))
                .with("donated_on <= ?", Arg::Text(format!("{y:04}-12-31")));
        }
        if let Some(d) = donor_id {
            f.with("donor_id = ?", Arg::Int(d));
        }
        self.page(
            "SELECT id, donor_id, patient_id, product, donated_on, station_code, recorded_at FROM donations",
            "id",
            f,
            page,
            |r| {
                Ok(DonationRecord {
                    id: r.try_get("id")?,
                    donor_id: r.try_get("donor_id")?,
                    patient_id: r.try_get("patient_id")?,
                    product: r.try_get("product")?,
                    donated_on: r.try_get("donated_on")?,
                    station: r.try_get("station_code")?,
                    recorded_at: r.try_get("recorded_at")?,
                })
            },
            |d| d.id,
        )
        .await
    }

    /// A page of follow-up checks (see [`FOLLOWUP_LISTS`]); due and overdue checks of
    /// donors who withdrew follow-up contact consent are left out (they are not contacted).
    pub async fn list_followups(
        &self,
        list: &str,
        page: &PageRequest,
    ) -> Result<Page<FollowupRecord>> {
        let today = format_day(self.today() as u16);
        let mut f = Filter::default();
        match list {
            "due" => f
                .fixed("f.state = 'due'")
                .with("f.due_on <= ?", Arg::Text(today)),
            "overdue" => f
                .fixed("f.state = 'due'")
                .with("f.due_on < ?", Arg::Text(today)),
            "scheduled" => f
                .fixed("f.state = 'due'")
                .with("f.due_on > ?", Arg::Text(today)),
            "done" => f.fixed("f.state = 'done'"),
            "missed" => f.fixed("f.state = 'missed'"),
            other => {
                return Err(RegistryError::invalid(
                    "state",
                    format!("`{other}` is not one of {}", FOLLOWUP_LISTS.join(", ")),
                ));
            }
        };
        if matches!(list, "due" | "overdue" | "scheduled") {
            f.fixed("NOT EXISTS (SELECT 1 FROM consents w WHERE w.donor_id = f.donor_id AND w.scope = 'follow_up_contact' AND w.withdrawn_at IS NOT NULL \
                     AND NOT EXISTS (SELECT 1 FROM consents g WHERE g.donor_id = f.donor_id AND g.scope = 'follow_up_contact' AND g.withdrawn_at IS NULL))");
        }
        self.page(
            "SELECT f.id, f.donation_id, f.donor_id, f.label, f.due_on, f.state, f.done_on, f.outcome, f.adverse_event, \
             (SELECT COUNT(*) FROM consents c WHERE c.donor_id = f.donor_id AND c.scope = 'follow_up_contact' AND c.withdrawn_at IS NULL) AS consents \
             FROM followups f",
            "f.id",
            f,
            page,
            |r| {
                Ok(FollowupRecord {
                    id: r.try_get("id")?,
                    donation_id: r.try_get("donation_id")?,
                    donor_id: r.try_get("donor_id")?,
                    label: r.try_get("label")?,
                    due_on: r.try_get("due_on")?,
                    state: r.try_get("state")?,
                    done_on: r.try_get("done_on")?,
                    outcome: r.try_get("outcome")?,
                    adverse_event: r.try_get("adverse_event")?,
                    contact_consent: r.try_get::<i64, _>("consents")? > 0,
                })
            },
            |f| f.id,
        )
        .await
    }
}
