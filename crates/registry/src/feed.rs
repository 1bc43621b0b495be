//! The change feed: every committed change that can alter what a search returns appends the
//! donor it concerns to `index_changes`, in the change's own transaction (a typing, a
//! consent, a status, a withdrawal, a request or donation, an attribute, an import batch).
//! Each server reads the feed and refreshes those donors in its matching index from the
//! store, so a write through one server reaches every server's searches.
//!
//! Applying a change means reading the donor's state now, so applying one twice, or late,
//! or before another, is harmless; what must never happen is that a committed change is
//! skipped. On PostgreSQL sequence values are taken when a row is written and become visible
//! when its transaction commits, so they become visible out of order: a reader that asks only
//! for "after the last sequence number I saw" can pass over a change committed late with a
//! lower number. The reader here does not ask that. Each row keeps its transaction's id
//! (`xid`), and a reading cycle
//! 1. takes the horizon: the oldest transaction still running (the snapshot's `xmin`); every
//!    transaction below it has finished, so no row with a lower `xid` can appear later;
//! 2. reads every row at or above the previous horizon (rows of transactions that were still
//!    running then, or started since), skipping those it has already applied;
//! 3. moves its horizon to the one taken in step 1 and forgets applied rows below it.
//!
//! A row committed out of order belongs to a transaction that was running at the previous
//! horizon or started after it, so its `xid` is at or above that horizon and a later cycle
//! reads it. On SQLite one writer holds the database at a time, so sequence order is commit
//! order and the reader asks for what follows its last row.

use std::collections::HashMap;

use sqlx::{Any, Row, Transaction};

use crate::index_feed::IndexUpdate;
use crate::model::Donor;
use crate::support::{donor_from_row, donor_select};
use crate::{Backend, Registry, Result};

/// The PostgreSQL channel a committed change wakes readers on.
pub const CHANGE_CHANNEL: &str = "boai_index";

/// Rows read per query.
const PAGE: i64 = 20_000;

