//! People's accounts for the web pages (admin): create, list, disable and enable. Passwords
//! are hashed with argon2id by the registry and never returned or logged.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use registry::people::Person;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::input::{ApiJson, ApiResult, PathId};
use crate::AppState;
use crate::access::{Admins, Allowed};
use crate::error::Problem;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/people", post(create_person).get(list_people))
        .route("/v1/people/{id}/disabled", post(set_disabled))
        .route("/v1/people/{id}/password", post(set_password))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PersonIn {
    /// The sign-in name (no spaces).
    pub name: String,
    /// station, coordinator, case_manager, admin, auditor
    pub role: String,
    /// A station clerk's station.
    pub station: Option<String>,
    /// At least 10 characters.
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PersonOut {
    pub id: i64,
    pub name: String,
    pub role: String,
    pub station: Option<String>,
    pub created_at: String,
    /// Locked after repeated failed sign-ins, until this instant.
    pub locked_until: Option<String>,
    pub disabled: bool,
}

impl From<Person> for PersonOut {
    fn from(p: Person) -> PersonOut {
        PersonOut {
            id: p.id,
            name: p.name,
            role: p.role,
            station: p.station,
            created_at: p.created_at,
            locked_until: p.locked_until,
            disabled: p.disabled,
        }
    }
}

/// Create a person's account (admin).
#[utoipa::path(post, path = "/v1/people", request_body = PersonIn,
    responses((status = 201, body = PersonOut), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_person(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<Admins>,
    ApiJson(p): ApiJson<PersonIn>,
) -> ApiResult<(StatusCode, Json<PersonOut>)> {
    let person = state
        .registry
        .create_person(
            &p.name,
            &p.role,
            p.station.as_deref().filter(|s| !s.is_empty()),
            &p.password,
            &caller.actor(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(person.into())))
}

/// Every account, by name (admin).
#[utoipa::path(get, path = "/v1/people", responses((status = 200, body = [PersonOut])))]
pub async fn list_people(
    State(state): State<AppState>,
    _: Allowed<Admins>,
) -> ApiResult<Json<Vec<PersonOut>>> {
    Ok(Json(
        state
            .registry
            .people()
            .await?
            .into_iter()
            .map(PersonOut::from)
            .collect(),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct DisabledIn {
    pub disabled: bool,
}

/// Disable an account (its sessions end) or enable it again (admin).
#[utoipa::path(post, path = "/v1/people/{id}/disabled", params(("id" = i64, Path)), request_body = DisabledIn,
    responses((status = 204, description = "done"), (status = 404, body = Problem)))]
pub async fn set_disabled(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<Admins>,
    PathId(id): PathId,
    ApiJson(d): ApiJson<DisabledIn>,
) -> ApiResult<StatusCode> {
    state
        .registry
        .set_person_disabled(id, d.disabled, &caller.actor())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PasswordIn {
    /// At least 10 characters.
    pub password: String,
}

/// Set a new password (admin): clears a lock-out and ends the account's sessions.
#[utoipa::path(post, path = "/v1/people/{id}/password", params(("id" = i64, Path)), request_body = PasswordIn,
    responses((status = 204, description = "done"), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn set_password(
    State(state): State<AppState>,
    Allowed { caller, .. }: Allowed<Admins>,
    PathId(id): PathId,
    ApiJson(p): ApiJson<PasswordIn>,
) -> ApiResult<StatusCode> {
    state
        .registry
        .set_person_password(id, &p.password, &caller.actor())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
