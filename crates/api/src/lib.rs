//! The internal HTTP API: versioned JSON resources under `/v1`, bearer tokens with roles,
//! `application/problem+json` errors, OpenAPI at `/openapi.json` and Swagger UI at `/docs`.
//!
//! The server owns the matching index: it is loaded from the registry at start, and every
//! write that changes a donor re-reads that donor and applies it to the index before the
//! response goes out, so a new donor is searchable, and a withdrawn one gone, as soon as the
//! write returns.

pub mod auth;
pub mod error;
pub mod routes;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::http::{Request, StatusCode};
use axum::response::IntoResponse;
use matching::DonorIndex;
use registry::Registry;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;

use crate::error::ApiError;

/// Largest request body accepted (413 beyond).
pub const BODY_LIMIT: usize = 256 * 1024;
/// Requests served at once; more are refused with 503 instead of queueing without bound.
pub const CONCURRENCY_LIMIT: usize = 512;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub registry: Arc<Registry>,
    pub index: Arc<RwLock<DonorIndex>>,
    pub ready: Arc<AtomicBool>,
    /// Today as days since 1900-01-01 (the registry's date arithmetic).
    pub today: Arc<dyn Fn() -> i64 + Send + Sync>,
    /// Where searches run: one at a time per core, the rest waiting their turn.
    pub search_slots: Arc<SearchSlots>,
}

/// Searches run one per core, each on a single-thread pool of its own, and the rest wait
/// their turn in arrival order. A search that has a core to itself finishes in its own
/// time and keeps that core's caches; many sharing the cores would all finish late.
pub struct SearchSlots {
    turns: Arc<tokio::sync::Semaphore>,
    pools: Vec<Arc<rayon::ThreadPool>>,
    free: std::sync::Mutex<Vec<usize>>,
}

/// A pool lent to one search with its turn, returned when dropped (also if the search
/// panicked): the pool goes back in `drop`, the turn only after, with the fields.
struct Lease {
    slots: Arc<SearchSlots>,
    pool: usize,
    _turn: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.slots
            .free
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(self.pool);
    }
}

impl SearchSlots {
    /// `cores` single-thread pools.
    pub fn new(cores: usize) -> SearchSlots {
        let cores = cores.max(1);
        let pools = (0..cores)
            .map(|i| {
                Arc::new(
                    rayon::ThreadPoolBuilder::new()
                        .num_threads(1)
                        .thread_name(move |_| format!("boai-search-{i}"))
                        .build()
                        .expect("a search thread"),
                )
            })
            .collect();
        SearchSlots {
            turns: Arc::new(tokio::sync::Semaphore::new(cores)),
            pools,
            free: std::sync::Mutex::new((0..cores).collect()),
        }
    }

    /// Run `work` on a core of its own once it is this caller's turn. The turn and the
    /// pool are given back when `work` ends, even if the request was dropped meanwhile
    /// (client gone, timeout): a search still running keeps its core.
    pub async fn run<R: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, ApiError> {
        // The semaphore is never closed.
        let turn = self
            .turns
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
        let pool = self
            .free
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .expect("a free pool for every turn");
        let lease = Lease {
            slots: self.clone(),
            pool,
            _turn: turn,
        };
        // A blocking-pool thread (holding any locks `work` takes) waits while the search
        // runs on its single-thread pool.
        tokio::task::spawn_blocking(move || {
            let out = lease.slots.pools[lease.pool].install(work);
            drop(lease);
            out
        })
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
    }
}

impl AppState {
    /// A server over `registry` with an empty index (`load_index` fills it).
    pub fn new(registry: Arc<Registry>, today: Arc<dyn Fn() -> i64 + Send + Sync>) -> AppState {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        AppState {
            index: Arc::new(RwLock::new(DonorIndex::new(registry.expander().clone()))),
            registry,
            ready: Arc::new(AtomicBool::new(false)),
            today,
            search_slots: Arc::new(SearchSlots::new(cores)),
        }
    }

    /// Load the index from the registry; `/readyz` answers 200 afterwards.
    pub async fn load_index(&self) -> Result<usize, registry::RegistryError> {
        let mut fresh = DonorIndex::new(self.registry.expander().clone());
        let n = self.registry.load_index(&mut fresh, (self.today)()).await?;
        *self.index.write().expect("index lock") = fresh;
        self.ready.store(true, Ordering::SeqCst);
        Ok(n)
    }

    /// Re-read one donor after a committed write and put it in (or take it out of) the index.
    pub async fn refresh_donor(&self, donor_id: i64) -> Result<(), ApiError> {
        let today = (self.today)();
        let donor = match self.registry.donor(donor_id).await {
            Ok(d) => Some(d),
            Err(registry::RegistryError::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let mut index = self.index.write().expect("index lock");
        match donor {
            Some(d) => {
                self.registry.apply_to_index(&mut index, &d, today)?;
            }
            None => {
                index.remove(donor_id as u32).ok();
            }
        }
        Ok(())
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Boai internal API", description = "Donor registry and HLA matching. Every /v1 route needs `Authorization: Bearer <token>`; errors are application/problem+json."),
    paths(
        routes::healthz, routes::readyz,
        routes::create_station, routes::list_stations,
        routes::enrol_donor, routes::get_donor, routes::update_donor, routes::get_identity, routes::record_typing,
        routes::record_sample, routes::set_sample_state, routes::give_consent, routes::withdraw_consent,
        routes::change_status,
        routes::register_patient, routes::get_patient,
        routes::create_search, routes::get_search, routes::search_results, routes::rerun_search,
        routes::set_search_state,
        routes::open_request, routes::close_request, routes::record_milestone,
        routes::record_donation, routes::followups_due, routes::record_followup,
        routes::register_organ_donation, routes::change_organ_donation, routes::revoke_organ_donation,
        routes::record_organ_case,
        routes::list_typings, routes::list_samples, routes::list_consents,
        routes::read_audit, routes::hla_expand,
    ),
    components(schemas(error::Problem, error::FieldError, routes::SearchRun, routes::SearchHitOut, routes::LocusDetail)),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The whole application: routes, docs, limits, request ids and tracing.
pub fn app(state: AppState) -> Router {
    let overload = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(|e: tower::BoxError| async move {
            if e.is::<tower::load_shed::error::Overloaded>() {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the server is at capacity; retry shortly",
                )
            } else if e.is::<tower::timeout::error::Elapsed>() {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the request took too long")
            } else {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
            .into_response()
        }))
        .load_shed()
        .concurrency_limit(CONCURRENCY_LIMIT)
        .timeout(Duration::from_secs(30));
    Router::new()
        .merge(routes::router())
        .merge(
            utoipa_swagger_ui::SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()),
        )
        .fallback(|| async { ApiError::not_found("route") })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(overload)
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                // Method and path only: paths carry ids, never identity data.
                tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path())
            }),
        )
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// Serve until `shutdown` resolves, then drain the requests in flight.
pub async fn serve(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr: SocketAddr = listener.local_addr()?;
    tracing::info!(%addr, "serving");
    // A make-service hands each connection a clone of one shared router; serving the
    // `Router` itself rebuilds every route per connection (axum's `with_state` on a shared
    // router), which was a tenth of the request threads' time under load.
    axum::serve(listener, app(state).into_make_service())
        .with_graceful_shutdown(shutdown)
        .await
}
