//! Bearer tokens and roles.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use registry::Actor;
use registry::people::Person;

use crate::AppState;
use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Station,
    Coordinator,
    CaseManager,
    Admin,
    Auditor,
}

impl Role {
    pub fn from_code(code: &str) -> Option<Role> {
        Some(match code {
            "station" => Role::Station,
            "coordinator" => Role::Coordinator,
            "case_manager" => Role::CaseManager,
            "admin" => Role::Admin,
            "auditor" => Role::Auditor,
            _ => return None,
        })
    }

    pub fn code(self) -> &'static str {
        match self {
            Role::Station => "station",
            Role::Coordinator => "coordinator",
            Role::CaseManager => "case_manager",
            Role::Admin => "admin",
            Role::Auditor => "auditor",
        }
    }
}

/// The caller: a machine with a valid bearer token, or a person signed in to the web pages
/// (whose pages call the API in process, see `crate::web::api`).
#[derive(Debug, Clone)]
pub struct Caller {
    pub role: Role,
    /// Station tokens and station clerks only.
    pub station: Option<String>,
    /// Who, for the audit log: `token:ID` or `person:ID` (never a person's name).
    pub subject: String,
    pub request_id: Option<String>,
}

impl Caller {
    /// Refuse unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }

    /// A signed-in person (`None` for a role the API does not know).
    pub fn person(person: &Person, request_id: Option<String>) -> Option<Caller> {
        Some(Caller {
            role: Role::from_code(&person.role)?,
            station: person.station.clone(),
            subject: format!("person:{}", person.id),
            request_id,
        })
    }

    /// For the audit log: the token or person id (never a person's identity) and the role.
    pub fn actor(&self) -> Actor {
        let mut actor = Actor::new(&self.subject, self.role.code());
        actor.request_id = self.request_id.clone();
        actor.station = self.station.clone();
        actor
    }

    /// A station token acts only on its own station's donors.
    pub fn own_station(&self, station: &str) -> Result<(), ApiError> {
        match (self.role, &self.station) {
            (Role::Station, Some(s)) if s == station => Ok(()),
            (Role::Station, _) => Err(ApiError::forbidden()),
            _ => Ok(()),
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // A page's in-process call carries its signed-in person (an extension no client can
        // set: it never crosses the wire).
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let secret = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(ApiError::unauthorized)?;
        let holder = state
            .registry
            .authenticate(secret)
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        let role = Role::from_code(&holder.role).ok_or_else(ApiError::unauthorized)?;
        let request_id = parts
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok(Caller {
            role,
            station: holder.station,
            subject: format!("token:{}", holder.token_id),
            request_id,
        })
    }
}
