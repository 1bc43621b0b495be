//! Organ, tissue and whole-body donation: registrations of intent (18+, one active per
//! national id, change, final revocation) and donation cases (family consent and a Red
//! Cross witness required).

use sqlx::{Any, Row, Transaction};

use crate::audit::{audit, commit_audited};
use crate::campaigns::check_campaign_link;
use crate::donors::station_scope;
use crate::national_id::normalise_national_id;
use crate::page::{Arg, Filter, Page, PageRequest};
use crate::support::{
    NAME_MAX, check_choice, check_one_of, check_text, is_unique_violation, past_date,
};
use crate::{Actor, Registry, RegistryError, Result};

pub const ORGANS: [&str; 6] = [
    "kidney",
    "liver",
    "heart",
    "lung",
    "pancreas",
    "small_bowel",
];

pub const TISSUES: [&str; 1] = ["cornea"];

/// A registration of intent to record.
#[derive(Debug, Clone, Default)]
pub struct NewOrganRegistration {
    pub family_name: String,
    pub given_name: String,
    pub national_id: String,
    /// `YYYY-MM-DD`; 18 or older on `registered_on`.
    pub birth_date: String,
    pub organs: Vec<String>,
    pub tissues: Vec<String>,
    pub whole_body: bool,
    /// The station that takes it: a station's own; an admin names one.
    pub station: Option<String>,
    /// Default: the station's region.
    pub region: Option<String>,
    pub ethnicity: Option<String>,
    /// online, paper or drive.
    pub channel: String,
    /// The local date it was made (a paper form's own date); default today.
    pub registered_on: Option<String>,
    pub campaign_id: Option<i64>,
}

/// Ethnicity as written (one of the 56 nationalities, or as the form gives it).
pub const ETHNICITY_MAX: usize = 32;

pub const CHANNELS: [&str; 3] = ["online", "paper", "drive"];

/// A registration checked and ready to insert.
pub(crate) struct CheckedRegistration {
    pub national_id: String,
    pub station: String,
    pub registered_on: String,
}

impl Registry {
    /// Check a registration as every path (API, CLI, CSV import) must: the field at fault
    /// is named. Reads the station (and its region) but writes nothing.
    pub(crate) async fn check_registration(
        &self,
        new: &NewOrganRegistration,
        actor: &Actor,
    ) -> Result<CheckedRegistration> {
        let today = self.today();
        let registered_on = match &new.registered_on {
            Some(d) => {
                past_date("registered_on", d, today)?;
                d.clone()
            }
            None => matching::model::format_day(today as u16),
        };
        let on = crate::support::date("registered_on", &registered_on)?;
        let birth = past_date("birth_date", &new.birth_date, today)?;
        if matching::model::age_in_years(birth as u16, on) < 18 {
            return Err(RegistryError::invalid(
                "birth_date",
                "registration is for adults (18+)",
            ));
        }
        let organs: Vec<&str> = new.organs.iter().map(String::as_str).collect();
        let tissues: Vec<&str> = new.tissues.iter().map(String::as_str).collect();
        check_choice(&organs, &ORGANS, "organs")?;
        check_choice(&tissues, &TISSUES, "tissues")?;
        if organs.is_empty() && tissues.is_empty() && !new.whole_body {
            return Err(RegistryError::invalid(
                "organs",
                "choose organs, tissues or whole-body donation",
            ));
        }
        check_text("family_name", Some(&new.family_name), true, NAME_MAX)?;
        check_text("given_name", Some(&new.given_name), true, NAME_MAX)?;
        check_text("region", new.region.as_deref(), false, NAME_MAX)?;
        check_text("ethnicity", new.ethnicity.as_deref(), false, ETHNICITY_MAX)?;
        check_one_of("channel", &new.channel, &CHANNELS)?;
        let national_id = normalise_national_id("national_id", &new.national_id)?;
        let station = match (actor.role.as_str(), &actor.station, &new.station) {
            ("station", Some(own), Some(asked)) if own != asked => {
                return Err(RegistryError::Forbidden(format!(
                    "station {asked} is not this station"
                )));
            }
            ("station", Some(own), _) => own.clone(),
            ("station", None, _) => {
                return Err(RegistryError::Forbidden(
                    "a station's registration names its station".into(),
                ));
            }
            ("admin", _, Some(asked)) => asked.clone(),
            ("admin", _, None) => {
                return Err(RegistryError::invalid(
                    "station",
                    "name the station that takes the registration",
                ));
            }
            _ => {
                return Err(RegistryError::Forbidden(
                    "registrations are taken by a station (or an admin for one)".into(),
                ));
            }
        };
        if !self.station_exists(&station).await? {
            return Err(RegistryError::invalid(
                "station",
                format!("unknown station `{station}`"),
            ));
        }
        Ok(CheckedRegistration {
            national_id,
            station,
            registered_on,
        })
    }

