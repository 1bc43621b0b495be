//! Admission: how many requests the server works on at once, in all and per client.
//!
//! One count for the whole server (a layer on the router wraps each route separately, so
//! the count lives in a shared [`Admission`], not in a per-route limit), and one per
//! client so a single client's slow requests cannot take every place. A client is its
//! bearer token when it sends one, otherwise its address. A request beyond either limit is
//! refused at once, never queued: 503 when the server is full, 429 when the client is,
//! both with `Retry-After`.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// Requests served at once by one server.
pub const CONCURRENCY_LIMIT: usize = 512;
/// Requests served at once for one client.
pub const PER_CLIENT_LIMIT: usize = 64;
/// What a refused client is told to wait, in seconds.
pub const RETRY_AFTER_SECS: u32 = 1;

/// The server's admission counts; clones share them.
#[derive(Clone)]
pub struct Admission {
    inner: Arc<Counts>,
}

struct Counts {
    server: Arc<Semaphore>,
    per_client: usize,
    clients: Mutex<HashMap<u64, usize>>,
}

/// A place held by one request; given back when dropped.
struct Ticket {
    counts: Arc<Counts>,
    client: u64,
    _place: OwnedSemaphorePermit,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut clients = self
            .counts
            .clients
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = clients.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                clients.remove(&self.client);
            }
        }
    }
}

impl Default for Admission {
    fn default() -> Self {
        Admission::new(CONCURRENCY_LIMIT, PER_CLIENT_LIMIT)
    }
}

impl Admission {
    /// At most `server` requests at once, and `per_client` for any one client.
    pub fn new(server: usize, per_client: usize) -> Admission {
        Admission {
            inner: Arc::new(Counts {
                server: Arc::new(Semaphore::new(server.max(1))),
                per_client: per_client.max(1),
                clients: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Requests being served now.
    pub fn in_flight(&self) -> usize {
        self.inner
            .clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .sum()
    }

    fn admit(&self, client: u64) -> Result<Ticket, ApiError> {
        let mut clients = self.inner.clients.lock().unwrap_or_else(|e| e.into_inner());
        let held = clients.get(&client).copied().unwrap_or(0);
        if held >= self.inner.per_client {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "this client already has {held} requests in progress; retry when one has finished"
                ),
            ));
        }
        let place = self.inner.server.clone().try_acquire_owned().map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is at capacity; retry shortly",
            )
        })?;
        *clients.entry(client).or_insert(0) += 1;
        Ok(Ticket {
            counts: self.inner.clone(),
            client,
            _place: place,
        })
    }
}

/// Who a request comes from: its bearer token (hashed, never kept), else its address.
fn client_of(req: &Request) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    match req.headers().get(header::AUTHORIZATION) {
        Some(token) => {
            0u8.hash(&mut h);
            token.as_bytes().hash(&mut h);
        }
        None => {
            1u8.hash(&mut h);
            req.extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip())
                .hash(&mut h);
        }
    }
    h.finish()
}

/// The middleware: admit the request or refuse it now.
pub async fn admit(State(admission): State<Admission>, req: Request, next: Next) -> Response {
    match admission.admit(client_of(&req)) {
        Ok(ticket) => {
            let response = next.run(req).await;
            drop(ticket);
            response
        }
        Err(refusal) => refusal.into_response(),
    }
}

/// Every 503 and 429 says when to come back, whichever layer made it.
pub async fn retry_after(response: Response) -> Response {
    let mut response = response;
    let status = response.status();
    if (status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS)
        && !response.headers().contains_key(header::RETRY_AFTER)
    {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    }
    response
}

/// A client's `x-request-id` is kept when it is short printable ASCII; otherwise it is
/// dropped and the server makes its own, so the log and the audit trail hold only ids
/// that are safe to print.
pub async fn sanitise_request_id(mut req: Request) -> Request {
    let keep = req.headers().get("x-request-id").is_none_or(|v| {
        let b = v.as_bytes();
        !b.is_empty()
            && b.len() <= registry::REQUEST_ID_MAX
            && b.iter().all(|c| c.is_ascii_graphic())
    });
    if !keep {
        req.headers_mut().remove("x-request-id");
    }
    req
}
