//! The columnar in-memory donor index. Per donor and locus: one interned *genotype* id — the
//! ordered pair of that locus's two position typings — pointing at the pair of interned
//! position-typing ids, each with its [`PositionInfo`]; and the packed attributes ranking
//! and filtering need. A search compares the patient with each distinct position typing once,
//! derives a mismatch count per distinct genotype, and the scan then costs one load and one
//! table look-up per donor and locus.

use std::sync::Arc;

use hla::{AlleleList, Expander, TypingError};
use rustc_hash::FxHashMap;

use crate::model::{Abo, Cmv, CordCells, DonorAttributes, DonorType, Locus, Sex, Status};
use crate::position::PositionInfo;
use crate::prefetch::prefetch;
use crate::score::Subject;

/// A row of the index (stable while the donor stays in it).
pub type Row = u32;

pub(crate) const ABSENT: u32 = u32::MAX;
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
    pub(crate) by_text: FxHashMap<Box<str>, u32>,
    /// Per typing id, what it is: a search codes every typing without reaching its info.
    pub(crate) kinds: Vec<TypingKind>,
    /// Per P-group key: the expressed typings whose set holds it, ascending. With `new`,
    /// the typings a patient position meets are the union of its keys' lists.
    pub(crate) by_key: FxHashMap<u32, Vec<u32>>,
    /// The `NEW` typings (they meet every expressed position).
    pub(crate) new: Vec<u32>,
}

/// What a position typing is, for the search's per-typing codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TypingKind {
    Untyped,
    Null,
    Expressed,
    New,
}

impl PositionTable {
    pub(crate) fn new() -> PositionTable {
        PositionTable {
            infos: vec![None],
            by_text: FxHashMap::default(),
            kinds: vec![TypingKind::Untyped],
            by_key: FxHashMap::default(),
            new: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, text: &str, info: PositionInfo) -> u32 {
        let id = self.infos.len() as u32;
        let kind = if info.is_null() {
            TypingKind::Null
        } else if info.is_new() {
            self.new.push(id);
            TypingKind::New
        } else {
            for &key in info.p_keys.iter() {
                self.by_key.entry(key).or_default().push(id);
            }
            TypingKind::Expressed
        };
        self.kinds.push(kind);
        self.infos.push(Some(Arc::new(info)));
        self.by_text.insert(text.into(), id);
        id
    }
}

/// Distinct genotypes of one locus (ordered pairs of position ids): id 0 is "untyped"
/// (`[0, 0]`). Ids are never reused, so a search's per-genotype table stays valid for the
/// rows it scans.
#[derive(Debug)]
pub(crate) struct GenotypeTable {
    pub(crate) pairs: Vec<[u32; 2]>,
    /// Donors holding each genotype (for the scan's locus ordering).
    pub(crate) counts: Vec<u32>,
    /// Genotype ids, hashed by their pair (4 bytes a slot instead of 12).
    pub(crate) by_pair: hashbrown::HashTable<u32>,
}

pub(crate) fn pair_hash(pair: [u32; 2]) -> u64 {
    use std::hash::BuildHasher;
    rustc_hash::FxBuildHasher.hash_one(pair)
}

impl GenotypeTable {
    fn new() -> GenotypeTable {
        GenotypeTable {
            pairs: vec![[0, 0]],
            counts: vec![0],
            by_pair: hashbrown::HashTable::new(),
        }
    }

    fn intern(&mut self, pair: [u32; 2]) -> u32 {
        if pair == [0, 0] {
            return 0;
        }
        let pairs = &self.pairs;
        let hash = pair_hash(pair);
        if let Some(&id) = self.by_pair.find(hash, |&id| pairs[id as usize] == pair) {
            return id;
        }
        let id = self.pairs.len() as u32;
        self.pairs.push(pair);
        self.counts.push(0);
        let pairs = &self.pairs;
        self.by_pair
            .insert_unique(hash, id, |&id| pair_hash(pairs[id as usize]));
        id
    }
}

/// One locus's genotype id per row: `u16` while the locus has fewer than 65,536 distinct
/// genotypes, widened to `u32` past that (per locus: DPB1 stays narrow when B widens).
#[derive(Debug)]
pub(crate) enum GenotypeColumn {
    Narrow(Vec<u16>),
    Wide(Vec<u32>),
}

impl GenotypeColumn {
    #[inline(always)]
    pub(crate) fn get(&self, row: usize) -> u32 {
        match self {
            GenotypeColumn::Narrow(c) => c[row] as u32,
            GenotypeColumn::Wide(c) => c[row],
        }
    }

