//! What every handler shares: the registry, the matching index and where searches run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use axum::http::StatusCode;
use matching::DonorIndex;
use registry::Registry;

use crate::admission::Admission;
use crate::error::ApiError;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub registry: Arc<Registry>,
    pub index: Arc<RwLock<DonorIndex>>,
    pub ready: Arc<AtomicBool>,
    /// Haplotype frequencies for match probabilities (a search asking for them without a
    /// set loaded is refused).
    pub haplotypes: Option<Arc<matching::HaplotypeSet>>,
    /// Where searches run: one at a time per core, the rest waiting their turn.
    pub search_slots: Arc<SearchSlots>,
    /// How many requests are served at once, in all and per client.
    pub admission: Admission,
    /// How long a client may take to send a request.
    pub timeouts: Timeouts,
    /// The change feed's follower: changes made through other servers and commands.
    pub feed: Arc<crate::follow::Feed>,
    /// Request counts and latencies for `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// How the index came in at start.
#[derive(Debug)]
pub struct IndexLoad {
    /// Searchable donors once ready.
    pub donors: usize,
    /// The snapshot started from (its header), when one was used.
    pub snapshot: Option<registry::snapshot::SnapshotHeader>,
    /// Why a snapshot was not used, when one was given and refused.
    pub refused: Option<String>,
}

/// How long a client may take to send a request: its headers, its body, and the whole
/// request with the work it asks for.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// A request's headers (and the idle wait for the next request on a connection).
    pub headers: std::time::Duration,
    /// A request's whole body, from when its headers have arrived (408 beyond).
    pub body: std::time::Duration,
    /// The whole request, body and work included (503 beyond).
    pub request: std::time::Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            headers: std::time::Duration::from_secs(10),
            body: std::time::Duration::from_secs(10),
            request: std::time::Duration::from_secs(30),
        }
    }
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
    pub fn new(registry: Arc<Registry>) -> AppState {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        AppState {
            index: Arc::new(RwLock::new(DonorIndex::new(registry.expander().clone()))),
            registry,
            ready: Arc::new(AtomicBool::new(false)),
            haplotypes: None,
            search_slots: Arc::new(SearchSlots::new(cores)),
            admission: Admission::default(),
            timeouts: Timeouts::default(),
            feed: Arc::new(crate::follow::Feed::default()),
            metrics: Arc::new(crate::metrics::Metrics::default()),
        }
    }

    /// The same server with other read timeouts.
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> AppState {
        self.timeouts = timeouts;
        self
    }

    /// The same server admitting at most `server` requests at once, `per_client` for any
    /// one client.
    pub fn with_limits(mut self, server: usize, per_client: usize) -> AppState {
        self.admission = Admission::new(server, per_client);
        self
    }

    /// The same server with haplotype frequencies for match probabilities.
    pub fn with_haplotypes(mut self, set: Arc<matching::HaplotypeSet>) -> AppState {
        self.haplotypes = Some(set);
        self
    }

    /// Today, the registry's local date, as days since 1900-01-01.
    pub fn today(&self) -> i64 {
        self.registry.today()
    }

    /// Load the index from the registry, then follow the change feed from where it stood
    /// before the load (so nothing committed during the load is missed); `/readyz` answers
    /// 200 afterwards.
    pub async fn load_index(&self) -> Result<usize, registry::RegistryError> {
        let cursor = self.registry.feed_cursor().await?;
        let mut fresh = DonorIndex::new(self.registry.expander().clone());
        let n = self.registry.load_index(&mut fresh, self.today()).await?;
        *self.index.write().expect("index lock") = fresh;
        self.feed.set_cursor(cursor);
        crate::follow::spawn_follower(self.clone());
        self.ready.store(true, Ordering::SeqCst);
        Ok(n)
    }

    /// Start from the index snapshot at `path`, then catch up from the feed position it
    /// covers; `/readyz` answers 200 once one feed cycle that began after the load has been
    /// applied (every change committed since the snapshot is in). A snapshot that is
    /// refused (damaged, another Boai or IMGT/HLA release, another database) or missing is
    /// named in the answer and the index is loaded from the store instead.
    pub async fn load_index_from(
        &self,
        path: &std::path::Path,
    ) -> Result<IndexLoad, registry::RegistryError> {
        let snapshot = match self.registry.read_index_snapshot(path, self.today()).await {
            Ok(s) => s,
            Err(registry::snapshot::SnapshotError::Store(e)) => return Err(e),
            Err(refused) => {
                let donors = self.load_index().await?;
                return Ok(IndexLoad {
                    donors,
                    snapshot: None,
                    refused: Some(refused.to_string()),
                });
            }
        };
        let header = snapshot.header;
        *self.index.write().expect("index lock") = snapshot.index;
        self.feed.set_cursor(header.cursor.clone());
        crate::follow::spawn_follower(self.clone());
        // A day's changes may take a while to apply: wait as long as it takes, saying why.
        while let Err(e) = self.feed.fresh(crate::follow::FRESHNESS_BOUND).await {
            tracing::warn!(error = %e.detail, "catching up after the snapshot");
        }
        self.ready.store(true, Ordering::SeqCst);
        let donors = self.index.read().expect("index lock").len();
        Ok(IndexLoad {
            donors,
            snapshot: Some(header),
            refused: None,
        })
    }

    /// [`AppState::update_index`] for a write that returned the donor as it now is.
    pub fn index_donor(&self, donor: &registry::Donor) -> Result<(), ApiError> {
        let update = self.registry.index_update(donor)?;
        self.update_index(update)
    }

    /// Apply a committed write's index update before the response goes out; the index's
    /// write lock is held only to apply the prepared change.
    pub fn update_index(&self, update: registry::IndexUpdate) -> Result<(), ApiError> {
        let today = self.today();
        update.apply(&mut self.index.write().expect("index lock"), today)?;
        Ok(())
    }
}
