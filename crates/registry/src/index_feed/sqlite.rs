//! The index load on SQLite: the donor id range is cut into spans read by two threads, each
//! on its own read-only connection (`rusqlite`, straight on the C library: no per-row
//! channel or allocation), while the calling thread puts the donors into the index in id
//! order.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use matching::DonorIndex;

use super::rows::{INDEX_COLUMNS, LoadedDonor, PositionSplitter, index_donor};
use crate::{Registry, RegistryError, Result};
/// The file of a `sqlite:` URL.
fn sqlite_file(url: &str) -> Result<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| RegistryError::Url(url.to_string()))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Err(RegistryError::Url(url.to_string()));
    }
    Ok(path.into())
}

/// Ids per span a reader thread takes at a time.
const SPAN: i64 = 50_000;
const READERS: usize = 2;

impl Registry {
    pub(crate) fn load_index_sqlite(&self, index: &mut DonorIndex, today: i64) -> Result<usize> {
        let path = sqlite_file(&self.url)?;
        let open = || {
            let conn = rusqlite::Connection::open_with_flags(
                &path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            conn.execute_batch("PRAGMA cache_size = -65536")?;
            Ok::<_, rusqlite::Error>(conn)
        };
        let sqlite_err = |e: rusqlite::Error| RegistryError::invalid("database", e.to_string());
        let (lo, hi): (i64, i64) = open()
            .and_then(|c| {
                c.query_row(
                    "SELECT COALESCE(MIN(id), 0), COALESCE(MAX(id), -1) FROM donors",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
            })
            .map_err(sqlite_err)?;
        let spans: Vec<(i64, i64)> = (lo..=hi)
            .step_by(SPAN as usize)
            .map(|s| (s, (s + SPAN - 1).min(hi)))
            .collect();
        let splitter = PositionSplitter::new();
        let next = AtomicUsize::new(0);
        let sql = format!("{INDEX_COLUMNS} AND d.id BETWEEN ?1 AND ?2 ORDER BY d.id");
        let read_span = |stmt: &mut rusqlite::Statement<'_>,
                         (from, to): (i64, i64)|
         -> Result<Vec<LoadedDonor>> {
            let mut rows = stmt.query([from, to]).map_err(sqlite_err)?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().map_err(sqlite_err)? {
                let text = |i: usize| -> Result<&str> {
                    Ok(row
                        .get_ref(i)
                        .map_err(sqlite_err)?
                        .as_str_or_null()
                        .map_err(|e| RegistryError::invalid("database", e.to_string()))?
                        .unwrap_or(""))
                };
                let donor = index_donor(
                    row.get(0).map_err(sqlite_err)?,
                    row.get(1).map_err(sqlite_err)?,
                    [text(2)?, text(3)?, text(4)?, text(5)?, text(6)?, text(7)?],
                    text(8)?.to_string(),
                    text(9)?.to_string(),
                    row.get(10).map_err(sqlite_err)?,
                    row.get(11).map_err(sqlite_err)?,
                    // The join guarantees a current typing; its text is split below.
                    Some(String::new()),
                );
                if !self.is_indexable(&donor, today) {
                    continue;
                }
                let positions = splitter.positions(text(12)?)?;
                out.push(LoadedDonor { donor, positions });
            }
            Ok(out)
        };
        let mut loaded = 0;
        std::thread::scope(|scope| -> Result<()> {
            let (sender, received) =
                std::sync::mpsc::sync_channel::<(usize, Result<Vec<LoadedDonor>>)>(READERS * 2);
            for _ in 0..READERS {
                let sender = sender.clone();
                let (open, read_span, next, spans, sql) = (&open, &read_span, &next, &spans, &sql);
                scope.spawn(move || {
                    let conn = match open() {
                        Ok(c) => c,
                        Err(e) => {
                            let _ = sender.send((usize::MAX, Err(sqlite_err(e))));
                            return;
                        }
                    };
                    let mut stmt = match conn.prepare(sql) {
                        Ok(s) => s,
                        Err(e) => {
                            let _ = sender.send((usize::MAX, Err(sqlite_err(e))));
                            return;
                        }
                    };
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= spans.len() {
                            return;
                        }
                        let chunk = read_span(&mut stmt, spans[i]);
                        let failed = chunk.is_err();
                        if sender.send((i, chunk)).is_err() || failed {
                            return;
                        }
                    }
                });
            }
            drop(sender);
            // Into the index in id order, whichever reader finishes first.
            let mut pending: BTreeMap<usize, Vec<LoadedDonor>> = BTreeMap::new();
            let mut wanted = 0;
            for (i, chunk) in received {
                let chunk = match chunk {
                    Ok(c) => c,
                    Err(e) => {
                        // Stop the readers before returning.
                        next.store(spans.len(), Ordering::Relaxed);
                        return Err(e);
                    }
                };
                pending.insert(i, chunk);
                while let Some(chunk) = pending.remove(&wanted) {
                    for d in chunk {
                        self.upsert_texts(index, &d.donor, &d.positions)?;
                        loaded += 1;
                    }
                    wanted += 1;
                }
            }
            Ok(())
        })?;
        Ok(loaded)
    }
}