    fn set(&mut self, row: usize, id: u32) {
        if let GenotypeColumn::Narrow(c) = self
            && id > u16::MAX as u32
        {
            // Keep the room a bulk load reserved.
            let mut wide = Vec::with_capacity(c.capacity());
            wide.extend(c.iter().map(|&g| g as u32));
            *self = GenotypeColumn::Wide(wide);
        }
        match self {
            GenotypeColumn::Narrow(c) => c[row] = id as u16,
            GenotypeColumn::Wide(c) => c[row] = id,
        }
    }

    fn push(&mut self) {
        match self {
            GenotypeColumn::Narrow(c) => c.push(0),
            GenotypeColumn::Wide(c) => c.push(0),
        }
    }

    fn reserve_exact(&mut self, n: usize) {
        match self {
            GenotypeColumn::Narrow(c) => c.reserve_exact(n),
            GenotypeColumn::Wide(c) => c.reserve_exact(n),
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            GenotypeColumn::Narrow(c) => c.len(),
            GenotypeColumn::Wide(c) => c.len(),
        }
    }

    fn bytes(&self) -> usize {
        match self {
            GenotypeColumn::Narrow(c) => c.capacity() * 2,
            GenotypeColumn::Wide(c) => c.capacity() * 4,
        }
    }
}

/// Loci with posting lists: the three every search matches (A, B, DRB1), where a donor
/// without a mismatch is rare, so their zero-mismatch rows are few.
pub(crate) const POSTED: [usize; 3] = [0, 1, 3];

/// One locus's rows by genotype: a counting-sorted snapshot (`rows[offsets[g]..offsets[g+1]]`
/// held genotype `g` when it was taken) plus the rows written since. A search reads the
/// snapshot lists of the genotypes it wants, skips entries whose row has moved on, and
/// checks every recent row. The snapshot also lists, per position typing, the genotypes
/// holding it, so a search finds its zero-mismatch genotypes from the few typings that meet
/// the patient instead of testing every genotype. Genotypes and typings interned after the
/// snapshot are held only by recent rows.
#[derive(Debug, Default)]
pub(crate) struct Postings {
    pub(crate) offsets: Vec<u32>,
    pub(crate) rows: Vec<u32>,
    pub(crate) recent: Vec<u32>,
    /// `genotypes_of[position_offsets[p]..position_offsets[p+1]]`: snapshot genotypes
    /// holding position typing `p` (once, also when homozygous), each with its other
    /// position typing, so that a walk over them reads no pair table.
    pub(crate) position_offsets: Vec<u32>,
    pub(crate) genotypes_of: Vec<[u32; 2]>,
}

impl Postings {
    fn build(column: &GenotypeColumn, genotypes: &GenotypeTable, positions: usize) -> Postings {
        let mut offsets = vec![0u32; genotypes.pairs.len() + 1];
        for r in 0..column.len() {
            offsets[column.get(r) as usize + 1] += 1;
        }
        for g in 0..genotypes.pairs.len() {
            offsets[g + 1] += offsets[g];
        }
        let mut next = offsets.clone();
        let mut rows = vec![0u32; column.len()];
        for r in 0..column.len() {
            let g = column.get(r) as usize;
            rows[next[g] as usize] = r as u32;
            next[g] += 1;
        }
        let holders = |[a, b]: [u32; 2]| std::iter::once(a).chain((b != a).then_some(b));
        let mut position_offsets = vec![0u32; positions + 1];
        for &pair in &genotypes.pairs {
            for p in holders(pair) {
                position_offsets[p as usize + 1] += 1;
            }
        }
        for p in 0..positions {
            position_offsets[p + 1] += position_offsets[p];
        }
        let mut next = position_offsets.clone();
        let mut genotypes_of = vec![[0u32; 2]; position_offsets[positions] as usize];
        for (g, &[a, b]) in genotypes.pairs.iter().enumerate() {
            for p in holders([a, b]) {
                let other = if p == a { b } else { a };
                genotypes_of[next[p as usize] as usize] = [g as u32, other];
                next[p as usize] += 1;
            }
        }
        Postings {
            offsets,
            rows,
            recent: Vec::new(),
            position_offsets,
            genotypes_of,
        }
    }

