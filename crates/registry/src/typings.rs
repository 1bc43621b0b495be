//! Typings: each validated against the release; the newest becomes current.

use matching::model::format_day;
use sqlx::{Any, Row, Transaction};

use crate::audit::commit_audited;
use crate::consents::{in_confirmatory_typing, require_consent};
use crate::index_feed::Indexed;
use crate::model::TypingInput;
use crate::support::{ID_MAX, NAME_MAX, check_text, past_date, validate_gl};
use crate::{Actor, Registry, RegistryError, Result};

/// A typing as recorded (current or history).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TypingRecord {
    pub id: i64,
    pub gl: String,
    pub release: String,
    pub lab: Option<String>,
    pub method: Option<String>,
    pub typed_on: String,
    pub sample_id: Option<i64>,
    pub current: bool,
}

impl Registry {
    pub(crate) async fn insert_typing(
        &self,
        tx: &mut Transaction<'_, Any>,
        donor_id: i64,
        t: &TypingInput,
        gl: &str,
        today: i64,
    ) -> Result<i64> {
        check_text("typing.lab", t.lab.as_deref(), false, NAME_MAX)?;
        check_text("typing.method", t.method.as_deref(), false, ID_MAX)?;
        let typed_on = match &t.typed_on {
            Some(d) => {
                past_date("typed_on", d, today)?;
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
        .bind(self.now_text())
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
    ) -> Result<Indexed<i64>> {
        let gl = validate_gl(self, &typing.gl)?;
        let (_turn, mut tx) = self.begin().await?;
        let id = self
            .record_typing_in(&mut tx, donor_id, typing, &gl, today)
            .await?;
        let changed = self.changed_donor(&mut tx, donor_id).await?;
        commit_audited(
            tx,
            actor,
            "typing.record",
            "donor",
            &donor_id.to_string(),
            None,
        )
        .await?;
        self.indexed(id, &changed)
    }

    /// Record a validated typing (`gl`, canonical) inside `tx`: the donor locked, the sample
    /// checked to be the donor's, the confirmatory-typing consent required where it applies.
    pub(crate) async fn record_typing_in(
        &self,
        tx: &mut Transaction<'_, Any>,
        donor_id: i64,
        typing: &TypingInput,
        gl: &str,
        today: i64,
    ) -> Result<i64> {
        self.lock_donor(tx, donor_id).await?;
        let mut sample_request = None;
        if let Some(sample) = typing.sample_id {
            let row = sqlx::query("SELECT donor_id, request_id FROM samples WHERE id = $1")
                .bind(sample)
                .fetch_optional(&mut **tx)
                .await?;
            let owner: Option<i64> = row.as_ref().map(|r| r.try_get("donor_id")).transpose()?;
            if owner != Some(donor_id) {
                return Err(RegistryError::invalid(
                    "sample_id",
                    format!("sample {sample} is not one of this donor's samples"),
                ));
            }
            sample_request = row
                .map(|r| r.try_get::<Option<i64>, _>("request_id"))
                .transpose()?
                .flatten();
        }
        // A result of confirmatory typing (its sample's request, or an open one) needs that
        // consent; a closed request no longer makes the sample's typing confirmatory.
        let open_request = match sample_request {
            Some(r) => {
                let state: Option<String> =
                    sqlx::query_scalar("SELECT state FROM requests WHERE id = $1")
                        .bind(r)
                        .fetch_optional(&mut **tx)
                        .await?;
                (state.as_deref() == Some("open")).then_some(r)
            }
            None => None,
        };
        if in_confirmatory_typing(tx, donor_id, open_request).await? {
            require_consent(
                tx,
                donor_id,
                "confirmatory_typing",
                "a confirmatory-typing result",
            )
            .await?;
        }
        self.insert_typing(tx, donor_id, typing, gl, today).await
    }

    /// Every typing a donor has had, newest first.
    pub async fn typings(&self, donor_id: i64) -> Result<Vec<TypingRecord>> {
        let rows = sqlx::query("SELECT id, gl, release, lab, method, typed_on, sample_id, CAST(CASE WHEN is_current THEN 1 ELSE 0 END AS BIGINT) AS current FROM typings WHERE donor_id = $1 ORDER BY recorded_at DESC, id DESC")
            .bind(donor_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(TypingRecord {
                    id: r.try_get("id")?,
                    gl: r.try_get("gl")?,
                    release: r.try_get("release")?,
                    lab: r.try_get("lab")?,
                    method: r.try_get("method")?,
                    typed_on: r.try_get("typed_on")?,
                    sample_id: r.try_get("sample_id")?,
                    current: r.try_get::<i64, _>("current")? == 1,
                })
            })
            .collect()
    }
}
