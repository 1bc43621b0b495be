//! Organ, tissue and whole-body donation: registrations of intent (18+, one active per
//! national id, change, final revocation) and donation cases (family consent and a Red
//! Cross witness required).

use sqlx::{Any, Row, Transaction};

use crate::audit::commit_audited;
use crate::donors::station_scope;
use crate::national_id::normalise_national_id;
use crate::page::{Arg, Filter, Page, PageRequest};
use crate::support::{
    NAME_MAX, NOTE_MAX, check_choice, check_text, is_unique_violation, past_date,
};
use crate::{Actor, Registry, RegistryError, Result, now_text};

pub const ORGANS: [&str; 6] = [
    "kidney",
    "liver",
    "heart",
    "lung",
    "pancreas",
    "small_bowel",
];

pub const TISSUES: [&str; 1] = ["cornea"];

impl Registry {
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
        let birth = past_date("birth_date", birth_date, today)?;
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
        check_text("family_name", Some(family_name), true, NAME_MAX)?;
        check_text("given_name", Some(given_name), true, NAME_MAX)?;
        let national_id = normalise_national_id("national_id", national_id)?;
        if actor.role == "station" && actor.station.is_none() {
            return Err(RegistryError::Forbidden(
                "a station's registration names its station".into(),
            ));
        }
        let (_turn, mut tx) = self.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO organ_registrations (family_name, given_name, national_id, birth_date, organs, tissues, whole_body, registered_at, station_code) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(family_name)
        .bind(given_name)
        .bind(&national_id)
        .bind(birth_date)
        .bind(organs.join(","))
        .bind(tissues.join(","))
        .bind(whole_body)
        .bind(now_text())
        .bind(actor.station.as_deref())
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| if is_unique_violation(&e) { RegistryError::Conflict("an active registration exists for this national id".into()) } else { e.into() })?;
        commit_audited(
            tx,
            actor,
            "organ.register",
            "organ_registration",
            &id.to_string(),
            None,
        )
        .await?;
        Ok(id)
    }

    /// Change what an active registration gives. Only its station, or an admin.
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
        owned_registration(&mut tx, id, actor).await?;
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
        commit_audited(
            tx,
            actor,
            "organ.change",
            "organ_registration",
            &id.to_string(),
            None,
        )
        .await?;
        Ok(())
    }

    /// Revoke a registration: final for that registration. Only its station, or an admin.
    pub async fn revoke_organ_donation(&self, id: i64, actor: &Actor) -> Result<()> {
        let (_turn, mut tx) = self.begin().await?;
        owned_registration(&mut tx, id, actor).await?;
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
        commit_audited(
            tx,
            actor,
            "organ.revoke",
            "organ_registration",
            &id.to_string(),
            None,
        )
        .await?;
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
        past_date("died_on", died_on, self.today())?;
        check_text("family_consent", Some(family_consent), false, NOTE_MAX)?;
        check_text("witness", Some(witness), false, NAME_MAX)?;
        check_text("outcome", outcome, false, NOTE_MAX)?;
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
        commit_audited(tx, actor, "organ.case", "organ_case", &id.to_string(), None).await?;
        Ok(id)
    }
}

