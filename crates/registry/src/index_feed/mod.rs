//! Everything that reads donors into a `matching::DonorIndex` or updates one: the only
//! place the registry touches the index. The load at start (`sqlite`, `postgres`), and
//! `IndexUpdate`: what one donor's change means for the index, worked out (GL split and
//! all) before the caller takes the index's write lock.

use matching::model::{age_in_years, parse_birth_date};
use matching::{DonorAttributes, DonorIndex, DonorInput, DonorType, Locus, Status};

use crate::model::Donor;
use crate::{Registry, RegistryError, Result};

mod postgres;
mod rows;
pub mod snapshot;
mod sqlite;

pub use rows::PositionTexts;
use rows::full_positions;

impl Registry {
    /// Whether a donor belongs in the matching index: listed (recruitment consent), not DE,
    /// a current typing, and younger than the age-out birthday.
    pub fn is_indexable(&self, donor: &Donor, today: i64) -> bool {
        donor.listed
            && donor.status != Status::Deferred
            && donor.current_typing.is_some()
            && donor
                .birth_date
                .as_deref()
                .and_then(|b| parse_birth_date(b).ok())
                .is_none_or(|b| {
                    donor.donor_type == DonorType::Cord
                        || age_in_years(b, today) < self.config.age_out
                })
    }

    /// Load every indexable donor into `index` (key = donor id). Returns how many. See
    /// the `sqlite` and `postgres` modules. Runs on the calling thread (with reader threads on SQLite): call it
    /// before serving.
    pub async fn load_index(&self, index: &mut DonorIndex, today: i64) -> Result<usize> {
        let loaded = match self.backend {
            crate::Backend::Sqlite => self.load_index_sqlite(index, today)?,
            crate::Backend::Postgres => self.load_index_pg(index, today).await?,
        };
        index.build_postings();
        Ok(loaded)
    }

    pub(crate) fn upsert_texts(
        &self,
        index: &mut DonorIndex,
        donor: &Donor,
        texts: &[(Locus, [String; 2])],
    ) -> Result<()> {
        upsert(index, index_key(donor.id)?, donor.attributes(), texts)
    }

    /// What `donor`'s current state means for the index, worked out without it: its key,
    /// and when it is listed, not DE and typed, its attributes and typing split into
    /// positions. Age-out depends on the day the update is applied (`IndexUpdate::apply`).
    pub fn index_update(&self, donor: &Donor) -> Result<IndexUpdate> {
        let key = index_key(donor.id)?;
        if !donor.listed || donor.status == Status::Deferred || donor.current_typing.is_none() {
            return Ok(IndexUpdate::Remove(key));
        }
        let positions = full_positions(donor.current_typing.as_deref().unwrap_or_default())?;
        Ok(IndexUpdate::Upsert {
            key,
            attributes: donor.attributes(),
            positions,
            age_out: self.config.age_out,
        })
    }

    /// What a write that changed `donor` returns: its own `value` and the donor's index
    /// update. The donor is read inside the write's transaction (`donor_in`), just before it
    /// commits; the typing is split here, after the commit, so neither the database's
    /// write turn nor the index's write lock is held for it.
    pub(crate) fn indexed<T>(&self, value: T, donor: &Donor) -> Result<Indexed<T>> {
        Ok(Indexed {
            value,
            index: self.index_update(donor)?,
        })
    }

    /// [`Registry::index_update`] for a donor read now (a donor that does not exist leaves the
    /// index).
    pub async fn index_update_of(&self, donor_id: i64) -> Result<IndexUpdate> {
        match self.donor(donor_id).await {
            Ok(d) => self.index_update(&d),
            Err(RegistryError::NotFound(_)) => Ok(IndexUpdate::Remove(index_key(donor_id)?)),
            Err(e) => Err(e),
        }
    }
}

fn index_key(donor_id: i64) -> Result<u32> {
    u32::try_from(donor_id)
        .map_err(|_| RegistryError::invalid("id", "donor id beyond the index key range"))
}

/// One donor's change as the index sees it. Worked out before the index's write lock is
/// taken, so the lock is held only for `apply`.
#[derive(Debug, Clone)]
pub enum IndexUpdate {
    /// The donor belongs in the index with these attributes and positions, until the
    /// `age_out` birthday (adult donors).
    Upsert {
        key: u32,
        attributes: DonorAttributes,
        positions: PositionTexts,
        age_out: u32,
    },
    /// The donor does not (or no longer) belong in the index.
    Remove(u32),
}

/// What a write that changes a donor returns: its own result, and what the change means for
/// the matching index (the caller applies it after the commit, without reading the donor
/// again).
#[derive(Debug, Clone)]
#[must_use = "the index must learn of the change"]
pub struct Indexed<T> {
    pub value: T,
    pub index: IndexUpdate,
}

impl IndexUpdate {
    /// Apply to `index` on `today`; true when the donor is in it afterwards.
    pub fn apply(self, index: &mut DonorIndex, today: i64) -> Result<bool> {
        match self {
            IndexUpdate::Upsert {
                key,
                attributes,
                positions,
                age_out,
            } if attributes.donor_type == DonorType::Cord
                || attributes
                    .birth_day
                    .is_none_or(|b| age_in_years(b, today) < age_out) =>
            {
                upsert(index, key, attributes, &positions)?;
                Ok(true)
            }
            IndexUpdate::Upsert { key, .. } | IndexUpdate::Remove(key) => {
                if index.contains(key) {
                    index.remove(key).ok();
                }
                Ok(false)
            }
        }
    }
}

/// Insert or replace one donor in the index.
fn upsert(
    index: &mut DonorIndex,
    key: u32,
    attributes: DonorAttributes,
    positions: &[(Locus, [String; 2])],
) -> Result<()> {
    let mut input = DonorInput {
        key,
        attributes,
        ..Default::default()
    };
    for (l, pair) in positions {
        input.hla[l.index()] = [Some(pair[0].as_str()), Some(pair[1].as_str())];
    }
    index
        .upsert(&input)
        .map_err(|e| RegistryError::invalid("typing", e.to_string()))?;
    Ok(())
}
