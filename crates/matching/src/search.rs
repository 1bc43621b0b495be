//! The search: compare the patient with each distinct donor typing once, then scan the
//! donor columns in parallel (`rayon`) with those per-typing results, then score and rank
//! the donors that qualify.

use std::sync::Arc;

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use crate::index::{
    DonorIndex, GenotypeColumn, GenotypeTable, POSTED, Postings, RankFacts, Row, TypingKind,
    flag_cord, flag_live, flag_status,
};
use crate::model::{
    Abo, Cmv, DonorAttributes, DonorType, Locus, Status, age_in_years, days_from_civil,
};
use crate::position::PositionInfo;
use crate::probability::{HaplotypeSet, MatchProbability};
use crate::rank::{DefaultPolicy, RankingPolicy};
use crate::score::{
    CORD_LOCI, LocusScore, PairScore, Subject, cord_locus_mismatches, match_count, score_locus,
};

/// What a coordinator asks.
#[derive(Clone)]
pub struct SearchRequest {
    pub patient: Subject,
    /// Loci matched: A, B, DRB1 always; C and DQB1 optional (6/6, 8/8, 10/10).
    pub loci: Vec<Locus>,
    /// Total bidirectional mismatches tolerated over `loci` (0–5).
    pub max_mismatches: u8,
    /// Per-locus mismatches tolerated (0–2), indexed by `Locus`.
    pub locus_max: [u8; 6],
    /// `None`: adults and cord units.
    pub donor_type: Option<DonorType>,
    /// Statuses offered (default: AV only).
    pub statuses: Vec<Status>,
    /// Donors offered whatever their status, the other filters still applying: the RS donors
    /// reserved for this search's patient (registry operations §5).
    pub also_offered: Vec<u32>,
    /// Registry or branch codes (empty: all).
    pub registries: Vec<String>,
    /// Inclusive donor age range in whole years.
    pub age_range: Option<(u32, u32)>,
    /// Today, as days since 1900-01-01 (explicit so results are reproducible).
    pub today: i64,
    pub limit: usize,
    pub patient_weight_kg: Option<f32>,
    pub patient_cmv: Cmv,
    pub patient_abo: Abo,
    pub policy: Arc<dyn RankingPolicy>,
    /// Compute match probabilities for the returned hits (and optionally rank by them).
    pub probability: Option<ProbabilityOptions>,
}

/// Match probability in a search (rules §7).
#[derive(Clone)]
pub struct ProbabilityOptions {
    pub set: Arc<HaplotypeSet>,
    /// Re-rank the returned hits by P(0 mismatches) within each mismatch count
    /// (`probability-within-grade-v1`, the request's policy breaking ties).
    pub rank: bool,
}

