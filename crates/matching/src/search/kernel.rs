//! The scan kernel: compare the patient with each distinct donor typing once (a plan per
//! matched locus), then walk the donor columns in parallel (`rayon`) with those per-typing
//! results: posting lists to the candidates when they prune, else a full scan, fused over
//! the most selective loci, then one pass per remaining locus.

use std::sync::Arc;

use rayon::prelude::*;

use super::request::SearchRequest;
use crate::index::{
    DonorIndex, GenotypeColumn, GenotypeTable, POSTED, Postings, Row, TypingKind, flag_cord,
    flag_live, flag_status,
};
use crate::model::{DonorType, days_from_civil};
use crate::position::PositionInfo;
use crate::prefetch::prefetch;
use crate::score::match_count;

/// Codes for one donor position against the patient: bit 0 meets patient position 1,
/// bit 1 meets position 2, bit 2 null; `UNTYPED` for an untyped locus.
pub(super) const NULL_BIT: u8 = 4;
pub(super) const UNTYPED: u8 = 7;

/// Per matched locus: each distinct donor position typing's code against the patient, and
/// from a genotype's two codes its mismatch count (or `OVER` past the locus's limit), so the
/// scan only looks up, adds and compares.
pub(super) struct LocusPlan {
    pub(super) locus: usize,
    pub(super) limit: u8,
    /// Per position typing id: its 3-bit code (which patient positions it meets, null,
    /// untyped).
    pub(super) codes: Vec<u8>,
    /// Mismatches of a genotype by its two codes (`codes[a] << 3 | codes[b]`), `OVER` past
    /// the limit.
    pub(super) table: [u8; 64],
    /// Per genotype id: its mismatches or `OVER`. Every genotype when every row is scanned;
    /// in a pruned search, the posted loci's snapshot genotypes (found on the way to the
    /// zero-mismatch ones), the others derived from their pair of typings when looked up.
    pub(super) mismatches: Vec<u8>,
    /// Mean mismatches per donor at this locus (for the full scan's evaluation order).
    pub(super) expected: f64,
}

impl LocusPlan {
    #[inline(always)]
    pub(super) fn genotype_mismatches(&self, [a, b]: [u32; 2]) -> u8 {
        self.table[(((self.codes[a as usize] << 3) | self.codes[b as usize]) & 63) as usize]
    }
}

/// A per-locus count past the locus's limit: any total holding it exceeds every limit
/// (5 loci × 8 still fits a `u8`).
pub(super) const OVER: u8 = 8;

pub(super) fn effective(pair: &[Arc<PositionInfo>; 2]) -> Option<[&PositionInfo; 2]> {
    match (pair[0].is_null(), pair[1].is_null()) {
        (true, true) => None,
        (true, false) => Some([&pair[1], &pair[1]]),
        (false, true) => Some([&pair[0], &pair[0]]),
        (false, false) => Some([&pair[0], &pair[1]]),
    }
}

pub(super) fn mismatch_table(patient_expresses: bool) -> [u8; 64] {
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

pub(super) struct RowFilters<'a> {
    /// Bit `f & 15` set: flags `f` pass (live, status and donor type are the low 4 bits).
    pub(super) flag_ok: u16,
    pub(super) flags: &'a [u16],
    pub(super) registry: Option<(&'a [bool], &'a [u16])>,
    pub(super) birth: Option<((i64, i64), &'a [u16])>,
    pub(super) max_total: u8,
}

/// How many matched loci the first, fused pass evaluates per row.
pub(super) const FUSED: usize = 3;

/// The first pass: the `K` most selective loci evaluated together per row, without
/// branches, compacting the rows whose total passes into `rows`/`totals`.
pub(super) fn fused_pass<const K: usize>(
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
pub(super) fn scan_rows(
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
pub(super) fn admitted(rows: &[u32], totals: &[u8], filters: &RowFilters<'_>) -> Vec<(Row, u8)> {
    rows.iter()
        .zip(totals)
        .filter(|(r, _)| filters.admit(**r as usize))
        .map(|(&r, &t)| (r as Row, t))
        .collect()
}

/// The candidate rows (ascending) that pass every matched locus and the filters: one pass
/// per locus over the rows still in, each a run of independent look-ups (the genotype id,
/// its pair, two codes) rather than a chain of early exits, so memory loads overlap.
pub(super) fn check_rows(
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
pub(super) fn locus_pass(
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

/// One locus over `rows`: adds its mismatches to `totals` and keeps (in place, in order)
/// the rows still within `max_total`; returns how many.
pub(super) fn check_pass<G: Copy + Into<u32>>(
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
    pub(super) fn admit(&self, r: usize) -> bool {
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
    pub(super) fn plan(&self, req: &SearchRequest) -> Vec<LocusPlan> {
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

    pub(super) fn locus_plan(
        &self,
        l: usize,
        pair: &[Arc<PositionInfo>; 2],
        limit: u8,
    ) -> LocusPlan {
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
    pub(super) fn fill_genotype_mismatches(&self, plans: &mut [LocusPlan]) {
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
    pub(super) fn zero_genotypes(
        &self,
        plan: &LocusPlan,
        postings: &Postings,
    ) -> (Vec<u32>, Vec<u8>) {
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
    pub(super) fn candidates(
        &self,
        req: &SearchRequest,
        plans: &mut [LocusPlan],
    ) -> Option<Vec<u32>> {
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
    pub(super) fn scan(&self, req: &SearchRequest, plans: &mut [LocusPlan]) -> Vec<(Row, u8)> {
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