/// Refuse unless `actor` may change registration `id`: the station that took it, or an
/// admin (registrations from before stations were recorded: an admin only).
async fn owned_registration(tx: &mut Transaction<'_, Any>, id: i64, actor: &Actor) -> Result<()> {
    let owner: Option<Option<String>> =
        sqlx::query_scalar("SELECT station_code FROM organ_registrations WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
    let owner = owner.ok_or_else(|| RegistryError::NotFound(format!("organ registration {id}")))?;
    if actor.role == "admin" || (owner.is_some() && owner == actor.station) {
        Ok(())
    } else {
        Err(RegistryError::Forbidden(format!(
            "organ registration {id} belongs to another station"
        )))
    }
}

/// An organ, tissue or body donation registration. Identity data: read by its station or
/// an admin only, and every read is audited.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OrganRegistration {
    pub id: i64,
    pub family_name: String,
    pub given_name: String,
    /// In a list: masked to its last four characters.
    pub national_id: String,
    pub birth_date: String,
    pub organs: Vec<String>,
    pub tissues: Vec<String>,
    pub whole_body: bool,
    pub state: String,
    pub station: Option<String>,
    pub registered_at: String,
    pub changed_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// Registration states.
pub const REGISTRATION_STATES: [&str; 2] = ["active", "revoked"];

const REGISTRATION_SELECT: &str = "SELECT id, family_name, given_name, national_id, birth_date, organs, tissues, \
     CAST(CASE WHEN whole_body THEN 1 ELSE 0 END AS BIGINT) AS whole_body, state, station_code, registered_at, changed_at, revoked_at \
     FROM organ_registrations";

fn registration_from_row(r: &sqlx::any::AnyRow) -> Result<OrganRegistration> {
    let list = |c: &str| -> Result<Vec<String>> {
        Ok(r.try_get::<String, _>(c)?
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect())
    };
    Ok(OrganRegistration {
        id: r.try_get("id")?,
        family_name: r.try_get("family_name")?,
        given_name: r.try_get("given_name")?,
        national_id: r.try_get("national_id")?,
        birth_date: r.try_get("birth_date")?,
        organs: list("organs")?,
        tissues: list("tissues")?,
        whole_body: r.try_get::<i64, _>("whole_body")? != 0,
        state: r.try_get("state")?,
        station: r.try_get("station_code")?,
        registered_at: r.try_get("registered_at")?,
        changed_at: r.try_get("changed_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

fn masked(id: &str) -> String {
    let keep = id.chars().count().saturating_sub(4);
    id.chars()
        .enumerate()
        .map(|(i, c)| if i < keep { '*' } else { c })
        .collect()
}

impl Registry {
    /// A page of registrations: a station's own (an admin's: any station's), national ids
    /// masked; the read is audited.
    pub async fn list_organ_registrations(
        &self,
        actor: &Actor,
        station: Option<&str>,
        state: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<OrganRegistration>> {
        if !matches!(actor.role.as_str(), "station" | "admin") {
            return Err(RegistryError::Forbidden(
                "organ registrations are read by their station or an admin".into(),
            ));
        }
        let mut f = Filter::default();
        if let Some(station) = station_scope(actor, station)? {
            f.with("station_code = ?", Arg::Text(station));
        }
        if let Some(state) = state {
            if !REGISTRATION_STATES.contains(&state) {
                return Err(RegistryError::invalid(
                    "state",
                    format!("`{state}` is not one of {}", REGISTRATION_STATES.join(", ")),
                ));
            }
            f.with("state = ?", Arg::Text(state.into()));
        }
        let mut page = self
            .page(
                REGISTRATION_SELECT,
                "id",
                f,
                page,
                registration_from_row,
                |r| r.id,
            )
            .await?;
        for r in &mut page.items {
            r.national_id = masked(&r.national_id);
        }
        let (_turn, tx) = self.begin().await?;
        let ids = page
            .items
            .iter()
            .map(|r| r.id.to_string())
            .collect::<Vec<_>>()
            .join(",");
        commit_audited(
            tx,
            actor,
            "organ.list",
            "organ_registration",
            "*",
            Some(&ids),
        )
        .await?;
        Ok(page)
    }

    /// One registration, in full, for its station or an admin; the read is audited.
    pub async fn organ_registration(&self, id: i64, actor: &Actor) -> Result<OrganRegistration> {
        let (_turn, mut tx) = self.begin().await?;
        owned_registration(&mut tx, id, actor).await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{REGISTRATION_SELECT} WHERE id = $1"
        )))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        let registration = registration_from_row(&row)?;
        commit_audited(
            tx,
            actor,
            "organ.read",
            "organ_registration",
            &id.to_string(),
            None,
        )
        .await?;
        Ok(registration)
    }
}
