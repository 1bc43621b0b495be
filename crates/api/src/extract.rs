//! Request parts whose problems become problem responses: JSON bodies and path ids.

use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use serde::Deserialize;

use crate::error::ApiError;

/// A JSON body; its problems become problem responses. The access extractors come before
/// it in every handler, so a caller who may not call the route gets 403 whatever the body.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(ApiJson(value))
    }
}

/// The `{id}` of a route's path (other path parameters are ignored); a path whose id is not
/// a number is a 400 problem naming `path`.
pub struct PathId(pub i64);

#[derive(Deserialize)]
struct IdParam {
    id: i64,
}

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(IdParam { id }) = Path::<IdParam>::from_request_parts(parts, state).await?;
        Ok(PathId(id))
    }
}
