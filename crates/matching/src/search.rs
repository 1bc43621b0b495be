//! The search: compare the patient with each distinct donor typing once, then scan the
//! donor columns in parallel (`rayon`) with those per-typing results, then score and rank
//! the donors that qualify.

use std::sync::Arc;

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use crate::index::{Columns, DonorIndex, RankFacts, Row, flag_cord, flag_live, flag_status};
use crate::model::{
    Abo, Cmv, DonorAttributes, DonorType, Locus, Status, age_in_years, days_from_civil,
};
use crate::position::PositionInfo;
use crate::probability::{HaplotypeSet, MatchProbability};
use crate::rank::{DefaultPolicy, RankingPolicy};
use crate::score::{LocusScore, PairScore, Subject, match_count, score_locus};

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

/// Per matched locus: a code per distinct donor typing and the 64-entry mismatch table.
struct LocusPlan {
    locus: usize,
    max: u8,
    codes: Vec<u8>,
    table: [u8; 64],
    selectivity: f64,
}

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
    flag_ok: &'a [u64],
    flags: &'a [u16],
    registry: Option<(&'a [bool], &'a [u16])>,
    birth: Option<((i64, i64), &'a [u16])>,
    max_total: u8,
}

/// The hot loop, monomorphised per column width. The most selective locus runs first over
/// the whole chunk without branches, compacting the rows that pass into a candidate list;
/// the other loci then run over the candidates only, and the attribute filters last.
fn scan_rows<T: Copy + Into<u32>>(
    columns: &[[Vec<T>; 2]; 6],
    plans: &[LocusPlan],
    filters: &RowFilters<'_>,
    range: std::ops::Range<usize>,
) -> Vec<(Row, u8)> {
    let start = range.start;
    let len = range.len();
    let mut rows: Vec<u32> = vec![0; len];
    let mut totals: Vec<u8> = vec![0; len];
    let mut n = match plans.first() {
        None => {
            for (k, r) in range.enumerate() {
                rows[k] = r as u32;
            }
            len
        }
        Some(p) => {
            let limit = p.max.min(filters.max_total);
            let (c1, c2) = (
                &columns[p.locus][0][range.clone()],
                &columns[p.locus][1][range.clone()],
            );
            let mut n = 0;
            for k in 0..len {
                let mm = p.table[((p.codes[c1[k].into() as usize] << 3)
                    | p.codes[c2[k].into() as usize]) as usize];
                rows[n] = (start + k) as u32;
                totals[n] = mm;
                n += usize::from(mm <= limit);
            }
            n
        }
    };
    for p in plans.iter().skip(1) {
        let (c1, c2) = (&columns[p.locus][0], &columns[p.locus][1]);
        let mut m = 0;
        for k in 0..n {
            let r = rows[k] as usize;
            let mm = p.table
                [((p.codes[c1[r].into() as usize] << 3) | p.codes[c2[r].into() as usize]) as usize];
            let t = totals[k] + mm;
            rows[m] = r as u32;
            totals[m] = t;
            m += usize::from(mm <= p.max && t <= filters.max_total);
        }
        n = m;
    }
    let mut out = Vec::new();
    for k in 0..n {
        let r = rows[k] as usize;
        let f = filters.flags[r];
        if filters.flag_ok[(f >> 6) as usize] >> (f & 63) & 1 == 0 {
            continue;
        }
        if let Some((allowed, registry)) = filters.registry
            && !allowed[registry[r] as usize]
        {
            continue;
        }
        if let Some(((lo, hi), birth)) = filters.birth {
            let b = birth[r];
            if b == u16::MAX || (b as i64) < lo || (b as i64) > hi {
                continue;
            }
        }
        out.push((r as Row, totals[k]));
    }
    out
}

