//! The columnar in-memory donor index. Per donor: one interned position-typing id per locus
//! position (A, B, C, DRB1, DQB1, DPB1 × 2) pointing at that typing's [`PositionInfo`], and
//! the packed attributes ranking and filtering need. Ids are `u16` while every locus has
//! fewer than 65,535 distinct typings and widen to `u32` past that.

use std::sync::Arc;

use hla::{AlleleList, Expander, TypingError};
use rustc_hash::FxHashMap;

use crate::model::{Abo, Cmv, CordCells, DonorAttributes, DonorType, Locus, Sex, Status};
use crate::position::PositionInfo;
use crate::score::Subject;

/// A row of the index (stable while the donor stays in it).
pub type Row = u32;

const ABSENT: u32 = u32::MAX;
const NO_BIRTH: u16 = u16::MAX;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    #[error("donor {key}: locus {locus}: {error}")]
    Typing {
        key: u32,
        locus: Locus,
        error: TypingError,
    },
    #[error("donor key {0} is reserved")]
    ReservedKey(u32),
    #[error("donor {0} is not in the index")]
    NotFound(u32),
}

/// A donor to add: a numeric key (unique, < u32::MAX), each locus position's typing as text
/// (`A*02:01`, `*02:XX` or `24` with the locus implied, `A*01:01/A*01:02`), and attributes.
#[derive(Debug, Clone, Default)]
pub struct DonorInput<'a> {
    pub key: u32,
    pub hla: [[Option<&'a str>; 2]; 6],
    pub attributes: DonorAttributes,
}

/// Distinct typings of one locus: id 0 is "untyped".
#[derive(Debug, Default)]
pub(crate) struct PositionTable {
    pub(crate) infos: Vec<Option<Arc<PositionInfo>>>,
    /// Donor positions holding each id (for the scan's locus ordering).
    pub(crate) counts: Vec<u32>,
    by_text: FxHashMap<Box<str>, u32>,
}

impl PositionTable {
    fn new() -> PositionTable {
        PositionTable {
            infos: vec![None],
            counts: vec![0],
            by_text: FxHashMap::default(),
        }
    }
}

pub(crate) enum Columns {
    Narrow(Box<[[Vec<u16>; 2]; 6]>),
    Wide(Box<[[Vec<u32>; 2]; 6]>),
}

impl Columns {
    fn get(&self, locus: usize, pos: usize, row: usize) -> u32 {
        match self {
            Columns::Narrow(c) => c[locus][pos][row] as u32,
            Columns::Wide(c) => c[locus][pos][row],
        }
    }
    fn set(&mut self, locus: usize, pos: usize, row: usize, id: u32) {
        if let Columns::Narrow(c) = self
            && id > u16::MAX as u32
        {
            let wide: [[Vec<u32>; 2]; 6] = std::array::from_fn(|l| {
                std::array::from_fn(|p| c[l][p].iter().map(|&x| x as u32).collect())
            });
            *self = Columns::Wide(Box::new(wide));
        }
        match self {
            Columns::Narrow(c) => c[locus][pos][row] = id as u16,
            Columns::Wide(c) => c[locus][pos][row] = id,
        }
    }
    fn push_row(&mut self) {
        match self {
            Columns::Narrow(c) => c.iter_mut().flatten().for_each(|v| v.push(0)),
            Columns::Wide(c) => c.iter_mut().flatten().for_each(|v| v.push(0)),
        }
    }
    fn bytes(&self) -> usize {
        match self {
            Columns::Narrow(c) => c.iter().flatten().map(|v| v.capacity() * 2).sum(),
            Columns::Wide(c) => c.iter().flatten().map(|v| v.capacity() * 4).sum(),
        }
    }
    pub(crate) fn width(&self) -> usize {
        match self {
            Columns::Narrow(_) => 2,
            Columns::Wide(_) => 4,
        }
    }
}

// Packed attribute flags.
const LIVE: u16 = 1;
const CORD: u16 = 1 << 1;
const STATUS_SHIFT: u16 = 2; // 2 bits
const SEX_SHIFT: u16 = 4; // 2 bits
const ABO_SHIFT: u16 = 6; // 3 bits
const RH_SHIFT: u16 = 9; // 2 bits: 0 unknown, 1 neg, 2 pos
const CMV_SHIFT: u16 = 11; // 2 bits

fn index_of<T: PartialEq>(all: &[T], v: T) -> u16 {
    all.iter().position(|x| *x == v).unwrap_or(0) as u16
}

pub(crate) fn pack_flags(a: &DonorAttributes) -> u16 {
    LIVE | if a.donor_type == DonorType::Cord {
        CORD
    } else {
        0
    } | index_of(Status::ALL, a.status) << STATUS_SHIFT
        | index_of(Sex::ALL, a.sex) << SEX_SHIFT
        | index_of(Abo::ALL, a.abo) << ABO_SHIFT
        | match a.rh_positive {
            None => 0,
            Some(false) => 1,
            Some(true) => 2,
        } << RH_SHIFT
        | index_of(Cmv::ALL, a.cmv) << CMV_SHIFT
}

pub(crate) fn flag_status(flags: u16) -> Status {
    Status::ALL[((flags >> STATUS_SHIFT) & 3) as usize]
}
pub(crate) fn flag_cord(flags: u16) -> bool {
    flags & CORD != 0
}
pub(crate) fn flag_live(flags: u16) -> bool {
    flags & LIVE != 0
}

/// Donor facts a ranking policy may use (copied per hit; no heap data).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RankFacts {
    pub donor_type: DonorType,
    pub birth_day: Option<u16>,
    pub sex: Sex,
    pub abo: Abo,
    pub cmv: Cmv,
}

