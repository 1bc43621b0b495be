//! Index snapshot files: a server starts from one instead of reading every donor, then
//! catches up from the change feed (issue 19).
//!
//! A file is `BOAISNAP`, a header's length (u32, little-endian) and the header as JSON (the
//! layout's version, the Boai and IMGT/HLA releases, the database it was taken from, the
//! feed position the index covers, the day and age limit it was built for), the index's
//! bytes (`matching::snapshot`), and a CRC-32 of everything before it. It is written to a
//! temporary file beside the target and renamed, so a reader never sees half of one.
//!
//! A snapshot is refused, with a message naming why, when it is damaged, from another
//! release of Boai (the index's layout and the matching rules may differ), from another
//! IMGT/HLA release (typings expand differently), built under another age limit or for a
//! later day (donors it left out could not be added back), from another database, or ahead of this
//! database's feed (one restored from a backup taken before the snapshot: reading on from
//! the snapshot's position would skip changes). The feed
//! position is the one taken *before* the index was read, so every change the read might
//! have missed is applied again after loading (applying a change twice is harmless).

use std::io::Write;
use std::path::{Path, PathBuf};

use matching::model::age_in_years;
use matching::{DonorIndex, DonorType};
use serde::{Deserialize, Serialize};

use crate::feed::FeedCursor;
use crate::{Registry, RegistryError};

const MAGIC: &[u8; 8] = b"BOAISNAP";
/// The file layout's version (the index bytes carry their own).
const FORMAT: u32 = 1;
/// This build's release: a snapshot from another is refused.
pub const BOAI_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What a snapshot file says about itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotHeader {
    pub format: u32,
    pub boai_version: String,
    pub imgt_release: String,
    /// The database it was taken from (`registry_origin`).
    pub origin: String,
    /// The feed position the index covers (every change before it is in).
    pub cursor: FeedCursor,
    /// The registry day it was built for (days since 1900-01-01) and the age-out birthday
    /// then in force: a server starting on a later day takes out who has aged out since.
    pub today: i64,
    pub age_out: u32,
    pub donors: usize,
    pub written_at: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("snapshot {0}: not an index snapshot file")]
    NotASnapshot(PathBuf),
    #[error("snapshot {0}: damaged (its checksum does not match its contents)")]
    Damaged(PathBuf),
    #[error("snapshot {path}: written by Boai {found}, this is Boai {ours}")]
    OtherBoai {
        path: PathBuf,
        found: String,
        ours: String,
    },
    #[error("snapshot {path}: built with IMGT/HLA {found}, this server uses {ours}")]
    OtherRelease {
        path: PathBuf,
        found: String,
        ours: String,
    },
    #[error("snapshot {path}: taken from another database (origin {found}, this one is {ours})")]
    OtherDatabase {
        path: PathBuf,
        found: String,
        ours: String,
    },
    #[error("snapshot {path}: {why}")]
    OtherRules { path: PathBuf, why: String },
    #[error(
        "snapshot {0}: covers changes this database has not reached (restored from a backup since?)"
    )]
    AheadOfDatabase(PathBuf),
    #[error("snapshot {path}: {error}")]
    Index {
        path: PathBuf,
        error: matching::SnapshotError,
    },
    #[error(transparent)]
    Store(#[from] RegistryError),
}

/// A snapshot read back: the index as it covers the header's feed position.
pub struct Snapshot {
    pub header: SnapshotHeader,
    pub index: DonorIndex,
    /// Donors taken out on reading because they aged out after the snapshot's day.
    pub aged_out: usize,
}

/// What writing a snapshot did.
#[derive(Debug, Clone)]
pub struct Written {
    pub header: SnapshotHeader,
    pub bytes: u64,
}

