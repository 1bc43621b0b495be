//! Consents per scope (registry operations §4): recruitment lists the donor, withdrawal
//! de-lists at once and warns of open workups.

use sqlx::{Any, Row, Transaction};

use crate::audit::commit_audited;
use crate::index_feed::Indexed;
use crate::model::ConsentInput;
use crate::support::{ID_MAX, NOTE_MAX, check_text};
use crate::{Actor, Registry, RegistryError, Result};

/// Consent scopes (registry operations §4).
pub const CONSENT_SCOPES: [&str; 6] = [
    "recruitment",
    "confirmatory_typing",
    "workup",
    "follow_up_contact",
    "research",
    "international_sharing",
];

/// A consent record.
#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct ConsentRecord {
    pub id: i64,
    pub scope: String,
    pub form_version: String,
    pub given_at: String,
    pub withdrawn_at: Option<String>,
    pub recorded_by: String,
    pub note: Option<String>,
}

pub(crate) async fn insert_consent(
    tx: &mut Transaction<'_, Any>,
    donor_id: i64,
    scope: &str,
    consent: &ConsentInput,
    actor: &Actor,
    now: &str,
) -> Result<i64> {
    check_text("form_version", Some(&consent.form_version), true, ID_MAX)?;
    check_text("note", consent.note.as_deref(), false, NOTE_MAX)?;
    Ok(sqlx::query_scalar("INSERT INTO consents (donor_id, scope, form_version, given_at, recorded_by, note) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id")
        .bind(donor_id)
        .bind(scope)
        .bind(&consent.form_version)
        .bind(now)
        .bind(&actor.name)
        .bind(consent.note.as_deref())
        .fetch_one(&mut **tx)
        .await?)
}

/// Fail unless donor `donor_id` has a `scope` consent given and not withdrawn; `step` says
/// what needed it (the error names both).
pub(crate) async fn require_consent(
    tx: &mut Transaction<'_, Any>,
    donor_id: i64,
    scope: &str,
    step: &str,
) -> Result<()> {
    let in_force: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM consents WHERE donor_id = $1 AND scope = $2 AND withdrawn_at IS NULL",
    )
    .bind(donor_id)
    .bind(scope)
    .fetch_one(&mut **tx)
    .await?;
    if in_force == 0 {
        return Err(RegistryError::ConsentRequired {
            donor_id,
            scope: scope.to_string(),
            step: step.to_string(),
        });
    }
    Ok(())
}

/// Whether something recorded for a donor belongs to confirmatory typing: it names a
/// confirmatory-typing request (`request_id`, checked to be the donor's and open), or the
/// donor has an open one (a sample drawn or typed then is that typing's).
pub(crate) async fn in_confirmatory_typing(
    tx: &mut Transaction<'_, Any>,
    donor_id: i64,
    request_id: Option<i64>,
) -> Result<bool> {
    if let Some(request_id) = request_id {
        let row = sqlx::query("SELECT donor_id, kind, state FROM requests WHERE id = $1")
            .bind(request_id)
            .fetch_optional(&mut **tx)
            .await?;
        let Some(row) = row else {
            return Err(RegistryError::invalid(
                "request_id",
                format!("request {request_id} does not exist"),
            ));
        };
        let (owner, kind, state): (i64, String, String) = (
            row.try_get("donor_id")?,
            row.try_get("kind")?,
            row.try_get("state")?,
        );
        if owner != donor_id || state != "open" || !kind.ends_with("_typing") {
            return Err(RegistryError::invalid(
                "request_id",
                format!("request {request_id} is not an open typing request for donor {donor_id}"),
            ));
        }
        if kind == "confirmatory_typing" {
            return Ok(true);
        }
    }
    let open: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM requests WHERE donor_id = $1 AND kind = 'confirmatory_typing' AND state = 'open'",
    )
    .bind(donor_id)
    .fetch_one(&mut **tx)
    .await?;
    Ok(open > 0)
}

