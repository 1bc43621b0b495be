//! Donors: enrolment (age limits, station, duplicate national id, HLA validated, listing only
//! with recruitment consent), reads, audited identity reads, attribute and contact updates.

use matching::model::age_in_years;
use matching::{DonorType, Status};
use sqlx::{Any, Row, Transaction};

use crate::audit::commit_audited;
use crate::campaigns::check_campaign_link;
use crate::consents::insert_consent;
use crate::index_feed::Indexed;
use crate::model::{Donor, Identity, NewDonor, rh_code};
use crate::national_id::normalise_national_id;
use crate::page::{Arg, Filter, Page, PageRequest};
use crate::support::{
    ADDRESS_MAX, EMAIL_MAX, ID_MAX, NAME_MAX, PHONE_MAX, check_text, donor_from_row, donor_select,
    is_unique_violation, past_date, validate_gl,
};
use crate::{Actor, Registry, RegistryError, Result, make_grid};

/// Each matched locus's two positions as text.
pub(crate) async fn insert_identity(
    tx: &mut Transaction<'_, Any>,
    donor_id: i64,
    identity: &Identity,
) -> Result<()> {
    if identity.family_name.trim().is_empty() || identity.given_name.trim().is_empty() {
        return Err(RegistryError::invalid(
            "identity",
            "family and given name are required",
        ));
    }
    sqlx::query(
        "INSERT INTO donor_identity (donor_id, family_name, given_name, national_id, phone, email, address, emergency1_name, emergency1_phone, emergency2_name, emergency2_phone) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(donor_id)
    .bind(&identity.family_name)
    .bind(&identity.given_name)
    .bind(identity.national_id.as_deref())
    .bind(identity.phone.as_deref())
    .bind(identity.email.as_deref())
    .bind(identity.address.as_deref())
    .bind(identity.emergency[0].0.as_deref())
    .bind(identity.emergency[0].1.as_deref())
    .bind(identity.emergency[1].0.as_deref())
    .bind(identity.emergency[1].1.as_deref())
    .execute(&mut **tx)
    .await
    .map_err(|e| if is_unique_violation(&e) { RegistryError::Conflict("a donor with this national id is already enrolled".into()) } else { e.into() })?;
    Ok(())
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
    /// Enrol a donor: validates age, station, identity uniqueness and HLA; lists the donor only
    /// with a recruitment consent; everything in one transaction, audited.
    pub async fn enrol(&self, new: &NewDonor, actor: &Actor, today: i64) -> Result<Donor> {
        if new.external_id.trim().is_empty() {
            return Err(RegistryError::invalid("external_id", "must not be empty"));
        }
        if new.donor_type == DonorType::Adult {
            let birth = new
                .birth_date
                .as_deref()
                .ok_or_else(|| RegistryError::invalid("birth_date", "required at enrolment"))?;
            let age = age_in_years(past_date("birth_date", birth, today)? as u16, today);
            let (lo, hi) = (self.config.min_enrol_age, self.config.max_enrol_age);
            if age < lo || age > hi {
                return Err(RegistryError::invalid(
                    "birth_date",
                    format!("age {age} is outside the enrolment limits {lo}–{hi}"),
                ));
            }
        } else if let Some(b) = &new.birth_date {
            past_date("birth_date", b, today)?;
        }
        if let Some(d) = &new.cmv_date {
            past_date("cmv_date", d, today)?;
        }
        check_text("external_id", Some(&new.external_id), true, ID_MAX)?;
        check_text("population", Some(&new.population), false, ID_MAX)?;
        if let Some(consent) = &new.recruitment_consent {
            check_text(
                "consent_form_version",
                Some(&consent.form_version),
                true,
                ID_MAX,
            )?;
        }
        if let Some(i) = &new.identity {
            check_text("identity.family_name", Some(&i.family_name), true, NAME_MAX)?;
            check_text("identity.given_name", Some(&i.given_name), true, NAME_MAX)?;
            check_text("identity.phone", i.phone.as_deref(), false, PHONE_MAX)?;
            check_text("identity.email", i.email.as_deref(), false, EMAIL_MAX)?;
            check_text("identity.address", i.address.as_deref(), false, ADDRESS_MAX)?;
            for (n, (name, phone)) in i.emergency.iter().enumerate() {
                let k = n + 1;
                check_text(
                    &format!("identity.emergency{k}_name"),
                    name.as_deref(),
                    false,
                    NAME_MAX,
                )?;
                check_text(
                    &format!("identity.emergency{k}_phone"),
                    phone.as_deref(),
                    false,
                    PHONE_MAX,
                )?;
            }
        }
        // The identity as stored: its national id normalised (one person, one id).
        let identity = match &new.identity {
            Some(i) => Some(Identity {
                national_id: i
                    .national_id
                    .as_deref()
                    .map(|n| normalise_national_id("identity.national_id", n))
                    .transpose()?,
                ..i.clone()
            }),
            None => None,
        };
        let gl = match &new.typing {
            Some(t) => Some(validate_gl(self, &t.gl)?),
            None => None,
        };
        let (_turn, mut tx) = self.begin().await?;
        let donor_id = self.insert_donor(&mut tx, new).await?;
        if let Some(identity) = &identity {
            insert_identity(&mut tx, donor_id, identity).await?;
        }
        if let Some(consent) = &new.recruitment_consent {
            insert_consent(
                &mut tx,
                donor_id,
                "recruitment",
                consent,
                actor,
                &self.now_text(),
            )
            .await?;
            sqlx::query("UPDATE donors SET listed = TRUE WHERE id = $1")
                .bind(donor_id)
                .execute(&mut *tx)
                .await?;
        }
        if let (Some(t), Some(gl)) = (&new.typing, gl) {
            self.insert_typing(&mut tx, donor_id, t, &gl, today).await?;
        }
        crate::feed::append_change(self, &mut tx, donor_id).await?;
        commit_audited(
            tx,
            actor,
            "donor.enrol",
            "donor",
            &donor_id.to_string(),
            None,
        )
        .await?;
        self.donor(donor_id).await
    }

    pub(crate) async fn insert_donor(
        &self,
        tx: &mut Transaction<'_, Any>,
        new: &NewDonor,
    ) -> Result<i64> {
        let station: Option<String> =
            sqlx::query_scalar("SELECT code FROM stations WHERE code = $1")
                .bind(&new.station)
                .fetch_optional(&mut **tx)
                .await?;
        if station.is_none() {
            return Err(RegistryError::invalid(
                "station",
                format!("unknown station `{}`", new.station),
            ));
        }
        let now = self.now_text();
        let today = matching::model::format_day(self.today() as u16);
        if let Some(c) = new.campaign_id {
            check_campaign_link(tx, c, &new.station, &today).await?;
        }
        let cord = new.cord.clone().unwrap_or_default();
        let placeholder = format!("pending:{}", new.external_id);
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO donors (grid, external_id, local_id, station_code, birth_date, sex, abo, rh, cmv, cmv_date, population, donor_type, \
             cord_bank, cord_volume_ml, cord_tnc_e7, cord_cd34_e5, created_at, updated_at, last_contact_on, campaign_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $17, $18, $19) RETURNING id",
        )
        .bind(&placeholder)
        .bind(&new.external_id)
        .bind(new.local_id.as_deref())
        .bind(&new.station)
        .bind(new.birth_date.as_deref())
        .bind(new.sex.code())
        .bind(new.abo.code())
        .bind(rh_code(new.rh_positive))
        .bind(new.cmv.code())
        .bind(new.cmv_date.as_deref())
        .bind(&new.population)
        .bind(new.donor_type.code())
        .bind(cord.bank.as_deref())
        .bind(cord.volume_ml)
        .bind(cord.tnc_e7)
        .bind(cord.cd34_e5)
        .bind(&now)
        .bind(&today)
        .bind(new.campaign_id)
        .fetch_one(&mut **tx)
        .await
        .map_err(|e| if is_unique_violation(&e) { RegistryError::Conflict(format!("a donor with external id `{}` exists", new.external_id)) } else { e.into() })?;
        let grid = make_grid(self.config.ion, &id.to_string())?;
        sqlx::query("UPDATE donors SET grid = $1 WHERE id = $2")
            .bind(&grid)
            .bind(id)
            .execute(&mut **tx)
            .await?;
        Ok(id)
    }

    /// Touch the donor row inside a transaction (serialises writers to one donor on both
    /// backends) and fail if it does not exist.
    pub(crate) async fn lock_donor(
        &self,
        tx: &mut Transaction<'_, Any>,
        donor_id: i64,
    ) -> Result<()> {
        let n = sqlx::query(
            "UPDATE donors SET row_version = row_version + 1, updated_at = $2 WHERE id = $1",
        )
        .bind(donor_id)
        .bind(self.now_text())
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(RegistryError::NotFound(format!("donor {donor_id}")));
        }
        Ok(())
    }

    pub async fn donor(&self, id: i64) -> Result<Donor> {
        let row = sqlx::query(donor_select!("WHERE d.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| RegistryError::NotFound(format!("donor {id}")))?;
        donor_from_row(&row)
    }

    /// The donor as a transaction sees it.
    pub(crate) async fn donor_in(&self, tx: &mut Transaction<'_, Any>, id: i64) -> Result<Donor> {
        let row = sqlx::query(donor_select!("WHERE d.id = $1"))
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| RegistryError::NotFound(format!("donor {id}")))?;
        donor_from_row(&row)
    }

    pub async fn donor_by_external_id(&self, external_id: &str) -> Result<Option<Donor>> {
        let row = sqlx::query(donor_select!("WHERE d.external_id = $1"))
            .bind(external_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(donor_from_row).transpose()
    }

    /// Read a donor's identity: audited (who, when, why).
    pub async fn read_identity(
        &self,
        donor_id: i64,
        actor: &Actor,
        reason: &str,
    ) -> Result<Identity> {
        // Every identity read is audited with why it was needed.
        check_text("reason", Some(reason), true, 500)?;
        let (_turn, mut tx) = self.begin().await?;
        let row = sqlx::query("SELECT family_name, given_name, national_id, phone, email, address, emergency1_name, emergency1_phone, emergency2_name, emergency2_phone FROM donor_identity WHERE donor_id = $1")
            .bind(donor_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| RegistryError::NotFound(format!("identity of donor {donor_id}")))?;
        commit_audited(
            tx,
            actor,
            "identity.read",
            "donor",
            &donor_id.to_string(),
            Some(reason),
        )
        .await?;
        Ok(Identity {
            family_name: row.try_get("family_name")?,
            given_name: row.try_get("given_name")?,
            national_id: row.try_get("national_id")?,
            phone: row.try_get("phone")?,
            email: row.try_get("email")?,
            address: row.try_get("address")?,
            emergency: [
                (
                    row.try_get("emergency1_name")?,
                    row.try_get("emergency1_phone")?,
                ),
                (
                    row.try_get("emergency2_name")?,
                    row.try_get("emergency2_phone")?,
                ),
            ],
        })
    }

    /// Update a donor's attributes and contacts in one audited transaction. The audit entry
    /// names the fields changed, never their values (contacts are identity data).
    pub async fn update_donor(
        &self,
        donor_id: i64,
        update: &DonorUpdate,
        actor: &Actor,
    ) -> Result<Indexed<()>> {
        if let Some(d) = &update.cmv_date {
            past_date("cmv_date", d, self.today())?;
        }
        check_text("population", update.population.as_deref(), false, ID_MAX)?;
        check_text("phone", update.phone.as_deref(), false, PHONE_MAX)?;
        check_text("email", update.email.as_deref(), false, EMAIL_MAX)?;
        check_text("address", update.address.as_deref(), false, ADDRESS_MAX)?;
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
                    .map(|r| crate::model::rh_code(Some(r)).to_string()),
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
        let changed = self.changed_donor(&mut tx, donor_id).await?;
        commit_audited(
            tx,
            actor,
            "donor.update",
            "donor",
            &donor_id.to_string(),
            Some(&fields.join(", ")),
        )
        .await?;
        self.indexed((), &changed)
    }
}

/// Which donors a list shows.
#[derive(Debug, Clone, Default)]
pub struct DonorFilter {
    pub station: Option<String>,
    pub status: Option<Status>,
    pub listed: Option<bool>,
}

/// The station a station's actor may list for: its own (asking for another is refused);
/// other roles list any station or all.
pub(crate) fn station_scope(actor: &Actor, asked: Option<&str>) -> Result<Option<String>> {
    if actor.role != "station" {
        return Ok(asked.map(str::to_string));
    }
    let own = actor
        .station
        .clone()
        .ok_or_else(|| RegistryError::Forbidden("a station actor without a station".into()))?;
    match asked {
        Some(s) if s != own => Err(RegistryError::Forbidden(format!(
            "station {s} is not this station"
        ))),
        _ => Ok(Some(own)),
    }
}

impl Registry {
    /// A page of donors (no identity data); a station sees only its own.
    pub async fn list_donors(
        &self,
        actor: &Actor,
        filter: &DonorFilter,
        page: &PageRequest,
    ) -> Result<Page<Donor>> {
        let mut f = Filter::default();
        if let Some(station) = station_scope(actor, filter.station.as_deref())? {
            f.with("d.station_code = ?", Arg::Text(station));
        }
        if let Some(status) = filter.status {
            f.with("d.status = ?", Arg::Text(status.code().into()));
        }
        match filter.listed {
            Some(true) => f.fixed("d.listed"),
            Some(false) => f.fixed("NOT d.listed"),
            None => &mut f,
        };
        self.page(donor_select!(""), "d.id", f, page, donor_from_row, |d| d.id)
            .await
    }
}
