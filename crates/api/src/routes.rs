//! The routes. Each handler checks the caller's role (and station) before touching data,
//! maps registry errors to problem responses, and refreshes the index after donor writes.

use std::borrow::Cow;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use axum_extra_json::ApiJson;
use matching::{Abo, Cmv, DonorType, Locus, SearchRequest, Sex, Status};
use registry::{ConsentInput, Donor, Identity, NewDonor, StatusChange, TypingInput};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::{Caller, Role};
use crate::error::{ApiError, Problem};

/// JSON bodies whose rejections become problem responses.
mod axum_extra_json {
    use axum::extract::{FromRequest, Request};

    use crate::error::ApiError;

    /// The body as parsed, or the problem with it: handlers check the caller's role first,
    /// so a wrong role is 403 whatever the body.
    pub struct ApiJson<T>(pub Result<T, ApiError>);

    impl<S, T> FromRequest<S> for ApiJson<T>
    where
        T: serde::de::DeserializeOwned,
        S: Send + Sync,
    {
        type Rejection = std::convert::Infallible;

        async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
            Ok(ApiJson(
                axum::Json::<T>::from_request(req, state)
                    .await
                    .map(|axum::Json(v)| v)
                    .map_err(ApiError::from),
            ))
        }
    }
}

type ApiResult<T> = Result<T, ApiError>;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/v1/stations", post(create_station).get(list_stations))
        .route("/v1/donors", post(enrol_donor))
        .route("/v1/donors/{id}", get(get_donor).patch(update_donor))
        .route("/v1/donors/{id}/identity", get(get_identity))
        .route(
            "/v1/donors/{id}/typings",
            post(record_typing).get(list_typings),
        )
        .route(
            "/v1/donors/{id}/samples",
            post(record_sample).get(list_samples),
        )
        .route("/v1/samples/{id}/state", post(set_sample_state))
        .route(
            "/v1/donors/{id}/consents",
            post(give_consent).get(list_consents),
        )
        .route(
            "/v1/donors/{id}/consents/{scope}/withdrawal",
            post(withdraw_consent),
        )
        .route("/v1/donors/{id}/status", post(change_status))
        .route("/v1/patients", post(register_patient))
        .route("/v1/patients/{id}", get(get_patient))
        .route("/v1/searches", post(create_search))
        .route("/v1/searches/{id}", get(get_search))
        .route("/v1/searches/{id}/results", get(search_results))
        .route("/v1/searches/{id}/runs", post(rerun_search))
        .route("/v1/searches/{id}/state", post(set_search_state))
        .route("/v1/requests", post(open_request))
        .route("/v1/requests/{id}/close", post(close_request))
        .route("/v1/requests/{id}/milestones", post(record_milestone))
        .route("/v1/donations", post(record_donation))
        .route("/v1/followups/due", get(followups_due))
        .route("/v1/followups/{id}", post(record_followup))
        .route("/v1/organ-registrations", post(register_organ_donation))
        .route("/v1/organ-cases", post(record_organ_case))
        .route(
            "/v1/organ-registrations/{id}/revocation",
            post(revoke_organ_donation),
        )
        .route("/v1/audit", get(read_audit))
        .route("/v1/hla/expand", post(hla_expand))
}

fn path_id(Path(id): Path<i64>) -> i64 {
    id
}

/// The donor, after checking that the caller may see its matching data.
async fn visible_donor(state: &AppState, caller: &Caller, id: i64) -> ApiResult<Donor> {
    caller.require(&[Role::Station, Role::Coordinator, Role::CaseManager])?;
    let donor = match state.registry.donor(id).await {
        Ok(d) => d,
        // A station token learns nothing about donors of other stations, not even existence.
        Err(registry::RegistryError::NotFound(_)) if caller.role == Role::Station => {
            return Err(ApiError::forbidden());
        }
        Err(e) => return Err(e.into()),
    };
    caller.own_station(&donor.station)?;
    Ok(donor)
}

/// A station token's own donor (for writes).
async fn own_donor(state: &AppState, caller: &Caller, id: i64) -> ApiResult<Donor> {
    caller.require(&[Role::Station])?;
    visible_donor(state, caller, id).await
}

// ---- health ----

/// Alive.
#[utoipa::path(get, path = "/healthz", security(()), responses((status = 200, description = "alive")))]
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Ready: the matching index is loaded.
#[utoipa::path(get, path = "/readyz", security(()), responses((status = 200, description = "index loaded"), (status = 503, body = Problem)))]
pub async fn readyz(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    if state.ready.load(std::sync::atomic::Ordering::SeqCst) {
        let donors = state.index.read().expect("index lock").len();
        Ok(Json(json!({"status": "ready", "indexed_donors": donors})))
    } else {
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the matching index is loading",
        ))
    }
}

// ---- stations ----

#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct StationIn {
    pub code: String,
    pub branch: String,
    pub name: String,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub yearly_target: i64,
}

/// Add a collection station (admin); its branch is created if new.
#[utoipa::path(post, path = "/v1/stations", request_body = StationIn,
    responses((status = 201, body = StationIn), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_station(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(s): ApiJson<StationIn>,
) -> ApiResult<(StatusCode, Json<StationIn>)> {
    caller.require(&[Role::Admin])?;
    let s = s?;
    let actor = caller.actor();
    match state
        .registry
        .add_branch(&s.branch, &s.branch, &s.region, &actor)
        .await
    {
        Ok(()) | Err(registry::RegistryError::Conflict(_)) => {}
        Err(e) => return Err(e.into()),
    }
    state
        .registry
        .add_station(
            &s.code,
            &s.branch,
            &s.name,
            &s.region,
            s.yearly_target,
            &actor,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(s)))
}

/// List station codes (any role).
#[utoipa::path(get, path = "/v1/stations", responses((status = 200, description = "station codes")))]
pub async fn list_stations(
    State(state): State<AppState>,
    _caller: Caller,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({"stations": state.registry.station_codes().await?}),
    ))
}

// ---- donors ----

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
        }
    }
}

