//! Everything that reads donors into a `matching::DonorIndex` or updates one: the only
//! place the registry touches the index. The load at start (`sqlite`, `postgres`), and
//! `IndexUpdate`: what one donor's change means for the index, worked out (GL split and
//! all) before the caller takes the index's write lock.

use hla::GlString;
use matching::model::{age_in_years, parse_birth_date};
use matching::{
    Abo, Cmv, CordCells, DonorAttributes, DonorIndex, DonorInput, DonorType, Locus, Sex, Status,
};

use crate::model::Donor;
use crate::{Registry, RegistryError, Result};

mod postgres;
mod sqlite;

/// Donors that may be searchable: listed and not deleted. Age-out and deferral are checked
/// per donor ([`Registry::is_indexable`]), as they depend on the day.
pub(crate) const INDEX_COLUMNS: &str = "SELECT d.id, d.birth_date, d.sex, d.abo, d.rh, d.cmv, d.donor_type, d.status, d.station_code, d.population, \
     d.cord_tnc_e7, d.cord_cd34_e5, t.gl FROM donors d JOIN typings t ON t.donor_id = d.id AND t.is_current \
     WHERE d.listed AND d.status <> 'DE'";

/// Locus and two position texts per typed locus.
pub type PositionTexts = Vec<(Locus, [String; 2])>;

/// A donor read for the index, with its typing split into positions.
pub(crate) struct LoadedDonor {
    pub donor: Donor,
    pub positions: PositionTexts,
}

/// Splits stored GL strings into positions, learning each position text once: its locus
/// when it is a valid allele list printed canonically, `None` when it is not, `Some(None)`
/// when its locus is not one the index holds.
#[derive(Default)]
pub(crate) struct PositionSplitter {
    loci: hla::PositionCache<Option<Option<Locus>>>,
}

impl PositionSplitter {
    pub fn new() -> PositionSplitter {
        PositionSplitter::default()
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
        if text.is_empty() {
            return None;
        }
        self.loci.get_or_compute(text, |text| {
            hla::gl::AlleleList::parse(text, None)
                .ok()
                .filter(|list| list.to_string() == text)
                .map(|list| Locus::from_name(list.locus()))
        })
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
        rh_positive: crate::model::rh_from_code(rh).flatten(),
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

    /// What `donor`'s current state means for the index, worked out without it: its key, and
    /// its attributes and typing split into positions when it belongs there.
    pub fn index_update(&self, donor: &Donor, today: i64) -> Result<IndexUpdate> {
        let key = index_key(donor.id)?;
        if !self.is_indexable(donor, today) {
            return Ok(IndexUpdate::Remove(key));
        }
        let positions = full_positions(donor.current_typing.as_deref().unwrap_or_default())?;
        Ok(IndexUpdate::Upsert {
            key,
            attributes: donor.attributes(),
            positions,
        })
    }

    /// [`Registry::index_update`] for a donor read now (a donor that does not exist leaves the
    /// index).
    pub async fn index_update_of(&self, donor_id: i64, today: i64) -> Result<IndexUpdate> {
        match self.donor(donor_id).await {
            Ok(d) => self.index_update(&d, today),
            Err(RegistryError::NotFound(_)) => Ok(IndexUpdate::Remove(index_key(donor_id)?)),
            Err(e) => Err(e),
        }
    }

    /// Put one donor into the index, or take it out when it no longer belongs there.
    pub fn apply_to_index(
        &self,
        index: &mut DonorIndex,
        donor: &Donor,
        today: i64,
    ) -> Result<bool> {
        self.index_update(donor, today)?.apply(index)
    }

    /// Re-read one donor after a committed write and apply it to the index.
    pub async fn refresh_in_index(
        &self,
        index: &mut DonorIndex,
        donor_id: i64,
        today: i64,
    ) -> Result<()> {
        self.index_update_of(donor_id, today).await?.apply(index)?;
        Ok(())
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
    /// The donor belongs in the index with these attributes and positions.
    Upsert {
        key: u32,
        attributes: DonorAttributes,
        positions: PositionTexts,
    },
    /// The donor does not (or no longer) belong in the index.
    Remove(u32),
}

impl IndexUpdate {
    /// Apply to `index`; true when the donor is in it afterwards.
    pub fn apply(self, index: &mut DonorIndex) -> Result<bool> {
        match self {
            IndexUpdate::Remove(key) => {
                if index.contains(key) {
                    index.remove(key).ok();
                }
                Ok(false)
            }
            IndexUpdate::Upsert {
                key,
                attributes,
                positions,
            } => {
                upsert(index, key, attributes, &positions)?;
                Ok(true)
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
