//! Donor status (registry operations §5): transitions, reason codes, and the daily job
//! (TU expiry, reservation expiry, age-out).

use matching::Status;
use matching::model::format_day;
use sqlx::{Any, Transaction};

use crate::audit::audit;
use crate::index_feed::Indexed;
use crate::model::StatusChange;
use crate::support::planned_date;
use crate::{Actor, Registry, RegistryError, Result};

/// Status reason codes (registry operations §5).
pub const REASON_CODES: [&str; 11] = [
    "DO", "DD", "MR", "PR", "TX", "MO", "UC", "NS", "TQ", "OT", "UK",
];

impl Registry {
    /// Change a donor's status by hand (a station, a case manager), enforcing the
    /// transitions: DE is final; TU and DE need a reason code. RS comes from a reservation
    /// request only, and a donor with an open reservation is not made AV by hand (close the
    /// reservation instead).
    pub async fn change_status(
        &self,
        donor_id: i64,
        change: &StatusChange,
        actor: &Actor,
    ) -> Result<Indexed<()>> {
        if change.status == Status::Reserved {
            return Err(RegistryError::Conflict(
                "RS comes from a reservation request (kind reservation), not a status change"
                    .into(),
            ));
        }
        let (_turn, mut tx) = self.begin().await?;
        self.lock_donor(&mut tx, donor_id).await?;
        if change.status == Status::Available {
            let open: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM requests WHERE donor_id = $1 AND kind = 'reservation' AND state = 'open'",
            )
            .bind(donor_id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(r) = open {
                return Err(RegistryError::Conflict(format!(
                    "donor {donor_id} has an open reservation (request {r}): close it to release the donor"
                )));
            }
        }
        self.change_status_in(&mut tx, donor_id, change, actor)
            .await?;
        let changed = self.changed_donor(&mut tx, donor_id).await?;
        tx.commit().await?;
        self.indexed((), &changed)
    }

    /// A status change the registry makes itself (the daily job), without the rules for
    /// changes by hand.
    async fn set_status(&self, donor_id: i64, change: &StatusChange, actor: &Actor) -> Result<()> {
        let (_turn, mut tx) = self.begin().await?;
        self.change_status_in(&mut tx, donor_id, change, actor)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The status change inside a caller's transaction, so a request or donation and the
    /// status it implies commit together or not at all.
    pub(crate) async fn change_status_in(
        &self,
        tx: &mut Transaction<'_, Any>,
        donor_id: i64,
        change: &StatusChange,
        actor: &Actor,
    ) -> Result<()> {
        self.lock_donor(tx, donor_id).await?;
        let current: String = sqlx::query_scalar("SELECT status FROM donors WHERE id = $1")
            .bind(donor_id)
            .fetch_one(&mut **tx)
            .await?;
        let from = Status::from_code(&current).unwrap_or_default();
        let to = change.status;
        if from == Status::Deferred {
            return Err(RegistryError::Conflict(format!(
                "donor {donor_id} is DE (permanently unavailable); DE is final"
            )));
        }
        match to {
            Status::TemporarilyUnavailable | Status::Deferred => {
                let reason = change.reason.as_deref().ok_or_else(|| {
                    RegistryError::invalid("reason", format!("{} needs a reason code", to.code()))
                })?;
                if !REASON_CODES.contains(&reason) {
                    return Err(RegistryError::invalid(
                        "reason",
                        format!(
                            "unknown reason code `{reason}` ({})",
                            REASON_CODES.join(", ")
                        ),
                    ));
                }
            }
            Status::Reserved if change.patient_id.is_none() => {
                return Err(RegistryError::invalid(
                    "patient_id",
                    "RS needs the patient the donor is reserved for",
                ));
            }
            _ => {}
        }
        if let Some(until) = &change.until {
            planned_date("until", until, self.today())?;
        }
        sqlx::query("UPDATE donors SET status = $1, status_reason = $2, status_until = $3, reserved_for = $4 WHERE id = $5")
            .bind(to.code())
            .bind(change.reason.as_deref())
            .bind(change.until.as_deref())
            .bind(if to == Status::Reserved { change.patient_id } else { None })
            .bind(donor_id)
            .execute(&mut **tx)
            .await?;
        sqlx::query("INSERT INTO status_history (donor_id, status, reason, until, patient_id, actor, at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(donor_id)
            .bind(to.code())
            .bind(change.reason.as_deref())
            .bind(change.until.as_deref())
            .bind(change.patient_id)
            .bind(&actor.name)
            .bind(self.now_text())
            .execute(&mut **tx)
            .await?;
        crate::feed::append_change(self, tx, donor_id).await?;
        audit(
            tx,
            actor,
            "status.change",
            "donor",
            &donor_id.to_string(),
            Some(&format!("{} → {}", from.code(), to.code())),
        )
        .await?;
        Ok(())
    }

    /// The daily donor job: TU past its end date → AV; reservations past their last day
    /// cancelled (donor back to AV); donors at the age-out birthday → DE/DO. A server
    /// refreshes its index from the returned ids (`index_update_of`).
    pub async fn run_daily(&self, today: i64, actor: &Actor) -> Result<DailyRun> {
        let today_text = format_day(today as u16);
        let (y, m, d) = matching::model::civil_from_days(today);
        let cutoff = format!("{:04}-{m:02}-{d:02}", y - self.config.age_out as i32);
        let expired: Vec<i64> = sqlx::query_scalar("SELECT id FROM donors WHERE status = 'TU' AND status_until IS NOT NULL AND status_until < $1")
            .bind(&today_text)
            .fetch_all(&self.pool)
            .await?;
        let aged: Vec<i64> = sqlx::query_scalar("SELECT id FROM donors WHERE status <> 'DE' AND donor_type = 'adult' AND birth_date IS NOT NULL AND birth_date <= $1")
            .bind(&cutoff)
            .fetch_all(&self.pool)
            .await?;
        for &id in &expired {
            self.set_status(id, &StatusChange::available(), actor)
                .await?;
        }
        let released = self.expire_reservations(today, actor).await?;
        for &id in &aged {
            self.set_status(
                id,
                &StatusChange {
                    status: Status::Deferred,
                    reason: Some("DO".into()),
                    until: None,
                    patient_id: None,
                },
                actor,
            )
            .await?;
        }
        Ok(DailyRun {
            tu_expired: expired,
            reservations_released: released,
            aged_out: aged,
        })
    }
}

/// What the daily donor job changed (donor ids).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct DailyRun {
    pub tu_expired: Vec<i64>,
    pub reservations_released: Vec<i64>,
    pub aged_out: Vec<i64>,
}

impl DailyRun {
    /// Every donor changed, for the index.
    pub fn donors(&self) -> impl Iterator<Item = i64> + '_ {
        self.tu_expired
            .iter()
            .chain(&self.reservations_released)
            .chain(&self.aged_out)
            .copied()
    }
}
