//! Request parts whose problems become problem responses: JSON bodies and path ids.

use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::Deserialize;

use crate::error::ApiError;

/// A JSON body; its problems become problem responses. The access extractors come before
/// it in every handler, so a caller who may not call the route gets 403 whatever the body.
/// A string holding a control character (other than a line break or a tab) is refused
/// here for every route, naming its place in the body: no field of the registry holds one,
/// and PostgreSQL cannot store a NUL. (The registry refuses them too, for its other callers.)
pub struct ApiJson<T>(pub T);

/// The first string of `value` holding a control character other than `\n`, `\r` or
/// `\t`: its path (`identity.family_name`, `organs[2]`) and the character.
fn control_character(value: &serde_json::Value, path: &str) -> Option<(String, char)> {
    use serde_json::Value;
    match value {
        Value::String(s) => s
            .chars()
            .find(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
            .map(|c| (path.to_string(), c)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| control_character(v, &format!("{path}[{i}]"))),
        Value::Object(fields) => fields.iter().find_map(|(k, v)| {
            let here = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            control_character(v, &here).or_else(|| {
                k.chars()
                    .find(|c| c.is_control())
                    .map(|c| (here.clone(), c))
            })
        }),
        _ => None,
    }
}

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        // Content type, size and syntax first (axum's answers), then the characters, then
        // the shape, naming the path of a field of the wrong type.
        let axum::Json(raw) = axum::Json::<serde_json::Value>::from_request(req, state).await?;
        if let Some((path, c)) = control_character(&raw, "") {
            let field = if path.is_empty() {
                "body".to_string()
            } else {
                path
            };
            return Err(ApiError::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                &field,
                format!("contains the control character U+{:04X}", c as u32),
            ));
        }
        serde_path_to_error::deserialize(raw)
            .map(ApiJson)
            .map_err(|e| {
                let path = e.path().to_string();
                let field = if path == "." {
                    "body".to_string()
                } else {
                    path
                };
                ApiError::field(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &field,
                    e.inner().to_string(),
                )
            })
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
