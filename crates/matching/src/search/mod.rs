//! The search: plan and scan (`kernel`), then offer, score and rank the donors that qualify,
//! with match probabilities when asked.

mod kernel;
mod request;

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use crate::hit::{CordResult, SearchHit, SearchResult};
use crate::index::{DonorIndex, Row, flag_cord, flag_live};
use crate::model::{DonorAttributes, DonorType, Locus, age_in_years};
use crate::rank::RankingPolicy;
use crate::score::{CORD_LOCI, LocusScore, PairScore, Subject, cord_locus_mismatches, score_locus};
pub use request::{ProbabilityOptions, SearchError, SearchRequest};

/// Per locus: genotype id → its score against the patient.
type GenotypeScores = [FxHashMap<u32, LocusScore>; 6];

impl DonorIndex {
    /// Run a search. Results are ranked by the request's policy, ties broken on donor key.
    /// A policy that ranks by probability ranks the hits its chooser picked, once their
    /// probabilities are known.
    pub fn search(&self, req: &SearchRequest) -> Result<SearchResult, SearchError> {
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
        let policy = req.policy.clone();
        let chooser: &dyn RankingPolicy = policy.chosen_by().unwrap_or(&*policy);
        let scored = self.to_score(req, chooser, offered);
        // Score each distinct genotype among those donors once per locus, then each donor
        // from those, with only what ranking needs.
        let scores = self.genotype_scores(req, &scored);
        let mut hits: Vec<SearchHit> = scored
            .par_iter()
            .map(|&(row, total)| self.score_hit(req, row, total, &scores, &cord_mismatches))
            .collect();
        let context = req.ranking_context();
        let order =
            |a: &SearchHit, b: &SearchHit| chooser.compare(a, b, &context).then(a.key.cmp(&b.key));
        if req.limit == 0 {
            hits.clear();
        } else if hits.len() > req.limit {
            hits.select_nth_unstable_by(req.limit - 1, order);
            hits.truncate(req.limit);
        }
        hits.sort_unstable_by(order);
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
        }
        if policy.chosen_by().is_some() {
            // Stable: the chooser's order (and the donor key) breaks the policy's ties.
            hits.sort_by(|a, b| policy.compare(a, b, &context));
        }
        for (i, h) in hits.iter_mut().enumerate() {
            h.rank = i + 1;
            h.attributes = self.attributes(h.row);
        }
        Ok(SearchResult {
            total,
            hits,
            policy: policy.name().to_string(),
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

    /// The offered donors the ranking can return: all of them, or, when the chooser ranks by
    /// total mismatches first, those of the lowest totals that fill the limit (the rest
    /// can only rank below them).
    fn to_score(
        &self,
        req: &SearchRequest,
        chooser: &dyn RankingPolicy,
        offered: Vec<(Row, u8)>,
    ) -> Vec<(Row, u8)> {
        if req.limit == 0 {
            return Vec::new();
        }
        if offered.len() <= req.limit || !chooser.ranks_by_total_first() {
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