fn code<T>(
    field: &str,
    value: Option<&str>,
    parse: impl Fn(&str) -> Option<T>,
    default: T,
) -> ApiResult<T> {
    match value {
        None => Ok(default),
        Some(v) => parse(v).ok_or_else(|| {
            ApiError::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                field,
                format!("`{v}` is not a valid {field}"),
            )
        }),
    }
}

/// Rh as `+` or `-` (absent: unknown).
fn rh_field(value: Option<&str>) -> ApiResult<Option<bool>> {
    match value {
        None => Ok(None),
        Some(r) => registry::rh_from_code(r)
            .filter(Option::is_some)
            .ok_or_else(|| {
                ApiError::field(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "rh",
                    format!("`{r}` is not + or -"),
                )
            }),
    }
}

/// Enrol a donor at the caller's station (station role). Identity goes to its own table.
#[utoipa::path(post, path = "/v1/donors", request_body = DonorIn,
    responses((status = 201, body = DonorOut), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn enrol_donor(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(d): ApiJson<DonorIn>,
) -> ApiResult<(StatusCode, Json<DonorOut>)> {
    caller.require(&[Role::Station])?;
    let d = d?;
    caller.own_station(&d.station)?;
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
    };
    let donor = state
        .registry
        .enrol(&new, &caller.actor(), (state.today)())
        .await?;
    state.refresh_donor(donor.id).await?;
    Ok((StatusCode::CREATED, Json(donor.into())))
}

/// A donor's matching data (never identity): its own station, coordinators, case managers.
#[utoipa::path(get, path = "/v1/donors/{id}", params(("id" = i64, Path)),
    responses((status = 200, body = DonorOut), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_donor(
    State(state): State<AppState>,
    caller: Caller,
    id: Path<i64>,
) -> ApiResult<Json<DonorOut>> {
    Ok(Json(
        visible_donor(&state, &caller, path_id(id)).await?.into(),
    ))
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
    caller: Caller,
    id: Path<i64>,
    ApiJson(u): ApiJson<DonorUpdateIn>,
) -> ApiResult<Json<DonorOut>> {
    let id = path_id(id);
    own_donor(&state, &caller, id).await?;
    let u = u?;
    let update = registry::cases::DonorUpdate {
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
    state
        .registry
        .update_donor(id, &update, &caller.actor())
        .await?;
    state.refresh_donor(id).await?;
    Ok(Json(state.registry.donor(id).await?.into()))
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
    caller: Caller,
    id: Path<i64>,
    query: Result<Query<ReasonQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<IdentityOut>> {
    let id = path_id(id);
    match caller.role {
        Role::Station => {
            visible_donor(&state, &caller, id).await?;
        }
        Role::CaseManager => {
            if !state.registry.donor_in_open_case(id).await? {
                return Err(ApiError::forbidden());
            }
        }
        _ => return Err(ApiError::forbidden()),
    }
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
    caller: Caller,
    id: Path<i64>,
    ApiJson(t): ApiJson<TypingIn>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let id = path_id(id);
    own_donor(&state, &caller, id).await?;
    let t = t?;
    let typing = TypingInput {
        gl: t.gl,
        lab: t.lab,
        method: t.method,
        typed_on: t.typed_on,
        sample_id: t.sample_id,
    };
    let typing_id = state
        .registry
        .record_typing(id, &typing, &caller.actor(), (state.today)())
        .await?;
    state.refresh_donor(id).await?;
    Ok((StatusCode::CREATED, Json(json!({"id": typing_id}))))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SampleIn {
    pub collected_on: String,
    pub volume_ml: Option<f64>,
    pub barcode: String,
    pub lab: Option<String>,
}

/// Record a sample (its own station).
#[utoipa::path(post, path = "/v1/donors/{id}/samples", params(("id" = i64, Path)), request_body = SampleIn,
    responses((status = 201, description = "the sample"), (status = 409, body = Problem)))]
pub async fn record_sample(
    State(state): State<AppState>,
    caller: Caller,
    id: Path<i64>,
    ApiJson(s): ApiJson<SampleIn>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let id = path_id(id);
    let donor = own_donor(&state, &caller, id).await?;
    let s = s?;
    let sample = registry::samples::NewSample {
        station: donor.station,
        collected_on: s.collected_on,
        volume_ml: s.volume_ml,
        barcode: s.barcode,
        lab: s.lab,
    };
    let s = state
        .registry
        .record_sample(id, &sample, &caller.actor())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": s.id, "state": s.state, "barcode": s.barcode})),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct StateIn {
    pub state: String,
    pub reason: Option<String>,
}

/// Move a sample to its next state (the station of its donor).
#[utoipa::path(post, path = "/v1/samples/{id}/state", params(("id" = i64, Path)), request_body = StateIn,
    responses((status = 200, description = "the sample"), (status = 409, body = Problem)))]
pub async fn set_sample_state(
    State(state): State<AppState>,
    caller: Caller,
    id: Path<i64>,
    ApiJson(s): ApiJson<StateIn>,
) -> ApiResult<Json<Value>> {
    caller.require(&[Role::Station])?;
    let s = s?;
    let sample = match state.registry.sample(path_id(id)).await {
        Ok(s) => s,
        Err(registry::RegistryError::NotFound(_)) => return Err(ApiError::forbidden()),
        Err(e) => return Err(e.into()),
    };
    own_donor(&state, &caller, sample.donor_id).await?;
    let s = state
        .registry
        .set_sample_state(sample.id, &s.state, &caller.actor())
        .await?;
    Ok(Json(json!({"id": s.id, "state": s.state})))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ConsentIn {
    /// recruitment, confirmatory_typing, workup, follow_up_contact, research, international_sharing
    pub scope: String,
    pub form_version: String,
    pub note: Option<String>,
}

/// Record a consent (its own station); recruitment consent lists the donor.
#[utoipa::path(post, path = "/v1/donors/{id}/consents", params(("id" = i64, Path)), request_body = ConsentIn,
    responses((status = 201, description = "consent id"), (status = 422, body = Problem)))]
