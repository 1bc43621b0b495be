//! The pages' way to act: an in-process call of the JSON API's own router, as the signed-in
//! person. Every page therefore obeys the API's roles, ownership rules, validation and audit,
//! because it is the API that does the work; a page only turns a form into a request and an
//! answer into HTML.

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use serde_json::Value;
use tower::ServiceExt;

use crate::auth::Caller;

/// Largest API answer a page reads (a CSV of 10 000 hits fits).
const ANSWER_LIMIT: usize = 64 * 1024 * 1024;

/// The API's router, held by the page routes as an extension.
#[derive(Clone)]
pub struct Api(Router);

/// An API refusal, as the problem response said it.
#[derive(Debug, Clone)]
pub struct ApiFailure {
    pub status: StatusCode,
    pub detail: String,
    /// (field, reason) pairs.
    pub errors: Vec<(String, String)>,
}

impl ApiFailure {
    /// The reason given for `field`, if the refusal named it.
    pub fn reason_for(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, r)| r.as_str())
    }
}

impl Api {
    pub fn new(router: Router) -> Api {
        Api(router)
    }

    /// Call `method uri` with an optional JSON body; the answer's JSON, or the refusal.
    pub async fn call(
        &self,
        caller: &Caller,
        method: Method,
        uri: &str,
        body: Option<&Value>,
    ) -> Result<Value, ApiFailure> {
        let (status, _, bytes) = self.raw(caller, method, uri, body).await?;
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| ApiFailure {
            status,
            detail: format!("unreadable answer: {e}"),
            errors: Vec::new(),
        })
    }

    /// Call and keep the answer's bytes and headers (CSV downloads).
    pub async fn raw(
        &self,
        caller: &Caller,
        method: Method,
        uri: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, HeaderMap, Vec<u8>), ApiFailure> {
        let mut req = Request::builder().method(method).uri(uri);
        let body = match body {
            Some(v) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(serde_json::to_vec(v).expect("JSON values serialise"))
            }
            None => Body::empty(),
        };
        let mut req = req.body(body).map_err(|e| ApiFailure {
            status: StatusCode::BAD_REQUEST,
            detail: e.to_string(),
            errors: Vec::new(),
        })?;
        req.extensions_mut().insert(caller.clone());
        let answer = self
            .0
            .clone()
            .oneshot(req)
            .await
            .expect("the router's service never fails");
        let status = answer.status();
        let headers = answer.headers().clone();
        let bytes = to_bytes(answer.into_body(), ANSWER_LIMIT)
            .await
            .map_err(|e| ApiFailure {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                detail: e.to_string(),
                errors: Vec::new(),
            })?
            .to_vec();
        if status.is_success() {
            return Ok((status, headers, bytes));
        }
        let problem: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let errors = problem["errors"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|e| {
                        (
                            e["field"].as_str().unwrap_or("").to_string(),
                            e["reason"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Err(ApiFailure {
            status,
            detail: problem["detail"]
                .as_str()
                .unwrap_or("the request was refused")
                .to_string(),
            errors,
        })
    }
}