impl Registry {
    /// This database's identity (recorded in a snapshot).
    pub async fn origin(&self) -> Result<String, RegistryError> {
        Ok(sqlx::query_scalar("SELECT id FROM registry_origin LIMIT 1")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Read the index from the store and write it to `path` with the feed position taken
    /// before the read.
    pub async fn write_index_snapshot(&self, path: &Path) -> Result<Written, SnapshotError> {
        let cursor = self.feed_cursor().await?;
        let today = self.today();
        let mut index = DonorIndex::new(self.expander().clone());
        self.load_index(&mut index, today).await?;
        self.write_snapshot_of(path, &index, cursor, today).await
    }

    /// Write `index`, which holds every change before `cursor` as of `today`, to `path`.
    pub async fn write_snapshot_of(
        &self,
        path: &Path,
        index: &DonorIndex,
        cursor: FeedCursor,
        today: i64,
    ) -> Result<Written, SnapshotError> {
        let header = SnapshotHeader {
            format: FORMAT,
            boai_version: BOAI_VERSION.to_string(),
            imgt_release: self.expander().release().version.clone(),
            origin: self.origin().await?,
            cursor,
            today,
            age_out: self.config.age_out,
            donors: index.len(),
            written_at: self.now_text(),
        };
        let io = |error| SnapshotError::Io {
            path: path.to_path_buf(),
            error,
        };
        let head = serde_json::to_vec(&header).expect("a header serialises");
        let body = index.snapshot_bytes();
        let mut crc = crc32fast::Hasher::new();
        let head_len = (head.len() as u32).to_le_bytes();
        for part in [&MAGIC[..], &head_len, &head, &body] {
            crc.update(part);
        }
        let temp = path.with_extension(format!("partial-{}", std::process::id()));
        let write = || -> std::io::Result<u64> {
            let mut file = std::io::BufWriter::new(std::fs::File::create(&temp)?);
            for part in [
                &MAGIC[..],
                &head_len,
                &head,
                &body,
                &crc.finalize().to_le_bytes(),
            ] {
                file.write_all(part)?;
            }
            let file = file.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            std::fs::rename(&temp, path)?;
            Ok(file.metadata()?.len())
        };
        match write() {
            Ok(bytes) => Ok(Written { header, bytes }),
            Err(e) => {
                let _ = std::fs::remove_file(&temp);
                Err(io(e))
            }
        }
    }

    /// Read a snapshot for this database and release, as of `today` (donors who have aged
    /// out since the snapshot's day are taken out). Refused with the reason when it is
    /// damaged or from another Boai, IMGT/HLA release or database.
    pub async fn read_index_snapshot(
        &self,
        path: &Path,
        today: i64,
    ) -> Result<Snapshot, SnapshotError> {
        let p = || path.to_path_buf();
        let bytes = std::fs::read(path).map_err(|error| SnapshotError::Io { path: p(), error })?;
        let (header, body) = split(&bytes).ok_or_else(|| SnapshotError::NotASnapshot(p()))?;
        let (head_and_body, crc) = bytes.split_at(bytes.len() - 4);
        if crc32fast::hash(head_and_body).to_le_bytes() != crc {
            return Err(SnapshotError::Damaged(p()));
        }
        let header: SnapshotHeader =
            serde_json::from_slice(header).map_err(|_| SnapshotError::NotASnapshot(p()))?;
        if header.format != FORMAT || header.boai_version != BOAI_VERSION {
            return Err(SnapshotError::OtherBoai {
                path: p(),
                found: header.boai_version,
                ours: BOAI_VERSION.into(),
            });
        }
        let ours = &self.expander().release().version;
        if &header.imgt_release != ours {
            return Err(SnapshotError::OtherRelease {
                path: p(),
                found: header.imgt_release,
                ours: ours.clone(),
            });
        }
        // Donors a snapshot left out can only be taken out again, never added: one built
        // under another age limit, or for a later day, would hold the wrong donors.
        if header.age_out != self.config.age_out || header.today > today {
            return Err(SnapshotError::OtherRules {
                path: p(),
                why: if header.age_out != self.config.age_out {
                    format!(
                        "built with age_out {}, this server uses {}",
                        header.age_out, self.config.age_out
                    )
                } else {
                    "built for a later day than this server's today".into()
                },
            });
        }
        let origin = self.origin().await?;
        if header.origin != origin {
            return Err(SnapshotError::OtherDatabase {
                path: p(),
                found: header.origin,
                ours: origin,
            });
        }
        if !self.feed_reaches(&header.cursor).await? {
            return Err(SnapshotError::AheadOfDatabase(p()));
        }
        let mut index = DonorIndex::from_snapshot_bytes(self.expander().clone(), body)
            .map_err(|error| SnapshotError::Index { path: p(), error })?;
        // Built for today: nobody has aged out since.
        let aged_out = if today == header.today {
            0
        } else {
            remove_aged_out(&mut index, today, self.config.age_out)
        };
        Ok(Snapshot {
            header,
            index,
            aged_out,
        })
    }
}

/// The header's JSON and the index's bytes of a snapshot file (without its checksum), or
/// `None` when it is not laid out as one.
fn split(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let rest = bytes.strip_prefix(&MAGIC[..])?;
    let rest = rest.get(..rest.len().checked_sub(4)?)?;
    let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let rest = &rest[4..];
    Some((rest.get(..len)?, rest.get(len..)?))
}

/// Take out the adult donors at or past `age_out` on `today` (as a load from the store
/// would leave them out); returns how many.
fn remove_aged_out(index: &mut DonorIndex, today: i64, age_out: u32) -> usize {
    let aged: Vec<u32> = (0..index.rows() as u32)
        .filter(|&row| index.row(index.key(row)) == Some(row))
        .filter(|&row| {
            let facts = index.rank_facts(row);
            facts.donor_type == DonorType::Adult
                && facts
                    .birth_day
                    .is_some_and(|b| age_in_years(b, today) >= age_out)
        })
        .map(|row| index.key(row))
        .collect();
    for &key in &aged {
        let _ = index.remove(key);
    }
    aged.len()
}
