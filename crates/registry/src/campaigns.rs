//! Campaigns: the events donors, samples and organ registrations come from (World Marrow
//! Donor Day, 清明, a school drive, a collective registration…), each held by one station,
//! and each campaign's yield. A station links only its own campaigns, held on or before
//! the day of what it links.

use sqlx::{Any, Row, Transaction};

use crate::audit::commit_audited;
use crate::donors::station_scope;
use crate::page::{Arg, Filter, Page, PageRequest};
use crate::support::{
    ADDRESS_MAX, CODE_MAX, NAME_MAX, NOTE_MAX, check_one_of, check_text, planned_date,
};
use crate::{Actor, Registry, RegistryError, Result};

pub const CAMPAIGN_KINDS: [&str; 6] = [
    "world_marrow_donor_day",
    "qingming",
    "school_drive",
    "collective_registration",
    "blood_drive",
    "other",
];

#[derive(Debug, Clone, Default)]
pub struct NewCampaign {
    pub name: String,
    pub kind: String,
    /// `YYYY-MM-DD`; may be planned ahead (up to two years).
    pub held_on: String,
    pub station: String,
    pub place: String,
    pub note: Option<String>,
}

/// A campaign with its yield so far.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Campaign {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub held_on: String,
    pub station: String,
    pub place: String,
    pub note: Option<String>,
    /// Donors enrolled, samples taken and organ registrations made through it.
    pub enrolments: i64,
    pub samples: i64,
    pub organ_registrations: i64,
}

pub(crate) const CAMPAIGN_SELECT: &str = "SELECT c.id, c.name, c.kind, c.held_on, c.station_code, c.place, c.note, \
     (SELECT COUNT(*) FROM donors d WHERE d.campaign_id = c.id) AS enrolments, \
     (SELECT COUNT(*) FROM samples s WHERE s.campaign_id = c.id) AS samples, \
     (SELECT COUNT(*) FROM organ_registrations o WHERE o.campaign_id = c.id) AS organ_registrations \
     FROM campaigns c";

pub(crate) fn campaign_from_row(r: &sqlx::any::AnyRow) -> Result<Campaign> {
    Ok(Campaign {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        kind: r.try_get("kind")?,
        held_on: r.try_get("held_on")?,
        station: r.try_get("station_code")?,
        place: r.try_get("place")?,
        note: r.try_get("note")?,
        enrolments: r.try_get("enrolments")?,
        samples: r.try_get("samples")?,
        organ_registrations: r.try_get("organ_registrations")?,
    })
}

/// Refuse a link to campaign `id` unless it exists, was held by `station` and not after
/// `on` (the day of the enrolment, sample or registration).
pub(crate) async fn check_campaign_link(
    tx: &mut Transaction<'_, Any>,
    id: i64,
    station: &str,
    on: &str,
) -> Result<()> {
    let row = sqlx::query("SELECT station_code, held_on FROM campaigns WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| RegistryError::invalid("campaign_id", format!("no campaign {id}")))?;
    let held_by: String = row.try_get("station_code")?;
    let held_on: String = row.try_get("held_on")?;
    if held_by != station {
        return Err(RegistryError::invalid(
            "campaign_id",
            format!("campaign {id} was held by station {held_by}, not {station}"),
        ));
    }
    if held_on.as_str() > on {
        return Err(RegistryError::invalid(
            "campaign_id",
            format!("campaign {id} is held on {held_on}, after {on}"),
        ));
    }
    Ok(())
}

impl Registry {
    /// Create a campaign: a station for itself, or an admin for any station.
    pub async fn create_campaign(&self, new: &NewCampaign, actor: &Actor) -> Result<Campaign> {
        check_text("name", Some(&new.name), true, NAME_MAX)?;
        check_text("station", Some(&new.station), true, CODE_MAX)?;
        check_text("place", Some(&new.place), true, ADDRESS_MAX)?;
        check_text("note", new.note.as_deref(), false, NOTE_MAX)?;
        check_one_of("kind", &new.kind, &CAMPAIGN_KINDS)?;
        planned_date("held_on", &new.held_on, self.today())?;
        match actor.role.as_str() {
            "admin" => {}
            "station" if actor.station.as_deref() == Some(new.station.as_str()) => {}
            "station" => {
                return Err(RegistryError::Forbidden(format!(
                    "station {} is not this station",
                    new.station
                )));
            }
            _ => {
                return Err(RegistryError::Forbidden(
                    "campaigns are created by a station or an admin".into(),
                ));
            }
        }
        if !self.station_exists(&new.station).await? {
            return Err(RegistryError::invalid(
                "station",
                format!("unknown station `{}`", new.station),
            ));
        }
        let (_turn, mut tx) = self.begin().await?;
        let id: i64 = sqlx::query_scalar("INSERT INTO campaigns (name, kind, held_on, station_code, place, note, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id")
            .bind(new.name.trim())
            .bind(&new.kind)
            .bind(&new.held_on)
            .bind(&new.station)
            .bind(new.place.trim())
            .bind(new.note.as_deref())
            .bind(self.now_text())
            .fetch_one(&mut *tx)
            .await?;
        commit_audited(
            tx,
            actor,
            "campaign.create",
            "campaign",
            &id.to_string(),
            None,
        )
        .await?;
        self.campaign(id).await
    }

    pub async fn campaign(&self, id: i64) -> Result<Campaign> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{CAMPAIGN_SELECT} WHERE c.id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| RegistryError::NotFound(format!("campaign {id}")))?;
        campaign_from_row(&row)
    }

    /// Campaigns with their yield, a station's own; optionally one year's (`held_on`).
    pub async fn list_campaigns(
        &self,
        actor: &Actor,
        station: Option<&str>,
        year: Option<i32>,
        page: &PageRequest,
    ) -> Result<Page<Campaign>> {
        let mut f = Filter::default();
        if let Some(station) = station_scope(actor, station)? {
            f.with("c.station_code = ?", Arg::Text(station));
        }
        if let Some(y) = year {
            check_year(y)?;
            f.with("c.held_on >= ?", Arg::Text(format!("{y:04}-01-01")));
            f.with("c.held_on <= ?", Arg::Text(format!("{y:04}-12-31")));
        }
        self.page(CAMPAIGN_SELECT, "c.id", f, page, campaign_from_row, |c| {
            c.id
        })
        .await
    }
}

/// A report or list year the store can hold.
pub(crate) fn check_year(year: i32) -> Result<()> {
    if (1900..=2078).contains(&year) {
        Ok(())
    } else {
        Err(RegistryError::invalid(
            "year",
            format!("{year} is not a year between 1900 and 2078"),
        ))
    }
}