impl SearchRequest {
    /// A 10/10 (A, B, C, DRB1, DQB1) request tolerating `max_mismatches`.
    pub fn new(patient: Subject, max_mismatches: u8) -> SearchRequest {
        SearchRequest {
            patient,
            loci: vec![Locus::A, Locus::B, Locus::C, Locus::Drb1, Locus::Dqb1],
            max_mismatches,
            locus_max: [2; 6],
            donor_type: None,
            statuses: vec![Status::Available],
            also_offered: Vec::new(),
            registries: Vec::new(),
            age_range: None,
            today: days_from_civil(2026, 1, 1),
            limit: 100,
            patient_weight_kg: None,
            patient_cmv: Cmv::Unknown,
            patient_abo: Abo::Unknown,
            policy: Arc::new(DefaultPolicy),
            probability: None,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        for required in [Locus::A, Locus::B, Locus::Drb1] {
            if !self.loci.contains(&required) {
                return Err(format!(
                    "the matched loci must include {required} (A, B and DRB1 always)"
                ));
            }
        }
        if self.loci.contains(&Locus::Dpb1) {
            return Err("DPB1 is scored, never matched: leave it out of the matched loci".into());
        }
        if self.max_mismatches > 5 {
            return Err(format!(
                "at most 5 mismatches may be tolerated, not {}",
                self.max_mismatches
            ));
        }
        if let Some(l) = Locus::ALL.iter().find(|l| self.locus_max[l.index()] > 2) {
            return Err(format!(
                "per-locus mismatches are 0–2, not {} at {l}",
                self.locus_max[l.index()]
            ));
        }
        if let Some((lo, hi)) = self.age_range
            && lo > hi
        {
            return Err(format!("age range {lo}–{hi} is empty"));
        }
        if self
            .patient_weight_kg
            .is_some_and(|w| !(w > 0.0 && w < 500.0))
        {
            return Err("patient weight must be between 0 and 500 kg".into());
        }
        Ok(())
    }
}

/// A cord unit's grade and dose (rules §8).
#[derive(Debug, Clone, PartialEq)]
pub struct CordResult {
    pub mismatches: u8,
    /// `6/6`, `5/6`, `4/6`.
    pub grade: String,
    /// TNC ×10^7 per kg and CD34+ ×10^5 per kg for the patient's weight.
    pub tnc_e7_per_kg: Option<f32>,
    pub cd34_e5_per_kg: Option<f32>,
    /// TNC ≥ 2.5×10^7/kg or CD34+ ≥ 1.5×10^5/kg.
    pub dose_sufficient: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct SearchHit {
    pub rank: usize,
    pub row: Row,
    pub key: u32,
    /// Bidirectional mismatches over the matched loci.
    pub total: u8,
    pub score: PairScore,
    /// What the ranking policy may use besides HLA.
    pub facts: RankFacts,
    pub age: Option<u32>,
    pub cord: Option<CordResult>,
    /// The donor's attributes (filled for the hits returned).
    pub attributes: DonorAttributes,
    /// Match probability over the matched loci the frequency set carries, when asked.
    pub probability: Option<MatchProbability>,
}

impl SearchHit {
    /// `10/10`, `9/10`, `8/8`… over the request's matched loci.
    pub fn grade(&self, loci: &[Locus]) -> String {
        self.score.grade_text(loci)
    }
}

#[derive(Debug, Clone)]
pub struct SearchResult {
    /// Every donor that qualifies (the hits are the first `limit` of them).
    pub total: usize,
    pub hits: Vec<SearchHit>,
    pub policy: String,
    /// Distinct donor typings compared with the patient (per matched locus, summed).
    pub distinct_typings_compared: usize,
}

/// Codes for one donor position against the patient: bit 0 meets patient position 1,
/// bit 1 meets position 2, bit 2 null; `UNTYPED` for an untyped locus.
const NULL_BIT: u8 = 4;
const UNTYPED: u8 = 7;

/// Per matched locus: each distinct donor position typing's code against the patient, and
/// from a genotype's two codes its mismatch count (or `OVER` past the locus's limit), so the
/// scan only looks up, adds and compares.
struct LocusPlan {
    locus: usize,
    limit: u8,
    /// Per position typing id: its 3-bit code (which patient positions it meets, null,
    /// untyped).
    codes: Vec<u8>,
    /// Mismatches of a genotype by its two codes (`codes[a] << 3 | codes[b]`), `OVER` past
    /// the limit.
    table: [u8; 64],
    /// Per genotype id: its mismatches or `OVER`. Every genotype when every row is scanned;
    /// in a pruned search, the posted loci's snapshot genotypes (found on the way to the
    /// zero-mismatch ones), the others derived from their pair of typings when looked up.
    mismatches: Vec<u8>,
    /// Mean mismatches per donor at this locus (for the full scan's evaluation order).
    expected: f64,
}

impl LocusPlan {
    #[inline(always)]
    fn genotype_mismatches(&self, [a, b]: [u32; 2]) -> u8 {
        self.table[(((self.codes[a as usize] << 3) | self.codes[b as usize]) & 63) as usize]
    }
}

/// A per-locus count past the locus's limit: any total holding it exceeds every limit
/// (5 loci × 8 still fits a `u8`).
const OVER: u8 = 8;

fn effective(pair: &[Arc<PositionInfo>; 2]) -> Option<[&PositionInfo; 2]> {
    match (pair[0].is_null(), pair[1].is_null()) {
        (true, true) => None,
        (true, false) => Some([&pair[1], &pair[1]]),
        (false, true) => Some([&pair[0], &pair[0]]),
        (false, false) => Some([&pair[0], &pair[1]]),
    }
}

fn mismatch_table(patient_expresses: bool) -> [u8; 64] {
    std::array::from_fn(|i| {
        let (mut c1, mut c2) = ((i >> 3) as u8, (i & 7) as u8);
        if c1 == UNTYPED || c2 == UNTYPED {
            return 0;
        }
        let (n1, n2) = (c1 & NULL_BIT != 0, c2 & NULL_BIT != 0);
        if !patient_expresses {
            return if n1 && n2 { 0 } else { 2 };
        }
        match (n1, n2) {
            (true, true) => return 2,
            (true, false) => c1 = c2,
            (false, true) => c2 = c1,
            _ => {}
        }
        let m = [[c1 & 1 != 0, c2 & 1 != 0], [c1 & 2 != 0, c2 & 2 != 0]];
        2 - match_count(m)
    })
}

struct RowFilters<'a> {
    /// Bit `f & 15` set: flags `f` pass (live, status and donor type are the low 4 bits).
    flag_ok: u16,
    flags: &'a [u16],
    registry: Option<(&'a [bool], &'a [u16])>,
    birth: Option<((i64, i64), &'a [u16])>,
    max_total: u8,
}

/// Per locus: genotype id → its score against the patient.
type GenotypeScores = [FxHashMap<u32, LocusScore>; 6];

/// How many matched loci the first, fused pass evaluates per row.
const FUSED: usize = 3;

/// The first pass: the `K` most selective loci evaluated together per row, without
/// branches, compacting the rows whose total passes into `rows`/`totals`.
fn fused_pass<const K: usize>(
    columns: &[GenotypeColumn; 6],
    plans: &[LocusPlan],
    max_total: u8,
    range: std::ops::Range<usize>,
    rows: &mut [u32],
    totals: &mut [u8],
) -> usize {
    let start = range.start;
    let cols: [&GenotypeColumn; K] = std::array::from_fn(|i| &columns[plans[i].locus]);
    let tables: [&[u8]; K] = std::array::from_fn(|i| plans[i].mismatches.as_slice());
    let mut n = 0;
    for k in 0..range.len() {
        let mut total = 0u8;
        for i in 0..K {
            total += tables[i]
                .get(cols[i].get(start + k) as usize)
                .copied()
                .unwrap_or(OVER);
        }
        rows[n] = (start + k) as u32;
        totals[n] = total;
        n += usize::from(total <= max_total);
    }
    n
}

/// The hot loop: a fused first pass over the most selective loci, then the remaining
/// loci over the rows that passed, then the attribute filters.
fn scan_rows(
    columns: &[GenotypeColumn; 6],
    genotypes: &[GenotypeTable; 6],
    plans: &[LocusPlan],
    filters: &RowFilters<'_>,
    range: std::ops::Range<usize>,
) -> Vec<(Row, u8)> {
    let len = range.len();
    let mut rows: Vec<u32> = vec![0; len];
    let mut totals: Vec<u8> = vec![0; len];
    let head = plans.len().min(FUSED);
    let max_total = filters.max_total;
    let mut n = match head {
        0 => {
            for (k, r) in range.enumerate() {
                rows[k] = r as u32;
            }
            len
        }
        1 => fused_pass::<1>(columns, plans, max_total, range, &mut rows, &mut totals),
        2 => fused_pass::<2>(columns, plans, max_total, range, &mut rows, &mut totals),
        _ => fused_pass::<FUSED>(columns, plans, max_total, range, &mut rows, &mut totals),
    };
    for p in &plans[head..] {
        n = locus_pass(
            &columns[p.locus],
            genotypes,
            p,
            max_total,
            &mut rows[..n],
            &mut totals,
        );
    }
    admitted(&rows[..n], &totals[..n], filters)
}

/// The rows (with their totals) that also pass the attribute filters.
fn admitted(rows: &[u32], totals: &[u8], filters: &RowFilters<'_>) -> Vec<(Row, u8)> {
    rows.iter()
        .zip(totals)
        .filter(|(r, _)| filters.admit(**r as usize))
        .map(|(&r, &t)| (r as Row, t))
        .collect()
}

/// The candidate rows (ascending) that pass every matched locus and the filters: one pass
/// per locus over the rows still in, each a run of independent look-ups (the genotype id,
/// its pair, two codes) rather than a chain of early exits, so memory loads overlap.
fn check_rows(
    columns: &[GenotypeColumn; 6],
    genotypes: &[GenotypeTable; 6],
    plans: &[LocusPlan],
    filters: &RowFilters<'_>,
    candidates: &[u32],
) -> Vec<(Row, u8)> {
    let mut rows = candidates.to_vec();
    let mut totals = vec![0u8; rows.len()];
    let mut n = rows.len();
    for p in plans {
        n = locus_pass(
            &columns[p.locus],
            genotypes,
            p,
            filters.max_total,
            &mut rows[..n],
            &mut totals,
        );
    }
    admitted(&rows[..n], &totals[..n], filters)
}

/// `check_pass` over one locus's column, whichever its width.
fn locus_pass(
    column: &GenotypeColumn,
    genotypes: &[GenotypeTable; 6],
    plan: &LocusPlan,
    max_total: u8,
    rows: &mut [u32],
    totals: &mut [u8],
) -> usize {
    let pairs = genotypes[plan.locus].pairs.as_slice();
    match column {
        GenotypeColumn::Narrow(c) => check_pass(c, pairs, plan, max_total, rows, totals),
        GenotypeColumn::Wide(c) => check_pass(c, pairs, plan, max_total, rows, totals),
    }
}

/// How far ahead `check_pass` prefetches.
const PREFETCH_AHEAD: usize = 16;

/// A hint to load the cache line holding `at` (never faults, whatever the address).
#[inline(always)]
pub(crate) fn prefetch<T>(at: *const T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: a prefetch is only a hint; it does not dereference `at` and cannot fault.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(at.cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}

/// One locus over `rows`: adds its mismatches to `totals` and keeps (in place, in order)
/// the rows still within `max_total`; returns how many.
fn check_pass<G: Copy + Into<u32>>(
    column: &[G],
    pairs: &[[u32; 2]],
    plan: &LocusPlan,
    max_total: u8,
    rows: &mut [u32],
    totals: &mut [u8],
) -> usize {
    let mut m = 0;
    let tabulated = plan.mismatches.len();
    for k in 0..rows.len() {
        // Candidates are scattered over the column: ask for one a few rows ahead so its
        // cache miss overlaps this one's work; and, half as far ahead (its column entry
        // has arrived by then), for what its genotype id is looked up in.
        if let Some(&ahead) = rows.get(k + PREFETCH_AHEAD) {
            prefetch(column.as_ptr().wrapping_add(ahead as usize));
        }
        if let Some(&near) = rows.get(k + PREFETCH_AHEAD / 2) {
            let g: u32 = column[near as usize].into();
            if (g as usize) < tabulated {
                prefetch(plan.mismatches.as_ptr().wrapping_add(g as usize));
            } else {
                prefetch(pairs.as_ptr().wrapping_add(g as usize));
            }
        }
        let r = rows[k];
        let g: u32 = column[r as usize].into();
        // Genotypes the plan has tabulated are looked up; the rest are derived from their
        // pair of typings.
        let mm = match plan.mismatches.get(g as usize) {
            Some(&mm) => mm,
            None => plan.genotype_mismatches(pairs[g as usize]),
        };
        let t = totals[k] + mm;
        rows[m] = r;
        totals[m] = t;
        m += usize::from(t <= max_total);
    }
    m
}

impl RowFilters<'_> {
    /// Live, status, donor type, registry and age.
    fn admit(&self, r: usize) -> bool {
        let f = self.flags[r];
        if self.flag_ok >> (f & 15) & 1 == 0 {
            return false;
        }
        if let Some((allowed, registry)) = self.registry
            && !allowed[registry[r] as usize]
        {
            return false;
        }
        if let Some(((lo, hi), birth)) = self.birth {
            let b = birth[r];
            if b == u16::MAX || (b as i64) < lo || (b as i64) > hi {
                return false;
            }
        }
        true
    }
}

impl DonorIndex {
    /// Per matched locus typed at the patient: each distinct donor position typing is
    /// compared with the patient once (a 3-bit code); a genotype's mismatch count then
    /// comes from its two codes.
    fn plan(&self, req: &SearchRequest) -> Vec<LocusPlan> {
        req.loci
            .par_iter()
            .filter_map(|&locus| {
                let l = locus.index();
                // Untyped at the patient: every donor is a potential match here.
                let pair = req.patient[l].as_ref()?;
                Some(self.locus_plan(l, pair, req.locus_max[l].min(req.max_mismatches)))
            })
            .collect()
    }