pub async fn give_consent(
    State(state): State<AppState>,
    caller: Caller,
    id: Path<i64>,
    ApiJson(c): ApiJson<ConsentIn>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let id = path_id(id);
    own_donor(&state, &caller, id).await?;
    let c = c?;
    let consent_id = state
        .registry
        .give_consent(
            id,
            &c.scope,
            &ConsentInput {
                form_version: c.form_version,
                note: c.note,
            },
            &caller.actor(),
        )
        .await?;
    state.refresh_donor(id).await?;
    Ok((StatusCode::CREATED, Json(json!({"id": consent_id}))))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct WithdrawalIn {
    pub reason: Option<String>,
}

/// Withdraw a consent (its own station). Withdrawing recruitment consent takes the donor out
/// of search before this returns; warnings name open workups.
#[utoipa::path(post, path = "/v1/donors/{id}/consents/{scope}/withdrawal", params(("id" = i64, Path), ("scope" = String, Path)),
    request_body = WithdrawalIn, responses((status = 200, description = "warnings"), (status = 422, body = Problem)))]
pub async fn withdraw_consent(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, scope)): Path<(i64, String)>,
    ApiJson(w): ApiJson<WithdrawalIn>,
) -> ApiResult<Json<Value>> {
    own_donor(&state, &caller, id).await?;
    let w = w?;
    let warnings = state
        .registry
        .withdraw_consent(id, &scope, &caller.actor(), w.reason.as_deref())
        .await?;
    state.refresh_donor(id).await?;
    Ok(Json(json!({"warnings": warnings})))
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
    caller: Caller,
    id: Path<i64>,
    ApiJson(s): ApiJson<StatusIn>,
) -> ApiResult<Json<DonorOut>> {
    let id = path_id(id);
    caller.require(&[Role::Station, Role::CaseManager])?;
    let s = s?;
    visible_donor(&state, &caller, id).await?;
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
    state
        .registry
        .change_status(id, &change, &caller.actor())
        .await?;
    state.refresh_donor(id).await?;
    Ok(Json(state.registry.donor(id).await?.into()))
}

/// Every typing of a donor, newest first (its station, coordinators, case managers).
#[utoipa::path(get, path = "/v1/donors/{id}/typings", params(("id" = i64, Path)), responses((status = 200, description = "typings")))]
pub async fn list_typings(
    State(state): State<AppState>,
    caller: Caller,
    id: Path<i64>,
) -> ApiResult<Json<Value>> {
    let id = path_id(id);
    visible_donor(&state, &caller, id).await?;
    Ok(Json(json!({"typings": state.registry.typings(id).await?})))
}

/// A donor's samples (its station, case managers).
#[utoipa::path(get, path = "/v1/donors/{id}/samples", params(("id" = i64, Path)), responses((status = 200, description = "samples")))]
pub async fn list_samples(
    State(state): State<AppState>,
    caller: Caller,
    id: Path<i64>,
) -> ApiResult<Json<Value>> {
    let id = path_id(id);
    caller.require(&[Role::Station, Role::CaseManager])?;
    visible_donor(&state, &caller, id).await?;
    let samples: Vec<Value> = state
        .registry
        .samples(id)
        .await?
        .into_iter()
        .map(|s| json!({"id": s.id, "station": s.station, "collected_on": s.collected_on, "volume_ml": s.volume_ml,
            "barcode": s.barcode, "lab": s.lab, "state": s.state}))
        .collect();
    Ok(Json(json!({"samples": samples})))
}

/// A donor's consent records (its station, case managers).
#[utoipa::path(get, path = "/v1/donors/{id}/consents", params(("id" = i64, Path)), responses((status = 200, description = "consents")))]
pub async fn list_consents(
    State(state): State<AppState>,
    caller: Caller,
    id: Path<i64>,
) -> ApiResult<Json<Value>> {
    let id = path_id(id);
    caller.require(&[Role::Station, Role::CaseManager])?;
    visible_donor(&state, &caller, id).await?;
    Ok(Json(
        json!({"consents": state.registry.consents(id).await?}),
    ))
}

// ---- patients and searches ----

#[derive(Debug, Deserialize, ToSchema)]
pub struct PatientIn {
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

/// Register a patient (coordinator).
#[utoipa::path(post, path = "/v1/patients", request_body = PatientIn,
    responses((status = 201, description = "patient id"), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn register_patient(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(p): ApiJson<PatientIn>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(&[Role::Coordinator])?;
    let p = p?;
    let new = registry::cases::NewPatient {
        external_id: p.external_id,
        gl: p.gl,
        birth_date: p.birth_date,
        sex: p.sex,
        abo: p.abo,
        cmv: p.cmv,
        weight_kg: p.weight_kg,
        diagnosis: p.diagnosis,
        transplant_centre: p.transplant_centre,
    };
    let id = state
        .registry
        .register_patient(&new, &caller.actor())
        .await?;
    Ok((StatusCode::CREATED, Json(json!({"id": id}))))
}

/// A patient (coordinator, case manager).
#[utoipa::path(get, path = "/v1/patients/{id}", params(("id" = i64, Path)), responses((status = 200, description = "the patient"), (status = 404, body = Problem)))]
pub async fn get_patient(
    State(state): State<AppState>,
    caller: Caller,
    id: Path<i64>,
) -> ApiResult<Json<Value>> {
    caller.require(&[Role::Coordinator, Role::CaseManager])?;
    let p = state.registry.patient(path_id(id)).await?;
    Ok(Json(
        json!({"id": p.id, "external_id": p.external_id, "gl": p.gl, "birth_date": p.birth_date,
        "sex": p.sex, "abo": p.abo, "cmv": p.cmv, "weight_kg": p.weight_kg, "diagnosis": p.diagnosis,
        "transplant_centre": p.transplant_centre}),
    ))
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct SearchIn {
    pub patient_id: i64,
    /// Total mismatches tolerated over the loci (0–5).
    pub max_mismatches: u8,
    /// Loci matched (default A, B, C, DRB1, DQB1).
    #[serde(default)]
    pub loci: Option<Vec<String>>,
    /// `adult`, `cord` or absent for both.
    #[serde(default)]
    pub donor_type: Option<String>,
    /// Hits kept per run (default 1000, at most 10000).
    #[serde(default)]
    pub keep: Option<usize>,
}

/// One locus of a hit: mismatches, direction, typed, grades per position, antigen and
/// allele mismatches.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LocusDetail {
    pub mismatches: u8,
    pub gvh: u8,
    pub hvg: u8,
    pub typed: bool,
    #[schema(value_type = [String; 2])]
    pub grades: [Cow<'static, str>; 2],
    pub antigen_mismatches: u8,
    pub allele_mismatches: u8,
}

/// One ranked donor of a search run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SearchHitOut {
    pub rank: usize,
    pub donor_id: u64,
    pub mismatches: u8,
    pub grade: String,
    #[schema(value_type = String)]
    pub donor_type: Cow<'static, str>,
    pub age: Option<u32>,
    /// Per matched locus, by name.
    #[schema(value_type = std::collections::BTreeMap<String, LocusDetail>)]
    pub loci: std::collections::BTreeMap<Cow<'static, str>, LocusDetail>,
}

/// A search run: every donor that qualified (`total`), the first `keep` ranked. Stored in
/// the compact `StoredRun` form.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct SearchRun {
    pub total: usize,
    #[serde(default)]
    pub policy: String,
    pub hits: Vec<SearchHitOut>,
    #[serde(default)]
    pub search_ms: f64,
}

/// A page of a run's hits.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchPage<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    pub total: usize,
    pub kept: usize,
    pub offset: usize,
    pub policy: &'a str,
    pub hits: &'a [SearchHitOut],
}

