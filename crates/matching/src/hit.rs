//! What a search returns: ranked hits with their scores, cord grades and probabilities.

use crate::index::{RankFacts, Row};
use crate::model::{DonorAttributes, Locus};
use crate::probability::MatchProbability;
use crate::score::PairScore;

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
