//! Ranking policies. The default follows the rules' section 6; registries may supply their
//! own policy without touching the scan. The search breaks remaining ties on donor key.

use std::cmp::Ordering;

use std::sync::Arc;

use crate::hit::{CordResult, SearchHit};
use crate::model::{Abo, Cmv, Locus, Sex};

/// What a policy may read of the request besides the hits.
#[derive(Debug, Clone, Copy)]
pub struct RankingContext<'a> {
    /// The matched loci.
    pub loci: &'a [Locus],
    pub patient_cmv: Cmv,
    pub patient_abo: Abo,
}

pub trait RankingPolicy: Send + Sync {
    /// A stable name shown with every result.
    fn name(&self) -> &str;
    /// Order two hits (less = better). Return `Equal` to fall back on donor key.
    fn compare(&self, a: &SearchHit, b: &SearchHit, context: &RankingContext<'_>) -> Ordering;
    /// True only when `compare` orders hits by fewer total mismatches (`SearchHit::total`)
    /// before anything else. The search then scores in full only the donors of the lowest
    /// totals that fill the request's limit. A policy that may put a higher total first
    /// must leave this false (the default), and every offered donor is scored.
    fn ranks_by_total_first(&self) -> bool {
        false
    }
    /// A policy that orders by something known only for the hits returned (match
    /// probability): the policy that chooses those hits. The search chooses and orders them
    /// by it, works out what this policy needs, then sorts them stably by this one.
    fn chosen_by(&self) -> Option<&dyn RankingPolicy> {
        None
    }
    /// True when `compare` reads `SearchHit::probability` (the request must ask for it).
    fn needs_probability(&self) -> bool {
        false
    }
}

/// `hla-first-v1` (rules §6): fewer mismatches at the matched loci; then allele before
/// antigen mismatches; higher confidence; permissive DPB1 before non-permissive; adult
/// donors before cord units (the rules rank cord units among themselves, §8; an adult donor
/// of the same HLA grade engrafts faster), cord units by cord grade then cell dose; then
/// younger donors; CMV serostatus matching the patient's; male before female; ABO identical
/// before mismatched.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultPolicy;

fn cmv_rank(hit: &SearchHit, patient: Cmv) -> u8 {
    match (patient, hit.facts.cmv) {
        (Cmv::Unknown, _) => 0,
        (p, d) if p == d => 0,
        (_, Cmv::Unknown) => 1,
        _ => 2,
    }
}

fn sex_rank(hit: &SearchHit) -> u8 {
    match hit.facts.sex {
        Sex::Male => 0,
        Sex::Female => 1,
        Sex::Unknown => 2,
    }
}

fn abo_rank(hit: &SearchHit, patient: Abo) -> u8 {
    match (patient, hit.facts.abo) {
        (Abo::Unknown, _) => 0,
        (p, d) if p == d => 0,
        (_, Abo::Unknown) => 2,
        _ => 1,
    }
}

impl RankingPolicy for DefaultPolicy {
    fn name(&self) -> &str {
        "hla-first-v1"
    }

    fn ranks_by_total_first(&self) -> bool {
        true
    }

