//! Who may do what. A handler names the access it needs in its signature (`Allowed<Stations>`,
//! `DonorAccess<DonorReaders>`, `SampleAccess`, `IdentityAccess`); these extractors check
//! the caller's role, and for a donor's resources the donor's station, before the handler
//! runs and before its body is parsed, so no handler checks roles or ownership by hand.

use std::marker::PhantomData;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use registry::Donor;
use registry::samples::Sample;

use crate::AppState;
use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::extract::{ApiJson, PathId};

/// A set of roles allowed to call a route.
pub trait Roles: Send + Sync + 'static {
    const ALLOWED: &'static [Role];
}

macro_rules! role_sets {
    ($($(#[$doc:meta])* $name:ident => [$($role:ident),*];)*) => {$(
        $(#[$doc])*
        pub struct $name;
        impl Roles for $name {
            const ALLOWED: &'static [Role] = &[$(Role::$role),*];
        }
    )*};
}

role_sets! {
    /// Every role.
    Anyone => [Station, Coordinator, CaseManager, Admin, Auditor];
    Admins => [Admin];
    Stations => [Station];
    Coordinators => [Coordinator];
    CaseManagers => [CaseManager];
    Auditors => [Auditor];
    /// Those who follow a patient's case: coordinators and case managers.
    CaseWorkers => [Coordinator, CaseManager];
    /// Those who change a donor's status: its station and case managers.
    StationsAndCaseManagers => [Station, CaseManager];
    /// Those who see donors' matching data.
    DonorReaders => [Station, Coordinator, CaseManager];
    /// Those who read the case process's records: coordinators, case managers, auditors.
    CaseReaders => [Coordinator, CaseManager, Auditor];
    /// Organ registrations: the station that took one, or an admin.
    StationsAndAdmins => [Station, Admin];
    /// Care records: case managers record them, auditors read them too.
    CareReaders => [CaseManager, Auditor];
    /// Death-donation cases: case managers, auditors and admins read them.
    CaseReadersAndAdmins => [CaseManager, Auditor, Admin];
}

/// A caller whose role is one of `R`'s.
pub struct Allowed<R: Roles> {
    pub caller: Caller,
    _roles: PhantomData<fn() -> R>,
}

impl<R: Roles> FromRequestParts<AppState> for Allowed<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.require(R::ALLOWED)?;
        Ok(Allowed {
            caller,
            _roles: PhantomData,
        })
    }
}

/// The donor of the path's `{id}`, for a caller whose role is one of `R`'s; a station token
/// reaches only its own station's donors.
pub struct DonorAccess<R: Roles> {
    pub caller: Caller,
    pub donor: Donor,
    _roles: PhantomData<fn() -> R>,
}

impl<R: Roles> FromRequestParts<AppState> for DonorAccess<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Allowed { caller, .. } = Allowed::<R>::from_request_parts(parts, state).await?;
        let PathId(id) = PathId::from_request_parts(parts, state).await?;
        let donor = visible_donor(state, &caller, id).await?;
        Ok(DonorAccess {
            caller,
            donor,
            _roles: PhantomData,
        })
    }
}

/// The donor, if the caller's station (for a station token) is its station.
async fn visible_donor(state: &AppState, caller: &Caller, id: i64) -> Result<Donor, ApiError> {
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

/// The sample of the path's `{id}`, for the station token of its donor's station.
pub struct SampleAccess {
    pub caller: Caller,
    pub sample: Sample,
}

impl FromRequestParts<AppState> for SampleAccess {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Allowed { caller, .. } = Allowed::<Stations>::from_request_parts(parts, state).await?;
        let PathId(id) = PathId::from_request_parts(parts, state).await?;
        let sample = match state.registry.sample(id).await {
            Ok(s) => s,
            Err(registry::RegistryError::NotFound(_)) => return Err(ApiError::forbidden()),
            Err(e) => return Err(e.into()),
        };
        visible_donor(state, &caller, sample.donor_id).await?;
        Ok(SampleAccess { caller, sample })
    }
}

/// A reader of the path's donor's identity: the donor's own station, or a case manager while
/// the donor is in an open case.
pub struct IdentityAccess {
    pub caller: Caller,
    pub donor_id: i64,
}

impl FromRequestParts<AppState> for IdentityAccess {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let PathId(donor_id) = PathId::from_request_parts(parts, state).await?;
        match caller.role {
            Role::Station => {
                visible_donor(state, &caller, donor_id).await?;
            }
            Role::CaseManager if state.registry.donor_in_open_case(donor_id).await? => {}
            _ => return Err(ApiError::forbidden()),
        }
        Ok(IdentityAccess { caller, donor_id })
    }
}

/// A body that names the station it acts for.
pub trait NamesStation {
    fn station(&self) -> &str;
}

/// A station token's JSON body naming a station, which must be the token's own: the role
/// is checked first, then the body parsed, then its station compared.
pub struct StationBody<T> {
    pub caller: Caller,
    pub body: T,
}

impl<T> FromRequest<AppState> for StationBody<T>
where
    T: serde::de::DeserializeOwned + NamesStation + Send,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let (mut parts, body) = req.into_parts();
        let Allowed { caller, .. } =
            Allowed::<Stations>::from_request_parts(&mut parts, state).await?;
        let ApiJson(body) =
            ApiJson::<T>::from_request(Request::from_parts(parts, body), state).await?;
        caller.own_station(body.station())?;
        Ok(StationBody { caller, body })
    }
}
