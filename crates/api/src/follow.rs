//! Following the registry's change feed (`registry::feed`): one task per server reads, in
//! cycles, every change committed by any server or command and refreshes those donors in
//! this server's index. A cycle starts when woken (a search asking for freshness, a
//! PostgreSQL notification of a commit) or every `POLL` at the latest; a lost database
//! connection only delays cycles, and the cursor catches up when it returns.
//!
//! A search must see every write committed before it started, on any server: it asks for a
//! cycle that begins after it did and waits for it to end (within a bound; past it, 503 with
//! `Retry-After`, never a stale answer). A cycle's reads start after the search did, so they
//! see every commit that preceded it. (Asking instead for "the highest sequence number now"
//! would fall into the out-of-order trap the feed's reader is built to avoid.)

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use registry::feed::FeedCursor;
use tokio::sync::{Notify, watch};

use crate::AppState;
use crate::error::ApiError;

/// The longest a cycle waits to be woken.
const POLL: Duration = Duration::from_millis(250);

/// How long a search waits for the index to catch up before answering 503.
pub const FRESHNESS_BOUND: Duration = Duration::from_secs(5);

/// The follower's shared state.
#[derive(Debug)]
pub struct Feed {
    following: std::sync::atomic::AtomicBool,
    started: AtomicU64,
    completed: watch::Sender<u64>,
    wake: Notify,
    /// Where the follower reads from next (taken before the index load).
    cursor: Mutex<Option<FeedCursor>>,
    status: Mutex<FeedStatus>,
}

/// What `/readyz` shows of the follower.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FeedStatus {
    /// Cycles completed.
    pub cycles: u64,
    /// Changes read and applied since start.
    pub changes_applied: u64,
    /// Changes the last cycle applied.
    pub last_cycle_changes: usize,
    /// How long ago the last cycle completed, in milliseconds.
    pub last_cycle_ms_ago: Option<u64>,
    /// The last error, while cycles fail (a lost database connection).
    pub error: Option<String>,
    /// Changed donors whose stored typing the index could not read, taken out of the
    /// searches (logged with their id; only damaged or foreign data gets here).
    pub donors_left_out: u64,
    #[serde(skip)]
    last_cycle_at: Option<Instant>,
}

impl Default for Feed {
    fn default() -> Feed {
        Feed {
            following: std::sync::atomic::AtomicBool::new(false),
            started: AtomicU64::new(0),
            completed: watch::channel(0).0,
            wake: Notify::new(),
            cursor: Mutex::new(None),
            status: Mutex::new(FeedStatus::default()),
        }
    }
}

impl Feed {
    /// Keep the cursor the follower starts from.
    pub fn set_cursor(&self, cursor: FeedCursor) {
        *self.cursor.lock().unwrap_or_else(|e| e.into_inner()) = Some(cursor);
    }

    /// Wait until a cycle that began after this call has been applied: the index then holds
    /// every change committed before the call, wherever it was made.
    pub async fn fresh(&self, bound: Duration) -> Result<(), ApiError> {
        let target = self.started.load(Ordering::SeqCst) + 1;
        self.wake.notify_one();
        let mut completed = self.completed.subscribe();
        match tokio::time::timeout(bound, completed.wait_for(|c| *c >= target)).await {
            Ok(Ok(_)) => Ok(()),
            _ => {
                let why = self
                    .status()
                    .error
                    .unwrap_or_else(|| "the change feed is behind".into());
                Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "the matching index has not caught up with the registry within {} s ({why}); retry",
                        bound.as_secs()
                    ),
                ))
            }
        }
    }

    pub fn status(&self) -> FeedStatus {
        let mut s = self
            .status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        s.last_cycle_ms_ago = s.last_cycle_at.map(|t| t.elapsed().as_millis() as u64);
        s
    }
}

/// Follow the feed for `state` until the process ends. Started once, when the index is
/// first loaded (a later reload keeps the running follower, whose cursor is older).
pub fn spawn_follower(state: AppState) {
    if state.feed.following.swap(true, Ordering::SeqCst) {
        return;
    }
    // Its own thread and runtime: a cycle must not wait behind the request handlers for a
    // worker thread, since every search waits for a cycle.
    std::thread::Builder::new()
        .name("change-feed".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("the change feed's runtime");
            rt.block_on(follow(state));
        })
        .expect("the change feed's thread");
}

/// Wake the follower on every notification of a committed change; reconnect when the
/// connection is lost (the follower's poll covers the gap).
async fn listen(state: AppState) {
    loop {
        match state.registry.change_listener().await {
            Ok(Some(mut listener)) => {
                while listener.recv().await.is_ok() {
                    state.feed.wake.notify_one();
                }
            }
            Ok(None) => return,
            Err(e) => tracing::debug!(error = %e, "change listener not connected"),
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn follow(state: AppState) {
    {
        let feed = state.feed.clone();
        let Some(mut cursor) = feed.cursor.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        // PostgreSQL's notifications of commits wake the follower from a task of their own:
        // a listener's `recv` must not be dropped half-way by a `select!`.
        tokio::spawn(listen(state.clone()));
        loop {
            tokio::select! {
                _ = feed.wake.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
            let n = feed.started.fetch_add(1, Ordering::SeqCst) + 1;
            let cycle_started = Instant::now();
            let mut next = cursor.clone();
            let result = async {
                let read = state.registry.read_changes(&mut next).await?;
                tracing::debug!(
                    read_us = cycle_started.elapsed().as_micros() as u64,
                    rows = read.rows,
                    "change feed read"
                );
                if !read.donors.is_empty() {
                    let updates = state.registry.index_updates_of(&read.donors).await?;
                    let today = state.today();
                    // The write lock waits for the searches in progress: taken only when
                    // there is something to apply.
                    let mut index = state.index.write().expect("index lock");
                    let mut left_out = 0;
                    for (key, update) in updates {
                        // A stored typing the index cannot read (damaged or foreign data)
                        // leaves the old entry as it was: take the donor out rather than
                        // offer it stale, and go on rather than stall every search.
                        if let Err(e) = update.and_then(|u| u.apply(&mut index, today)) {
                            tracing::warn!(donor_id = key, error = %e, "donor left out of the index");
                            let _ = index.remove(key);
                            left_out += 1;
                        }
                    }
                    feed.status.lock().unwrap_or_else(|e| e.into_inner()).donors_left_out += left_out;
                }
                Ok::<usize, registry::RegistryError>(read.rows)
            }
            .await;
            let failed = {
                let mut status = feed.status.lock().unwrap_or_else(|e| e.into_inner());
                match result {
                    Ok(rows) => {
                        cursor = next;
                        status.cycles += 1;
                        status.changes_applied += rows as u64;
                        status.last_cycle_changes = rows;
                        status.last_cycle_at = Some(Instant::now());
                        status.error = None;
                        false
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "change feed cycle failed; retrying");
                        status.error = Some(e.to_string());
                        true
                    }
                }
            };
            tracing::debug!(
                cycle = n,
                elapsed_us = cycle_started.elapsed().as_micros() as u64,
                failed,
                "change feed cycle"
            );
            if failed {
                tokio::time::sleep(POLL).await;
            } else {
                feed.completed.send_replace(n);
            }
        }
    }
}