    fn compare(&self, a: &SearchHit, b: &SearchHit, req: &RankingContext<'_>) -> Ordering {
        let loci = req.loci;
        let tce = |h: &SearchHit| {
            h.score.loci[crate::model::Locus::Dpb1.index()]
                .tce
                .map_or(2, |t| t.rank())
        };
        a.total
            .cmp(&b.total)
            .then_with(|| {
                a.score
                    .antigen_mismatches(loci)
                    .cmp(&b.score.antigen_mismatches(loci))
            })
            .then_with(|| {
                b.score
                    .confidence_points(loci)
                    .cmp(&a.score.confidence_points(loci))
            })
            .then_with(|| tce(a).cmp(&tce(b)))
            // Adult donors before cord units, and cord units by cord grade, then dose. The
            // step must order every pair (adult–cord too), or the order is not transitive
            // and a sort's result depends on its input order.
            .then_with(|| match (&a.cord, &b.cord) {
                (Some(ca), Some(cb)) => ca.mismatches.cmp(&cb.mismatches).then_with(|| {
                    let dose = |c: &CordResult| c.tnc_e7_per_kg.unwrap_or(0.0);
                    dose(cb).total_cmp(&dose(ca))
                }),
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Less,
                (Some(_), None) => Ordering::Greater,
            })
            .then_with(|| a.age.unwrap_or(u32::MAX).cmp(&b.age.unwrap_or(u32::MAX)))
            .then_with(|| cmv_rank(a, req.patient_cmv).cmp(&cmv_rank(b, req.patient_cmv)))
            .then_with(|| sex_rank(a).cmp(&sex_rank(b)))
            .then_with(|| abo_rank(a, req.patient_abo).cmp(&abo_rank(b, req.patient_abo)))
    }
}

/// `probability-within-grade-v1` (rules §7): the hits its chooser picks, ordered by total
/// mismatches, then by the probability of no mismatch (highest first), the chooser breaking
/// ties. Named `probability-within-grade-v1+<chooser>`.
pub struct ProbabilityWithinGrade {
    chooser: Arc<dyn RankingPolicy>,
    name: String,
}

impl ProbabilityWithinGrade {
    pub fn over(chooser: Arc<dyn RankingPolicy>) -> ProbabilityWithinGrade {
        let name = format!("probability-within-grade-v1+{}", chooser.name());
        ProbabilityWithinGrade { chooser, name }
    }
}

impl RankingPolicy for ProbabilityWithinGrade {
    fn name(&self) -> &str {
        &self.name
    }

    fn compare(&self, a: &SearchHit, b: &SearchHit, context: &RankingContext<'_>) -> Ordering {
        // A hit without a probability (its typing outside the frequency set) comes last.
        let p0 = |h: &SearchHit| h.probability.as_ref().and_then(|p| p.p0).unwrap_or(-1.0);
        a.total
            .cmp(&b.total)
            .then(p0(b).total_cmp(&p0(a)))
            .then_with(|| self.chooser.compare(a, b, context))
    }

    fn ranks_by_total_first(&self) -> bool {
        true
    }

    fn chosen_by(&self) -> Option<&dyn RankingPolicy> {
        Some(&*self.chooser)
    }

    fn needs_probability(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::score::PairScore;

    fn hit(key: u32, age: u32, cord_mismatches: Option<u8>) -> SearchHit {
        SearchHit {
            rank: 0,
            row: key,
            key,
            total: 0,
            score: PairScore::compute(&Default::default(), &Default::default()),
            facts: Default::default(),
            age: Some(age),
            cord: cord_mismatches.map(|mismatches| CordResult {
                mismatches,
                grade: String::new(),
                tnc_e7_per_kg: None,
                cd34_e5_per_kg: None,
                dose_sufficient: None,
            }),
            attributes: Default::default(),
            probability: None,
        }
    }

    /// Two cord units and an adult donor whose ages alone would order them in a cycle
    /// (cord 1 before cord 2 by grade, cord 2 before the adult and the adult before cord 1
    /// by age): every input order must sort the same way.
    #[test]
    fn default_order_is_transitive_across_adults_and_cords() {
        let loci = [Locus::A, Locus::B, Locus::C, Locus::Drb1, Locus::Dqb1];
        let req = RankingContext {
            loci: &loci,
            patient_cmv: Cmv::Unknown,
            patient_abo: Abo::Unknown,
        };
        let hits = [hit(1, 40, Some(0)), hit(2, 20, Some(1)), hit(3, 30, None)];
        let orders = [
            [0, 1, 2],
            [0, 2, 1],
            [1, 0, 2],
            [1, 2, 0],
            [2, 0, 1],
            [2, 1, 0],
        ];
        for order in orders {
            let mut sorted: Vec<SearchHit> = order.iter().map(|&i| hits[i].clone()).collect();
            sorted.sort_by(|a, b| DefaultPolicy.compare(a, b, &req).then(a.key.cmp(&b.key)));
            let keys: Vec<u32> = sorted.iter().map(|h| h.key).collect();
            assert_eq!(keys, [3, 1, 2], "from input order {order:?}");
        }
    }
}