impl DonorIndex {
    fn plan(&self, req: &SearchRequest) -> Vec<LocusPlan> {
        let mut plans = Vec::new();
        for &locus in &req.loci {
            let Some(pair) = &req.patient[locus.index()] else {
                continue; // untyped at the patient: every donor is a potential match here
            };
            let l = locus.index();
            let patient = effective(pair);
            let infos = &self.positions[l].infos;
            let code_of = |info: &Option<Arc<PositionInfo>>| match info {
                None => UNTYPED,
                Some(info) if info.is_null() => NULL_BIT,
                Some(info) => match patient {
                    None => 0,
                    Some(p) => u8::from(p[0].meets(info)) | (u8::from(p[1].meets(info)) << 1),
                },
            };
            let codes: Vec<u8> = if infos.len() > 8192 {
                infos.par_iter().map(code_of).collect()
            } else {
                infos.iter().map(code_of).collect()
            };
            // Share of donor positions at this locus that meet neither patient position.
            let counts = &self.positions[l].counts;
            let held: u64 = counts.iter().skip(1).map(|&c| c as u64).sum();
            let unmet: u64 = codes
                .iter()
                .zip(counts)
                .skip(1)
                .filter(|(c, _)| **c & 3 == 0)
                .map(|(_, &n)| n as u64)
                .sum();
            plans.push(LocusPlan {
                locus: l,
                max: req.locus_max[l],
                codes,
                table: mismatch_table(patient.is_some()),
                selectivity: if held == 0 {
                    0.0
                } else {
                    unmet as f64 / held as f64
                },
            });
        }
        // Loci that drop the most donors first: a donor is dropped at the first locus over
        // its limit, so most donors cost one locus.
        plans.sort_by(|a, b| {
            let limit = |p: &LocusPlan| p.max.min(req.max_mismatches);
            limit(a)
                .cmp(&limit(b))
                .then(b.selectivity.total_cmp(&a.selectivity))
        });
        plans
    }

    /// Rows that pass the filters and mismatch limits, with their totals.
    fn scan(&self, req: &SearchRequest, plans: &[LocusPlan]) -> Vec<(Row, u8)> {
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
        let flag_ok: Vec<u64> = {
            let mut bits = vec![0u64; 1 << 10];
            for f in 0..=u16::MAX {
                let ok = flag_live(f)
                    && status_mask & (1 << (flag_status(f) as u8)) != 0
                    && want_cord.is_none_or(|c| flag_cord(f) == c);
                if ok {
                    bits[(f >> 6) as usize] |= 1 << (f & 63);
                }
            }
            bits
        };
        let filters = RowFilters {
            flag_ok: &flag_ok,
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
            let mut any_status = vec![0u64; 1 << 10];
            for f in 0..=u16::MAX {
                if flag_live(f) && want_cord.is_none_or(|c| flag_cord(f) == c) {
                    any_status[(f >> 6) as usize] |= 1 << (f & 63);
                }
            }
            let filters = RowFilters {
                flag_ok: &any_status,
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
                also.extend(match &self.columns {
                    Columns::Narrow(c) => scan_rows(c, plans, &filters, r..r + 1),
                    Columns::Wide(c) => scan_rows(c, plans, &filters, r..r + 1),
                });
            }
        }
        let rows = self.keys.len();
        const CHUNK: usize = 1 << 13;
        let chunks: Vec<Vec<(Row, u8)>> = (0..rows.div_ceil(CHUNK))
            .into_par_iter()
            .map(|chunk| {
                let range = chunk * CHUNK..((chunk + 1) * CHUNK).min(rows);
                match &self.columns {
                    Columns::Narrow(c) => scan_rows(c, plans, &filters, range),
                    Columns::Wide(c) => scan_rows(c, plans, &filters, range),
                }
            })
            .collect();
        let mut rows = chunks.concat();
        rows.extend(also);
        rows
    }