/// The donor index.
pub struct DonorIndex {
    expander: Arc<Expander>,
    pub(crate) positions: [PositionTable; 6],
    pub(crate) columns: Columns,
    pub(crate) keys: Vec<u32>,
    row_of: Vec<u32>,
    pub(crate) flags: Vec<u16>,
    pub(crate) birth: Vec<u16>,
    pub(crate) registry: Vec<u16>,
    pub(crate) registries: Vec<String>,
    population: Vec<u8>,
    populations: Vec<String>,
    pub(crate) cords: FxHashMap<Row, CordCells>,
    free_rows: Vec<Row>,
    live: usize,
}

fn intern(list: &mut Vec<String>, value: &str) -> usize {
    match list.iter().position(|v| v == value) {
        Some(i) => i,
        None => {
            list.push(value.to_string());
            list.len() - 1
        }
    }
}

impl DonorIndex {
    pub fn new(expander: Arc<Expander>) -> DonorIndex {
        DonorIndex {
            expander,
            positions: std::array::from_fn(|_| PositionTable::new()),
            columns: Columns::Narrow(Box::new(std::array::from_fn(|_| [Vec::new(), Vec::new()]))),
            keys: Vec::new(),
            row_of: Vec::new(),
            flags: Vec::new(),
            birth: Vec::new(),
            registry: Vec::new(),
            registries: vec![String::new()],
            population: Vec::new(),
            populations: vec![String::new()],
            cords: FxHashMap::default(),
            free_rows: Vec::new(),
            live: 0,
        }
    }

    pub fn expander(&self) -> &Arc<Expander> {
        &self.expander
    }

    /// Reserve room for `n` more donors (avoids regrowth while bulk loading).
    pub fn reserve(&mut self, n: usize) {
        match &mut self.columns {
            Columns::Narrow(c) => c.iter_mut().flatten().for_each(|v| v.reserve_exact(n)),
            Columns::Wide(c) => c.iter_mut().flatten().for_each(|v| v.reserve_exact(n)),
        }
        self.keys.reserve_exact(n);
        self.flags.reserve_exact(n);
        self.birth.reserve_exact(n);
        self.registry.reserve_exact(n);
        self.population.reserve_exact(n);
    }

    /// Donors in the index.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Rows allocated (live and free).
    pub fn rows(&self) -> usize {
        self.keys.len()
    }

    /// Distinct typings per locus.
    pub fn distinct_positions(&self, locus: Locus) -> usize {
        self.positions[locus.index()].infos.len() - 1
    }