impl SearchRun {
    fn page(&self, id: Option<i64>, offset: usize, limit: usize) -> SearchPage<'_> {
        let from = offset.min(self.hits.len());
        let to = (from + limit.clamp(1, 1000)).min(self.hits.len());
        SearchPage {
            id,
            total: self.total,
            kept: self.hits.len(),
            offset,
            policy: &self.policy,
            hits: &self.hits[from..to],
        }
    }

    /// The stored last run of search `id` (none yet: an empty run). A stored run that does
    /// not read back is an error, never an empty page or an "everything is new" diff.
    /// Reads the compact form `to_stored` writes and the page-shaped form written before it.
    fn stored(id: i64, text: Option<&str>) -> ApiResult<SearchRun> {
        let unreadable = |e: String| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the stored run of search {id} does not read back: {e}"),
            )
        };
        match text {
            None => Ok(SearchRun::default()),
            Some(text) if text.starts_with(STORED_RUN_PREFIX) => {
                serde_json::from_str::<StoredRun>(text)
                    .map_err(|e| e.to_string())
                    .and_then(StoredRun::into_run)
                    .map_err(unreadable)
            }
            Some(text) => serde_json::from_str(text).map_err(|e| unreadable(e.to_string())),
        }
    }

    /// The text stored for this run: the compact form (see `StoredRun`).
    fn to_stored(&self) -> String {
        let mut loci: Vec<&str> = Vec::new();
        for h in &self.hits {
            for name in h.loci.keys() {
                if !loci.contains(&name.as_ref()) {
                    loci.push(name);
                }
            }
        }
        let stored = StoredRun {
            format: STORED_RUN_FORMAT,
            total: self.total,
            policy: Cow::Borrowed(&self.policy),
            search_ms: self.search_ms,
            hits: self
                .hits
                .iter()
                .map(|h| {
                    StoredHit(
                        h.rank,
                        h.donor_id,
                        h.mismatches,
                        Cow::Borrowed(&h.grade),
                        Cow::Borrowed(&h.donor_type),
                        h.age,
                        loci.iter()
                            .map(|&name| {
                                h.loci.get(name).map(|d| {
                                    StoredLocus(
                                        d.mismatches,
                                        d.gvh,
                                        d.hvg,
                                        d.typed,
                                        [Cow::Borrowed(&d.grades[0]), Cow::Borrowed(&d.grades[1])],
                                        d.antigen_mismatches,
                                        d.allele_mismatches,
                                    )
                                })
                            })
                            .collect(),
                    )
                })
                .collect(),
            loci: loci.into_iter().map(Cow::Borrowed).collect(),
        };
        serde_json::to_string(&stored).expect("run serialise")
    }
}

/// The stored form's version; its text starts with `STORED_RUN_PREFIX`.
const STORED_RUN_FORMAT: u8 = 2;
const STORED_RUN_PREFIX: &str = "{\"format\":2,";

/// A run as stored in `searches.last_result`: the same content as `SearchRun`, with hits and
/// per-locus details as JSON arrays and the locus names once per run, about a quarter of
/// the page-shaped JSON: each search writes it, so it is kept small.
#[derive(Serialize, Deserialize)]
struct StoredRun<'a> {
    /// Serialised first: `stored` tells the forms apart by the text's start.
    format: u8,
    total: usize,
    policy: Cow<'a, str>,
    search_ms: f64,
    /// The locus names of every hit's `loci`, in this order.
    loci: Vec<Cow<'a, str>>,
    hits: Vec<StoredHit<'a>>,
}

/// A hit as a JSON array: rank, donor id, mismatches, grade, donor type, age, and per
/// locus of the run's `loci` its detail (`null` where the hit has none).
#[derive(Serialize, Deserialize)]
struct StoredHit<'a>(
    usize,
    u64,
    u8,
    Cow<'a, str>,
    Cow<'a, str>,
    Option<u32>,
    Vec<Option<StoredLocus<'a>>>,
);

/// A `LocusDetail` as a JSON array, its fields in declaration order.
#[derive(Serialize, Deserialize)]
struct StoredLocus<'a>(u8, u8, u8, bool, [Cow<'a, str>; 2], u8, u8);