/// Append a change of `donor_id` inside `tx` (its commit publishes it, and on PostgreSQL
/// wakes the listening servers).
pub(crate) async fn append_change(
    registry: &Registry,
    tx: &mut Transaction<'_, Any>,
    donor_id: i64,
) -> Result<()> {
    sqlx::query("INSERT INTO index_changes (donor_id, at) VALUES ($1, $2)")
        .bind(donor_id)
        .bind(registry.now_text())
        .execute(&mut **tx)
        .await?;
    if registry.backend == Backend::Postgres {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(CHANGE_CHANNEL)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

impl Registry {
    /// On PostgreSQL, a connection listening for committed changes (a wake-up only: the
    /// reader still reads the feed); `None` on SQLite, whose changes are found by polling.
    pub async fn change_listener(&self) -> Result<Option<sqlx::postgres::PgListener>> {
        if self.backend != Backend::Postgres {
            return Ok(None);
        }
        let mut listener = sqlx::postgres::PgListener::connect(&self.url).await?;
        listener.listen(CHANGE_CHANNEL).await?;
        Ok(Some(listener))
    }

    /// The donor as the write's transaction leaves it, the change appended to the feed: what
    /// every write that changes a donor calls just before it commits.
    pub(crate) async fn changed_donor(
        &self,
        tx: &mut Transaction<'_, Any>,
        donor_id: i64,
    ) -> Result<Donor> {
        append_change(self, tx, donor_id).await?;
        self.donor_in(tx, donor_id).await
    }
}

/// Where a reader is in the feed (kept in an index snapshot with the index it covers).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct FeedCursor {
    /// PostgreSQL: the horizon (every transaction below it had finished when it was taken).
    horizon: Option<u64>,
    /// Rows at or above the horizon already applied: sequence number → transaction id.
    recent: HashMap<i64, u64>,
    /// SQLite: the last sequence number read.
    last_seq: i64,
    /// Rows read so far (for the lag figures).
    #[serde(skip)]
    pub rows_read: u64,
}

/// What one reading cycle found.
#[derive(Debug, Clone, Default)]
pub struct FeedRead {
    /// The donors changed, each once, in the order first seen.
    pub donors: Vec<i64>,
    /// New rows read (not seen before).
    pub rows: usize,
}

impl Registry {
    /// A cursor at the feed's present: take it before loading the index, so that every
    /// change the load might have missed (committed during it) is read afterwards.
    pub async fn feed_cursor(&self) -> Result<FeedCursor> {
        let mut cursor = FeedCursor::default();
        match self.backend {
            Backend::Postgres => cursor.horizon = Some(self.feed_horizon().await?),
            Backend::Sqlite => {
                cursor.last_seq =
                    sqlx::query_scalar::<_, i64>("SELECT COALESCE(MAX(seq), 0) FROM index_changes")
                        .fetch_one(&self.feed_pool)
                        .await?;
            }
        }
        Ok(cursor)
    }

    /// Whether the feed has reached `cursor` (a cursor ahead of it comes from a database
    /// this one only resembles, such as the one it was restored from a backup of: reading
    /// from it would skip changes).
    pub async fn feed_reaches(&self, cursor: &FeedCursor) -> Result<bool> {
        let present = self.feed_cursor().await?;
        Ok(match self.backend {
            Backend::Postgres => present.horizon >= cursor.horizon,
            Backend::Sqlite => present.last_seq >= cursor.last_seq,
        })
    }

    async fn feed_horizon(&self) -> Result<u64> {
        let text: String =
            sqlx::query_scalar("SELECT CAST(pg_snapshot_xmin(pg_current_snapshot()) AS TEXT)")
                .fetch_one(&self.feed_pool)
                .await?;
        Ok(text.parse().unwrap_or(0))
    }

    /// One reading cycle: every change committed before it began and not yet read, at
    /// least once (see the module's note); the cursor moves on.
    pub async fn read_changes(&self, cursor: &mut FeedCursor) -> Result<FeedRead> {
        let mut read = FeedRead::default();
        let mut seen = std::collections::HashSet::new();
        match self.backend {
            Backend::Sqlite => loop {
                let rows = sqlx::query(
                    "SELECT seq, donor_id FROM index_changes WHERE seq > $1 ORDER BY seq LIMIT $2",
                )
                .bind(cursor.last_seq)
                .bind(PAGE)
                .fetch_all(&self.feed_pool)
                .await?;
                for row in &rows {
                    let seq: i64 = row.try_get("seq")?;
                    let donor: i64 = row.try_get("donor_id")?;
                    cursor.last_seq = seq;
                    read.rows += 1;
                    if seen.insert(donor) {
                        read.donors.push(donor);
                    }
                }
                if (rows.len() as i64) < PAGE {
                    break;
                }
            },
            Backend::Postgres => {
                let next_horizon = self.feed_horizon().await?;
                let from = cursor.horizon.unwrap_or(0);
                // Keyset on (xid, seq), the index's order: the rows at or above the horizon
                // are found through it however long the table is.
                let (mut after_xid, mut after_seq) = (from, -1i64);
                loop {
                    let rows = sqlx::query(
                        "SELECT seq, donor_id, CAST(xid AS TEXT) AS xid FROM index_changes \
                         WHERE (xid, seq) > (CAST(CAST($1 AS TEXT) AS xid8), $2) ORDER BY xid, seq LIMIT $3",
                    )
                    .bind(after_xid.to_string())
                    .bind(after_seq)
                    .bind(PAGE)
                    .fetch_all(&self.feed_pool)
                    .await?;
                    for row in &rows {
                        let seq: i64 = row.try_get("seq")?;
                        let donor: i64 = row.try_get("donor_id")?;
                        let xid: u64 = row.try_get::<String, _>("xid")?.parse().unwrap_or(0);
                        (after_xid, after_seq) = (xid, seq);
                        if cursor.recent.insert(seq, xid).is_some() {
                            continue;
                        }
                        read.rows += 1;
                        if seen.insert(donor) {
                            read.donors.push(donor);
                        }
                    }
                    if (rows.len() as i64) < PAGE {
                        break;
                    }
                }
                cursor.recent.retain(|_, xid| *xid >= next_horizon);
                cursor.horizon = Some(next_horizon.max(from));
            }
        }
        cursor.rows_read += read.rows as u64;
        Ok(read)
    }

    /// What the index should hold for each of `donors`, read now (a donor that no longer
    /// exists leaves it), by index key; a donor whose stored typing does not split into
    /// positions is its error (every write checks typings first, so only damaged or foreign
    /// data gets there), so that the caller can leave that donor out and go on.
    pub async fn index_updates_of(
        &self,
        donors: &[i64],
    ) -> Result<Vec<(u32, Result<IndexUpdate>)>> {
        let mut updates = Vec::with_capacity(donors.len());
        for chunk in donors.chunks(1000) {
            let rows = match self.backend {
                Backend::Sqlite => {
                    let ids = serde_json::to_string(chunk).expect("ids serialise");
                    sqlx::query(donor_select!(
                        "WHERE d.id IN (SELECT value FROM json_each($1))"
                    ))
                    .bind(&ids)
                    .fetch_all(&self.feed_pool)
                    .await?
                }
                Backend::Postgres => {
                    // An array literal (`{1,2,3}`), so the primary key's index is used: a
                    // set-returning function's rows would be joined by scanning every donor.
                    let array = format!(
                        "{{{}}}",
                        chunk
                            .iter()
                            .map(i64::to_string)
                            .collect::<Vec<_>>()
                            .join(",")
                    );
                    sqlx::query(donor_select!("WHERE d.id = ANY(CAST($1 AS BIGINT[]))"))
                        .bind(&array)
                        .fetch_all(&self.feed_pool)
                        .await?
                }
            };
            let found: HashMap<i64, Donor> = rows
                .iter()
                .map(|r| donor_from_row(r).map(|d| (d.id, d)))
                .collect::<Result<_>>()?;
            for id in chunk {
                let key = u32::try_from(*id).unwrap_or(u32::MAX);
                updates.push(match found.get(id) {
                    Some(d) => (key, self.index_update(d)),
                    None => (key, Ok(IndexUpdate::Remove(key))),
                });
            }
        }
        Ok(updates)
    }
}
