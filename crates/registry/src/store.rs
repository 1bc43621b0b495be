//! Donors, identity, typings, consents, samples, status, stations, audit; feeding the index.

use hla::GlString;
use matching::model::{age_in_years, format_day, parse_birth_date};
use matching::{
    Abo, Cmv, CordCells, DonorAttributes, DonorIndex, DonorInput, DonorType, Locus, Sex, Status,
};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::{Actor, Backend, Registry, RegistryError, Result, make_grid, now_text};

/// Consent scopes (registry operations §4).
pub const CONSENT_SCOPES: [&str; 6] = [
    "recruitment",
    "confirmatory_typing",
    "workup",
    "follow_up_contact",
    "research",
    "international_sharing",
];

/// Status reason codes (registry operations §5).
pub const REASON_CODES: [&str; 11] = [
    "DO", "DD", "MR", "PR", "TX", "MO", "UC", "NS", "TQ", "OT", "UK",
];

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    pub family_name: String,
    pub given_name: String,
    pub national_id: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub address: Option<String>,
    pub emergency: [(Option<String>, Option<String>); 2],
}

#[derive(Debug, Clone, Default)]
pub struct TypingInput {
    pub gl: String,
    pub lab: Option<String>,
    pub method: Option<String>,
    /// `YYYY-MM-DD`; today when absent.
    pub typed_on: Option<String>,
    pub sample_id: Option<i64>,
}

#[derive(Debug, Clone, Default)]
pub struct ConsentInput {
    pub form_version: String,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct CordUnit {
    pub bank: Option<String>,
    pub volume_ml: Option<f64>,
    pub tnc_e7: Option<f64>,
    pub cd34_e5: Option<f64>,
}

/// A donor to enrol.
#[derive(Debug, Clone, Default)]
pub struct NewDonor {
    pub external_id: String,
    pub local_id: Option<String>,
    pub station: String,
    /// `YYYY-MM-DD`; required for enrolment (legacy listings may lack it).
    pub birth_date: Option<String>,
    pub sex: Sex,
    pub abo: Abo,
    pub rh_positive: Option<bool>,
    pub cmv: Cmv,
    pub cmv_date: Option<String>,
    pub population: String,
    pub donor_type: DonorType,
    pub cord: Option<CordUnit>,
    pub identity: Option<Identity>,
    pub recruitment_consent: Option<ConsentInput>,
    pub typing: Option<TypingInput>,
}

/// A donor as the registry holds it (never identity data).
#[derive(Debug, Clone, PartialEq)]
pub struct Donor {
    pub id: i64,
    pub grid: String,
    pub external_id: String,
    pub station: String,
    pub birth_date: Option<String>,
    pub sex: Sex,
    pub abo: Abo,
    pub rh_positive: Option<bool>,
    pub cmv: Cmv,
    pub population: String,
    pub donor_type: DonorType,
    pub cord: Option<CordCells>,
    pub status: Status,
    pub status_reason: Option<String>,
    pub status_until: Option<String>,
    pub reserved_for: Option<i64>,
    pub listed: bool,
    pub current_typing: Option<String>,
}

/// A status change (registry operations §5).
#[derive(Debug, Clone)]
pub struct StatusChange {
    pub status: Status,
    pub reason: Option<String>,
    /// For TU: the end date (`YYYY-MM-DD`), after which the donor is AV again.
    pub until: Option<String>,
    /// For RS: the patient the donor is reserved for.
    pub patient_id: Option<i64>,
}

pub(crate) fn rh_code(rh: Option<bool>) -> &'static str {
    match rh {
        Some(true) => "+",
        Some(false) => "-",
        None => "?",
    }
}

/// Rh from its code: `Some(Some(positive))` for `+`/`-`, `Some(None)` for `?` (unknown),
/// `None` for anything else.
pub fn rh_from_code(code: &str) -> Option<Option<bool>> {
    match code {
        "+" => Some(Some(true)),
        "-" => Some(Some(false)),
        "?" => Some(None),
        _ => None,
    }
}

