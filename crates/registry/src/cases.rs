//! Patients, searches, requests per patient–donor pair (with workup milestones and
//! reservation), donations (intervals, per-product limits, follow-up schedule), follow-ups,
//! and organ/tissue/body donation registrations (registry operations §6–9).

use matching::Status;
use matching::model::{civil_from_days, days_from_civil, format_day, parse_birth_date};
use sqlx::Row;

use crate::store::{StatusChange, audit, is_unique_violation, validate_gl};
use crate::{Actor, Registry, RegistryError, Result, now_text};

pub const REQUEST_KINDS: [&str; 4] = [
    "extended_typing",
    "confirmatory_typing",
    "reservation",
    "workup",
];
pub const MILESTONES: [&str; 6] = [
    "information_session",
    "medical_exam",
    "infectious_markers",
    "clearance",
    "gcsf_start",
    "collection",
];
pub const PRODUCTS: [&str; 3] = ["PBSC", "BM", "DLI"];
pub const ORGANS: [&str; 6] = [
    "kidney",
    "liver",
    "heart",
    "lung",
    "pancreas",
    "small_bowel",
];
pub const TISSUES: [&str; 1] = ["cornea"];
/// Search states (WMDA): NEW → PRE → ACT ⇄ SUS → STP.
pub const SEARCH_STATES: [&str; 5] = ["NEW", "PRE", "ACT", "SUS", "STP"];

#[derive(Debug, Clone, Default)]
pub struct NewPatient {
    pub external_id: String,
    pub gl: String,
    pub birth_date: Option<String>,
    pub sex: Option<String>,
    pub abo: Option<String>,
    pub cmv: Option<String>,
    pub weight_kg: Option<f64>,
    pub diagnosis: Option<String>,
    pub transplant_centre: Option<String>,
}

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

fn date(field: &str, text: &str) -> Result<i64> {
    parse_birth_date(text)
        .map(i64::from)
        .map_err(|r| RegistryError::invalid(field, r))
}

