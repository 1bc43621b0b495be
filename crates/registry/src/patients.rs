//! Patients, and the donors reserved for one.

use sqlx::Row;

use crate::audit::commit_audited;
use crate::page::{Filter, Page, PageRequest};
use crate::support::{check_text, is_unique_violation, past_date, validate_gl};
use crate::{Actor, Registry, RegistryError, Result};

#[derive(Debug, Clone, Default)]
pub struct NewPatient {
    pub external_id: String,
    pub gl: String,
    pub birth_date: Option<String>,
    pub sex: Option<String>,
    pub abo: Option<String>,
    pub cmv: Option<String>,
    pub weight_kg: Option<f64>,
    pub diagnosis: Option<String>,
    pub transplant_centre: Option<String>,
}

fn patient_from_row(r: &sqlx::any::AnyRow) -> Result<Patient> {
    Ok(<Patient as sqlx::FromRow<'_, sqlx::any::AnyRow>>::from_row(
        r,
    )?)
}

/// A patient as the registry holds it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct Patient {
    pub id: i64,
    pub external_id: String,
    pub gl: String,
    pub birth_date: Option<String>,
    pub sex: String,
    pub abo: String,
    pub cmv: String,
    pub weight_kg: Option<f64>,
    pub diagnosis: Option<String>,
    pub transplant_centre: Option<String>,
}

impl Registry {
    pub async fn register_patient(&self, p: &NewPatient, actor: &Actor) -> Result<i64> {
        if p.external_id.trim().is_empty() {
            return Err(RegistryError::invalid("external_id", "must not be empty"));
        }
        check_text("external_id", Some(&p.external_id), true, 64)?;
        check_text("diagnosis", p.diagnosis.as_deref(), false, 500)?;
        check_text(
            "transplant_centre",
            p.transplant_centre.as_deref(),
            false,
            200,
        )?;
        // Coded fields are stored only as their codes.
        if let Some(s) = &p.sex
            && matching::Sex::from_code(s).is_none()
        {
            return Err(RegistryError::invalid(
                "sex",
                format!("`{s}` is not M, F or U"),
            ));
        }
        if let Some(a) = &p.abo
            && matching::Abo::from_code(a).is_none()
        {
            return Err(RegistryError::invalid(
                "abo",
                format!("`{a}` is not O, A, B, AB or ?"),
            ));
        }
        if let Some(c) = &p.cmv
            && matching::Cmv::from_code(c).is_none()
        {
            return Err(RegistryError::invalid(
                "cmv",
                format!("`{c}` is not neg, pos or ?"),
            ));
        }
        let gl = validate_gl(self, &p.gl)?;
        if let Some(b) = &p.birth_date {
            past_date("birth_date", b, self.today())?;
        }
        if p.weight_kg.is_some_and(|w| !(w > 0.0 && w < 500.0)) {
            return Err(RegistryError::invalid(
                "weight_kg",
                "must be between 0 and 500",
            ));
        }
        let (_turn, mut tx) = self.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO patients (external_id, gl, release, birth_date, sex, abo, cmv, weight_kg, diagnosis, transplant_centre, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
        )
        .bind(&p.external_id)
        .bind(&gl)
        .bind(&self.expander.release().version)
        .bind(p.birth_date.as_deref())
        .bind(p.sex.as_deref().unwrap_or("U"))
        .bind(p.abo.as_deref().unwrap_or("?"))
        .bind(p.cmv.as_deref().unwrap_or("?"))
        .bind(p.weight_kg)
        .bind(p.diagnosis.as_deref())
        .bind(p.transplant_centre.as_deref())
        .bind(self.now_text())
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| if is_unique_violation(&e) { RegistryError::Conflict(format!("patient `{}` exists", p.external_id)) } else { e.into() })?;
        commit_audited(
            tx,
            actor,
            "patient.register",
            "patient",
            &id.to_string(),
            None,
        )
        .await?;
        Ok(id)
    }

    pub async fn patient(&self, patient_id: i64) -> Result<Patient> {
        let r = sqlx::query("SELECT id, external_id, gl, birth_date, sex, abo, cmv, weight_kg, diagnosis, transplant_centre FROM patients WHERE id = $1")
            .bind(patient_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| RegistryError::NotFound(format!("patient {patient_id}")))?;
        patient_from_row(&r)
    }

    /// A patient and the donors reserved (RS) for them, ascending, in one query: what a
    /// search needs before it runs (`patient` and `donors_reserved_for` in one round trip).
    pub async fn patient_with_reserved(&self, patient_id: i64) -> Result<(Patient, Vec<i64>)> {
        let rows = sqlx::query("SELECT p.id, p.external_id, p.gl, p.birth_date, p.sex, p.abo, p.cmv, p.weight_kg, p.diagnosis, p.transplant_centre, d.id AS reserved \
             FROM patients p LEFT JOIN donors d ON d.reserved_for = p.id AND d.status = 'RS' WHERE p.id = $1 ORDER BY d.id")
            .bind(patient_id)
            .fetch_all(&self.pool)
            .await?;
        let first = rows
            .first()
            .ok_or_else(|| RegistryError::NotFound(format!("patient {patient_id}")))?;
        let reserved = rows
            .iter()
            .map(|r| r.try_get::<Option<i64>, _>("reserved"))
            .filter_map(|id| id.transpose())
            .collect::<std::result::Result<Vec<i64>, _>>()?;
        Ok((patient_from_row(first)?, reserved))
    }

    /// Fail with 404 unless patient `patient_id` exists (inside a write's transaction).
    pub(crate) async fn patient_exists_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        patient_id: i64,
    ) -> Result<()> {
        let found: Option<i64> = sqlx::query_scalar("SELECT id FROM patients WHERE id = $1")
            .bind(patient_id)
            .fetch_optional(&mut **tx)
            .await?;
        found
            .map(|_| ())
            .ok_or_else(|| RegistryError::NotFound(format!("patient {patient_id}")))
    }

    /// Donors reserved (RS) for a patient: that patient's searches offer them
    /// (`SearchRequest::also_offered`), no one else's do.
    pub async fn donors_reserved_for(&self, patient_id: i64) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM donors WHERE status = 'RS' AND reserved_for = $1 ORDER BY id",
        )
        .bind(patient_id)
        .fetch_all(&self.pool)
        .await?)
    }
}

impl Registry {
    /// A page of patients, oldest first.
    pub async fn list_patients(&self, page: &PageRequest) -> Result<Page<Patient>> {
        self.page(
            "SELECT id, external_id, gl, birth_date, sex, abo, cmv, weight_kg, diagnosis, transplant_centre FROM patients",
            "id",
            Filter::default(),
            page,
            patient_from_row,
            |p| p.id,
        )
        .await
    }
}
