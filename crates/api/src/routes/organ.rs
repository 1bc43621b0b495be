//! Organ, tissue and whole-body donation: registrations of intent and donation cases.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use registry::{NewOrganRegistration, OrganRegistration, Page, RegistrationImport};

use super::input::{ApiJson, ApiResult, ListQuery, PathId, page_request};
use crate::AppState;
use crate::access::{Allowed, StationsAndAdmins};
use crate::error::Problem;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/organ-registrations",
            post(register_organ_donation).get(list_organ_registrations),
        )
        .route(
            "/v1/organ-registrations/{id}",
            post(change_organ_donation).get(get_organ_registration),
        )
        .route(
            "/v1/organ-registrations/{id}/revocation",
            post(revoke_organ_donation),
        )
        .route(
            "/v1/organ-registrations/import",
            post(import_organ_registrations),
        )
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct OrganIn {
    pub family_name: String,
    pub given_name: String,
    pub national_id: String,
    /// `YYYY-MM-DD`; 18 or older on the day of registration.
    pub birth_date: String,
    #[serde(default)]
    pub organs: Vec<String>,
    #[serde(default)]
    pub tissues: Vec<String>,
    #[serde(default)]
    pub whole_body: bool,
    /// A station token's own (may be omitted); an admin names one.
    pub station: Option<String>,
    /// Default: the station's region.
    pub region: Option<String>,
    pub ethnicity: Option<String>,
    /// online (default), paper, drive
    pub channel: Option<String>,
    /// The day it was made (a paper form's date); default today.
    pub registered_on: Option<String>,
    /// The campaign it was made at (held by the station).
    pub campaign_id: Option<i64>,
}

/// Register an organ, tissue or whole-body donation wish (a station for itself, or an
/// admin naming the station).
#[utoipa::path(post, path = "/v1/organ-registrations", request_body = OrganIn, responses((status = 201, description = "registration id"), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn register_organ_donation(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<StationsAndAdmins>,
    ApiJson(o): ApiJson<OrganIn>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let id = state
        .registry
        .register_organ_donation(
            &NewOrganRegistration {
                family_name: o.family_name,
                given_name: o.given_name,
                national_id: o.national_id,
                birth_date: o.birth_date,
                organs: o.organs,
                tissues: o.tissues,
                whole_body: o.whole_body,
                station: o.station,
                region: o.region,
                ethnicity: o.ethnicity,
                channel: o.channel.unwrap_or_else(|| "online".into()),
                registered_on: o.registered_on,
                campaign_id: o.campaign_id,
            },
            &caller.actor(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(json!({"id": id}))))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ImportQuery {
    /// The station the forms were taken at (a station token: its own).
    pub station: Option<String>,
}

/// Import paper registrations from CSV (header: family_name, given_name, national_id,
/// birth_date, organs, tissues, whole_body, registered_on, region, ethnicity, campaign_id;
/// lists `;`-separated). Every bad line is named with its field; the good ones are kept.
#[utoipa::path(post, path = "/v1/organ-registrations/import", params(ImportQuery), request_body(content = String, content_type = "text/csv"),
    responses((status = 200, description = "`{created, ids, errors: [{line, field, reason}]}`"), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn import_organ_registrations(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<StationsAndAdmins>,
    query: ListQuery<ImportQuery>,
    body: axum::body::Bytes,
) -> ApiResult<Json<RegistrationImport>> {
    let Query(q) = query?;
    Ok(Json(
        state
            .registry
            .import_organ_registrations(&body[..], q.station.as_deref(), &caller.actor())
            .await?,
    ))
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
    Allowed { caller, .. }: Allowed<StationsAndAdmins>,
    PathId(id): PathId,
    ApiJson(o): ApiJson<OrganChangeIn>,
) -> ApiResult<Json<Value>> {
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
    Allowed { caller, .. }: Allowed<StationsAndAdmins>,
    PathId(id): PathId,
) -> ApiResult<Json<Value>> {
    state
        .registry
        .revoke_organ_donation(id, &caller.actor())
        .await?;
    Ok(Json(json!({"id": id, "state": "revoked"})))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct RegistrationListQuery {
    /// active or revoked.
    pub state: Option<String>,
    /// An admin may ask for one station's; a station sees only its own.
    pub station: Option<String>,
    pub cursor: Option<String>,
    /// 1–500 (default 50).
    pub limit: Option<u32>,
}

/// Registrations: a station's own (an admin: any), national ids masked; the read is
/// audited.
#[utoipa::path(get, path = "/v1/organ-registrations", params(RegistrationListQuery),
    responses((status = 200, description = "`{items, next_cursor}` of registrations"), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn list_organ_registrations(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<StationsAndAdmins>,
    query: ListQuery<RegistrationListQuery>,
) -> ApiResult<Json<Page<OrganRegistration>>> {
    let Query(q) = query?;
    Ok(Json(
        state
            .registry
            .list_organ_registrations(
                &caller.actor(),
                q.station.as_deref(),
                q.state.as_deref(),
                &page_request(q.cursor, q.limit),
            )
            .await?,
    ))
}

/// One registration in full, for the station that took it or an admin; audited.
#[utoipa::path(get, path = "/v1/organ-registrations/{id}", params(("id" = i64, Path)),
    responses((status = 200, description = "the registration"), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_organ_registration(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<StationsAndAdmins>,
    PathId(id): PathId,
) -> ApiResult<Json<OrganRegistration>> {
    Ok(Json(
        state
            .registry
            .organ_registration(id, &caller.actor())
            .await?,
    ))
}