/// The consents a case manager takes, for donors in their cases (§4, §6–7).
pub const CASE_CONSENT_SCOPES: [&str; 3] = ["confirmatory_typing", "workup", "follow_up_contact"];

/// Scopes whose withdrawal during a workup endangers the patient.
const CASE_SCOPES_AT_RISK: [&str; 3] = ["recruitment", "confirmatory_typing", "workup"];

impl Registry {
    /// Who may record a consent for a donor: the donor's own station (any scope), a case
    /// manager (the case scopes, for a donor with an open request or a donation), an admin.
    async fn may_record_consent(
        &self,
        tx: &mut Transaction<'_, Any>,
        donor_id: i64,
        scope: &str,
        actor: &Actor,
    ) -> Result<()> {
        match actor.role.as_str() {
            "station" => {
                let station: String =
                    sqlx::query_scalar("SELECT station_code FROM donors WHERE id = $1")
                        .bind(donor_id)
                        .fetch_one(&mut **tx)
                        .await?;
                if actor.station.as_deref() != Some(station.as_str()) {
                    return Err(RegistryError::Forbidden(format!(
                        "donor {donor_id} belongs to another station"
                    )));
                }
            }
            "case_manager" => {
                if !CASE_CONSENT_SCOPES.contains(&scope) {
                    return Err(RegistryError::Forbidden(format!(
                        "a case manager records {} consents, not {scope}",
                        CASE_CONSENT_SCOPES.join(", ")
                    )));
                }
                let in_case: i64 = sqlx::query_scalar(
                    "SELECT (SELECT COUNT(*) FROM requests WHERE donor_id = $1 AND state = 'open')                      + (SELECT COUNT(*) FROM donations WHERE donor_id = $1)",
                )
                .bind(donor_id)
                .fetch_one(&mut **tx)
                .await?;
                if in_case == 0 {
                    return Err(RegistryError::Forbidden(format!(
                        "donor {donor_id} is in no open case"
                    )));
                }
            }
            "coordinator" | "auditor" => {
                return Err(RegistryError::Forbidden(format!(
                    "a {} does not record consents",
                    actor.role
                )));
            }
            _ => {}
        }
        Ok(())
    }

    pub async fn give_consent(
        &self,
        donor_id: i64,
        scope: &str,
        consent: &ConsentInput,
        actor: &Actor,
    ) -> Result<Indexed<i64>> {
        if !CONSENT_SCOPES.contains(&scope) {
            return Err(RegistryError::invalid(
                "scope",
                format!(
                    "unknown consent scope `{scope}` ({})",
                    CONSENT_SCOPES.join(", ")
                ),
            ));
        }
        check_text("form_version", Some(&consent.form_version), true, ID_MAX)?;
        check_text("note", consent.note.as_deref(), false, NOTE_MAX)?;
        let (_turn, mut tx) = self.begin().await?;
        self.lock_donor(&mut tx, donor_id).await?;
        self.may_record_consent(&mut tx, donor_id, scope, actor)
            .await?;
        let id = insert_consent(&mut tx, donor_id, scope, consent, actor, &self.now_text()).await?;
        if scope == "recruitment" {
            sqlx::query("UPDATE donors SET listed = TRUE WHERE id = $1 AND status <> 'DE'")
                .bind(donor_id)
                .execute(&mut *tx)
                .await?;
        }
        let changed = self.changed_donor(&mut tx, donor_id).await?;
        commit_audited(
            tx,
            actor,
            "consent.give",
            "donor",
            &donor_id.to_string(),
            Some(scope),
        )
        .await?;
        self.indexed(id, &changed)
    }