fn check_date(field: &str, text: &str) -> Result<u16> {
    parse_birth_date(text).map_err(|reason| RegistryError::invalid(field, reason))
}

/// Validate a GL string against the release: every position must expand.
pub(crate) fn validate_gl(registry: &Registry, gl: &str) -> Result<String> {
    validate_gl_with(&registry.expander, gl)
}

/// [`validate_gl`] without a registry at hand (the import's validation threads).
pub(crate) fn validate_gl_with(expander: &hla::Expander, gl: &str) -> Result<String> {
    let parsed = GlString::parse(gl)?;
    expander.expand_gl(&parsed)?;
    let loci = hla::locus_typings(&parsed)?;
    for required in ["A", "B", "DRB1"] {
        if !loci.iter().any(|t| t.locus == required) {
            return Err(RegistryError::invalid(
                "typing",
                format!("a listed donor needs at least A, B and DRB1; {required} is missing"),
            ));
        }
    }
    Ok(parsed.to_string())
}

pub(crate) async fn audit(
    tx: &mut Transaction<'_, Any>,
    actor: &Actor,
    action: &str,
    entity: &str,
    entity_id: &str,
    reason: Option<&str>,
) -> Result<()> {
    sqlx::query("INSERT INTO audit_log (at, actor, role, action, entity, entity_id, reason, request_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
        .bind(now_text())
        .bind(&actor.name)
        .bind(&actor.role)
        .bind(action)
        .bind(entity)
        .bind(entity_id)
        .bind(reason)
        .bind(actor.request_id.as_deref())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            d.is_unique_violation()
                || d.message().contains("UNIQUE constraint failed")
                || d.code().as_deref() == Some("23505")
        }
        _ => false,
    }
}

macro_rules! donor_select {
    ($rest:literal) => {
        concat!(
            "SELECT d.id, d.grid, d.external_id, d.station_code, d.birth_date, d.sex, d.abo, d.rh, d.cmv, d.population, d.donor_type, \
             d.cord_tnc_e7, d.cord_cd34_e5, d.status, d.status_reason, d.status_until, d.reserved_for, CAST(CASE WHEN d.listed THEN 1 ELSE 0 END AS BIGINT) AS listed, \
             (SELECT t.gl FROM typings t WHERE t.donor_id = d.id AND t.is_current) AS current_typing FROM donors d ",
            $rest
        )
    };
}

/// Decode a donor row; generated for the `Any`, SQLite and PostgreSQL row types (the bulk
/// index load reads through the native drivers: the `Any` row conversion dominated it).
macro_rules! donor_decoder {
    ($name:ident, $row:ty) => {
        fn $name(row: &$row) -> Result<Donor> {
            let code = |c: &str| -> Result<String> { Ok(row.try_get::<String, _>(c)?) };
            let tnc: Option<f64> = row.try_get("cord_tnc_e7")?;
            let cd34: Option<f64> = row.try_get("cord_cd34_e5")?;
            let donor_type = DonorType::from_code(&code("donor_type")?).unwrap_or_default();
            Ok(Donor {
                id: row.try_get("id")?,
                grid: code("grid")?,
                external_id: code("external_id")?,
                station: code("station_code")?,
                birth_date: row.try_get("birth_date")?,
                sex: Sex::from_code(&code("sex")?).unwrap_or_default(),
                abo: Abo::from_code(&code("abo")?).unwrap_or_default(),
                rh_positive: match code("rh")?.as_str() {
                    "+" => Some(true),
                    "-" => Some(false),
                    _ => None,
                },
                cmv: Cmv::from_code(&code("cmv")?).unwrap_or_default(),
                population: code("population")?,
                donor_type,
                cord: (donor_type == DonorType::Cord).then(|| CordCells {
                    tnc_e7: tnc.unwrap_or(0.0) as f32,
                    cd34_e5: cd34.unwrap_or(0.0) as f32,
                }),
                status: Status::from_code(&code("status")?).unwrap_or_default(),
                status_reason: row.try_get("status_reason")?,
                status_until: row.try_get("status_until")?,
                reserved_for: row.try_get("reserved_for")?,
                listed: row.try_get::<i64, _>("listed")? != 0,
                current_typing: row.try_get("current_typing")?,
            })
        }
    };
}
donor_decoder!(donor_from_row, AnyRow);

