//! Donors and what a station records of them: enrolment, matching data, identity, status,
//! typings, samples and consents.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use matching::{Abo, Cmv, DonorType, Sex, Status};
use registry::Indexed;
use registry::{
    ConsentInput, Donor, DonorFilter, Identity, NewDonor, Page, StatusChange, TypingInput,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::input::{ApiJson, ApiResult, ListQuery, code, page_request, rh_field};
use crate::AppState;
use crate::access::{
    Allowed, DonorAccess, DonorReaders, IdentityAccess, NamesStation, StationBody, Stations,
    StationsAndCaseManagers,
};
use crate::error::{ApiError, Problem};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/donors", post(enrol_donor))
        .route("/v1/donors/{id}", get(get_donor).patch(update_donor))
        .route("/v1/donors/{id}/identity", get(get_identity))
        .route("/v1/donors/{id}/status", post(change_status))
        .route(
            "/v1/donors/{id}/typings",
            post(record_typing).get(list_typings),
        )
        .route("/v1/donors", get(list_donors))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct IdentityIn {
    pub family_name: String,
    pub given_name: String,
    pub national_id: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub address: Option<String>,
    #[serde(default)]
    pub emergency_contacts: Vec<ContactIn>,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct ContactIn {
    pub name: Option<String>,
    pub phone: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct DonorIn {
    pub external_id: String,
    pub station: String,
    /// `YYYY-MM-DD`.
    pub birth_date: String,
    #[serde(default)]
    pub sex: Option<String>,
    #[serde(default)]
    pub abo: Option<String>,
    /// `+` or `-`.
    #[serde(default)]
    pub rh: Option<String>,
    #[serde(default)]
    pub cmv: Option<String>,
    #[serde(default)]
    pub population: String,
    #[serde(default)]
    pub donor_type: Option<String>,
    pub identity: IdentityIn,
    /// Recruitment consent form version; without it the donor is enrolled but not listed.
    pub consent_form_version: Option<String>,
    /// GL string.
    pub typing: Option<String>,
    /// The campaign the donor enrolled at (held by the same station, not after today).
    pub campaign_id: Option<i64>,
}

impl NamesStation for DonorIn {
    fn station(&self) -> &str {
        &self.station
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DonorOut {
    pub id: i64,
    pub grid: String,
    pub external_id: String,
    pub station: String,
    pub birth_date: Option<String>,
    pub sex: String,
    pub abo: String,
    pub cmv: String,
    pub population: String,
    pub donor_type: String,
    pub status: String,
    pub status_reason: Option<String>,
    pub status_until: Option<String>,
    /// The campaign the donor enrolled at.
    pub campaign_id: Option<i64>,
    /// The donor's last successful contact (enrolment before any).
    pub last_contact_on: Option<String>,
    pub listed: bool,
    pub typing: Option<String>,
}

impl From<Donor> for DonorOut {
    fn from(d: Donor) -> DonorOut {
        DonorOut {
            id: d.id,
            grid: d.grid,
            external_id: d.external_id,
            station: d.station,
            birth_date: d.birth_date,
            sex: d.sex.code().into(),
            abo: d.abo.code().into(),
            cmv: d.cmv.code().into(),
            population: d.population,
            donor_type: d.donor_type.code().into(),
            status: d.status.code().into(),
            status_reason: d.status_reason,
            status_until: d.status_until,
            listed: d.listed,
            typing: d.current_typing,
            campaign_id: d.campaign_id,
            last_contact_on: d.last_contact_on,
        }
    }
}

/// Enrol a donor at the caller's station (station role). Identity goes to its own table.
#[utoipa::path(post, path = "/v1/donors", request_body = DonorIn,
    responses((status = 201, body = DonorOut), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn enrol_donor(
    State(state): State<AppState>,
    StationBody { caller, body: d }: StationBody<DonorIn>,
) -> ApiResult<(StatusCode, Json<DonorOut>)> {
    let mut emergency: [(Option<String>, Option<String>); 2] = Default::default();
    if d.identity.emergency_contacts.len() > 2 {
        return Err(ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "identity.emergency_contacts",
            "at most two",
        ));
    }
    for (slot, c) in emergency.iter_mut().zip(d.identity.emergency_contacts) {
        *slot = (c.name, c.phone);
    }
    let new = NewDonor {
        external_id: d.external_id,
        local_id: None,
        station: d.station,
        birth_date: Some(d.birth_date),
        sex: code("sex", d.sex.as_deref(), Sex::from_code, Sex::Unknown)?,
        abo: code("abo", d.abo.as_deref(), Abo::from_code, Abo::Unknown)?,
        rh_positive: rh_field(d.rh.as_deref())?,
        cmv: code("cmv", d.cmv.as_deref(), Cmv::from_code, Cmv::Unknown)?,
        cmv_date: None,
        population: d.population,
        donor_type: code(
            "donor_type",
            d.donor_type.as_deref(),
            DonorType::from_code,
            DonorType::Adult,
        )?,
        cord: None,
        identity: Some(Identity {
            family_name: d.identity.family_name,
            given_name: d.identity.given_name,
            national_id: d.identity.national_id,
            phone: d.identity.phone,
            email: d.identity.email,
            address: d.identity.address,
            emergency,
        }),
        recruitment_consent: d.consent_form_version.map(|form_version| ConsentInput {
            form_version,
            note: None,
        }),
        typing: d.typing.map(|gl| TypingInput {
            gl,
            ..Default::default()
        }),
        campaign_id: d.campaign_id,
    };
    let donor = state
        .registry
        .enrol(&new, &caller.actor(), state.today())
        .await?;
    state.index_donor(&donor)?;
    Ok((StatusCode::CREATED, Json(donor.into())))
}

/// A donor's matching data (never identity): its own station, coordinators, case managers.
#[utoipa::path(get, path = "/v1/donors/{id}", params(("id" = i64, Path)),
    responses((status = 200, body = DonorOut), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_donor(
    DonorAccess { donor, .. }: DonorAccess<DonorReaders>,
) -> ApiResult<Json<DonorOut>> {
    Ok(Json(donor.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DonorUpdateIn {
    pub sex: Option<String>,
    pub abo: Option<String>,
    /// `+` or `-`.
    pub rh: Option<String>,
    pub cmv: Option<String>,
    pub cmv_date: Option<String>,
    pub population: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub address: Option<String>,
}

/// Update a donor's attributes and contacts (its own station); the audit names the fields.
#[utoipa::path(patch, path = "/v1/donors/{id}", params(("id" = i64, Path)), request_body = DonorUpdateIn,
    responses((status = 200, body = DonorOut), (status = 422, body = Problem)))]
pub async fn update_donor(
    State(state): State<AppState>,
    DonorAccess { caller, donor, .. }: DonorAccess<Stations>,
    ApiJson(u): ApiJson<DonorUpdateIn>,
) -> ApiResult<Json<DonorOut>> {
    let id = donor.id;
    let update = registry::DonorUpdate {
        sex: u
            .sex
            .as_deref()
            .map(|v| code("sex", Some(v), Sex::from_code, Sex::Unknown))
            .transpose()?,
        abo: u
            .abo
            .as_deref()
            .map(|v| code("abo", Some(v), Abo::from_code, Abo::Unknown))
            .transpose()?,
        rh_positive: rh_field(u.rh.as_deref())?,
        cmv: u
            .cmv
            .as_deref()
            .map(|v| code("cmv", Some(v), Cmv::from_code, Cmv::Unknown))
            .transpose()?,
        cmv_date: u.cmv_date,
        population: u.population,
        phone: u.phone,
        email: u.email,
        address: u.address,
    };
    let index = state
        .registry
        .update_donor(id, &update, &caller.actor())
        .await?
        .index;
    state.update_index(index)?;
    let donor = state.registry.donor(id).await?;
    Ok(Json(donor.into()))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ReasonQuery {
    /// Why the identity is read (kept in the audit log).
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IdentityOut {
    pub family_name: String,
    pub given_name: String,
    pub national_id: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub address: Option<String>,
    pub emergency_contacts: Vec<ContactIn>,
}

/// A donor's identity, audited: its own station, or a case manager while the donor is in
/// an open case.
#[utoipa::path(get, path = "/v1/donors/{id}/identity", params(("id" = i64, Path), ReasonQuery),
    responses((status = 200, body = IdentityOut), (status = 403, body = Problem)))]
pub async fn get_identity(
    State(state): State<AppState>,
    IdentityAccess {
        caller,
        donor_id: id,
    }: IdentityAccess,
    query: Result<Query<ReasonQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<IdentityOut>> {
    let Query(q) = query?;
    let i = state
        .registry
        .read_identity(id, &caller.actor(), &q.reason)
        .await?;
    Ok(Json(IdentityOut {
        family_name: i.family_name,
        given_name: i.given_name,
        national_id: i.national_id,
        phone: i.phone,
        email: i.email,
        address: i.address,
        emergency_contacts: i
            .emergency
            .into_iter()
            .filter(|(n, p)| n.is_some() || p.is_some())
            .map(|(name, phone)| ContactIn { name, phone })
            .collect(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TypingIn {
    pub gl: String,
    pub lab: Option<String>,
    pub method: Option<String>,
    pub typed_on: Option<String>,
    pub sample_id: Option<i64>,
}

/// Record a typing (its own station); the newest valid one becomes current.
#[utoipa::path(post, path = "/v1/donors/{id}/typings", params(("id" = i64, Path)), request_body = TypingIn,
    responses((status = 201, description = "typing id"), (status = 422, body = Problem)))]
pub async fn record_typing(
    State(state): State<AppState>,
    DonorAccess { caller, donor, .. }: DonorAccess<Stations>,
    ApiJson(t): ApiJson<TypingIn>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let id = donor.id;
    let typing = TypingInput {
        gl: t.gl,
        lab: t.lab,
        method: t.method,
        typed_on: t.typed_on,
        sample_id: t.sample_id,
    };
    let Indexed {
        value: typing_id,
        index,
    } = state
        .registry
        .record_typing(id, &typing, &caller.actor(), state.today())
        .await?;
    state.update_index(index)?;
    Ok((StatusCode::CREATED, Json(json!({"id": typing_id}))))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct StatusIn {
    /// AV, TU, RS, DE
    pub status: String,
    pub reason: Option<String>,
    /// TU end date `YYYY-MM-DD`.
    pub until: Option<String>,
    /// RS: the patient.
    pub patient_id: Option<i64>,
}

/// Change a donor's status (its own station, or a case manager).
#[utoipa::path(post, path = "/v1/donors/{id}/status", params(("id" = i64, Path)), request_body = StatusIn,
    responses((status = 200, body = DonorOut), (status = 422, body = Problem)))]
pub async fn change_status(
    State(state): State<AppState>,
    DonorAccess { caller, donor, .. }: DonorAccess<StationsAndCaseManagers>,
    ApiJson(s): ApiJson<StatusIn>,
) -> ApiResult<Json<DonorOut>> {
    let id = donor.id;
    let status = code(
        "status",
        Some(&s.status),
        Status::from_code,
        Status::Available,
    )?;
    let change = StatusChange {
        status,
        reason: s.reason,
        until: s.until,
        patient_id: s.patient_id,
    };
    let index = state
        .registry
        .change_status(id, &change, &caller.actor())
        .await?
        .index;
    state.update_index(index)?;
    let donor = state.registry.donor(id).await?;
    Ok(Json(donor.into()))
}

/// Every typing of a donor, newest first (its station, coordinators, case managers).
#[utoipa::path(get, path = "/v1/donors/{id}/typings", params(("id" = i64, Path)), responses((status = 200, description = "typings")))]
pub async fn list_typings(
    State(state): State<AppState>,
    DonorAccess { donor, .. }: DonorAccess<DonorReaders>,
) -> ApiResult<Json<Value>> {
    let id = donor.id;
    Ok(Json(json!({"typings": state.registry.typings(id).await?})))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct DonorListQuery {
    /// A station's donors (a station token sees only its own).
    pub station: Option<String>,
    /// AV, TU, RS or DE.
    pub status: Option<String>,
    /// Listed (recruitment consent in force) or not.
    pub listed: Option<bool>,
    pub cursor: Option<String>,
    /// 1–500 (default 50).
    pub limit: Option<u32>,
}

/// Donors by station, status and listing (no identity data): a station sees only its own.
#[utoipa::path(get, path = "/v1/donors", params(DonorListQuery),
    responses((status = 200, description = "`{items, next_cursor}` of donors"), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn list_donors(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<DonorReaders>,
    query: ListQuery<DonorListQuery>,
) -> ApiResult<Json<Page<DonorOut>>> {
    let Query(q) = query?;
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(code(
            "status",
            Some(s),
            Status::from_code,
            Status::Available,
        )?),
    };
    let filter = DonorFilter {
        station: q.station,
        status,
        listed: q.listed,
    };
    let page = state
        .registry
        .list_donors(&caller.actor(), &filter, &page_request(q.cursor, q.limit))
        .await?;
    Ok(Json(Page {
        items: page.items.into_iter().map(DonorOut::from).collect(),
        next_cursor: page.next_cursor,
    }))
}