    /// Withdraw a consent. Withdrawing recruitment consent takes the donor out of every
    /// search at once (the caller applies it to the index after commit). Returns warnings
    /// (e.g. the donor is in a workup), never blocks.
    pub async fn withdraw_consent(
        &self,
        donor_id: i64,
        scope: &str,
        actor: &Actor,
        reason: Option<&str>,
    ) -> Result<Indexed<Vec<String>>> {
        if !CONSENT_SCOPES.contains(&scope) {
            return Err(RegistryError::invalid(
                "scope",
                format!("unknown consent scope `{scope}`"),
            ));
        }
        check_text("reason", reason, false, NOTE_MAX)?;
        let (_turn, mut tx) = self.begin().await?;
        self.lock_donor(&mut tx, donor_id).await?;
        // A donor may withdraw any consent at any stage; who records it is checked as for
        // giving one, except that a case manager records any scope's withdrawal.
        let as_recorder = if actor.role == "case_manager" {
            "workup"
        } else {
            scope
        };
        self.may_record_consent(&mut tx, donor_id, as_recorder, actor)
            .await?;
        let n = sqlx::query("UPDATE consents SET withdrawn_at = $1 WHERE donor_id = $2 AND scope = $3 AND withdrawn_at IS NULL")
            .bind(self.now_text())
            .bind(donor_id)
            .bind(scope)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(RegistryError::NotFound(format!(
                "an active {scope} consent of donor {donor_id}"
            )));
        }
        if scope == "recruitment" {
            sqlx::query("UPDATE donors SET listed = FALSE WHERE id = $1")
                .bind(donor_id)
                .execute(&mut *tx)
                .await?;
        }
        let mut warnings = Vec::new();
        if CASE_SCOPES_AT_RISK.contains(&scope) {
            warnings = self.warn_open_workups(&mut tx, donor_id, scope).await?;
        }
        let changed = self.changed_donor(&mut tx, donor_id).await?;
        commit_audited(
            tx,
            actor,
            "consent.withdraw",
            "donor",
            &donor_id.to_string(),
            Some(&format!(
                "{scope}{}",
                reason.map(|r| format!(": {r}")).unwrap_or_default()
            )),
        )
        .await?;
        self.indexed(warnings, &changed)
    }

    /// A withdrawal during an open workup: a warning for each, loud after G-CSF start
    /// (the patient's conditioning has begun), recorded on the case as well as returned.
    async fn warn_open_workups(
        &self,
        tx: &mut Transaction<'_, Any>,
        donor_id: i64,
        scope: &str,
    ) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT r.id, r.patient_id, (SELECT COUNT(*) FROM workup_milestones m WHERE m.request_id = r.id AND m.milestone = 'gcsf_start') AS conditioning              FROM requests r WHERE r.donor_id = $1 AND r.kind = 'workup' AND r.state = 'open' ORDER BY r.id",
        )
        .bind(donor_id)
        .fetch_all(&mut **tx)
        .await?;
        let mut warnings = Vec::new();
        for row in rows {
            let (request_id, patient_id, conditioning): (i64, i64, i64) = (
                row.try_get("id")?,
                row.try_get("patient_id")?,
                row.try_get("conditioning")?,
            );
            let warning = if conditioning > 0 {
                format!(
                    "DANGER: donor {donor_id} withdrew {scope} consent after G-CSF start in workup {request_id}: patient {patient_id} has started conditioning and cannot survive without a transplant; tell the transplant centre at once"
                )
            } else {
                format!(
                    "WARNING: donor {donor_id} withdrew {scope} consent during open workup {request_id} for patient {patient_id}; tell the transplant centre before conditioning starts"
                )
            };
            sqlx::query(
                "INSERT INTO request_warnings (request_id, at, warning) VALUES ($1, $2, $3)",
            )
            .bind(request_id)
            .bind(self.now_text())
            .bind(&warning)
            .execute(&mut **tx)
            .await?;
            warnings.push(warning);
        }
        Ok(warnings)
    }

    /// A donor's consent records, oldest first.
    pub async fn consents(&self, donor_id: i64) -> Result<Vec<ConsentRecord>> {
        Ok(sqlx::query_as::<_, ConsentRecord>("SELECT id, scope, form_version, given_at, withdrawn_at, recorded_by, note FROM consents WHERE donor_id = $1 ORDER BY given_at, id")
            .bind(donor_id)
            .fetch_all(&self.pool)
            .await?)
    }
}