    /// Run a search. Results are ranked by the request's policy, ties broken on donor key.
    pub fn search(&self, req: &SearchRequest) -> Result<SearchResult, String> {
        req.validate()?;
        let plans = self.plan(req);
        let distinct_typings_compared = plans.iter().map(|p| p.codes.len() - 1).sum();
        let qualifying = self.scan(req, &plans);

        // Score each qualifying donor (in parallel; each thread scores a distinct
        // (locus, typing pair) once), with only what ranking needs.
        let hits: Vec<SearchHit> = qualifying
            .par_chunks(2048)
            .flat_map_iter(|chunk| {
                let mut cache: FxHashMap<(usize, u32, u32), LocusScore> = FxHashMap::default();
                let mut out = Vec::with_capacity(chunk.len());
                for &(row, total) in chunk {
                    if let Some(hit) = self.score_hit(req, row, total, &mut cache) {
                        out.push(hit);
                    }
                }
                out
            })
            .collect();
        let mut hits = hits;
        let total = hits.len();
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

    fn score_hit(
        &self,
        req: &SearchRequest,
        row: Row,
        total: u8,
        cache: &mut FxHashMap<(usize, u32, u32), LocusScore>,
    ) -> Option<SearchHit> {
        let ids = self.position_ids(row);
        let loci: [LocusScore; 6] = std::array::from_fn(|l| {
            *cache.entry((l, ids[l][0], ids[l][1])).or_insert_with(|| {
                let locus = Locus::ALL[l];
                let donor = match (
                    self.position_info(locus, ids[l][0]),
                    self.position_info(locus, ids[l][1]),
                ) {
                    (Some(a), Some(b)) => Some([a.clone(), b.clone()]),
                    _ => None,
                };
                score_locus(locus, req.patient[l].as_ref(), donor.as_ref())
            })
        });
        let score = PairScore { loci };
        debug_assert_eq!(score.total(&req.loci), total, "scan and scorer disagree");
        let facts = self.rank_facts(row);
        let cord = if facts.donor_type == DonorType::Cord {
            let mismatches = PairScore::cord_mismatches(&req.patient, &self.subject(row));
            // Cord units with more than 2 mismatches at the 6/6 loci are not offered (§8).
            if mismatches > 2 {
                return None;
            }
            let cells = self.cords.get(&row).copied();
            let per_kg = |v: f32| req.patient_weight_kg.map(|w| v / w);
            let (tnc, cd34) = (
                cells.and_then(|c| per_kg(c.tnc_e7)),
                cells.and_then(|c| per_kg(c.cd34_e5)),
            );
            Some(CordResult {
                mismatches,
                grade: format!("{}/6", 6u8.saturating_sub(mismatches)),
                tnc_e7_per_kg: tnc,
                cd34_e5_per_kg: cd34,
                dose_sufficient: match (tnc, cd34) {
                    (None, None) => None,
                    (t, c) => Some(t.is_some_and(|t| t >= 2.5) || c.is_some_and(|c| c >= 1.5)),
                },
            })
        } else {
            None
        };
        Some(SearchHit {
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
        })
    }

    /// Bytes the scan reads per donor (position columns of the matched loci and the
    /// attribute columns it checks), for the bandwidth figure.
    pub fn scan_bytes_per_donor(&self, matched_loci: usize) -> usize {
        matched_loci * 2 * self.columns.width() + 2 /* flags */
    }
}

impl DonorIndex {
    /// Per-locus bidirectional mismatch counts of every donor against one patient, from
    /// the per-typing plan (batch scoring: no filters, no limits). Untyped loci count 0.
    pub fn mismatch_counts(&self, patient: &Subject) -> Vec<(Row, [u8; 6])> {
        let mut req = SearchRequest::new(patient.clone(), 5);
        req.loci = Locus::ALL.to_vec();
        let plans = self.plan(&req);
        let rows = self.keys.len();
        (0..rows)
            .into_par_iter()
            .filter(|&r| flag_live(self.flags[r]))
            .map(|r| {
                let mut counts = [0u8; 6];
                for plan in &plans {
                    let (a, b) = match &self.columns {
                        Columns::Narrow(c) => {
                            (c[plan.locus][0][r] as usize, c[plan.locus][1][r] as usize)
                        }
                        Columns::Wide(c) => {
                            (c[plan.locus][0][r] as usize, c[plan.locus][1][r] as usize)
                        }
                    };
                    counts[plan.locus] =
                        plan.table[((plan.codes[a] << 3) | plan.codes[b]) as usize];
                }
                (r as Row, counts)
            })
            .collect()
    }
}
