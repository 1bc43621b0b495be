//! Consents per scope (registry operations §4): recruitment lists the donor, withdrawal
//! de-lists at once and warns of open workups.

use sqlx::{Any, Transaction};

use crate::audit::commit_audited;
use crate::index_feed::Indexed;
use crate::model::ConsentInput;
use crate::{Actor, Registry, RegistryError, Result, now_text};

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
) -> Result<i64> {
    Ok(sqlx::query_scalar("INSERT INTO consents (donor_id, scope, form_version, given_at, recorded_by, note) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id")
        .bind(donor_id)
        .bind(scope)
        .bind(&consent.form_version)
        .bind(now_text())
        .bind(&actor.name)
        .bind(consent.note.as_deref())
        .fetch_one(&mut **tx)
        .await?)
}

impl Registry {
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
        if consent.form_version.trim().is_empty() {
            return Err(RegistryError::invalid("form_version", "required"));
        }
        let (_turn, mut tx) = self.begin().await?;
        self.lock_donor(&mut tx, donor_id).await?;
        let id = insert_consent(&mut tx, donor_id, scope, consent, actor).await?;
        if scope == "recruitment" {
            sqlx::query("UPDATE donors SET listed = TRUE WHERE id = $1 AND status <> 'DE'")
                .bind(donor_id)
                .execute(&mut *tx)
                .await?;
        }
        let changed = self.donor_in(&mut tx, donor_id).await?;
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
        let (_turn, mut tx) = self.begin().await?;
        self.lock_donor(&mut tx, donor_id).await?;
        let n = sqlx::query("UPDATE consents SET withdrawn_at = $1 WHERE donor_id = $2 AND scope = $3 AND withdrawn_at IS NULL")
            .bind(now_text())
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
        let mut warnings = Vec::new();
        if scope == "recruitment" {
            sqlx::query("UPDATE donors SET listed = FALSE WHERE id = $1")
                .bind(donor_id)
                .execute(&mut *tx)
                .await?;
            let open_workups: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM requests WHERE donor_id = $1 AND kind = 'workup' AND state = 'open'")
                .bind(donor_id)
                .fetch_one(&mut *tx)
                .await?;
            if open_workups > 0 {
                warnings.push(format!(
                    "WARNING: donor {donor_id} has {open_workups} open workup(s): if the patient has started conditioning, this withdrawal endangers the patient's life; the transplant centre must be told at once"
                ));
            }
        }
        let changed = self.donor_in(&mut tx, donor_id).await?;
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

    /// A donor's consent records, oldest first.
    pub async fn consents(&self, donor_id: i64) -> Result<Vec<ConsentRecord>> {
        Ok(sqlx::query_as::<_, ConsentRecord>("SELECT id, scope, form_version, given_at, withdrawn_at, recorded_by, note FROM consents WHERE donor_id = $1 ORDER BY id")
            .bind(donor_id)
            .fetch_all(&self.pool)
            .await?)
    }
}