    fn locus_plan(&self, l: usize, pair: &[Arc<PositionInfo>; 2], limit: u8) -> LocusPlan {
        let patient = effective(pair);
        let table = &self.positions[l];
        let mut codes: Vec<u8> = table
            .kinds
            .iter()
            .map(|kind| match kind {
                TypingKind::Untyped => UNTYPED,
                TypingKind::Null => NULL_BIT,
                TypingKind::Expressed | TypingKind::New => 0,
            })
            .collect();
        // Which patient positions each typing meets (rules §3: the P-group sets intersect;
        // `NEW` meets every set), from the per-key lists rather than typing by typing.
        for (bit, position) in patient.into_iter().flatten().enumerate() {
            let bit = 1u8 << bit;
            if position.is_new() {
                for (code, kind) in codes.iter_mut().zip(&table.kinds) {
                    if matches!(kind, TypingKind::Expressed | TypingKind::New) {
                        *code |= bit;
                    }
                }
                continue;
            }
            for key in position.p_keys.iter() {
                for &t in table.by_key.get(key).map_or(&[][..], Vec::as_slice) {
                    codes[t as usize] |= bit;
                }
            }
            for &t in &table.new {
                codes[t as usize] |= bit;
            }
        }
        let table = mismatch_table(patient.is_some()).map(|mm| if mm > limit { OVER } else { mm });
        LocusPlan {
            locus: l,
            limit,
            codes,
            table,
            mismatches: Vec::new(),
            expected: 0.0,
        }
    }

