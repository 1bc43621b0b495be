//! Samples a collection station takes from a donor (registry operations §2): where and when,
//! volume, barcode, the lab it goes to, and its state as it travels.

use crate::audit::commit_audited;
use crate::campaigns::check_campaign_link;
use crate::consents::{in_confirmatory_typing, require_consent};
use crate::donors::station_scope;
use crate::page::{Arg, Filter, Page, PageRequest};
use crate::support::{CODE_MAX, ID_MAX, NAME_MAX, check_text, is_unique_violation, past_date};
use crate::{Actor, Registry, RegistryError, Result};

/// Sample states, in the order a sample moves through them.
pub const SAMPLE_STATES: [&str; 6] = [
    "collected",
    "shipped",
    "received",
    "typed",
    "failed",
    "destroyed",
];

/// Which state may follow which: forward along collection → shipping → lab → typing; any
/// sample not yet destroyed may fail or be destroyed, a failed one only destroyed.
fn may_follow(from: &str, to: &str) -> bool {
    matches!(
        (from, to),
        ("collected", "shipped")
            | ("shipped", "received")
            | ("received", "typed")
            | ("collected" | "shipped" | "received", "failed")
            | (
                "collected" | "shipped" | "received" | "typed" | "failed",
                "destroyed"
            )
    )
}

#[derive(Debug, Clone, Default)]
pub struct NewSample {
    pub station: String,
    /// `YYYY-MM-DD`.
    pub collected_on: String,
    pub volume_ml: Option<f64>,
    pub barcode: String,
    pub lab: Option<String>,
    /// The typing request this sample is drawn for (a confirmatory-typing sample needs
    /// that consent).
    pub request_id: Option<i64>,
    /// The campaign the sample was taken at (held by the sample's station).
    pub campaign_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Sample {
    pub id: i64,
    pub donor_id: i64,
    #[sqlx(rename = "station_code")]
    pub station: String,
    #[sqlx(rename = "collected_at")]
    pub collected_on: String,
    pub volume_ml: Option<f64>,
    pub barcode: String,
    pub lab: Option<String>,
    pub state: String,
    pub request_id: Option<i64>,
}

const SAMPLE_COLUMNS: &str =
    "id, donor_id, station_code, collected_at, volume_ml, barcode, lab, state, request_id";

fn sample_from_row(row: &sqlx::any::AnyRow) -> Result<Sample> {
    Ok(<Sample as sqlx::FromRow<'_, sqlx::any::AnyRow>>::from_row(
        row,
    )?)
}

