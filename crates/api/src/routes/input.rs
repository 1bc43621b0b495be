//! What a request brings, shared by the resources' routes: the JSON body (parsed after the
//! access check) and the coded fields every resource reads the same way.

use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::error::ApiError;

pub(super) type ApiResult<T> = Result<T, ApiError>;

pub use crate::extract::{ApiJson, PathId};

/// A work list's query string: its filters, `cursor` and `limit` (a malformed one is a
/// 400 naming the query).
pub(super) type ListQuery<T> =
    Result<axum::extract::Query<T>, axum::extract::rejection::QueryRejection>;

/// The page a work list's `cursor` and `limit` ask for (checked by the registry).
pub(super) fn page_request(cursor: Option<String>, limit: Option<u32>) -> registry::PageRequest {
    registry::PageRequest { cursor, limit }
}

/// A state change with an optional reason (samples, searches, requests).
#[derive(Debug, Deserialize, ToSchema)]
pub struct StateIn {
    pub state: String,
    pub reason: Option<String>,
}

/// An optional coded field: absent is `default`, a value must parse.
pub(super) fn code<T>(
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
pub(super) fn rh_field(value: Option<&str>) -> ApiResult<Option<bool>> {
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