    /// For the full scan: every genotype's mismatches, and the loci ordered so that those
    /// dropping the most donors come first (most donors then fail in the fused pass).
    fn fill_genotype_mismatches(&self, plans: &mut [LocusPlan]) {
        plans.par_iter_mut().for_each(|plan| {
            let genotypes = &self.genotypes[plan.locus];
            let mut mismatches = vec![0u8; genotypes.pairs.len()];
            const CHUNK: usize = 1 << 14;
            let (weighted, held) = mismatches
                .par_chunks_mut(CHUNK)
                .enumerate()
                .map(|(c, out)| {
                    let from = c * CHUNK;
                    let pairs = &genotypes.pairs[from..from + out.len()];
                    let counts = &genotypes.counts[from..from + out.len()];
                    let (mut weighted, mut held) = (0u64, 0u64);
                    for ((m, &pair), &n) in out.iter_mut().zip(pairs).zip(counts) {
                        *m = plan.genotype_mismatches(pair);
                        // OVER stands for "more than the limit": weigh it as the limit + 1.
                        weighted += (*m).min(plan.limit + 1) as u64 * n as u64;
                        held += n as u64;
                    }
                    (weighted, held)
                })
                .reduce(|| (0, 0), |x, y| (x.0 + y.0, x.1 + y.1));
            plan.mismatches = mismatches;
            plan.expected = if held == 0 {
                0.0
            } else {
                weighted as f64 / held as f64
            };
        });
        plans.sort_by(|a, b| {
            a.limit
                .cmp(&b.limit)
                .then(b.expected.total_cmp(&a.expected))
                .then(a.locus.cmp(&b.locus))
        });
    }

