//! Errors as `application/problem+json` (RFC 9457), with field-level details.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use registry::RegistryError;
use serde::Serialize;
use utoipa::ToSchema;

/// One field's problem.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

/// The body of every error response.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem (`about:blank` plus the title when generic).
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// The consent scope a `consent-required` problem names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub detail: String,
    pub errors: Vec<FieldError>,
    /// A problem type more specific than the status's (e.g. `consent-required`).
    pub kind: Option<&'static str>,
    pub scope: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            detail: detail.into(),
            errors: Vec::new(),
            kind: None,
            scope: None,
        }
    }

    pub fn field(status: StatusCode, field: &str, reason: impl Into<String>) -> ApiError {
        let reason = reason.into();
        ApiError {
            status,
            detail: format!("{field}: {reason}"),
            errors: vec![FieldError {
                field: field.to_string(),
                reason,
            }],
            kind: None,
            scope: None,
        }
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "a valid `Authorization: Bearer <token>` header is required",
        )
    }

    /// The same words whether the resource exists or not: nothing leaks.
    pub fn forbidden() -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "this token may not do that")
    }

    pub fn not_found(what: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, format!("{} not found", what.into()))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let title = self
            .status
            .canonical_reason()
            .unwrap_or("Error")
            .to_string();
        let problem = Problem {
            kind: format!(
                "https://boai.invalid/problems/{}",
                self.kind
                    .map(str::to_string)
                    .unwrap_or_else(|| title.to_lowercase().replace(' ', "-"))
            ),
            title,
            status: self.status.as_u16(),
            detail: self.detail,
            errors: self.errors,
            scope: self.scope,
        };
        let mut response = (self.status, Json(problem)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> ApiError {
        if let RegistryError::ConsentRequired { scope, .. } = &e {
            return ApiError {
                kind: Some("consent-required"),
                scope: Some(scope.clone()),
                ..ApiError::new(StatusCode::CONFLICT, e.to_string())
            };
        }
        match e {
            RegistryError::Invalid { field, reason } => {
                ApiError::field(StatusCode::UNPROCESSABLE_ENTITY, &field, reason)
            }
            RegistryError::NotFound(what) => ApiError::not_found(what),
            // The same answer as a route the role may not call: nothing more is told.
            RegistryError::Forbidden(_) => ApiError::forbidden(),
            RegistryError::Conflict(what) => ApiError::new(StatusCode::CONFLICT, what),
            RegistryError::Typing(t) => {
                ApiError::field(StatusCode::UNPROCESSABLE_ENTITY, "typing", t.to_string())
            }
            busy if busy.is_busy() => {
                tracing::warn!(error = %busy, "registry busy");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the registry is busy; retry shortly",
                )
            }
            other => {
                // Database trouble: logged with the request id, not shown.
                tracing::error!(error = %other, "registry error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the registry could not complete the request",
                )
            }
        }
    }
}

/// Whether `e`, or an error it wraps, is a body that did not arrive in time.
fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = c.source();
    }
    false
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> ApiError {
        if timed_out(&r) {
            return ApiError::field(
                StatusCode::REQUEST_TIMEOUT,
                "body",
                "the request body did not arrive in time",
            );
        }
        let status = match &r {
            JsonRejection::JsonDataError(_) => StatusCode::UNPROCESSABLE_ENTITY,
            JsonRejection::MissingJsonContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            _ if r.status() == StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::field(status, "body", r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> ApiError {
        ApiError::field(StatusCode::BAD_REQUEST, "path", r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> ApiError {
        ApiError::field(StatusCode::BAD_REQUEST, "query", r.body_text())
    }
}
