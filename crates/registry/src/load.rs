//! Loading the matching index from the registry at start: ten million donors in well under a
//! minute.
//!
//! SQLite: the donor id range is cut into spans read by two threads, each on its own
//! read-only connection (`rusqlite`, straight on the C library: no per-row channel or
//! allocation), while the calling thread puts the donors into the index in id order.
//! PostgreSQL: one native `sqlx` stream, parsed in chunks. Both split stored GL strings by a
//! cache of position texts, falling back to the full parser for anything unusual.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use hla::GlString;
use matching::{Abo, Cmv, CordCells, DonorIndex, DonorType, Locus, Sex, Status};
use rustc_hash::FxHashMap;

use crate::store::Donor;
use crate::{Registry, RegistryError, Result};

/// Donors that may be searchable: listed and not deleted. Age-out and deferral are checked
/// per donor ([`Registry::is_indexable`]), as they depend on the day.
pub(crate) const INDEX_COLUMNS: &str = "SELECT d.id, d.birth_date, d.sex, d.abo, d.rh, d.cmv, d.donor_type, d.status, d.station_code, d.population, \
     d.cord_tnc_e7, d.cord_cd34_e5, t.gl FROM donors d JOIN typings t ON t.donor_id = d.id AND t.is_current \
     WHERE d.listed AND d.status <> 'DE'";

/// Locus and two position texts per typed locus.
pub(crate) type PositionTexts = Vec<(Locus, [String; 2])>;

/// A donor read for the index, with its typing split into positions.
pub(crate) struct LoadedDonor {
    pub donor: Donor,
    pub positions: PositionTexts,
}

/// Position text → its locus, when the text is a valid allele list printed canonically:
/// `None` when it is not, `Some(None)` when its locus is not one the index holds.
type LocusCache = FxHashMap<Box<str>, Option<Option<Locus>>>;

/// Splits stored GL strings into positions, learning each position text once.
#[derive(Default)]
pub(crate) struct PositionSplitter {
    shards: Vec<Mutex<LocusCache>>,
}

const SHARDS: usize = 32;
const SHARD_LIMIT: usize = 1 << 16;

impl PositionSplitter {
    pub fn new() -> PositionSplitter {
        PositionSplitter {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    /// The positions of a stored GL string: split on `^` and `+` when every piece has the
    /// common shape, else by the full parser (which also words any error).
    pub fn positions(&self, gl: &str) -> Result<PositionTexts> {
        if let Some(p) = self.split(gl) {
            return Ok(p);
        }
        full_positions(gl)
    }

    fn split(&self, gl: &str) -> Option<PositionTexts> {
        if gl
            .bytes()
            .any(|b| matches!(b, b'#' | b'|' | b'~') || !b.is_ascii_graphic())
        {
            return None;
        }
        let mut out: PositionTexts = Vec::with_capacity(6);
        for piece in gl.split('^') {
            let mut parts = piece.split('+');
            let first = parts.next()?;
            let second = parts.next().unwrap_or(first);
            if parts.next().is_some() {
                return None;
            }
            let locus = self.locus(first)?;
            if self.locus(second)? != locus {
                return None;
            }
            // Loci the index does not hold are left out, as by the full parser.
            if let Some(l) = locus {
                if out.iter().any(|(o, _)| *o == l) {
                    return None;
                }
                out.push((l, [first.to_string(), second.to_string()]));
            }
        }
        Some(out)
    }

    /// `None`: not a canonical allele list (the caller falls back); `Some(None)`: valid but
    /// of a locus the index does not hold.
    fn locus(&self, text: &str) -> Option<Option<Locus>> {
        use std::hash::BuildHasher;
        if text.is_empty() {
            return None;
        }
        let shard = &self.shards[(rustc_hash::FxBuildHasher.hash_one(text) as usize) % SHARDS];
        if let Some(hit) = shard.lock().expect("cache lock").get(text) {
            return *hit;
        }
        let value = hla::gl::AlleleList::parse(text, None)
            .ok()
            .filter(|list| list.to_string() == text)
            .map(|list| Locus::from_name(list.locus()));
        let mut shard = shard.lock().expect("cache lock");
        if shard.len() < SHARD_LIMIT {
            shard.insert(text.into(), value);
        }
        value
    }
}

/// The general path: parse the whole GL string.
pub(crate) fn full_positions(gl: &str) -> Result<PositionTexts> {
    let gl = GlString::parse(gl)?;
    Ok(hla::locus_typings(&gl)?
        .iter()
        .filter_map(|t| {
            Locus::from_name(&t.locus)
                .map(|l| (l, [t.positions[0].to_string(), t.positions[1].to_string()]))
        })
        .collect())
}

/// Decode the packed attribute columns shared by both backends' index rows.
#[allow(clippy::too_many_arguments)]
pub(crate) fn index_donor(
    id: i64,
    birth_date: Option<String>,
    codes: [&str; 6],
    station: String,
    population: String,
    tnc: Option<f64>,
    cd34: Option<f64>,
    gl: Option<String>,
) -> Donor {
    let [sex, abo, rh, cmv, donor_type, status] = codes;
    let donor_type = DonorType::from_code(donor_type).unwrap_or_default();
    Donor {
        id,
        grid: String::new(),
        external_id: String::new(),
        station,
        birth_date,
        sex: Sex::from_code(sex).unwrap_or_default(),
        abo: Abo::from_code(abo).unwrap_or_default(),
        rh_positive: crate::store::rh_from_code(rh).flatten(),
        cmv: Cmv::from_code(cmv).unwrap_or_default(),
        population,
        donor_type,
        cord: (donor_type == DonorType::Cord).then(|| CordCells {
            tnc_e7: tnc.unwrap_or(0.0) as f32,
            cd34_e5: cd34.unwrap_or(0.0) as f32,
        }),
        status: Status::from_code(status).unwrap_or_default(),
        status_reason: None,
        status_until: None,
        reserved_for: None,
        listed: true,
        current_typing: gl,
    }
}

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
