//! Requests per patient–donor pair (extended and confirmatory typing, reservation, workup):
//! one open of a kind, reservations that expire, workup milestones.

use matching::Status;
use matching::model::format_day;
use sqlx::Row;

use crate::audit::{audit, commit_audited};
use crate::consents::require_consent;
use crate::index_feed::Indexed;
use crate::model::StatusChange;
use crate::page::{Arg, Filter, Page, PageRequest};
use crate::support::{date, is_unique_violation, planned_date};
use crate::{Actor, Registry, RegistryError, Result};

pub const REQUEST_KINDS: [&str; 4] = [
    "extended_typing",
    "confirmatory_typing",
    "reservation",
    "workup",
];

/// Request states.
pub const REQUEST_STATES: [&str; 4] = ["open", "done", "cancelled", "refused"];

pub const MILESTONES: [&str; 6] = [
    "information_session",
    "medical_exam",
    "infectious_markers",
    "clearance",
    "gcsf_start",
    "collection",
];

impl Registry {
    /// Open a request for a patient–donor pair; one open request of a kind per pair. A
    /// reservation sets the donor RS for the patient until the 53rd working day after
    /// `today` (the 60th when the pair's extended typing is done).
    pub async fn open_request(
        &self,
        patient_id: i64,
        donor_id: i64,
        kind: &str,
        actor: &Actor,
        today: i64,
    ) -> Result<Indexed<i64>> {
        if actor.role == "case_manager" && kind != "workup" {
            return Err(RegistryError::Forbidden(format!(
                "a case manager opens workup requests, not {kind}"
            )));
        }
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
        let expires = if kind == "reservation" {
            let extended: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM requests WHERE patient_id = $1 AND donor_id = $2 AND kind = 'extended_typing' AND state = 'done'")
                .bind(patient_id)
                .bind(donor_id)
                .fetch_one(&self.pool)
                .await?;
            let days = if extended > 0 {
                self.config.extended_reservation_working_days
            } else {
                self.config.reservation_working_days
            };
            Some(format_day(
                self.working_days_after(today, days).await? as u16,
            ))
        } else {
            None
        };
        let (_turn, mut tx) = self.begin().await?;
        self.patient_exists_in(&mut tx, patient_id).await?;
        self.lock_donor(&mut tx, donor_id).await?;
        if kind == "workup" {
            // A donor is in one workup at a time, whatever the patient.
            let open: Option<i64> = sqlx::query_scalar(
                "SELECT patient_id FROM requests WHERE donor_id = $1 AND kind = 'workup' AND state = 'open'",
            )
            .bind(donor_id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(other) = open {
                return Err(RegistryError::Conflict(format!(
                    "donor {donor_id} is already in an open workup (for patient {other}); a donor is in one workup at a time"
                )));
            }
        }
        let id: i64 = sqlx::query_scalar("INSERT INTO requests (patient_id, donor_id, kind, opened_at, expires_on) VALUES ($1, $2, $3, $4, $5) RETURNING id")
            .bind(patient_id)
            .bind(donor_id)
            .bind(kind)
            .bind(self.now_text())
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
        let changed = self.changed_donor(&mut tx, donor_id).await?;
        tx.commit().await?;
        self.indexed(id, &changed)
    }

    /// Close a request (done, cancelled, refused). Closing a reservation other than done
    /// releases the donor (AV).
    pub async fn close_request(
        &self,
        request_id: i64,
        state: &str,
        actor: &Actor,
    ) -> Result<Indexed<()>> {
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
            .bind(self.now_text())
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
            self.change_status_in(&mut tx, donor_id, &StatusChange::available(), actor)
                .await?;
        }
        let changed = self.changed_donor(&mut tx, donor_id).await?;
        tx.commit().await?;
        self.indexed((), &changed)
    }