    /// Snapshot rows that held genotype `g` (some may since have changed).
    pub(crate) fn rows_of(&self, g: usize) -> &[u32] {
        match (self.offsets.get(g), self.offsets.get(g + 1)) {
            (Some(&from), Some(&to)) => &self.rows[from as usize..to as usize],
            _ => &[],
        }
    }

    /// A hint to load the start of `rows_of(g)` (its offset is in cache by then, or loaded
    /// here).
    pub(crate) fn prefetch_rows_of(&self, g: usize) {
        if let Some(&from) = self.offsets.get(g) {
            prefetch(self.rows.as_ptr().wrapping_add(from as usize));
        }
    }

    /// Genotypes interned when the snapshot was taken.
    pub(crate) fn genotypes(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// Snapshot genotypes holding position typing `p` (none for a typing interned since),
    /// as (genotype, its other position typing).
    pub(crate) fn genotypes_of(&self, p: usize) -> &[[u32; 2]] {
        match (
            self.position_offsets.get(p),
            self.position_offsets.get(p + 1),
        ) {
            (Some(&from), Some(&to)) => &self.genotypes_of[from as usize..to as usize],
            _ => &[],
        }
    }

    fn bytes(&self) -> usize {
        (self.offsets.capacity()
            + self.rows.capacity()
            + self.recent.capacity()
            + self.position_offsets.capacity()
            + self.genotypes_of.capacity() * 2)
            * 4
    }
}

// Packed attribute flags.
pub(crate) const LIVE: u16 = 1;
pub(crate) const CORD: u16 = 1 << 1;
pub(crate) const STATUS_SHIFT: u16 = 2; // 2 bits
pub(crate) const SEX_SHIFT: u16 = 4; // 2 bits
pub(crate) const ABO_SHIFT: u16 = 6; // 3 bits
pub(crate) const RH_SHIFT: u16 = 9; // 2 bits: 0 unknown, 1 neg, 2 pos
pub(crate) const CMV_SHIFT: u16 = 11; // 2 bits

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
    pub(crate) expander: Arc<Expander>,
    pub(crate) positions: [PositionTable; 6],
    pub(crate) genotypes: [GenotypeTable; 6],
    /// Per locus, each row's genotype id.
    pub(crate) columns: Box<[GenotypeColumn; 6]>,
    /// Rows by genotype for the `POSTED` loci; `None` until `build_postings` (searches
    /// then scan every row).
    pub(crate) postings: Option<Box<[Postings; 3]>>,
    /// Candidates come from posting lists when expected to be at most this share of rows.
    pub(crate) candidate_share: f64,
    pub(crate) keys: Vec<u32>,
    pub(crate) row_of: Vec<u32>,
    pub(crate) flags: Vec<u16>,
    pub(crate) birth: Vec<u16>,
    pub(crate) registry: Vec<u16>,
    pub(crate) registries: Vec<String>,
    pub(crate) population: Vec<u8>,
    pub(crate) populations: Vec<String>,
    pub(crate) cords: FxHashMap<Row, CordCells>,
    pub(crate) free_rows: Vec<Row>,
    pub(crate) live: usize,
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
            genotypes: std::array::from_fn(|_| GenotypeTable::new()),
            columns: Box::new(std::array::from_fn(|_| GenotypeColumn::Narrow(Vec::new()))),
            postings: None,
            candidate_share: 0.125,
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
        self.columns.iter_mut().for_each(|c| c.reserve_exact(n));
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
        Ok(table.push(text, info))
    }