    /// The snapshot genotypes of a posted locus without a mismatch against the patient,
    /// found through the typings that meet the patient (every such genotype holds one),
    /// and on the way every snapshot genotype's mismatches: those holding no typing with a
    /// non-zero code all count as a pair of code 0.
    fn zero_genotypes(&self, plan: &LocusPlan, postings: &Postings) -> (Vec<u32>, Vec<u8>) {
        let mut zero = Vec::new();
        let mut mismatches = vec![plan.table[0]; postings.genotypes()];
        for (p, &code) in plan.codes.iter().enumerate() {
            // Code 0: an expressed typing meeting neither patient position; a genotype
            // holding two of those has two mismatches.
            if code == 0 {
                continue;
            }
            for &[g, other] in postings.genotypes_of(p) {
                // Each genotype once: from the lower of its positions with a non-zero code
                // (the mismatch table is symmetric, so the pair's order does not matter).
                if plan.codes[other as usize] != 0 && (other as usize) < p {
                    continue;
                }
                let m = plan.genotype_mismatches([p as u32, other]);
                mismatches[g as usize] = m;
                if m == 0 {
                    zero.push(g);
                }
            }
        }
        (zero, mismatches)
    }

    /// The rows that can qualify, from posting lists, or `None` to scan every row. A donor
    /// within `max_mismatches` = T mismatches has a mismatch at no more than T loci, so
    /// among any T + 1 matched loci it matches fully at one: the candidates are the rows
    /// without a mismatch at one of the T + 1 posted loci where such rows are fewest.
    /// Orders `plans` for checking the candidates.
    fn candidates(&self, req: &SearchRequest, plans: &mut [LocusPlan]) -> Option<Vec<u32>> {
        let postings = self.postings.as_ref()?;
        let needed = req.max_mismatches as usize + 1;
        let posted = plans.iter().filter(|p| POSTED.contains(&p.locus)).count();
        if posted < needed {
            return None;
        }
        // Per posted locus: its zero-mismatch genotypes and the rows they cover.
        let mut zero: Vec<(usize, &Postings, Vec<u32>, u64)> = plans
            .iter_mut()
            .filter_map(|plan| {
                let i = POSTED.iter().position(|&l| l == plan.locus)?;
                let postings = &postings[i];
                let (genotypes, mismatches) = self.zero_genotypes(plan, postings);
                // The snapshot genotypes' mismatches, looked up by the check.
                plan.mismatches = mismatches;
                let rows: u64 = genotypes
                    .iter()
                    .map(|&g| postings.rows_of(g as usize).len() as u64)
                    .sum::<u64>()
                    + postings.recent.len() as u64;
                Some((plan.locus, postings, genotypes, rows))
            })
            .collect();
        zero.sort_by_key(|&(locus, _, _, rows)| (rows, locus));
        zero.truncate(needed);
        let rows = self.keys.len();
        let estimate: u64 = zero.iter().map(|z| z.3).sum();
        if estimate as f64 > rows as f64 * self.candidate_share {
            return None;
        }
        // Check order: tighter limits first, then the posted loci where the fewest rows
        // match fully (most candidates mismatch there), then the rest.
        let rank = |locus: usize| {
            zero.iter()
                .position(|z| z.0 == locus)
                .unwrap_or(needed + locus)
        };
        plans.sort_by_key(|p| (p.limit, rank(p.locus)));
        let mut marked = vec![0u64; rows.div_ceil(64)];
        let mut mark = |r: u32| {
            if let Some(w) = marked.get_mut(r as usize / 64) {
                *w |= 1 << (r % 64);
            }
        };
        // Snapshot entries whose row has since changed genotype are stale; they are
        // checked like any other candidate and fail there.
        for (_, postings, genotypes, _) in zero.iter_mut() {
            // In genotype order the posting lists are read front to back; prefetching
            // overlaps the misses of the short ones.
            genotypes.sort_unstable();
            for (k, &g) in genotypes.iter().enumerate() {
                if let Some(&ahead) = genotypes.get(k + PREFETCH_AHEAD) {
                    postings.prefetch_rows_of(ahead as usize);
                }
                postings.rows_of(g as usize).iter().for_each(|&r| mark(r));
            }
            postings.recent.iter().for_each(|&r| mark(r));
        }
        let mut out = Vec::with_capacity(estimate as usize);
        for (w, &word) in marked.iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                out.push((w * 64) as u32 + bits.trailing_zeros());
                bits &= bits - 1;
            }
        }
        Some(out)
    }