    /// Record a workup milestone (once each) on an open workup request, in the workup's
    /// order (each after the one before it, on the same day or later) and within two years
    /// ahead (a milestone may be scheduled).
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
        // Errors name `on`, the field a caller sends.
        let day = planned_date("on", on_date, self.today())?;
        let (_turn, mut tx) = self.begin().await?;
        let row =
            sqlx::query("SELECT kind, donor_id FROM requests WHERE id = $1 AND state = 'open'")
                .bind(request_id)
                .fetch_optional(&mut *tx)
                .await?;
        let (kind, donor_id): (Option<String>, i64) = match &row {
            Some(r) => (Some(r.try_get("kind")?), r.try_get("donor_id")?),
            None => (None, 0),
        };
        if kind.as_deref() != Some("workup") {
            return Err(RegistryError::Conflict(format!(
                "request {request_id} is not an open workup"
            )));
        }
        // Workup consent is taken at the information session; every later step needs it.
        if milestone != "information_session" {
            require_consent(
                &mut tx,
                donor_id,
                "workup",
                &format!("the workup milestone {milestone}"),
            )
            .await?;
        }
        let position = MILESTONES
            .iter()
            .position(|m| *m == milestone)
            .expect("checked above");
        if position > 0 {
            let before = MILESTONES[position - 1];
            let previous: Option<String> = sqlx::query_scalar(
                "SELECT on_date FROM workup_milestones WHERE request_id = $1 AND milestone = $2",
            )
            .bind(request_id)
            .bind(before)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(previous) = previous else {
                return Err(RegistryError::Conflict(format!(
                    "{milestone} comes after {before}, which workup {request_id} has not recorded"
                )));
            };
            if day < date("on", &previous)? {
                return Err(RegistryError::invalid(
                    "on",
                    format!("{on_date} is before {before} ({previous})"),
                ));
            }
        }
        sqlx::query("INSERT INTO workup_milestones (request_id, milestone, on_date, ok) VALUES ($1, $2, $3, $4)")
            .bind(request_id)
            .bind(milestone)
            .bind(on_date)
            .bind(ok)
            .execute(&mut *tx)
            .await
            .map_err(|e| if is_unique_violation(&e) { RegistryError::Conflict(format!("{milestone} is already recorded")) } else { e.into() })?;
        commit_audited(
            tx,
            actor,
            "workup.milestone",
            "request",
            &request_id.to_string(),
            Some(milestone),
        )
        .await?;
        Ok(())
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
            // Returned by donor id: a server refreshes them (`index_update_of`).
            let _ = self
                .close_request(row.try_get("id")?, "cancelled", actor)
                .await?;
            donors.push(row.try_get("donor_id")?);
        }
        Ok(donors)
    }

    /// Whether the donor is in a case stage that needs contact (an open confirmatory typing,
    /// reservation or workup): case managers may then read the donor's identity. Extended
    /// typing is done on a stored sample and needs no contact.
    pub async fn donor_in_open_case(&self, donor_id: i64) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM requests WHERE donor_id = $1 AND state = 'open' AND kind <> 'extended_typing'",
        )
        .bind(donor_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }
}

/// A request as a work list shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RequestRecord {
    pub id: i64,
    pub patient_id: i64,
    pub donor_id: i64,
    pub kind: String,
    pub state: String,
    pub opened_at: String,
    pub closed_at: Option<String>,
    /// A reservation's last day.
    pub expires_on: Option<String>,
}

/// A workup milestone as recorded.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MilestoneRecord {
    pub milestone: String,
    pub on_date: String,
    pub ok: Option<bool>,
}

/// A warning recorded on a case.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CaseWarning {
    pub at: String,
    pub warning: String,
}

/// A request with its milestones (in the workup's order) and warnings.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RequestDetail {
    #[serde(flatten)]
    pub request: RequestRecord,
    pub milestones: Vec<MilestoneRecord>,
    pub warnings: Vec<CaseWarning>,
}

/// Which requests a list shows.
#[derive(Debug, Clone, Default)]
pub struct RequestFilter {
    pub kind: Option<String>,
    pub state: Option<String>,
    pub patient_id: Option<i64>,
    pub donor_id: Option<i64>,
    /// Open reservations whose last day is within this many days of today.
    pub expiring_within_days: Option<u32>,
}

