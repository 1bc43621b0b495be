//! JSON request bodies whose problems become problem responses.

use axum::extract::{FromRequest, Request};

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