    /// Rows that pass the filters and mismatch limits, with their totals.
    fn scan(&self, req: &SearchRequest, plans: &mut [LocusPlan]) -> Vec<(Row, u8)> {
        let status_mask: u8 = req
            .statuses
            .iter()
            .map(|s| 1u8 << (*s as u8))
            .fold(0, |a, b| a | b);
        let registry_filter: Option<Vec<bool>> = (!req.registries.is_empty()).then(|| {
            let mut allowed = vec![false; self.registries.len()];
            for code in &req.registries {
                if let Some(id) = self.registry_id(code) {
                    allowed[id as usize] = true;
                }
            }
            allowed
        });
        // Birth-day bounds for the age range: age in [lo, hi] ⇔ birth in (today − (hi+1) y, today − lo y].
        let birth_bounds = req.age_range.map(|(lo, hi)| {
            let (y, m, d) = crate::model::civil_from_days(req.today);
            let shift = |years: u32| {
                let target_year = y - years as i32;
                // 29 February on a non-leap year: use 28 February.
                let mut day = d;
                while crate::model::civil_from_days(days_from_civil(target_year, m, day))
                    != (target_year, m, day)
                {
                    day -= 1;
                }
                days_from_civil(target_year, m, day)
            };
            (shift(hi + 1) + 1, shift(lo))
        });
        // Live, status and donor type folded into one lookup over the 16-bit flags.
        let want_cord = req.donor_type.map(|t| t == DonorType::Cord);
        let flag_ok: u16 = (0..16u16)
            .filter(|&f| {
                flag_live(f)
                    && status_mask & (1 << (flag_status(f) as u8)) != 0
                    && want_cord.is_none_or(|c| flag_cord(f) == c)
            })
            .fold(0, |bits, f| bits | 1 << f);
        let filters = RowFilters {
            flag_ok,
            flags: &self.flags,
            registry: registry_filter
                .as_deref()
                .map(|a| (a, self.registry.as_slice())),
            birth: birth_bounds.map(|b| (b, self.birth.as_slice())),
            max_total: req.max_mismatches,
        };
        // Donors offered whatever their status: the same scan over their rows alone, with
        // every status allowed (those whose status is offered anyway are found above).
        let mut also: Vec<(Row, u8)> = Vec::new();
        if !req.also_offered.is_empty() {
            let any_status: u16 = (0..16u16)
                .filter(|&f| flag_live(f) && want_cord.is_none_or(|c| flag_cord(f) == c))
                .fold(0, |bits, f| bits | 1 << f);
            let filters = RowFilters {
                flag_ok: any_status,
                ..filters
            };
            let mut keys = req.also_offered.clone();
            keys.sort_unstable();
            keys.dedup();
            for key in keys {
                let Some(row) = self.row(key) else { continue };
                let r = row as usize;
                if status_mask & (1 << (flag_status(self.flags[r]) as u8)) != 0 {
                    continue;
                }
                also.extend(check_rows(
                    &self.columns,
                    &self.genotypes,
                    plans,
                    &filters,
                    &[row],
                ));
            }
        }
        let rows = self.keys.len();
        const CHUNK: usize = 1 << 13;
        let chunks: Vec<Vec<(Row, u8)>> = match self.candidates(req, plans) {
            Some(candidates) => {
                let plans = &*plans;
                candidates
                    .par_chunks(CHUNK)
                    .map(|chunk| check_rows(&self.columns, &self.genotypes, plans, &filters, chunk))
                    .collect()
            }
            None => {
                self.fill_genotype_mismatches(plans);
                let plans = &*plans;
                (0..rows.div_ceil(CHUNK))
                    .into_par_iter()
                    .map(|chunk| {
                        let range = chunk * CHUNK..((chunk + 1) * CHUNK).min(rows);
                        scan_rows(&self.columns, &self.genotypes, plans, &filters, range)
                    })
                    .collect()
            }
        };
        let mut rows = chunks.concat();
        rows.extend(also);
        rows
    }

