//! Bearer tokens and roles.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use registry::Actor;
use registry::tokens::TokenHolder;

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
    fn from_code(code: &str) -> Option<Role> {
        Some(match code {
            "station" => Role::Station,
            "coordinator" => Role::Coordinator,
            "case_manager" => Role::CaseManager,
            "admin" => Role::Admin,
            "auditor" => Role::Auditor,
            _ => return None,
        })
    }
}

/// The caller, from a valid bearer token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub role: Role,
    pub holder: TokenHolder,
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

    /// For the audit log: the token (never a person's identity) and its role.
    pub fn actor(&self) -> Actor {
        let mut actor = Actor::new(
            &format!("token:{}", self.holder.token_id),
            &self.holder.role,
        );
        actor.request_id = self.request_id.clone();
        actor.station = self.holder.station.clone();
        actor
    }

    /// A station token acts only on its own station's donors.
    pub fn own_station(&self, station: &str) -> Result<(), ApiError> {
        match (self.role, &self.holder.station) {
            (Role::Station, Some(s)) if s == station => Ok(()),
            (Role::Station, _) => Err(ApiError::forbidden()),
            _ => Ok(()),
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
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
            holder,
            request_id,
        })
    }
}