    /// Intern one position typing of a locus, expanding it on first sight.
    pub fn position_id(&mut self, locus: Locus, text: &str) -> Result<u32, TypingError> {
        let table = &mut self.positions[locus.index()];
        if let Some(&id) = table.by_text.get(text) {
            return Ok(id);
        }
        let list = AlleleList::parse(text, Some(locus.name()))?;
        let info = PositionInfo::new(&self.expander, &list)?;
        let id = table.infos.len() as u32;
        table.infos.push(Some(Arc::new(info)));
        table.counts.push(0);
        table.by_text.insert(text.into(), id);
        Ok(id)
    }

    pub fn position_info(&self, locus: Locus, id: u32) -> Option<&Arc<PositionInfo>> {
        self.positions[locus.index()]
            .infos
            .get(id as usize)
            .and_then(Option::as_ref)
    }

    fn resolve_ids(&mut self, donor: &DonorInput<'_>) -> Result<[[u32; 2]; 6], IndexError> {
        let mut ids = [[0u32; 2]; 6];
        for locus in Locus::ALL {
            let cells = donor.hla[locus.index()];
            // One copy given: read as homozygous (ARCHITECTURE.md).
            let cells = match cells {
                [Some(a), None] | [None, Some(a)] => [Some(a), Some(a)],
                other => other,
            };
            for (p, cell) in cells.iter().enumerate() {
                if let Some(text) = cell {
                    ids[locus.index()][p] =
                        self.position_id(locus, text)
                            .map_err(|error| IndexError::Typing {
                                key: donor.key,
                                locus,
                                error,
                            })?;
                }
            }
        }
        Ok(ids)
    }

    /// Add a donor, or replace the donor with the same key. Invalid HLA leaves the index
    /// unchanged and names the locus and token.
    pub fn upsert(&mut self, donor: &DonorInput<'_>) -> Result<Row, IndexError> {
        if donor.key == ABSENT {
            return Err(IndexError::ReservedKey(donor.key));
        }
        let ids = self.resolve_ids(donor)?;
        let key = donor.key as usize;
        let existing = self.row_of.get(key).copied().filter(|&r| r != ABSENT);
        let row = match existing {
            Some(r) => r,
            None => {
                let row = match self.free_rows.pop() {
                    Some(r) => r,
                    None => {
                        self.columns.push_row();
                        self.keys.push(0);
                        self.flags.push(0);
                        self.birth.push(NO_BIRTH);
                        self.registry.push(0);
                        self.population.push(0);
                        (self.keys.len() - 1) as Row
                    }
                };
                if self.row_of.len() <= key {
                    self.row_of.resize(key + 1, ABSENT);
                }
                self.row_of[key] = row;
                self.live += 1;
                row
            }
        };
        let r = row as usize;
        for (l, pair) in ids.iter().enumerate() {
            for (p, &id) in pair.iter().enumerate() {
                if existing.is_some() {
                    let old = self.columns.get(l, p, r) as usize;
                    self.positions[l].counts[old] -= 1;
                }
                self.columns.set(l, p, r, id);
                self.positions[l].counts[id as usize] += 1;
            }
        }
        let a = &donor.attributes;
        self.keys[r] = donor.key;
        self.flags[r] = pack_flags(a);
        self.birth[r] = a.birth_day.unwrap_or(NO_BIRTH);
        self.registry[r] = intern(&mut self.registries, &a.registry) as u16;
        self.population[r] = intern(&mut self.populations, &a.population) as u8;
        match (a.donor_type, a.cord) {
            (DonorType::Cord, Some(c)) => {
                self.cords.insert(row, c);
            }
            _ => {
                self.cords.remove(&row);
            }
        }
        Ok(row)
    }

    /// Take a donor out of the index at once (withdrawal, deferral, deletion).
    pub fn remove(&mut self, key: u32) -> Result<(), IndexError> {
        let row = self.row(key).ok_or(IndexError::NotFound(key))?;
        let r = row as usize;
        self.row_of[key as usize] = ABSENT;
        self.flags[r] = 0;
        for l in 0..6 {
            for p in 0..2 {
                let old = self.columns.get(l, p, r) as usize;
                self.positions[l].counts[old] -= 1;
                self.columns.set(l, p, r, 0);
            }
        }
        self.cords.remove(&row);
        self.free_rows.push(row);
        self.live -= 1;
        Ok(())
    }