impl StoredRun<'_> {
    fn into_run(self) -> Result<SearchRun, String> {
        // Locus names are few: share the static names where they are known.
        let name = |n: Cow<'_, str>| -> Cow<'static, str> {
            match n.parse::<Locus>() {
                Ok(l) if l.name() == n => Cow::Borrowed(l.name()),
                _ => Cow::Owned(n.into_owned()),
            }
        };
        let loci: Vec<Cow<'static, str>> = self.loci.into_iter().map(name).collect();
        let hits = self
            .hits
            .into_iter()
            .map(|h| {
                if h.6.len() != loci.len() {
                    return Err(format!(
                        "hit {} has {} locus details for {} loci",
                        h.0,
                        h.6.len(),
                        loci.len()
                    ));
                }
                Ok(SearchHitOut {
                    rank: h.0,
                    donor_id: h.1,
                    mismatches: h.2,
                    grade: h.3.into_owned(),
                    donor_type: Cow::Owned(h.4.into_owned()),
                    age: h.5,
                    loci: loci
                        .iter()
                        .zip(h.6)
                        .filter_map(|(l, d)| {
                            let d = d?;
                            let [g0, g1] = d.4;
                            Some((
                                l.clone(),
                                LocusDetail {
                                    mismatches: d.0,
                                    gvh: d.1,
                                    hvg: d.2,
                                    typed: d.3,
                                    grades: [
                                        Cow::Owned(g0.into_owned()),
                                        Cow::Owned(g1.into_owned()),
                                    ],
                                    antigen_mismatches: d.5,
                                    allele_mismatches: d.6,
                                },
                            ))
                        })
                        .collect(),
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(SearchRun {
            total: self.total,
            policy: self.policy.into_owned(),
            hits,
            search_ms: self.search_ms,
        })
    }
}

/// Run a search's criteria against the live index, RS donors of this patient included.
async fn run(state: &AppState, criteria: &SearchIn) -> ApiResult<SearchRun> {
    // The patient and the donors reserved for them (offered whatever their status).
    let (patient, reserved) = state
        .registry
        .patient_with_reserved(criteria.patient_id)
        .await?;
    // The subject is built under the index lock, sharing the index's expanded typings.
    let mut req = SearchRequest::new(Default::default(), criteria.max_mismatches);
    req.today = (state.today)();
    if let Some(loci) = &criteria.loci {
        req.loci = loci
            .iter()
            .map(|l| l.parse::<Locus>())
            .collect::<Result<_, _>>()
            .map_err(|e: String| ApiError::field(StatusCode::UNPROCESSABLE_ENTITY, "loci", e))?;
    }
    req.donor_type = match criteria.donor_type.as_deref() {
        None => None,
        Some(t) => Some(code(
            "donor_type",
            Some(t),
            DonorType::from_code,
            DonorType::Adult,
        )?),
    };
    req.limit = criteria.keep.unwrap_or(1000).min(10_000);
    req.patient_weight_kg = patient.weight_kg.map(|w| w as f32);
    req.also_offered = reserved.into_iter().map(|id| id as u32).collect();
    req.validate()
        .map_err(|e| ApiError::field(StatusCode::UNPROCESSABLE_ENTITY, "criteria", e))?;
    let index = state.index.clone();
    let started = std::time::Instant::now();
    let (result, loci) = state
        .search_slots
        .run(move || {
            let index = index.read().expect("index lock");
            req.patient = index.subject_from_gl(&patient.gl).map_err(|e| {
                ApiError::field(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "patient.gl",
                    e.to_string(),
                )
            })?;
            let result = index
                .search(&req)
                .map_err(|e| ApiError::field(StatusCode::UNPROCESSABLE_ENTITY, "criteria", e))?;
            Ok::<_, ApiError>((result, req.loci))
        })
        .await??;
    let hits = result
        .hits
        .iter()
        .map(|h| SearchHitOut {
            rank: h.rank,
            donor_id: h.key as u64,
            mismatches: h.total,
            grade: h.grade(&loci),
            donor_type: Cow::Borrowed(h.attributes.donor_type.code()),
            age: h.age,
            loci: loci
                .iter()
                .map(|l| {
                    let s = h.score.locus(*l);
                    let detail = LocusDetail {
                        mismatches: s.mismatches,
                        gvh: s.gvh,
                        hvg: s.hvg,
                        typed: s.typed,
                        grades: s.grades.map(|g| Cow::Borrowed(g.code())),
                        antigen_mismatches: s.antigen_mismatches,
                        allele_mismatches: s.allele_mismatches,
                    };
                    (Cow::Borrowed(l.name()), detail)
                })
                .collect(),
        })
        .collect();
    Ok(SearchRun {
        total: result.total,
        policy: result.policy,
        hits,
        search_ms: started.elapsed().as_secs_f64() * 1e3,
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct PageQuery {
    #[serde(default)]
    pub offset: usize,
    pub limit: Option<usize>,
}

/// Create a search for a patient and run it (coordinator). Returns the search id and the
/// first page.
#[utoipa::path(post, path = "/v1/searches", request_body = SearchIn,
    responses((status = 201, description = "search id and first page"), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn create_search(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(criteria): ApiJson<SearchIn>,
) -> ApiResult<axum::response::Response> {
    caller.require(&[Role::Coordinator])?;
    let criteria = criteria?;
    if criteria.max_mismatches > 5 {
        return Err(ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "max_mismatches",
            "at most 5",
        ));
    }
    let result = run(&state, &criteria).await?;
    let text = serde_json::to_string(&criteria).expect("criteria serialise");
    let run_text = result.to_stored();
    let actor = caller.actor();
    let id = state
        .registry
        .open_search_with_run(criteria.patient_id, &text, &run_text, &actor)
        .await?;
    // Written straight from the run (no intermediate JSON tree).
    Ok((StatusCode::CREATED, Json(result.page(Some(id), 0, 20))).into_response())
}

/// A search's criteria and state (coordinator).
#[utoipa::path(get, path = "/v1/searches/{id}", params(("id" = i64, Path)), responses((status = 200, description = "the search")))]
pub async fn get_search(
    State(state): State<AppState>,
    caller: Caller,
    id: Path<i64>,
) -> ApiResult<Json<Value>> {
    caller.require(&[Role::Coordinator])?;
    let s = state.registry.search_record(path_id(id)).await?;
    Ok(Json(
        json!({"id": s.id, "patient_id": s.patient_id, "state": s.state, "state_reason": s.state_reason,
        "criteria": serde_json::from_str::<Value>(&s.criteria).unwrap_or(Value::Null), "last_run_at": s.last_run_at}),
    ))
}

/// A page of the last run's results, with per-locus detail and the total count.
#[utoipa::path(get, path = "/v1/searches/{id}/results", params(("id" = i64, Path), PageQuery), responses((status = 200, description = "a page")))]
pub async fn search_results(
    State(state): State<AppState>,
    caller: Caller,
    id: Path<i64>,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<axum::response::Response> {
    caller.require(&[Role::Coordinator])?;
    let Query(q) = query?;
    let s = state.registry.search_record(path_id(id)).await?;
    let result = SearchRun::stored(s.id, s.last_result.as_deref())?;
    Ok(Json(result.page(None, q.offset, q.limit.unwrap_or(20))).into_response())
}

/// Re-run a search against today's registry; returns what changed since the last run: new
/// donors, changed (mismatches or grade), gone.
#[utoipa::path(post, path = "/v1/searches/{id}/runs", params(("id" = i64, Path)), responses((status = 200, description = "the diff")))]
pub async fn rerun_search(
    State(state): State<AppState>,
    caller: Caller,
    id: Path<i64>,
) -> ApiResult<Json<Value>> {
    caller.require(&[Role::Coordinator])?;
    let s = state.registry.search_record(path_id(id)).await?;
    if s.state == "STP" {
        return Err(ApiError::new(StatusCode::CONFLICT, "the search is stopped"));
    }
    let criteria: SearchIn = serde_json::from_str(&s.criteria).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("stored criteria: {e}"),
        )
    })?;
    let before = SearchRun::stored(s.id, s.last_result.as_deref())?;
    let after = run(&state, &criteria).await?;
    let by_donor = |v: &SearchRun| -> std::collections::BTreeMap<u64, (u8, String)> {
        v.hits
            .iter()
            .map(|h| (h.donor_id, (h.mismatches, h.grade.clone())))
            .collect()
    };
    let (old, new) = (by_donor(&before), by_donor(&after));
    let added: Vec<u64> = new
        .keys()
        .filter(|k| !old.contains_key(k))
        .copied()
        .collect();
    let gone: Vec<u64> = old
        .keys()
        .filter(|k| !new.contains_key(k))
        .copied()
        .collect();
    let changed: Vec<u64> = new
        .iter()
        .filter(|(k, v)| old.get(k).is_some_and(|o| o != *v))
        .map(|(k, _)| *k)
        .collect();
    state
        .registry
        .record_search_run(s.id, &after.to_stored(), &caller.actor())
        .await?;
    Ok(Json(
        json!({"id": s.id, "total": after.total, "new": added, "changed": changed, "gone": gone}),
    ))
}

/// Move a search through its lifecycle (NEW, PRE, ACT, SUS, STP with a reason).
#[utoipa::path(post, path = "/v1/searches/{id}/state", params(("id" = i64, Path)), request_body = StateIn, responses((status = 200, description = "done"), (status = 409, body = Problem)))]
pub async fn set_search_state(
    State(state): State<AppState>,
    caller: Caller,
    id: Path<i64>,
    ApiJson(s): ApiJson<StateIn>,
) -> ApiResult<Json<Value>> {
    caller.require(&[Role::Coordinator])?;
    let s = s?;
    let id = path_id(id);
    state
        .registry
        .set_search_state(id, &s.state, s.reason.as_deref(), &caller.actor())
        .await?;
    Ok(Json(json!({"id": id, "state": s.state})))
}

// ---- requests, donations, follow-ups ----

#[derive(Debug, Deserialize, ToSchema)]
pub struct RequestIn {
    pub patient_id: i64,
    pub donor_id: i64,
    /// extended_typing, confirmatory_typing, reservation, workup
    pub kind: String,
}

/// Open a request for a patient–donor pair (coordinator; case managers open workups).
#[utoipa::path(post, path = "/v1/requests", request_body = RequestIn, responses((status = 201, description = "request id"), (status = 409, body = Problem)))]
pub async fn open_request(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(r): ApiJson<RequestIn>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(&[Role::Coordinator, Role::CaseManager])?;
    let r = r?;
    if caller.role == Role::CaseManager && r.kind != "workup" {
        return Err(ApiError::forbidden());
    }
    let id = state
        .registry
        .open_request(
            r.patient_id,
            r.donor_id,
            &r.kind,
            &caller.actor(),
            (state.today)(),
        )
        .await?;
    state.refresh_donor(r.donor_id).await?;
    Ok((StatusCode::CREATED, Json(json!({"id": id}))))
}

/// Close a request: done, cancelled or refused.
#[utoipa::path(post, path = "/v1/requests/{id}/close", params(("id" = i64, Path)), request_body = StateIn, responses((status = 200, description = "closed"), (status = 409, body = Problem)))]
pub async fn close_request(
    State(state): State<AppState>,
    caller: Caller,
    id: Path<i64>,
    ApiJson(s): ApiJson<StateIn>,
) -> ApiResult<Json<Value>> {
    caller.require(&[Role::Coordinator, Role::CaseManager])?;
    let s = s?;
    let id = path_id(id);
    let donor_id = state.registry.request_donor(id).await?;
    state
        .registry
        .close_request(id, &s.state, &caller.actor())
        .await?;
    state.refresh_donor(donor_id).await?;
    Ok(Json(json!({"id": id, "state": s.state})))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct MilestoneIn {
    pub milestone: String,
    /// `YYYY-MM-DD`.
    pub on: String,
    pub ok: Option<bool>,
}

/// Record a workup milestone (case manager).
#[utoipa::path(post, path = "/v1/requests/{id}/milestones", params(("id" = i64, Path)), request_body = MilestoneIn, responses((status = 201, description = "recorded"), (status = 409, body = Problem)))]
pub async fn record_milestone(
    State(state): State<AppState>,
    caller: Caller,
    id: Path<i64>,
    ApiJson(m): ApiJson<MilestoneIn>,
) -> ApiResult<StatusCode> {
    caller.require(&[Role::CaseManager])?;
    let m = m?;
    state
        .registry
        .record_milestone(path_id(id), &m.milestone, &m.on, m.ok, &caller.actor())
        .await?;
    Ok(StatusCode::CREATED)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct DonationIn {
    pub donor_id: i64,
    pub patient_id: Option<i64>,
    /// pbsc, bone_marrow, dli, …
    pub product: String,
    pub donated_on: String,
    pub station: Option<String>,
}

/// Record a donation (case manager); the follow-up schedule is created with it.
#[utoipa::path(post, path = "/v1/donations", request_body = DonationIn, responses((status = 201, description = "donation id"), (status = 422, body = Problem)))]
pub async fn record_donation(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(d): ApiJson<DonationIn>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(&[Role::CaseManager])?;
    let d = d?;
    let id = state
        .registry
        .record_donation(
            d.donor_id,
            d.patient_id,
            &d.product,
            &d.donated_on,
            d.station.as_deref(),
            &caller.actor(),
        )
        .await?;
    state.refresh_donor(d.donor_id).await?;
    Ok((StatusCode::CREATED, Json(json!({"id": id}))))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct DueQuery {
    #[serde(default)]
    pub overdue: bool,
    /// `YYYY-MM-DD` (default today).
    pub on: Option<String>,
}

/// Follow-ups due (or overdue) (case manager).
#[utoipa::path(get, path = "/v1/followups/due", params(DueQuery), responses((status = 200, description = "follow-ups")))]
pub async fn followups_due(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<DueQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    caller.require(&[Role::CaseManager])?;
    let Query(q) = query?;
    let day = match q.on.as_deref() {
        None => (state.today)(),
        Some(d) => matching::model::parse_birth_date(d)
            .map_err(|r| ApiError::field(StatusCode::BAD_REQUEST, "on", r))?
            as i64,
    };
    let due = state.registry.followups_due(day, q.overdue).await?;
    let items: Vec<Value> = due.into_iter().map(|(id, donor, label, due_on)| json!({"id": id, "donor_id": donor, "label": label, "due_on": due_on})).collect();
    Ok(Json(json!({"followups": items})))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct FollowupIn {
    /// done or missed
    pub state: String,
    pub on: String,
    pub outcome: Option<String>,
    pub adverse_event: Option<String>,
}

/// Record a follow-up (case manager).
#[utoipa::path(post, path = "/v1/followups/{id}", params(("id" = i64, Path)), request_body = FollowupIn, responses((status = 200, description = "recorded"), (status = 409, body = Problem)))]
pub async fn record_followup(
    State(state): State<AppState>,
    caller: Caller,
    id: Path<i64>,
    ApiJson(f): ApiJson<FollowupIn>,
) -> ApiResult<Json<Value>> {
    caller.require(&[Role::CaseManager])?;
    let f = f?;
    let id = path_id(id);
    state
        .registry
        .record_followup(
            id,
            &f.state,
            &f.on,
            f.outcome.as_deref(),
            f.adverse_event.as_deref(),
            &caller.actor(),
        )
        .await?;
    Ok(Json(json!({"id": id, "state": f.state})))
}

// ---- organ registrations ----

#[derive(Debug, Deserialize, ToSchema)]
pub struct OrganIn {
    pub family_name: String,
    pub given_name: String,
    pub national_id: String,
    pub birth_date: String,
    #[serde(default)]
    pub organs: Vec<String>,
    #[serde(default)]
    pub tissues: Vec<String>,
    #[serde(default)]
    pub whole_body: bool,
}

/// Register an organ, tissue or whole-body donation wish (station).
#[utoipa::path(post, path = "/v1/organ-registrations", request_body = OrganIn, responses((status = 201, description = "registration id"), (status = 409, body = Problem)))]
pub async fn register_organ_donation(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(o): ApiJson<OrganIn>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(&[Role::Station])?;
    let o = o?;
    let organs: Vec<&str> = o.organs.iter().map(String::as_str).collect();
    let tissues: Vec<&str> = o.tissues.iter().map(String::as_str).collect();
    let id = state
        .registry
        .register_organ_donation(
            &o.family_name,
            &o.given_name,
            &o.national_id,
            &o.birth_date,
            &organs,
            &tissues,
            o.whole_body,
            &caller.actor(),
            (state.today)(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(json!({"id": id}))))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct OrganChangeIn {
    #[serde(default)]
    pub organs: Vec<String>,
    #[serde(default)]
    pub tissues: Vec<String>,
    #[serde(default)]
    pub whole_body: bool,
}

/// Change what an active registration gives (station).
#[utoipa::path(post, path = "/v1/organ-registrations/{id}", params(("id" = i64, Path)), request_body = OrganChangeIn, responses((status = 200, description = "changed"), (status = 404, body = Problem)))]
pub async fn change_organ_donation(
    State(state): State<AppState>,
    caller: Caller,
    id: Path<i64>,
    ApiJson(o): ApiJson<OrganChangeIn>,
) -> ApiResult<Json<Value>> {
    caller.require(&[Role::Station])?;
    let o = o?;
    let id = path_id(id);
    let organs: Vec<&str> = o.organs.iter().map(String::as_str).collect();
    let tissues: Vec<&str> = o.tissues.iter().map(String::as_str).collect();
    state
        .registry
        .change_organ_donation(id, &organs, &tissues, o.whole_body, &caller.actor())
        .await?;
    Ok(Json(json!({"id": id, "state": "active"})))
}

/// Revoke an organ donation registration (station).
#[utoipa::path(post, path = "/v1/organ-registrations/{id}/revocation", params(("id" = i64, Path)), responses((status = 200, description = "revoked"), (status = 404, body = Problem)))]
pub async fn revoke_organ_donation(
    State(state): State<AppState>,
    caller: Caller,
    id: Path<i64>,
) -> ApiResult<Json<Value>> {
    caller.require(&[Role::Station])?;
    let id = path_id(id);
    state
        .registry
        .revoke_organ_donation(id, &caller.actor())
        .await?;
    Ok(Json(json!({"id": id, "state": "revoked"})))
}

/// A donation case after death.
#[derive(Debug, Deserialize, ToSchema)]
pub struct OrganCaseIn {
    /// The deceased's registration of intent, when there is one (must not be revoked).
    #[serde(default)]
    pub registration_id: Option<i64>,
    /// `YYYY-MM-DD`.
    pub died_on: String,
    /// Who gave the family's written consent (spouse, adult children, parents, jointly).
    pub family_consent: String,
    /// The Red Cross witness of the case.
    pub witness: String,
    #[serde(default)]
    pub outcome: Option<String>,
}

/// Record an organ/tissue/body donation case: family consent and a Red Cross witness are
/// required (case manager).
#[utoipa::path(post, path = "/v1/organ-cases", request_body = OrganCaseIn, responses((status = 201, description = "case id"), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn record_organ_case(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(c): ApiJson<OrganCaseIn>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(&[Role::CaseManager])?;
    let c = c?;
    let id = state
        .registry
        .record_organ_case(
            c.registration_id,
            &c.died_on,
            &c.family_consent,
            &c.witness,
            c.outcome.as_deref(),
            &caller.actor(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(json!({"id": id}))))
}

// ---- audit, HLA ----

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    pub entity: Option<String>,
    pub entity_id: Option<String>,
    pub before_id: Option<i64>,
    pub limit: Option<i64>,
}

/// Read the audit log, newest first (auditor).
#[utoipa::path(get, path = "/v1/audit", params(AuditQuery), responses((status = 200, description = "entries")))]
pub async fn read_audit(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    caller.require(&[Role::Auditor])?;
    let Query(q) = query?;
    let entries = state
        .registry
        .audit_entries(
            q.entity.as_deref(),
            q.entity_id.as_deref(),
            q.before_id,
            q.limit.unwrap_or(100),
        )
        .await?;
    Ok(Json(json!({"entries": entries})))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ExpandIn {
    /// GL strings or single positions.
    pub typings: Vec<String>,
}

/// Expand typings to P groups (any role).
#[utoipa::path(post, path = "/v1/hla/expand", request_body = ExpandIn, responses((status = 200, description = "one result per typing"), (status = 422, body = Problem)))]
pub async fn hla_expand(
    State(state): State<AppState>,
    _caller: Caller,
    ApiJson(e): ApiJson<ExpandIn>,
) -> ApiResult<Json<Value>> {
    let e = e?;
    if e.typings.len() > 1000 {
        return Err(ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "typings",
            "at most 1000 per call",
        ));
    }
    let expander = state.registry.expander().clone();
    let release = expander.release().version.clone();
    let results: Vec<Value> = e
        .typings
        .iter()
        .map(|t| match hla::GlString::parse(t).and_then(|gl| hla::locus_typings(&gl)) {
            Err(err) => json!({"typing": t, "error": err.to_string()}),
            Ok(loci) => {
                let mut positions = Vec::new();
                for l in &loci {
                    for p in &l.positions {
                        positions.push(match expander.expand_list(p) {
                            Ok(set) => json!({"locus": l.locus, "typing": p.to_string(),
                                "p_groups": set.p_key_names(expander.release()), "null": set.is_null()}),
                            Err(err) => json!({"locus": l.locus, "typing": p.to_string(), "error": err.to_string()}),
                        });
                    }
                }
                json!({"typing": t, "positions": positions})
            }
        })
        .collect();
    Ok(Json(json!({"release": release, "results": results})))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detail(mismatches: u8, grade: &'static str) -> LocusDetail {
        LocusDetail {
            mismatches,
            gvh: mismatches,
            hvg: 0,
            typed: true,
            grades: [Cow::Borrowed(grade), Cow::Borrowed("A")],
            antigen_mismatches: mismatches,
            allele_mismatches: 0,
        }
    }

    fn run() -> SearchRun {
        let hit = |rank: usize, donor_id: u64, loci: &[(&'static str, LocusDetail)]| SearchHitOut {
            rank,
            donor_id,
            mismatches: loci.iter().map(|(_, d)| d.mismatches).sum(),
            grade: "9/10".into(),
            donor_type: Cow::Borrowed("A"),
            age: (rank == 1).then_some(31),
            loci: loci
                .iter()
                .map(|(l, d)| (Cow::Borrowed(*l), d.clone()))
                .collect(),
        };
        SearchRun {
            total: 7,
            policy: "default-v1".into(),
            search_ms: 2.5,
            hits: vec![
                hit(1, 42, &[("A", detail(0, "P")), ("DRB1", detail(1, "M"))]),
                // A hit without a detail at one of the run's loci reads back without it.
                hit(2, 7, &[("B", detail(0, "G"))]),
            ],
        }
    }

    fn json(run: &SearchRun) -> Value {
        serde_json::to_value(run).unwrap()
    }

    #[test]
    fn a_stored_run_reads_back_as_it_was() {
        let run = run();
        let text = run.to_stored();
        assert!(text.starts_with(STORED_RUN_PREFIX), "{text}");
        // Much smaller than the page-shaped form.
        assert!(
            text.len() * 2 < serde_json::to_string(&run).unwrap().len(),
            "{text}"
        );
        let back = SearchRun::stored(1, Some(&text)).unwrap();
        assert_eq!(json(&back), json(&run));
    }

    #[test]
    fn a_run_stored_in_the_earlier_form_still_reads() {
        let run = run();
        let text = serde_json::to_string(&run).unwrap();
        let back = SearchRun::stored(1, Some(&text)).unwrap();
        assert_eq!(json(&back), json(&run));
        assert_eq!(
            json(&SearchRun::stored(1, None).unwrap())["hits"],
            json!([])
        );
    }

    #[test]
    fn a_damaged_stored_run_is_an_error_naming_the_search() {
        let text = run().to_stored();
        for damaged in [
            text[..text.len() / 2].to_string(),
            text.replacen("[0,0,0,true", "[0,0,true", 1),
            // A hit with fewer locus details than the run has loci.
            text.replacen(",null]]", "]]", 1),
        ] {
            assert_ne!(damaged, text);
            let e = SearchRun::stored(9, Some(&damaged)).unwrap_err();
            assert!(format!("{e:?}").contains("search 9"), "{e:?}");
        }
    }
}
