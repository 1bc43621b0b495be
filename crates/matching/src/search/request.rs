//! What a coordinator asks, and the limits every request is checked against.

use std::sync::Arc;

use crate::model::{Abo, Cmv, DonorType, Locus, Status, days_from_civil};
use crate::probability::HaplotypeSet;
use crate::rank::{DefaultPolicy, ProbabilityWithinGrade, RankingContext, RankingPolicy};
use crate::score::Subject;

/// Why a search cannot run: the request field at fault and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SearchError {
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

impl SearchError {
    /// The request field at fault.
    pub fn field(&self) -> &'static str {
        match self {
            SearchError::Invalid { field, .. } => field,
        }
    }

    /// The reason, without the field.
    pub fn reason(&self) -> &str {
        match self {
            SearchError::Invalid { reason, .. } => reason,
        }
    }
}

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

    /// Rank by P(0 mismatches) within each mismatch count (`probability-within-grade-v1`),
    /// the current policy choosing the hits and breaking ties. Needs `probability`.
    pub fn rank_by_probability(&mut self) {
        self.policy = Arc::new(ProbabilityWithinGrade::over(self.policy.clone()));
    }

    /// What the ranking policy may read of the request.
    pub fn ranking_context(&self) -> RankingContext<'_> {
        RankingContext {
            loci: &self.loci,
            patient_cmv: self.patient_cmv,
            patient_abo: self.patient_abo,
        }
    }

    /// Check the request's limits; every search checks them first, whoever builds it.
    pub fn validate(&self) -> Result<(), SearchError> {
        let invalid =
            |field: &'static str, reason: String| Err(SearchError::Invalid { field, reason });
        for required in [Locus::A, Locus::B, Locus::Drb1] {
            if !self.loci.contains(&required) {
                return invalid(
                    "loci",
                    format!("the matched loci must include {required} (A, B and DRB1 always)"),
                );
            }
        }
        if self.loci.contains(&Locus::Dpb1) {
            return invalid(
                "loci",
                "DPB1 is scored, never matched: leave it out of the matched loci".into(),
            );
        }
        if self.max_mismatches > 5 {
            return invalid(
                "max_mismatches",
                format!(
                    "at most 5 mismatches may be tolerated, not {}",
                    self.max_mismatches
                ),
            );
        }
        if let Some(l) = Locus::ALL.iter().find(|l| self.locus_max[l.index()] > 2) {
            return invalid(
                "locus_max",
                format!(
                    "per-locus mismatches are 0–2, not {} at {l}",
                    self.locus_max[l.index()]
                ),
            );
        }
        if let Some((lo, hi)) = self.age_range
            && lo > hi
        {
            return invalid("age_range", format!("age range {lo}–{hi} is empty"));
        }
        if self
            .patient_weight_kg
            .is_some_and(|w| !(w > 0.0 && w < 500.0))
        {
            return invalid(
                "patient_weight_kg",
                "patient weight must be between 0 and 500 kg".into(),
            );
        }
        if self.policy.needs_probability() && self.probability.is_none() {
            return invalid(
                "probability",
                format!(
                    "the ranking policy {} needs match probabilities: give a haplotype frequency set",
                    self.policy.name()
                ),
            );
        }
        Ok(())
    }
}