impl Registry {
    pub async fn register_patient(&self, p: &NewPatient, actor: &Actor) -> Result<i64> {
        if p.external_id.trim().is_empty() {
            return Err(RegistryError::invalid("external_id", "must not be empty"));
        }
        let gl = validate_gl(self, &p.gl)?;
        if let Some(b) = &p.birth_date {
            date("birth_date", b)?;
        }
        if p.weight_kg.is_some_and(|w| !(w > 0.0 && w < 500.0)) {
            return Err(RegistryError::invalid(
                "weight_kg",
                "must be between 0 and 500",
            ));
        }
        let (_turn, mut tx) = self.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO patients (external_id, gl, release, birth_date, sex, abo, cmv, weight_kg, diagnosis, transplant_centre, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
        )
        .bind(&p.external_id)
        .bind(&gl)
        .bind(&self.expander.release().version)
        .bind(p.birth_date.as_deref())
        .bind(p.sex.as_deref().unwrap_or("U"))
        .bind(p.abo.as_deref().unwrap_or("?"))
        .bind(p.cmv.as_deref().unwrap_or("?"))
        .bind(p.weight_kg)
        .bind(p.diagnosis.as_deref())
        .bind(p.transplant_centre.as_deref())
        .bind(now_text())
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| if is_unique_violation(&e) { RegistryError::Conflict(format!("patient `{}` exists", p.external_id)) } else { e.into() })?;
        audit(
            &mut tx,
            actor,
            "patient.register",
            "patient",
            &id.to_string(),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Open a search for a patient (state NEW) with its criteria as JSON text.
    pub async fn open_search(&self, patient_id: i64, criteria: &str, actor: &Actor) -> Result<i64> {
        self.insert_search(patient_id, criteria, None, actor).await
    }

    /// Open a search and record its first run in one transaction (one commit per search
    /// created through the API); audited as `search.open` then `search.run`.
    pub async fn open_search_with_run(
        &self,
        patient_id: i64,
        criteria: &str,
        result: &str,
        actor: &Actor,
    ) -> Result<i64> {
        self.insert_search(patient_id, criteria, Some(result), actor)
            .await
    }

    /// PostgreSQL: the search and its two audit entries in one statement, so one round
    /// trip instead of five (begin, insert, two audits, commit): a coordinator's search
    /// writes this on every request. One statement is one transaction.
    async fn insert_search_with_run_pg(
        &self,
        patient_id: i64,
        criteria: &str,
        result: &str,
        actor: &Actor,
    ) -> Result<i64> {
        sqlx::query_scalar(
            "WITH s AS (INSERT INTO searches (patient_id, criteria, created_at, updated_at, last_run_at, last_result) \
               VALUES ($1, $2, $3, $3, $3, $4) RETURNING id), \
             a AS (INSERT INTO audit_log (at, actor, role, action, entity, entity_id, reason, request_id) \
               SELECT $3, $5, $6, v.action, 'search', CAST(s.id AS TEXT), NULL, $7 \
               FROM s CROSS JOIN (VALUES (1, 'search.open'), (2, 'search.run')) AS v(ord, action) ORDER BY v.ord) \
             SELECT id FROM s",
        )
        .bind(patient_id)
        .bind(criteria)
        .bind(now_text())
        .bind(result)
        .bind(&actor.name)
        .bind(&actor.role)
        .bind(actor.request_id.as_deref())
        .fetch_one(&self.pool)
        .await
        .map_err(|e| search_insert_error(e, patient_id))
    }

    async fn insert_search(
        &self,
        patient_id: i64,
        criteria: &str,
        result: Option<&str>,
        actor: &Actor,
    ) -> Result<i64> {
        serde_json::from_str::<serde_json::Value>(criteria)
            .map_err(|e| RegistryError::invalid("criteria", e.to_string()))?;
        if let (crate::Backend::Postgres, Some(result)) = (self.backend, result) {
            return self
                .insert_search_with_run_pg(patient_id, criteria, result, actor)
                .await;
        }
        let (_turn, mut tx) = self.begin().await?;
        let now = now_text();
        let id: i64 = sqlx::query_scalar("INSERT INTO searches (patient_id, criteria, created_at, updated_at, last_run_at, last_result) VALUES ($1, $2, $3, $3, $4, $5) RETURNING id")
            .bind(patient_id)
            .bind(criteria)
            .bind(&now)
            .bind(result.map(|_| now.clone()))
            .bind(result)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| search_insert_error(e, patient_id))?;
        audit(
            &mut tx,
            actor,
            "search.open",
            "search",
            &id.to_string(),
            None,
        )
        .await?;
        if result.is_some() {
            audit(
                &mut tx,
                actor,
                "search.run",
                "search",
                &id.to_string(),
                None,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    /// Move a search through NEW → PRE → ACT ⇄ SUS → STP; STP needs a reason and is final.
    pub async fn set_search_state(
        &self,
        search_id: i64,
        state: &str,
        reason: Option<&str>,
        actor: &Actor,
    ) -> Result<()> {
        if !SEARCH_STATES.contains(&state) {
            return Err(RegistryError::invalid(
                "state",
                format!(
                    "unknown search state `{state}` ({})",
                    SEARCH_STATES.join(", ")
                ),
            ));
        }
        let (_turn, mut tx) = self.begin().await?;
        let current: String = sqlx::query_scalar("SELECT state FROM searches WHERE id = $1")
            .bind(search_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| RegistryError::NotFound(format!("search {search_id}")))?;
        let allowed = matches!(
            (current.as_str(), state),
            ("NEW", "PRE" | "ACT" | "STP")
                | ("PRE", "ACT" | "SUS" | "STP")
                | ("ACT", "SUS" | "STP")
                | ("SUS", "ACT" | "STP")
        );
        if !allowed {
            return Err(RegistryError::Conflict(format!(
                "search {search_id} cannot go from {current} to {state}"
            )));
        }
        if state == "STP" && reason.is_none_or(|r| r.trim().is_empty()) {
            return Err(RegistryError::invalid(
                "reason",
                "stopping a search needs a reason",
            ));
        }
        sqlx::query(
            "UPDATE searches SET state = $1, state_reason = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(state)
        .bind(reason)
        .bind(now_text())
        .bind(search_id)
        .execute(&mut *tx)
        .await?;
        audit(
            &mut tx,
            actor,
            "search.state",
            "search",
            &search_id.to_string(),
            Some(&format!("{current} → {state}")),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Open a request for a patient–donor pair; one open request of a kind per pair. A
    /// reservation sets the donor RS for the patient until `reservation_days` from `today`.
    pub async fn open_request(
        &self,
        patient_id: i64,
        donor_id: i64,
        kind: &str,
        actor: &Actor,
        today: i64,
    ) -> Result<i64> {
        if !REQUEST_KINDS.contains(&kind) {
            return Err(RegistryError::invalid(
                "kind",
                format!(
                    "unknown request kind `{kind}` ({})",
                    REQUEST_KINDS.join(", ")
                ),
            ));
        }
        let donor = self.donor(donor_id).await?;
        if !donor.listed || donor.status == Status::Deferred {
            return Err(RegistryError::Conflict(format!(
                "donor {donor_id} is not available for requests"
            )));
        }
        if donor.status == Status::Reserved && donor.reserved_for != Some(patient_id) {
            return Err(RegistryError::Conflict(format!(
                "donor {donor_id} is reserved for another patient"
            )));
        }
        let expires = (kind == "reservation")
            .then(|| format_day((today + self.config.reservation_days as i64) as u16));
        let (_turn, mut tx) = self.begin().await?;
        let id: i64 = sqlx::query_scalar("INSERT INTO requests (patient_id, donor_id, kind, opened_at, expires_on) VALUES ($1, $2, $3, $4, $5) RETURNING id")
            .bind(patient_id)
            .bind(donor_id)
            .bind(kind)
            .bind(now_text())
            .bind(expires.as_deref())
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| if is_unique_violation(&e) { RegistryError::Conflict(format!("an open {kind} request exists for patient {patient_id} and donor {donor_id}")) } else { e.into() })?;
        audit(
            &mut tx,
            actor,
            "request.open",
            "request",
            &id.to_string(),
            Some(kind),
        )
        .await?;
        if kind == "reservation" {
            self.change_status_in(
                &mut tx,
                donor_id,
                &StatusChange {
                    status: Status::Reserved,
                    reason: None,
                    until: expires,
                    patient_id: Some(patient_id),
                },
                actor,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    /// Close a request (done, cancelled, refused). Closing a reservation other than done
    /// releases the donor (AV).
    pub async fn close_request(&self, request_id: i64, state: &str, actor: &Actor) -> Result<()> {
        if !["done", "cancelled", "refused"].contains(&state) {
            return Err(RegistryError::invalid(
                "state",
                "done, cancelled or refused",
            ));
        }
        let (_turn, mut tx) = self.begin().await?;
        let row = sqlx::query("SELECT donor_id, kind, state FROM requests WHERE id = $1")
            .bind(request_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| RegistryError::NotFound(format!("request {request_id}")))?;
        let (donor_id, kind, current): (i64, String, String) = (
            row.try_get("donor_id")?,
            row.try_get("kind")?,
            row.try_get("state")?,
        );
        if current != "open" {
            return Err(RegistryError::Conflict(format!(
                "request {request_id} is already {current}"
            )));
        }
        sqlx::query("UPDATE requests SET state = $1, closed_at = $2 WHERE id = $3")
            .bind(state)
            .bind(now_text())
            .bind(request_id)
            .execute(&mut *tx)
            .await?;
        audit(
            &mut tx,
            actor,
            "request.close",
            "request",
            &request_id.to_string(),
            Some(state),
        )
        .await?;
        let status: String = sqlx::query_scalar("SELECT status FROM donors WHERE id = $1")
            .bind(donor_id)
            .fetch_one(&mut *tx)
            .await?;
        if kind == "reservation" && state != "done" && status == Status::Reserved.code() {
            self.change_status_in(
                &mut tx,
                donor_id,
                &StatusChange {
                    status: Status::Available,
                    reason: None,
                    until: None,
                    patient_id: None,
                },
                actor,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Record a workup milestone (once each) on an open workup request.
    pub async fn record_milestone(
        &self,
        request_id: i64,
        milestone: &str,
        on_date: &str,
        ok: Option<bool>,
        actor: &Actor,
    ) -> Result<()> {
        if !MILESTONES.contains(&milestone) {
            return Err(RegistryError::invalid(
                "milestone",
                format!(
                    "unknown milestone `{milestone}` ({})",
                    MILESTONES.join(", ")
                ),
            ));
        }
        date("on_date", on_date)?;
        let (_turn, mut tx) = self.begin().await?;
        let kind: Option<String> =
            sqlx::query_scalar("SELECT kind FROM requests WHERE id = $1 AND state = 'open'")
                .bind(request_id)
                .fetch_optional(&mut *tx)
                .await?;
        if kind.as_deref() != Some("workup") {
            return Err(RegistryError::Conflict(format!(
                "request {request_id} is not an open workup"
            )));
        }
        sqlx::query("INSERT INTO workup_milestones (request_id, milestone, on_date, ok) VALUES ($1, $2, $3, $4)")
            .bind(request_id)
            .bind(milestone)
            .bind(on_date)
            .bind(ok)
            .execute(&mut *tx)
            .await
            .map_err(|e| if is_unique_violation(&e) { RegistryError::Conflict(format!("{milestone} is already recorded")) } else { e.into() })?;
        audit(
            &mut tx,
            actor,
            "workup.milestone",
            "request",
            &request_id.to_string(),
            Some(milestone),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Record a donation, enforcing the interval since the donor's last donation of the
    /// product and the per-product limit; creates the follow-up schedule; the donor goes TU
    /// (reason TX). Returns the donation id.
    pub async fn record_donation(
        &self,
        donor_id: i64,
        patient_id: Option<i64>,
        product: &str,
        donated_on: &str,
        station: Option<&str>,
        actor: &Actor,
    ) -> Result<i64> {
        if !PRODUCTS.contains(&product) {
            return Err(RegistryError::invalid(
                "product",
                format!("unknown product `{product}` ({})", PRODUCTS.join(", ")),
            ));
        }
        let day = date("donated_on", donated_on)?;
        let (_turn, mut tx) = self.begin().await?;
        self.lock_donor(&mut tx, donor_id).await?;
        let previous: Vec<String> = sqlx::query_scalar("SELECT donated_on FROM donations WHERE donor_id = $1 AND product = $2 ORDER BY donated_on")
            .bind(donor_id)
            .bind(product)
            .fetch_all(&mut *tx)
            .await?;
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
        if let Some(last) = previous.last() {
            let since = day - date("donated_on", last)?;
            if since < interval {
                return Err(RegistryError::Conflict(format!(
                    "only {since} days since the last {product} donation; at least {interval} are needed"
                )));
            }
        }
        let id: i64 = sqlx::query_scalar("INSERT INTO donations (donor_id, patient_id, product, donated_on, station_code, recorded_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id")
            .bind(donor_id)
            .bind(patient_id)
            .bind(product)
            .bind(donated_on)
            .bind(station)
            .bind(now_text())
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
                .bind(format_day(due as u16))
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
        let until = format_day((day + interval) as u16);
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
        tx.commit().await?;
        Ok(id)
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
        date("on", on)?;
        if state == "done" && outcome.is_none_or(|o| o.trim().is_empty()) {
            return Err(RegistryError::invalid(
                "outcome",
                "a done follow-up records its outcome",
            ));
        }
        let (_turn, mut tx) = self.begin().await?;
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
        audit(
            &mut tx,
            actor,
            "followup.record",
            "followup",
            &followup_id.to_string(),
            Some(state),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Register an intent to donate organs, tissues or the whole body after death (18+).
    /// One active registration per national id.
    #[allow(clippy::too_many_arguments)]
    pub async fn register_organ_donation(
        &self,
        family_name: &str,
        given_name: &str,
        national_id: &str,
        birth_date: &str,
        organs: &[&str],
        tissues: &[&str],
        whole_body: bool,
        actor: &Actor,
        today: i64,
    ) -> Result<i64> {
        let birth = date("birth_date", birth_date)?;
        if matching::model::age_in_years(birth as u16, today) < 18 {
            return Err(RegistryError::invalid(
                "birth_date",
                "registration is for adults (18+)",
            ));
        }
        check_choice(organs, &ORGANS, "organs")?;
        check_choice(tissues, &TISSUES, "tissues")?;
        if organs.is_empty() && tissues.is_empty() && !whole_body {
            return Err(RegistryError::invalid(
                "organs",
                "choose organs, tissues or whole-body donation",
            ));
        }
        if national_id.trim().is_empty()
            || family_name.trim().is_empty()
            || given_name.trim().is_empty()
        {
            return Err(RegistryError::invalid(
                "identity",
                "name and national id are required",
            ));
        }
        let (_turn, mut tx) = self.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO organ_registrations (family_name, given_name, national_id, birth_date, organs, tissues, whole_body, registered_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(family_name)
        .bind(given_name)
        .bind(national_id)
        .bind(birth_date)
        .bind(organs.join(","))
        .bind(tissues.join(","))
        .bind(whole_body)
        .bind(now_text())
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| if is_unique_violation(&e) { RegistryError::Conflict("an active registration exists for this national id".into()) } else { e.into() })?;
        audit(
            &mut tx,
            actor,
            "organ.register",
            "organ_registration",
            &id.to_string(),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn change_organ_donation(
        &self,
        id: i64,
        organs: &[&str],
        tissues: &[&str],
        whole_body: bool,
        actor: &Actor,
    ) -> Result<()> {
        check_choice(organs, &ORGANS, "organs")?;
        check_choice(tissues, &TISSUES, "tissues")?;
        let (_turn, mut tx) = self.begin().await?;
        let n = sqlx::query("UPDATE organ_registrations SET organs = $1, tissues = $2, whole_body = $3, changed_at = $4 WHERE id = $5 AND state = 'active'")
            .bind(organs.join(","))
            .bind(tissues.join(","))
            .bind(whole_body)
            .bind(now_text())
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(RegistryError::Conflict(format!(
                "registration {id} is not active"
            )));
        }
        audit(
            &mut tx,
            actor,
            "organ.change",
            "organ_registration",
            &id.to_string(),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Revoke a registration: final for that registration.
    pub async fn revoke_organ_donation(&self, id: i64, actor: &Actor) -> Result<()> {
        let (_turn, mut tx) = self.begin().await?;
        let n = sqlx::query("UPDATE organ_registrations SET state = 'revoked', revoked_at = $1 WHERE id = $2 AND state = 'active'")
            .bind(now_text())
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(RegistryError::Conflict(format!(
                "registration {id} is not active"
            )));
        }
        audit(
            &mut tx,
            actor,
            "organ.revoke",
            "organ_registration",
            &id.to_string(),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A donation case after death: family consent (who, jointly, in writing) and the Red
    /// Cross witness are required.
    pub async fn record_organ_case(
        &self,
        registration_id: Option<i64>,
        died_on: &str,
        family_consent: &str,
        witness: &str,
        outcome: Option<&str>,
        actor: &Actor,
    ) -> Result<i64> {
        date("died_on", died_on)?;
        if family_consent.trim().is_empty() {
            return Err(RegistryError::invalid(
                "family_consent",
                "donation needs the family's written consent",
            ));
        }
        if witness.trim().is_empty() {
            return Err(RegistryError::invalid(
                "witness",
                "every donation case has a Red Cross witness",
            ));
        }
        let (_turn, mut tx) = self.begin().await?;
        if let Some(r) = registration_id {
            let state: Option<String> =
                sqlx::query_scalar("SELECT state FROM organ_registrations WHERE id = $1")
                    .bind(r)
                    .fetch_optional(&mut *tx)
                    .await?;
            match state.as_deref() {
                None => {
                    return Err(RegistryError::NotFound(format!("organ registration {r}")));
                }
                // A revoked intent is final (registry operations §9): it cannot back a case.
                Some("revoked") => {
                    return Err(RegistryError::Conflict(format!(
                        "organ registration {r} was revoked"
                    )));
                }
                Some(_) => {}
            }
        }
        let id: i64 = sqlx::query_scalar("INSERT INTO organ_cases (registration_id, died_on, family_consent, witness, outcome, recorded_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id")
            .bind(registration_id)
            .bind(died_on)
            .bind(family_consent)
            .bind(witness)
            .bind(outcome)
            .bind(now_text())
            .fetch_one(&mut *tx)
            .await?;
        audit(
            &mut tx,
            actor,
            "organ.case",
            "organ_case",
            &id.to_string(),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Donors reserved (RS) for a patient: that patient's searches offer them
    /// (`SearchRequest::also_offered`), no one else's do.
    pub async fn donors_reserved_for(&self, patient_id: i64) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM donors WHERE status = 'RS' AND reserved_for = $1 ORDER BY id",
        )
        .bind(patient_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Reservations past their expiry: the request is cancelled and the donor released.
    /// Returns the donors released.
    pub async fn expire_reservations(&self, today: i64, actor: &Actor) -> Result<Vec<i64>> {
        let rows = sqlx::query("SELECT id, donor_id FROM requests WHERE kind = 'reservation' AND state = 'open' AND expires_on < $1")
            .bind(format_day(today as u16))
            .fetch_all(&self.pool)
            .await?;
        let mut donors = Vec::new();
        for row in rows {
            self.close_request(row.try_get("id")?, "cancelled", actor)
                .await?;
            donors.push(row.try_get("donor_id")?);
        }
        Ok(donors)
    }
}

fn patient_from_row(r: &sqlx::any::AnyRow) -> Result<Patient> {
    Ok(Patient {
        id: r.try_get("id")?,
        external_id: r.try_get("external_id")?,
        gl: r.try_get("gl")?,
        birth_date: r.try_get("birth_date")?,
        sex: r.try_get("sex")?,
        abo: r.try_get("abo")?,
        cmv: r.try_get("cmv")?,
        weight_kg: r.try_get("weight_kg")?,
        diagnosis: r.try_get("diagnosis")?,
        transplant_centre: r.try_get("transplant_centre")?,
    })
}

/// A search for a patient that is not there is a 404, not a database error.
fn search_insert_error(e: sqlx::Error, patient_id: i64) -> RegistryError {
    match &e {
        sqlx::Error::Database(d) if d.message().to_lowercase().contains("foreign key") => {
            RegistryError::NotFound(format!("patient {patient_id}"))
        }
        _ => e.into(),
    }
}

fn check_choice(chosen: &[&str], allowed: &[&str], field: &str) -> Result<()> {
    for c in chosen {
        if !allowed.contains(c) {
            return Err(RegistryError::invalid(
                field,
                format!("unknown choice `{c}` ({})", allowed.join(", ")),
            ));
        }
    }
    Ok(())
}

/// A patient as the registry holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Patient {
    pub id: i64,
    pub external_id: String,
    pub gl: String,
    pub birth_date: Option<String>,
    pub sex: String,
    pub abo: String,
    pub cmv: String,
    pub weight_kg: Option<f64>,
    pub diagnosis: Option<String>,
    pub transplant_centre: Option<String>,
}

/// A search: its patient, lifecycle state, criteria (JSON) and its last run's result (JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRecord {
    pub id: i64,
    pub patient_id: i64,
    pub state: String,
    pub state_reason: Option<String>,
    pub criteria: String,
    pub last_run_at: Option<String>,
    pub last_result: Option<String>,
}

impl Registry {
    pub async fn patient(&self, patient_id: i64) -> Result<Patient> {
        let r = sqlx::query("SELECT id, external_id, gl, birth_date, sex, abo, cmv, weight_kg, diagnosis, transplant_centre FROM patients WHERE id = $1")
            .bind(patient_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| RegistryError::NotFound(format!("patient {patient_id}")))?;
        patient_from_row(&r)
    }

    /// A patient and the donors reserved (RS) for them, ascending, in one query: what a
    /// search needs before it runs (`patient` and `donors_reserved_for` in one round trip).
    pub async fn patient_with_reserved(&self, patient_id: i64) -> Result<(Patient, Vec<i64>)> {
        let rows = sqlx::query("SELECT p.id, p.external_id, p.gl, p.birth_date, p.sex, p.abo, p.cmv, p.weight_kg, p.diagnosis, p.transplant_centre, d.id AS reserved \
             FROM patients p LEFT JOIN donors d ON d.reserved_for = p.id AND d.status = 'RS' WHERE p.id = $1 ORDER BY d.id")
            .bind(patient_id)
            .fetch_all(&self.pool)
            .await?;
        let first = rows
            .first()
            .ok_or_else(|| RegistryError::NotFound(format!("patient {patient_id}")))?;
        let reserved = rows
            .iter()
            .map(|r| r.try_get::<Option<i64>, _>("reserved"))
            .filter_map(|id| id.transpose())
            .collect::<std::result::Result<Vec<i64>, _>>()?;
        Ok((patient_from_row(first)?, reserved))
    }

    pub async fn search_record(&self, search_id: i64) -> Result<SearchRecord> {
        let r = sqlx::query("SELECT id, patient_id, state, state_reason, criteria, last_run_at, last_result FROM searches WHERE id = $1")
            .bind(search_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| RegistryError::NotFound(format!("search {search_id}")))?;
        Ok(SearchRecord {
            id: r.try_get("id")?,
            patient_id: r.try_get("patient_id")?,
            state: r.try_get("state")?,
            state_reason: r.try_get("state_reason")?,
            criteria: r.try_get("criteria")?,
            last_run_at: r.try_get("last_run_at")?,
            last_result: r.try_get("last_result")?,
        })
    }

    /// Keep a run's result (JSON) as the search's last, audited.
    pub async fn record_search_run(
        &self,
        search_id: i64,
        result: &str,
        actor: &Actor,
    ) -> Result<()> {
        let (_turn, mut tx) = self.begin().await?;
        let n = sqlx::query(
            "UPDATE searches SET last_run_at = $1, last_result = $2, updated_at = $1 WHERE id = $3",
        )
        .bind(now_text())
        .bind(result)
        .bind(search_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(RegistryError::NotFound(format!("search {search_id}")));
        }
        audit(
            &mut tx,
            actor,
            "search.run",
            "search",
            &search_id.to_string(),
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether the donor is in an open case (an open request of any kind): case managers may
    /// then read the donor's identity.
    pub async fn donor_in_open_case(&self, donor_id: i64) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM requests WHERE donor_id = $1 AND state = 'open'",
        )
        .bind(donor_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }
}

/// One audit log entry.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub role: String,
    pub action: String,
    pub entity: String,
    pub entity_id: Option<String>,
    pub reason: Option<String>,
    pub request_id: Option<String>,
}

impl Registry {
    /// Audit entries, newest first, optionally of one entity (and id), entries before
    /// `before_id` for paging.
    pub async fn audit_entries(
        &self,
        entity: Option<&str>,
        entity_id: Option<&str>,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query("SELECT id, at, actor, role, action, entity, entity_id, reason, request_id FROM audit_log \
             WHERE ($1 IS NULL OR entity = $1) AND ($2 IS NULL OR entity_id = $2) AND ($3 IS NULL OR id < $3) ORDER BY id DESC LIMIT $4")
            .bind(entity)
            .bind(entity_id)
            .bind(before_id)
            .bind(limit.clamp(1, 1000))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    role: r.try_get("role")?,
                    action: r.try_get("action")?,
                    entity: r.try_get("entity")?,
                    entity_id: r.try_get("entity_id")?,
                    reason: r.try_get("reason")?,
                    request_id: r.try_get("request_id")?,
                })
            })
            .collect()
    }
}

impl Registry {
    /// Station codes, sorted.
    pub async fn station_codes(&self) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT code FROM stations ORDER BY code")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// The donor a request is about.
    pub async fn request_donor(&self, request_id: i64) -> Result<i64> {
        sqlx::query_scalar("SELECT donor_id FROM requests WHERE id = $1")
            .bind(request_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| RegistryError::NotFound(format!("request {request_id}")))
    }
}

/// A typing as recorded (current or history).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TypingRecord {
    pub id: i64,
    pub gl: String,
    pub release: String,
    pub lab: Option<String>,
    pub method: Option<String>,
    pub typed_on: String,
    pub sample_id: Option<i64>,
    pub current: bool,
}

/// A consent record.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ConsentRecord {
    pub id: i64,
    pub scope: String,
    pub form_version: String,
    pub given_at: String,
    pub withdrawn_at: Option<String>,
    pub recorded_by: String,
    pub note: Option<String>,
}

impl Registry {
    /// Every typing a donor has had, newest first.
    pub async fn typings(&self, donor_id: i64) -> Result<Vec<TypingRecord>> {
        let rows = sqlx::query("SELECT id, gl, release, lab, method, typed_on, sample_id, CAST(CASE WHEN is_current THEN 1 ELSE 0 END AS BIGINT) AS current FROM typings WHERE donor_id = $1 ORDER BY id DESC")
            .bind(donor_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(TypingRecord {
                    id: r.try_get("id")?,
                    gl: r.try_get("gl")?,
                    release: r.try_get("release")?,
                    lab: r.try_get("lab")?,
                    method: r.try_get("method")?,
                    typed_on: r.try_get("typed_on")?,
                    sample_id: r.try_get("sample_id")?,
                    current: r.try_get::<i64, _>("current")? == 1,
                })
            })
            .collect()
    }

    /// A donor's consent records, oldest first.
    pub async fn consents(&self, donor_id: i64) -> Result<Vec<ConsentRecord>> {
        let rows = sqlx::query("SELECT id, scope, form_version, given_at, withdrawn_at, recorded_by, note FROM consents WHERE donor_id = $1 ORDER BY id")
            .bind(donor_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ConsentRecord {
                    id: r.try_get("id")?,
                    scope: r.try_get("scope")?,
                    form_version: r.try_get("form_version")?,
                    given_at: r.try_get("given_at")?,
                    withdrawn_at: r.try_get("withdrawn_at")?,
                    recorded_by: r.try_get("recorded_by")?,
                    note: r.try_get("note")?,
                })
            })
            .collect()
    }
}

/// Changes to a donor's attributes and contacts; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct DonorUpdate {
    pub sex: Option<matching::Sex>,
    pub abo: Option<matching::Abo>,
    pub rh_positive: Option<bool>,
    pub cmv: Option<matching::Cmv>,
    /// `YYYY-MM-DD`.
    pub cmv_date: Option<String>,
    pub population: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub address: Option<String>,
}

impl Registry {
    /// Update a donor's attributes and contacts in one audited transaction. The audit entry
    /// names the fields changed, never their values (contacts are identity data).
    pub async fn update_donor(
        &self,
        donor_id: i64,
        update: &DonorUpdate,
        actor: &Actor,
    ) -> Result<()> {
        if let Some(d) = &update.cmv_date {
            parse_birth_date(d).map_err(|r| RegistryError::invalid("cmv_date", r))?;
        }
        let mut fields: Vec<&str> = Vec::new();
        let (_turn, mut tx) = self.begin().await?;
        self.lock_donor(&mut tx, donor_id).await?;
        let attributes: [(&str, Option<String>); 6] = [
            ("sex", update.sex.map(|s| s.code().to_string())),
            ("abo", update.abo.map(|a| a.code().to_string())),
            (
                "rh",
                update
                    .rh_positive
                    .map(|r| crate::store::rh_code(Some(r)).to_string()),
            ),
            ("cmv", update.cmv.map(|c| c.code().to_string())),
            ("cmv_date", update.cmv_date.clone()),
            ("population", update.population.clone()),
        ];
        for (column, value) in attributes {
            if let Some(v) = value {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE donors SET {column} = $1 WHERE id = $2"
                )))
                .bind(v)
                .bind(donor_id)
                .execute(&mut *tx)
                .await?;
                fields.push(column);
            }
        }
        let contacts: [(&str, &Option<String>); 3] = [
            ("phone", &update.phone),
            ("email", &update.email),
            ("address", &update.address),
        ];
        for (column, value) in contacts {
            if let Some(v) = value {
                let n = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE donor_identity SET {column} = $1 WHERE donor_id = $2"
                )))
                .bind(v)
                .bind(donor_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if n == 0 {
                    return Err(RegistryError::invalid(
                        column,
                        "this donor has no identity record to update",
                    ));
                }
                fields.push(column);
            }
        }
        if fields.is_empty() {
            return Err(RegistryError::invalid("body", "nothing to update"));
        }
        audit(
            &mut tx,
            actor,
            "donor.update",
            "donor",
            &donor_id.to_string(),
            Some(&fields.join(", ")),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