    /// Run a search. Results are ranked by the request's policy, ties broken on donor key.
    pub fn search(&self, req: &SearchRequest) -> Result<SearchResult, String> {
        req.validate()?;
        let mut plans = self.plan(req);
        let distinct_typings_compared = plans
            .iter()
            .map(|p| self.positions[p.locus].infos.len() - 1)
            .sum();
        let qualifying = self.scan(req, &mut plans);

        // Cord units with more than 2 mismatches at the 6/6 loci are not offered (§8).
        let cord_mismatches = self.cord_mismatches(req, &qualifying);
        let offered: Vec<(Row, u8)> = qualifying
            .into_iter()
            .filter(|(row, _)| cord_mismatches.get(row).is_none_or(|&m| m <= 2))
            .collect();
        let total = offered.len();
        let scored = self.to_score(req, offered);
        // Score each distinct genotype among those donors once per locus, then each donor
        // from those, with only what ranking needs.
        let scores = self.genotype_scores(req, &scored);
        let mut hits: Vec<SearchHit> = scored
            .par_iter()
            .map(|&(row, total)| self.score_hit(req, row, total, &scores, &cord_mismatches))
            .collect();
        let policy = req.policy.clone();
        let order =
            |a: &SearchHit, b: &SearchHit| policy.compare(a, b, req).then(a.key.cmp(&b.key));
        if req.limit == 0 {
            hits.clear();
        } else if hits.len() > req.limit {
            hits.select_nth_unstable_by(req.limit - 1, order);
            hits.truncate(req.limit);
        }
        hits.sort_unstable_by(order);
        let mut policy_name = policy.name().to_string();
        if let Some(options) = &req.probability {
            let loci: Vec<Locus> = req
                .loci
                .iter()
                .copied()
                .filter(|l| options.set.loci.contains(l))
                .collect();
            hits.par_iter_mut().for_each(|h| {
                h.probability = options
                    .set
                    .match_probability(&req.patient, &self.subject(h.row), &loci)
                    .ok();
            });
            if options.rank {
                let p0 = |h: &SearchHit| h.probability.as_ref().and_then(|p| p.p0).unwrap_or(-1.0);
                // Stable: the request's policy order breaks ties.
                hits.sort_by(|a, b| a.total.cmp(&b.total).then(p0(b).total_cmp(&p0(a))));
                policy_name = format!("probability-within-grade-v1+{policy_name}");
            }
        }
        for (i, h) in hits.iter_mut().enumerate() {
            h.rank = i + 1;
            h.attributes = self.attributes(h.row);
        }
        Ok(SearchResult {
            total,
            hits,
            policy: policy_name,
            distinct_typings_compared,
        })
    }

    /// Per locus, the score of each distinct genotype held by the given rows.
    fn genotype_scores(&self, req: &SearchRequest, rows: &[(Row, u8)]) -> GenotypeScores {
        let per_locus: Vec<FxHashMap<u32, LocusScore>> = (0..6)
            .into_par_iter()
            .map(|l| {
                let locus = Locus::ALL[l];
                let column = &self.columns[l];
                let mut ids: Vec<u32> = rows.iter().map(|&(r, _)| column.get(r as usize)).collect();
                ids.sort_unstable();
                ids.dedup();
                ids.into_par_iter()
                    .map(|g| {
                        let [a, b] = self.genotypes[l].pairs[g as usize];
                        let donor =
                            match (self.position_info(locus, a), self.position_info(locus, b)) {
                                (Some(a), Some(b)) => Some([a.clone(), b.clone()]),
                                _ => None,
                            };
                        (
                            g,
                            score_locus(locus, req.patient[l].as_ref(), donor.as_ref()),
                        )
                    })
                    .collect()
            })
            .collect();
        let mut per_locus = per_locus.into_iter();
        std::array::from_fn(|_| per_locus.next().unwrap_or_default())
    }

    /// The offered donors the ranking can return: all of them, or, when the policy ranks by
    /// total mismatches first, those of the lowest totals that fill the limit (the rest
    /// can only rank below them).
    fn to_score(&self, req: &SearchRequest, offered: Vec<(Row, u8)>) -> Vec<(Row, u8)> {
        if req.limit == 0 {
            return Vec::new();
        }
        if offered.len() <= req.limit || !req.policy.ranks_by_total_first() {
            return offered;
        }
        let mut per_total = [0usize; 256];
        for &(_, t) in &offered {
            per_total[t as usize] += 1;
        }
        let mut held = 0;
        let cut = per_total
            .iter()
            .position(|&n| {
                held += n;
                held >= req.limit
            })
            .unwrap_or(255) as u8;
        offered.into_iter().filter(|&(_, t)| t <= cut).collect()
    }