    /// Change only the status (e.g. AV → TU) without touching the HLA.
    pub fn set_status(&mut self, key: u32, status: Status) -> Result<(), IndexError> {
        let r = self.row(key).ok_or(IndexError::NotFound(key))? as usize;
        let flags = self.flags[r] & !(3 << STATUS_SHIFT);
        self.flags[r] = flags | index_of(Status::ALL, status) << STATUS_SHIFT;
        Ok(())
    }

    pub fn row(&self, key: u32) -> Option<Row> {
        self.row_of
            .get(key as usize)
            .copied()
            .filter(|&r| r != ABSENT)
    }

    pub fn contains(&self, key: u32) -> bool {
        self.row(key).is_some()
    }

    pub fn key(&self, row: Row) -> u32 {
        self.keys[row as usize]
    }

    pub(crate) fn position_ids(&self, row: Row) -> [[u32; 2]; 6] {
        std::array::from_fn(|l| std::array::from_fn(|p| self.columns.get(l, p, row as usize)))
    }

    /// The donor's typing as the scorer sees it.
    pub fn subject(&self, row: Row) -> Subject {
        let ids = self.position_ids(row);
        std::array::from_fn(|l| {
            let locus = Locus::ALL[l];
            match (
                self.position_info(locus, ids[l][0]),
                self.position_info(locus, ids[l][1]),
            ) {
                (Some(a), Some(b)) => Some([a.clone(), b.clone()]),
                _ => None,
            }
        })
    }

    /// The donor's attributes.
    pub fn attributes(&self, row: Row) -> DonorAttributes {
        let r = row as usize;
        let f = self.flags[r];
        DonorAttributes {
            donor_type: if flag_cord(f) {
                DonorType::Cord
            } else {
                DonorType::Adult
            },
            status: flag_status(f),
            birth_day: (self.birth[r] != NO_BIRTH).then_some(self.birth[r]),
            sex: Sex::ALL[((f >> SEX_SHIFT) & 3) as usize],
            abo: Abo::ALL[((f >> ABO_SHIFT) & 7) as usize],
            rh_positive: match (f >> RH_SHIFT) & 3 {
                1 => Some(false),
                2 => Some(true),
                _ => None,
            },
            cmv: Cmv::ALL[((f >> CMV_SHIFT) & 3) as usize],
            registry: self.registries[self.registry[r] as usize].clone(),
            population: self.populations[self.population[r] as usize].clone(),
            cord: self.cords.get(&row).copied(),
        }
    }

    /// The attributes a ranking policy uses, without heap data.
    pub fn rank_facts(&self, row: Row) -> RankFacts {
        let r = row as usize;
        let f = self.flags[r];
        RankFacts {
            donor_type: if flag_cord(f) {
                DonorType::Cord
            } else {
                DonorType::Adult
            },
            birth_day: (self.birth[r] != NO_BIRTH).then_some(self.birth[r]),
            sex: Sex::ALL[((f >> SEX_SHIFT) & 3) as usize],
            abo: Abo::ALL[((f >> ABO_SHIFT) & 7) as usize],
            cmv: Cmv::ALL[((f >> CMV_SHIFT) & 3) as usize],
        }
    }

    pub(crate) fn registry_id(&self, code: &str) -> Option<u16> {
        self.registries
            .iter()
            .position(|r| r == code)
            .map(|i| i as u16)
    }

    /// Heap bytes held per donor column and table (for the ≤ 64 bytes/donor budget).
    pub fn memory_bytes(&self) -> usize {
        let tables: usize = self
            .positions
            .iter()
            .map(|t| {
                t.infos.capacity() * 8
                    + t.by_text.capacity() * 24
                    + t.infos
                        .iter()
                        .flatten()
                        .map(|i| {
                            std::mem::size_of::<PositionInfo>()
                                + i.text.len()
                                + i.alleles.len() * 4
                                + i.antigens.len() * 4
                                + (i.prefix2.len() + i.prefix3.len()) * 8
                                + i.g_groups.len() * 4
                        })
                        .sum::<usize>()
            })
            .sum();
        self.columns.bytes()
            + self.keys.capacity() * 4
            + self.row_of.capacity() * 4
            + self.flags.capacity() * 2
            + self.birth.capacity() * 2
            + self.registry.capacity() * 2
            + self.population.capacity()
            + self.cords.capacity() * 16
            + self.free_rows.capacity() * 4
            + tables
    }
}