impl Donor {
    /// The attributes the matching index keeps for this donor.
    pub fn attributes(&self) -> DonorAttributes {
        DonorAttributes {
            donor_type: self.donor_type,
            status: self.status,
            birth_day: self
                .birth_date
                .as_deref()
                .and_then(|b| parse_birth_date(b).ok()),
            sex: self.sex,
            abo: self.abo,
            rh_positive: self.rh_positive,
            cmv: self.cmv,
            registry: self.station.clone(),
            population: self.population.clone(),
            cord: self.cord,
        }
    }
}

impl Registry {
    pub async fn add_branch(
        &self,
        code: &str,
        name: &str,
        region: &str,
        actor: &Actor,
    ) -> Result<()> {
        let (_turn, mut tx) = self.begin().await?;
        sqlx::query("INSERT INTO branches (code, name, region) VALUES ($1, $2, $3)")
            .bind(code)
            .bind(name)
            .bind(region)
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    RegistryError::Conflict(format!("branch {code} exists"))
                } else {
                    e.into()
                }
            })?;
        audit(&mut tx, actor, "branch.create", "branch", code, None).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn add_station(
        &self,
        code: &str,
        branch: &str,
        name: &str,
        region: &str,
        yearly_target: i64,
        actor: &Actor,
    ) -> Result<()> {
        if yearly_target < 0 {
            return Err(RegistryError::invalid(
                "yearly_target",
                "must not be negative",
            ));
        }
        let (_turn, mut tx) = self.begin().await?;
        let exists: Option<String> =
            sqlx::query_scalar("SELECT code FROM branches WHERE code = $1")
                .bind(branch)
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_none() {
            return Err(RegistryError::NotFound(format!("branch {branch}")));
        }
        sqlx::query("INSERT INTO stations (code, branch_code, name, region, yearly_target) VALUES ($1, $2, $3, $4, $5)")
            .bind(code)
            .bind(branch)
            .bind(name)
            .bind(region)
            .bind(yearly_target)
            .execute(&mut *tx)
            .await
            .map_err(|e| if is_unique_violation(&e) { RegistryError::Conflict(format!("station {code} exists")) } else { e.into() })?;
        audit(&mut tx, actor, "station.create", "station", code, None).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn station_exists(&self, code: &str) -> Result<bool> {
        let found: Option<String> = sqlx::query_scalar("SELECT code FROM stations WHERE code = $1")
            .bind(code)
            .fetch_optional(&self.pool)
            .await?;
        Ok(found.is_some())
    }

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
            let age = age_in_years(check_date("birth_date", birth)?, today);
            let (lo, hi) = (self.config.min_enrol_age, self.config.max_enrol_age);
            if age < lo || age > hi {
                return Err(RegistryError::invalid(
                    "birth_date",
                    format!("age {age} is outside the enrolment limits {lo}–{hi}"),
                ));
            }
        } else if let Some(b) = &new.birth_date {
            check_date("birth_date", b)?;
        }
        if let Some(d) = &new.cmv_date {
            check_date("cmv_date", d)?;
        }
        let gl = match &new.typing {
            Some(t) => Some(validate_gl(self, &t.gl)?),
            None => None,
        };
        let (_turn, mut tx) = self.begin().await?;
        let donor_id = self.insert_donor(&mut tx, new).await?;
        if let Some(identity) = &new.identity {
            insert_identity(&mut tx, donor_id, identity).await?;
        }
        if let Some(consent) = &new.recruitment_consent {
            insert_consent(&mut tx, donor_id, "recruitment", consent, actor).await?;
            sqlx::query("UPDATE donors SET listed = TRUE WHERE id = $1")
                .bind(donor_id)
                .execute(&mut *tx)
                .await?;
        }
        if let (Some(t), Some(gl)) = (&new.typing, gl) {
            self.insert_typing(&mut tx, donor_id, t, &gl, today).await?;
        }
        audit(
            &mut tx,
            actor,
            "donor.enrol",
            "donor",
            &donor_id.to_string(),
            None,
        )
        .await?;
        tx.commit().await?;
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
        let now = now_text();
        let cord = new.cord.clone().unwrap_or_default();
        let placeholder = format!("pending:{}", new.external_id);
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO donors (grid, external_id, local_id, station_code, birth_date, sex, abo, rh, cmv, cmv_date, population, donor_type, \
             cord_bank, cord_volume_ml, cord_tnc_e7, cord_cd34_e5, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $17) RETURNING id",
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

    pub(crate) async fn insert_typing(
        &self,
        tx: &mut Transaction<'_, Any>,
        donor_id: i64,
        t: &TypingInput,
        gl: &str,
        today: i64,
    ) -> Result<i64> {
        let typed_on = match &t.typed_on {
            Some(d) => {
                check_date("typed_on", d)?;
                d.clone()
            }
            None => format_day(today as u16),
        };
        sqlx::query("UPDATE typings SET is_current = FALSE WHERE donor_id = $1 AND is_current")
            .bind(donor_id)
            .execute(&mut **tx)
            .await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO typings (donor_id, gl, release, lab, method, typed_on, sample_id, is_current, recorded_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, TRUE, $8) RETURNING id",
        )
        .bind(donor_id)
        .bind(gl)
        .bind(&self.expander.release().version)
        .bind(t.lab.as_deref())
        .bind(t.method.as_deref())
        .bind(&typed_on)
        .bind(t.sample_id)
        .bind(now_text())
        .fetch_one(&mut **tx)
        .await?;
        Ok(id)
    }

    /// Record a new typing; it becomes current. Invalid HLA is refused with the reason.
    pub async fn record_typing(
        &self,
        donor_id: i64,
        typing: &TypingInput,
        actor: &Actor,
        today: i64,
    ) -> Result<i64> {
        let gl = validate_gl(self, &typing.gl)?;
        let (_turn, mut tx) = self.begin().await?;
        self.lock_donor(&mut tx, donor_id).await?;
        if let Some(sample) = typing.sample_id {
            let owner: Option<i64> =
                sqlx::query_scalar("SELECT donor_id FROM samples WHERE id = $1")
                    .bind(sample)
                    .fetch_optional(&mut *tx)
                    .await?;
            if owner != Some(donor_id) {
                return Err(RegistryError::invalid(
                    "sample_id",
                    format!("sample {sample} is not one of this donor's samples"),
                ));
            }
        }
        let id = self
            .insert_typing(&mut tx, donor_id, typing, &gl, today)
            .await?;
        audit(
            &mut tx,
            actor,
            "typing.record",
            "donor",
            &donor_id.to_string(),
            None,
        )
        .await?;
        tx.commit().await?;
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
        .bind(now_text())
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(RegistryError::NotFound(format!("donor {donor_id}")));
        }
        Ok(())
    }

    pub async fn give_consent(
        &self,
        donor_id: i64,
        scope: &str,
        consent: &ConsentInput,
        actor: &Actor,
    ) -> Result<i64> {
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
        audit(
            &mut tx,
            actor,
            "consent.give",
            "donor",
            &donor_id.to_string(),
            Some(scope),
        )
        .await?;
        tx.commit().await?;
        Ok(id)
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
    ) -> Result<Vec<String>> {
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
        audit(
            &mut tx,
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
        tx.commit().await?;
        Ok(warnings)
    }

    /// Change a donor's status, enforcing the transitions: DE is final; TU needs a reason,
    /// RS a patient, DE a reason code.
    pub async fn change_status(
        &self,
        donor_id: i64,
        change: &StatusChange,
        actor: &Actor,
    ) -> Result<()> {
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
            check_date("until", until)?;
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
            .bind(now_text())
            .execute(&mut **tx)
            .await?;
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

    /// The daily job: TU past its end date → AV; donors at the age-out birthday → DE/DO.
    /// Returns the donors changed.
    pub async fn run_daily(&self, today: i64, actor: &Actor) -> Result<Vec<i64>> {
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
            self.change_status(
                id,
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
        let released = self.expire_reservations(today, actor).await?;
        for &id in &aged {
            self.change_status(
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
        Ok(expired.into_iter().chain(released).chain(aged).collect())
    }

    pub async fn donor(&self, id: i64) -> Result<Donor> {
        let row = sqlx::query(donor_select!("WHERE d.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
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
        let (_turn, mut tx) = self.begin().await?;
        let row = sqlx::query("SELECT family_name, given_name, national_id, phone, email, address, emergency1_name, emergency1_phone, emergency2_name, emergency2_phone FROM donor_identity WHERE donor_id = $1")
            .bind(donor_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| RegistryError::NotFound(format!("identity of donor {donor_id}")))?;
        audit(
            &mut tx,
            actor,
            "identity.read",
            "donor",
            &donor_id.to_string(),
            Some(reason),
        )
        .await?;
        tx.commit().await?;
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

    /// Whether a donor belongs in the matching index: listed (recruitment consent), not DE,
    /// a current typing, and younger than the age-out birthday.
    pub fn is_indexable(&self, donor: &Donor, today: i64) -> bool {
        donor.listed
            && donor.status != Status::Deferred
            && donor.current_typing.is_some()
            && donor
                .birth_date
                .as_deref()
                .and_then(|b| parse_birth_date(b).ok())
                .is_none_or(|b| {
                    donor.donor_type == DonorType::Cord
                        || age_in_years(b, today) < self.config.age_out
                })
    }

    /// Load every indexable donor into `index` (key = donor id). Returns how many. See
    /// [`crate::load`]. Runs on the calling thread (with reader threads on SQLite): call it
    /// before serving.
    pub async fn load_index(&self, index: &mut DonorIndex, today: i64) -> Result<usize> {
        let loaded = match self.backend {
            crate::Backend::Sqlite => self.load_index_sqlite(index, today)?,
            crate::Backend::Postgres => self.load_index_pg(index, today).await?,
        };
        index.build_postings();
        Ok(loaded)
    }

    async fn load_index_pg(&self, index: &mut DonorIndex, today: i64) -> Result<usize> {
        use futures_lite::StreamExt;
        use rayon::prelude::*;
        const CHUNK: usize = 50_000;
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&self.url)
            .await?;
        let sql = format!("{} ORDER BY d.id", crate::load::INDEX_COLUMNS);
        let splitter = crate::load::PositionSplitter::new();
        let mut loaded = 0;
        let mut chunk: Vec<(Donor, String)> = Vec::with_capacity(CHUNK);
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch(&pool);
        loop {
            let row = rows.next().await.transpose()?;
            let end = row.is_none();
            if let Some(row) = row {
                let text = |i: usize| -> Result<String> { Ok(row.try_get::<String, _>(i)?) };
                let gl = text(12)?;
                let donor = crate::load::index_donor(
                    row.try_get(0)?,
                    row.try_get(1)?,
                    [
                        &text(2)?,
                        &text(3)?,
                        &text(4)?,
                        &text(5)?,
                        &text(6)?,
                        &text(7)?,
                    ],
                    text(8)?,
                    text(9)?,
                    row.try_get(10)?,
                    row.try_get(11)?,
                    Some(String::new()),
                );
                if self.is_indexable(&donor, today) {
                    chunk.push((donor, gl));
                }
            }
            if chunk.len() == CHUNK || (end && !chunk.is_empty()) {
                let positions: Vec<crate::load::PositionTexts> = chunk
                    .par_iter()
                    .map(|(_, gl)| splitter.positions(gl))
                    .collect::<Result<_>>()?;
                for ((donor, _), texts) in chunk.iter().zip(&positions) {
                    self.upsert_texts(index, donor, texts)?;
                    loaded += 1;
                }
                chunk.clear();
            }
            if end {
                break;
            }
        }
        drop(rows);
        pool.close().await;
        Ok(loaded)
    }

    pub(crate) fn upsert_texts(
        &self,
        index: &mut DonorIndex,
        donor: &Donor,
        texts: &[(Locus, [String; 2])],
    ) -> Result<()> {
        let key = u32::try_from(donor.id)
            .map_err(|_| RegistryError::invalid("id", "donor id beyond the index key range"))?;
        let mut input = DonorInput {
            key,
            attributes: donor.attributes(),
            ..Default::default()
        };
        for (l, pair) in texts {
            input.hla[l.index()] = [Some(pair[0].as_str()), Some(pair[1].as_str())];
        }
        index
            .upsert(&input)
            .map_err(|e| RegistryError::invalid("typing", e.to_string()))?;
        Ok(())
    }

    /// Put one donor into the index, or take it out when it no longer belongs there.
    pub fn apply_to_index(
        &self,
        index: &mut DonorIndex,
        donor: &Donor,
        today: i64,
    ) -> Result<bool> {
        let key = u32::try_from(donor.id)
            .map_err(|_| RegistryError::invalid("id", "donor id beyond the index key range"))?;
        if !self.is_indexable(donor, today) {
            if index.contains(key) {
                index.remove(key).ok();
            }
            return Ok(false);
        }
        let texts =
            crate::load::full_positions(donor.current_typing.as_deref().unwrap_or_default())?;
        self.upsert_texts(index, donor, &texts)?;
        Ok(true)
    }

    /// Re-read one donor after a committed write and apply it to the index.
    pub async fn refresh_in_index(
        &self,
        index: &mut DonorIndex,
        donor_id: i64,
        today: i64,
    ) -> Result<()> {
        match self.donor(donor_id).await {
            Ok(d) => {
                self.apply_to_index(index, &d, today)?;
                Ok(())
            }
            Err(RegistryError::NotFound(_)) => {
                index.remove(donor_id as u32).ok();
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Counts for `boai db stats`.
    pub async fn stats(&self, today: i64) -> Result<serde_json::Value> {
        let count = |sql: &'static str| async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&self.pool)
                .await
        };
        let mut by_status = serde_json::Map::new();
        for row in
            sqlx::query("SELECT status, COUNT(*) AS n FROM donors GROUP BY status ORDER BY status")
                .fetch_all(&self.pool)
                .await?
        {
            by_status.insert(
                row.try_get::<String, _>("status")?,
                row.try_get::<i64, _>("n")?.into(),
            );
        }
        let today_text = format_day(today as u16);
        let due: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM followups WHERE state = 'due' AND due_on >= $1",
        )
        .bind(&today_text)
        .fetch_one(&self.pool)
        .await?;
        let overdue: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM followups WHERE state = 'due' AND due_on < $1",
        )
        .bind(&today_text)
        .fetch_one(&self.pool)
        .await?;
        Ok(serde_json::json!({
            "backend": match self.backend { Backend::Sqlite => "sqlite", Backend::Postgres => "postgres" },
            "donors": count("SELECT COUNT(*) FROM donors").await?,
            "donors_by_status": by_status,
            "donors_listed": count("SELECT COUNT(*) FROM donors WHERE listed").await?,
            "typings": count("SELECT COUNT(*) FROM typings").await?,
            "consents": count("SELECT COUNT(*) FROM consents").await?,
            "consents_withdrawn": count("SELECT COUNT(*) FROM consents WHERE withdrawn_at IS NOT NULL").await?,
            "samples": count("SELECT COUNT(*) FROM samples").await?,
            "patients": count("SELECT COUNT(*) FROM patients").await?,
            "followups_due": due,
            "followups_overdue": overdue,
            "organ_registrations": count("SELECT COUNT(*) FROM organ_registrations WHERE state = 'active'").await?,
            "audit_entries": count("SELECT COUNT(*) FROM audit_log").await?,
        }))
    }
}

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