    /// A patient's subject from a GL string, sharing the index's typing where it holds the
    /// same text (a patient typed like some donor costs no expansion); other typings are
    /// built for this subject alone.
    pub fn subject_from_gl(&self, gl: &str) -> Result<Subject, TypingError> {
        let gl = self.expander.parse_gl(gl)?;
        let typings = hla::locus_typings(&gl)?;
        crate::subject::subject_from(&self.expander, &typings, |locus, list| {
            let table = &self.positions[locus.index()];
            match table.by_text.get(list.to_string().as_str()) {
                Some(&id) => Ok(table.infos[id as usize]
                    .clone()
                    .expect("an interned typing has its info")),
                None => Ok(Arc::new(PositionInfo::new(&self.expander, list)?)),
            }
        })
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
                        self.columns.iter_mut().for_each(GenotypeColumn::push);
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
        for (l, &pair) in ids.iter().enumerate() {
            let table = &mut self.genotypes[l];
            let id = table.intern(pair);
            if existing.is_some() {
                table.counts[self.columns[l].get(r) as usize] -= 1;
            }
            self.columns[l].set(r, id);
            table.counts[id as usize] += 1;
        }
        self.note_written(row);
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
            let old = self.columns[l].get(r) as usize;
            self.genotypes[l].counts[old] -= 1;
            self.columns[l].set(r, 0);
        }
        self.cords.remove(&row);
        self.free_rows.push(row);
        self.live -= 1;
        // A removed row keeps its snapshot entries; its cleared flags keep it out.
        Ok(())
    }

    /// Build the posting lists (after a bulk load; later writes keep them current). Until
    /// then every search scans every row; results are the same either way.
    pub fn build_postings(&mut self) {
        let built: Vec<Postings> = POSTED
            .iter()
            .map(|&l| {
                Postings::build(
                    &self.columns[l],
                    &self.genotypes[l],
                    self.positions[l].infos.len(),
                )
            })
            .collect();
        let mut built = built.into_iter();
        self.postings = Some(Box::new(std::array::from_fn(|_| {
            built.next().unwrap_or_default()
        })));
    }

    /// Gather candidates from posting lists when they are expected to be at most this share
    /// of the rows (default 1/8: past it, one sequential pass is cheaper); 1.0 always
    /// prunes once the lists are built.
    pub fn set_candidate_share(&mut self, share: f64) {
        self.candidate_share = share.clamp(0.0, 1.0);
    }

    /// Whether searches can prune by posting lists.
    pub fn has_postings(&self) -> bool {
        self.postings.is_some()
    }

    /// A written row joins the recent lists; past a share of the rows, the snapshot is
    /// rebuilt (amortised: one rebuild per `rows / 256` writes).
    fn note_written(&mut self, row: Row) {
        let rows = self.keys.len();
        let Some(postings) = &mut self.postings else {
            return;
        };
        let mut rebuild = false;
        for p in postings.iter_mut() {
            p.recent.push(row);
            rebuild |= p.recent.len() > 1024 + rows / 256;
        }
        if rebuild {
            self.build_postings();
        }
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
        std::array::from_fn(|l| self.genotypes[l].pairs[self.columns[l].get(row as usize) as usize])
    }

    /// Distinct genotypes (ordered position pairs) per locus.
    pub fn distinct_genotypes(&self, locus: Locus) -> usize {
        self.genotypes[locus.index()].pairs.len() - 1
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

    /// The donor's status (without the rest of its attributes).
    pub fn status(&self, row: Row) -> Status {
        flag_status(self.flags[row as usize])
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
                    + t.kinds.capacity()
                    + t.by_key.capacity() * 32
                    + t.by_key.values().map(|v| v.capacity() * 4).sum::<usize>()
                    + t.new.capacity() * 4
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
        let genotypes: usize = self
            .genotypes
            .iter()
            .map(|g| g.pairs.capacity() * 8 + g.counts.capacity() * 4 + g.by_pair.capacity() * 5)
            .sum();
        let postings: usize = self
            .postings
            .as_ref()
            .map_or(0, |p| p.iter().map(Postings::bytes).sum());
        self.columns
            .iter()
            .map(GenotypeColumn::bytes)
            .sum::<usize>()
            + genotypes
            + postings
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