impl Registry {
    /// Record a sample taken from a donor; it starts `collected`. Barcodes are unique.
    pub async fn record_sample(
        &self,
        donor_id: i64,
        sample: &NewSample,
        actor: &Actor,
    ) -> Result<Sample> {
        let barcode = sample.barcode.trim();
        check_text("barcode", Some(barcode), true, ID_MAX)?;
        check_text("lab", sample.lab.as_deref(), false, NAME_MAX)?;
        check_text("station", Some(&sample.station), true, CODE_MAX)?;
        past_date("collected_on", &sample.collected_on, self.today())?;
        if let Some(v) = sample.volume_ml
            && !(v.is_finite() && v > 0.0)
        {
            return Err(RegistryError::invalid(
                "volume_ml",
                format!("{v} is not a positive volume"),
            ));
        }
        if !self.station_exists(&sample.station).await? {
            return Err(RegistryError::invalid(
                "station",
                format!("unknown station `{}`", sample.station),
            ));
        }
        let (_turn, mut tx) = self.begin().await?;
        self.lock_donor(&mut tx, donor_id).await?;
        if in_confirmatory_typing(&mut tx, donor_id, sample.request_id).await? {
            require_consent(
                &mut tx,
                donor_id,
                "confirmatory_typing",
                "a confirmatory-typing sample",
            )
            .await?;
        }
        if let Some(c) = sample.campaign_id {
            check_campaign_link(&mut tx, c, &sample.station, &sample.collected_on).await?;
        }
        let id: i64 = match sqlx::query_scalar("INSERT INTO samples (donor_id, station_code, collected_at, volume_ml, barcode, lab, state, request_id, campaign_id) VALUES ($1, $2, $3, $4, $5, $6, 'collected', $7, $8) RETURNING id")
            .bind(donor_id)
            .bind(&sample.station)
            .bind(&sample.collected_on)
            .bind(sample.volume_ml)
            .bind(barcode)
            .bind(sample.lab.as_deref())
            .bind(sample.request_id)
            .bind(sample.campaign_id)
            .fetch_one(&mut *tx)
            .await
        {
            Ok(id) => id,
            Err(e) if is_unique_violation(&e) => {
                return Err(RegistryError::Conflict(format!(
                    "a sample with barcode `{barcode}` is already recorded"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        commit_audited(tx, actor, "sample.record", "sample", &id.to_string(), None).await?;
        self.sample(id).await
    }

    /// Move a sample to its next state (see [`SAMPLE_STATES`]).
    pub async fn set_sample_state(
        &self,
        sample_id: i64,
        state: &str,
        actor: &Actor,
    ) -> Result<Sample> {
        if !SAMPLE_STATES.contains(&state) {
            return Err(RegistryError::invalid(
                "state",
                format!("`{state}` is not one of {}", SAMPLE_STATES.join(", ")),
            ));
        }
        let (_turn, mut tx) = self.begin().await?;
        let current: Option<String> = sqlx::query_scalar("SELECT state FROM samples WHERE id = $1")
            .bind(sample_id)
            .fetch_optional(&mut *tx)
            .await?;
        let current =
            current.ok_or_else(|| RegistryError::NotFound(format!("sample {sample_id}")))?;
        if !may_follow(&current, state) {
            return Err(RegistryError::Conflict(format!(
                "a {current} sample cannot become {state}"
            )));
        }
        sqlx::query("UPDATE samples SET state = $1 WHERE id = $2")
            .bind(state)
            .bind(sample_id)
            .execute(&mut *tx)
            .await?;
        commit_audited(
            tx,
            actor,
            "sample.state",
            "sample",
            &sample_id.to_string(),
            Some(&format!("{current} → {state}")),
        )
        .await?;
        self.sample(sample_id).await
    }

    pub async fn sample(&self, sample_id: i64) -> Result<Sample> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SAMPLE_COLUMNS} FROM samples WHERE id = $1"
        )))
        .bind(sample_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| RegistryError::NotFound(format!("sample {sample_id}")))?;
        sample_from_row(&row)
    }

    /// A donor's samples, oldest first.
    pub async fn samples(&self, donor_id: i64) -> Result<Vec<Sample>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SAMPLE_COLUMNS} FROM samples WHERE donor_id = $1 ORDER BY id"
        )))
        .bind(donor_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(sample_from_row)
        .collect()
    }
}

/// Which samples a list shows.
#[derive(Debug, Clone, Default)]
pub struct SampleFilter {
    pub station: Option<String>,
    pub state: Option<String>,
    pub donor_id: Option<i64>,
}

impl Registry {
    /// A page of samples; a station sees only those it took.
    pub async fn list_samples(
        &self,
        actor: &Actor,
        filter: &SampleFilter,
        page: &PageRequest,
    ) -> Result<Page<Sample>> {
        let mut f = Filter::default();
        if let Some(station) = station_scope(actor, filter.station.as_deref())? {
            f.with("station_code = ?", Arg::Text(station));
        }
        if let Some(state) = &filter.state {
            if !SAMPLE_STATES.contains(&state.as_str()) {
                return Err(RegistryError::invalid(
                    "state",
                    format!("`{state}` is not one of {}", SAMPLE_STATES.join(", ")),
                ));
            }
            f.with("state = ?", Arg::Text(state.clone()));
        }
        if let Some(donor) = filter.donor_id {
            f.with("donor_id = ?", Arg::Int(donor));
        }
        let select = format!("SELECT {SAMPLE_COLUMNS} FROM samples");
        self.page(&select, "id", f, page, sample_from_row, |s| s.id)
            .await
    }
}