const REQUEST_SELECT: &str =
    "SELECT id, patient_id, donor_id, kind, state, opened_at, closed_at, expires_on FROM requests";

fn request_from_row(r: &sqlx::any::AnyRow) -> Result<RequestRecord> {
    Ok(RequestRecord {
        id: r.try_get("id")?,
        patient_id: r.try_get("patient_id")?,
        donor_id: r.try_get("donor_id")?,
        kind: r.try_get("kind")?,
        state: r.try_get("state")?,
        opened_at: r.try_get("opened_at")?,
        closed_at: r.try_get("closed_at")?,
        expires_on: r.try_get("expires_on")?,
    })
}

impl Registry {
    /// A page of requests.
    pub async fn list_requests(
        &self,
        filter: &RequestFilter,
        page: &PageRequest,
    ) -> Result<Page<RequestRecord>> {
        let mut f = Filter::default();
        if let Some(kind) = &filter.kind {
            if !REQUEST_KINDS.contains(&kind.as_str()) {
                return Err(RegistryError::invalid(
                    "kind",
                    format!(
                        "unknown request kind `{kind}` ({})",
                        REQUEST_KINDS.join(", ")
                    ),
                ));
            }
            f.with("kind = ?", Arg::Text(kind.clone()));
        }
        if let Some(state) = &filter.state {
            if !REQUEST_STATES.contains(&state.as_str()) {
                return Err(RegistryError::invalid(
                    "state",
                    format!(
                        "unknown request state `{state}` ({})",
                        REQUEST_STATES.join(", ")
                    ),
                ));
            }
            f.with("state = ?", Arg::Text(state.clone()));
        }
        if let Some(p) = filter.patient_id {
            f.with("patient_id = ?", Arg::Int(p));
        }
        if let Some(d) = filter.donor_id {
            f.with("donor_id = ?", Arg::Int(d));
        }
        if let Some(days) = filter.expiring_within_days {
            if days > 3650 {
                return Err(RegistryError::invalid(
                    "expiring_within_days",
                    format!("{days} is more than 3650"),
                ));
            }
            let last = format_day((self.today() + days as i64).min(u16::MAX as i64) as u16);
            f.fixed("kind = 'reservation' AND state = 'open'")
                .with("expires_on <= ?", Arg::Text(last));
        }
        self.page(REQUEST_SELECT, "id", f, page, request_from_row, |r| r.id)
            .await
    }

    /// A request with its milestones and warnings.
    pub async fn request_detail(&self, request_id: i64) -> Result<RequestDetail> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{REQUEST_SELECT} WHERE id = $1"
        )))
        .bind(request_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| RegistryError::NotFound(format!("request {request_id}")))?;
        let request = request_from_row(&row)?;
        let rows = sqlx::query(
            "SELECT milestone, on_date, CAST(CASE WHEN ok IS NULL THEN 0 ELSE 1 END AS BIGINT) AS has_ok, \
             CAST(CASE WHEN ok THEN 1 ELSE 0 END AS BIGINT) AS ok_value FROM workup_milestones WHERE request_id = $1",
        )
        .bind(request_id)
        .fetch_all(&self.pool)
        .await?;
        let mut milestones = rows
            .iter()
            .map(|r| {
                Ok(MilestoneRecord {
                    milestone: r.try_get("milestone")?,
                    on_date: r.try_get("on_date")?,
                    ok: (r.try_get::<i64, _>("has_ok")? != 0)
                        .then(|| r.try_get::<i64, _>("ok_value").map(|v| v != 0))
                        .transpose()?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        milestones.sort_by_key(|m| MILESTONES.iter().position(|x| *x == m.milestone));
        let rows = sqlx::query(
            "SELECT at, warning FROM request_warnings WHERE request_id = $1 ORDER BY id",
        )
        .bind(request_id)
        .fetch_all(&self.pool)
        .await?;
        let warnings = rows
            .iter()
            .map(|r| {
                Ok(CaseWarning {
                    at: r.try_get("at")?,
                    warning: r.try_get("warning")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RequestDetail {
            request,
            milestones,
            warnings,
        })
    }
}