    /// Each cord unit's mismatches at the 6/6 loci (rules §8) among `rows`, keyed by row:
    /// a locus's share depends on its genotype alone, so each distinct one is graded once.
    fn cord_mismatches(&self, req: &SearchRequest, rows: &[(Row, u8)]) -> FxHashMap<Row, u8> {
        let mut graded: [FxHashMap<u32, u8>; CORD_LOCI.len()] = Default::default();
        rows.iter()
            .filter(|&&(row, _)| flag_cord(self.flags[row as usize]))
            .map(|&(row, _)| {
                let mismatches = CORD_LOCI
                    .iter()
                    .zip(graded.iter_mut())
                    .map(|(&locus, graded)| {
                        let l = locus.index();
                        let g = self.columns[l].get(row as usize);
                        *graded.entry(g).or_insert_with(|| {
                            let [a, b] = self.genotypes[l].pairs[g as usize];
                            let donor = match (
                                self.position_info(locus, a),
                                self.position_info(locus, b),
                            ) {
                                (Some(a), Some(b)) => Some([a.clone(), b.clone()]),
                                _ => None,
                            };
                            cord_locus_mismatches(locus, req.patient[l].as_ref(), donor.as_ref())
                        })
                    })
                    .sum();
                (row, mismatches)
            })
            .collect()
    }

    fn score_hit(
        &self,
        req: &SearchRequest,
        row: Row,
        total: u8,
        scores: &GenotypeScores,
        cord_mismatches: &FxHashMap<Row, u8>,
    ) -> SearchHit {
        let r = row as usize;
        let loci: [LocusScore; 6] = std::array::from_fn(|l| scores[l][&self.columns[l].get(r)]);
        let score = PairScore { loci };
        debug_assert_eq!(score.total(&req.loci), total, "scan and scorer disagree");
        let facts = self.rank_facts(row);
        let cord = (facts.donor_type == DonorType::Cord).then(|| {
            let mismatches = cord_mismatches[&row];
            let cells = self.cords.get(&row).copied();
            let per_kg = |v: f32| req.patient_weight_kg.map(|w| v / w);
            let (tnc, cd34) = (
                cells.and_then(|c| per_kg(c.tnc_e7)),
                cells.and_then(|c| per_kg(c.cd34_e5)),
            );
            CordResult {
                mismatches,
                grade: format!("{}/6", 6u8.saturating_sub(mismatches)),
                tnc_e7_per_kg: tnc,
                cd34_e5_per_kg: cd34,
                dose_sufficient: match (tnc, cd34) {
                    (None, None) => None,
                    (t, c) => Some(t.is_some_and(|t| t >= 2.5) || c.is_some_and(|c| c >= 1.5)),
                },
            }
        });
        SearchHit {
            rank: 0,
            row,
            key: self.key(row),
            total,
            score,
            age: facts.birth_day.map(|b| age_in_years(b, req.today)),
            facts,
            cord,
            attributes: DonorAttributes::default(),
            probability: None,
        }
    }

    /// Bytes the scan reads per donor (position columns of the matched loci and the
    /// attribute columns it checks), for the bandwidth figure.
    pub fn scan_bytes_per_donor(&self, matched_loci: usize) -> usize {
        matched_loci * 4 + 2 /* flags */
    }
}

impl DonorIndex {
    /// Per-locus bidirectional mismatch counts of every donor against one patient, from
    /// the per-typing plan (batch scoring: no filters, no limits). Untyped loci count 0.
    pub fn mismatch_counts(&self, patient: &Subject) -> Vec<(Row, [u8; 6])> {
        let mut req = SearchRequest::new(patient.clone(), 5);
        req.loci = Locus::ALL.to_vec();
        // Limits of 2 everywhere: the counts themselves, never `OVER`.
        let mut plans = self.plan(&req);
        self.fill_genotype_mismatches(&mut plans);
        let rows = self.keys.len();
        (0..rows)
            .into_par_iter()
            .filter(|&r| flag_live(self.flags[r]))
            .map(|r| {
                let mut counts = [0u8; 6];
                for plan in &plans {
                    counts[plan.locus] = plan.mismatches[self.columns[plan.locus].get(r) as usize];
                }
                (r as Row, counts)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::mismatch_table;

    /// The zero-genotype walk codes a genotype from whichever of its positions it reaches
    /// first, so the table must not depend on the order of the two codes.
    #[test]
    fn mismatch_table_is_symmetric() {
        for expresses in [true, false] {
            let table = mismatch_table(expresses);
            for a in 0..8 {
                for b in 0..8 {
                    assert_eq!(table[a << 3 | b], table[b << 3 | a], "codes {a}, {b}");
                }
            }
        }
    }
}