    /// Insert a checked registration inside a caller's transaction (audited there).
    pub(crate) async fn insert_registration(
        &self,
        tx: &mut Transaction<'_, Any>,
        new: &NewOrganRegistration,
        checked: &CheckedRegistration,
        actor: &Actor,
    ) -> Result<i64> {
        if let Some(c) = new.campaign_id {
            check_campaign_link(tx, c, &checked.station, &checked.registered_on).await?;
        }
        let region = match &new.region {
            Some(r) if !r.trim().is_empty() => r.trim().to_string(),
            _ => {
                sqlx::query_scalar("SELECT region FROM stations WHERE code = $1")
                    .bind(&checked.station)
                    .fetch_one(&mut **tx)
                    .await?
            }
        };
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO organ_registrations (family_name, given_name, national_id, birth_date, organs, tissues, whole_body, registered_at, station_code, \
             region, ethnicity, channel, registered_on, campaign_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
        )
        .bind(new.family_name.trim())
        .bind(new.given_name.trim())
        .bind(&checked.national_id)
        .bind(&new.birth_date)
        .bind(new.organs.join(","))
        .bind(new.tissues.join(","))
        .bind(new.whole_body)
        .bind(self.now_text())
        .bind(&checked.station)
        .bind(region)
        .bind(new.ethnicity.as_deref().map(str::trim).filter(|e| !e.is_empty()))
        .bind(&new.channel)
        .bind(&checked.registered_on)
        .bind(new.campaign_id)
        .fetch_one(&mut **tx)
        .await
        .map_err(|e| if is_unique_violation(&e) { RegistryError::Conflict("an active registration exists for this national id".into()) } else { e.into() })?;
        audit(
            tx,
            actor,
            "organ.register",
            "organ_registration",
            &id.to_string(),
            Some(&new.channel),
        )
        .await?;
        Ok(id)
    }

    /// Register an intent to donate organs, tissues or the whole body after death (18+ on
    /// the day it is made). One active registration per national id.
    pub async fn register_organ_donation(
        &self,
        new: &NewOrganRegistration,
        actor: &Actor,
    ) -> Result<i64> {
        let checked = self.check_registration(new, actor).await?;
        let (_turn, mut tx) = self.begin().await?;
        let id = self
            .insert_registration(&mut tx, new, &checked, actor)
            .await?;
        tx.commit().await?;
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
            .bind(self.now_text())
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
        let n = sqlx::query("UPDATE organ_registrations SET state = 'revoked', revoked_at = $1, revoked_on = $3 WHERE id = $2 AND state = 'active'")
            .bind(self.now_text())
            .bind(id)
            .bind(matching::model::format_day(self.today() as u16))
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
    pub region: String,
    pub ethnicity: Option<String>,
    pub channel: String,
    pub campaign_id: Option<i64>,
    /// The local date it was made (a paper form's own date).
    pub registered_on: String,
    pub registered_at: String,
    pub changed_at: Option<String>,
    pub revoked_at: Option<String>,
    pub revoked_on: Option<String>,
}

/// Registration states.
pub const REGISTRATION_STATES: [&str; 2] = ["active", "revoked"];

const REGISTRATION_SELECT: &str = "SELECT id, family_name, given_name, national_id, birth_date, organs, tissues, \
     CAST(CASE WHEN whole_body THEN 1 ELSE 0 END AS BIGINT) AS whole_body, state, station_code, region, ethnicity, channel, campaign_id, \
     COALESCE(registered_on, SUBSTR(registered_at, 1, 10)) AS registered_on, registered_at, changed_at, revoked_at, revoked_on \
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
        region: r.try_get("region")?,
        ethnicity: r.try_get("ethnicity")?,
        channel: r.try_get("channel")?,
        campaign_id: r.try_get("campaign_id")?,
        registered_on: r.try_get("registered_on")?,
        registered_at: r.try_get("registered_at")?,
        changed_at: r.try_get("changed_at")?,
        revoked_at: r.try_get("revoked_at")?,
        revoked_on: r.try_get("revoked_on")?,
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
            check_one_of("state", state, &REGISTRATION_STATES)?;
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
