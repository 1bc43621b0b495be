//! Pairwise scoring of a patient and a donor (rules §3–5, §8): per-locus mismatch counts
//! with direction, per-position grade and confidence, antigen-vs-allele mismatch, DPB1
//! T-cell-epitope permissiveness, and cord unit grading.

use std::sync::Arc;

use crate::model::Locus;
use crate::position::{PositionInfo, PositionTce, sorted_intersect};

/// A subject's six loci (A, B, C, DRB1, DQB1, DPB1); `None` is an untyped locus.
pub type Subject = [Option<[Arc<PositionInfo>; 2]>; 6];

/// Per-position grade, best first (rules §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Grade {
    GDna,
    CDna,
    Protein,
    GGroup,
    PGroup,
    Associated,
    Split,
    Broad,
    NullVsNull,
    ExpressingVsNull,
    /// An untyped or `NEW` position: a potential match of unknown grade.
    Unknown,
    Mismatch,
}

impl Grade {
    pub fn code(self) -> &'static str {
        match self {
            Grade::GDna => "gDNA",
            Grade::CDna => "cDNA",
            Grade::Protein => "protein",
            Grade::GGroup => "G",
            Grade::PGroup => "P",
            Grade::Associated => "associated",
            Grade::Split => "split",
            Grade::Broad => "broad",
            Grade::NullVsNull => "null-vs-null",
            Grade::ExpressingVsNull => "expressing-vs-null",
            Grade::Unknown => "unknown",
            Grade::Mismatch => "mismatch",
        }
    }
}

/// How sure a position's match is (rules §4), best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Confidence {
    Definite,
    Exact,
    Potential,
    Mismatch,
}

impl Confidence {
    pub fn code(self) -> &'static str {
        match self {
            Confidence::Definite => "definite",
            Confidence::Exact => "exact",
            Confidence::Potential => "potential",
            Confidence::Mismatch => "mismatch",
        }
    }
    /// Points for ranking: higher is surer.
    pub fn points(self) -> u32 {
        match self {
            Confidence::Definite => 3,
            Confidence::Exact => 2,
            Confidence::Potential => 1,
            Confidence::Mismatch => 0,
        }
    }
}

/// DPB1 T-cell-epitope category of a DPB1 mismatch (rules §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TceMatch {
    /// No DPB1 mismatch.
    Matched,
    Permissive,
    NonPermissiveHvG,
    NonPermissiveGvH,
    Unknown,
}

impl TceMatch {
    pub fn code(self) -> &'static str {
        match self {
            TceMatch::Matched => "matched",
            TceMatch::Permissive => "permissive",
            TceMatch::NonPermissiveHvG => "non-permissive-hvg",
            TceMatch::NonPermissiveGvH => "non-permissive-gvh",
            TceMatch::Unknown => "unknown",
        }
    }
    /// Ranking order: matched, permissive, unknown, non-permissive.
    pub fn rank(self) -> u8 {
        match self {
            TceMatch::Matched => 0,
            TceMatch::Permissive => 1,
            TceMatch::Unknown => 2,
            TceMatch::NonPermissiveGvH | TceMatch::NonPermissiveHvG => 3,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocusScore {
    pub locus: Locus,
    /// False when either side has not typed the locus (counted as a potential match).
    pub typed: bool,
    /// Bidirectional mismatches (what filters).
    pub mismatches: u8,
    /// Graft-versus-host: patient antigens the donor lacks.
    pub gvh: u8,
    /// Host-versus-graft: donor antigens the patient lacks.
    pub hvg: u8,
    pub grades: [Grade; 2],
    pub confidences: [Confidence; 2],
    /// Mismatched positions that share a serological antigen (allele mismatch) or not (antigen).
    pub allele_mismatches: u8,
    pub antigen_mismatches: u8,
    /// DPB1 only.
    pub tce: Option<TceMatch>,
}

impl LocusScore {
    fn untyped(locus: Locus) -> LocusScore {
        LocusScore {
            locus,
            typed: false,
            mismatches: 0,
            gvh: 0,
            hvg: 0,
            grades: [Grade::Unknown; 2],
            confidences: [Confidence::Potential; 2],
            allele_mismatches: 0,
            antigen_mismatches: 0,
            tce: (locus == Locus::Dpb1).then_some(TceMatch::Unknown),
        }
    }
}

/// A side's effective positions: a null position carries its partner's set; both null means
/// the locus expresses nothing.
enum Effective<'a> {
    Expressed([&'a PositionInfo; 2]),
    NothingExpressed,
}

fn effective(pair: &[Arc<PositionInfo>; 2]) -> Effective<'_> {
    match (pair[0].is_null(), pair[1].is_null()) {
        (true, true) => Effective::NothingExpressed,
        (true, false) => Effective::Expressed([&pair[1], &pair[1]]),
        (false, true) => Effective::Expressed([&pair[0], &pair[0]]),
        (false, false) => Effective::Expressed([&pair[0], &pair[1]]),
    }
}

/// The locus match count from the four meet relations (rules §3).
pub fn match_count(m: [[bool; 2]; 2]) -> u8 {
    if (m[0][0] && m[1][1]) || (m[0][1] && m[1][0]) {
        2
    } else if m[0][0] || m[0][1] || m[1][0] || m[1][1] {
        1
    } else {
        0
    }
}

fn grade(p: &PositionInfo, d: &PositionInfo) -> Grade {
    if p.is_new() || d.is_new() {
        return Grade::Unknown;
    }
    if !p.meets(d) {
        return Grade::Mismatch;
    }
    if p.serology_typed || d.serology_typed {
        return serology_grade(p, d);
    }
    // The best grade any allele pair the two typings allow would have; confidence says how sure.
    if sorted_intersect(&p.alleles, &d.alleles) {
        Grade::GDna
    } else if sorted_intersect(&p.prefix3, &d.prefix3) {
        Grade::CDna
    } else if sorted_intersect(&p.prefix2, &d.prefix2) {
        Grade::Protein
    } else if sorted_intersect(&p.g_groups, &d.g_groups) {
        Grade::GGroup
    } else {
        Grade::PGroup
    }
}

/// A serology-level match: the typed antigen found as such on the other side is a split
/// (or associated) match; meeting only through the antigen family is a broad match.
fn serology_grade(p: &PositionInfo, d: &PositionInfo) -> Grade {
    let antigens_of = |x: &PositionInfo| -> Vec<u32> {
        if x.serology_typed {
            x.typed_antigens.iter().map(|a| a.0).collect()
        } else {
            x.antigens.to_vec()
        }
    };
    let (pa, da) = (antigens_of(p), antigens_of(d));
    let typed = if p.serology_typed {
        &p.typed_antigens
    } else {
        &d.typed_antigens
    };
    let other = if p.serology_typed { &da } else { &pa };
    let mut best = Grade::Broad;
    for &(antigen, associated) in typed.iter() {
        if other.contains(&antigen) {
            best = best.min(if associated {
                Grade::Associated
            } else {
                Grade::Split
            });
        }
    }
    best
}

fn confidence(p: &PositionInfo, d: &PositionInfo) -> Confidence {
    if !p.meets(d) {
        Confidence::Mismatch
    } else if p.single_allele() && d.single_allele() {
        Confidence::Definite
    } else if p.single_p_key() && d.single_p_key() {
        Confidence::Exact
    } else {
        Confidence::Potential
    }
}

/// The side's most immunogenic TCE group; a null position takes its partner's.
fn side_tce(pair: &[Arc<PositionInfo>; 2]) -> PositionTce {
    let groups: Vec<PositionTce> = pair
        .iter()
        .map(|p| p.tce)
        .filter(|t| *t != PositionTce::Null)
        .collect();
    if groups.is_empty() {
        return PositionTce::Null;
    }
    if groups.contains(&PositionTce::Unknown) {
        return PositionTce::Unknown;
    }
    groups
        .into_iter()
        .min_by_key(|t| match t {
            PositionTce::Group(g) => *g,
            _ => u8::MAX,
        })
        .unwrap_or(PositionTce::Unknown)
}

fn tce_match(patient: &[Arc<PositionInfo>; 2], donor: &[Arc<PositionInfo>; 2]) -> TceMatch {
    match (side_tce(patient), side_tce(donor)) {
        (PositionTce::Group(p), PositionTce::Group(d)) => match d.cmp(&p) {
            std::cmp::Ordering::Equal => TceMatch::Permissive,
            std::cmp::Ordering::Less => TceMatch::NonPermissiveHvG,
            std::cmp::Ordering::Greater => TceMatch::NonPermissiveGvH,
        },
        _ => TceMatch::Unknown,
    }
}

/// Distinct effective positions (a homozygous side presents one antigen, counted once).
fn distinct(pair: [&PositionInfo; 2]) -> usize {
    if std::ptr::eq(pair[0], pair[1]) || pair[0].text == pair[1].text {
        1
    } else {
        2
    }
}

/// Score one locus of a patient against a donor.
pub fn score_locus(
    locus: Locus,
    patient: Option<&[Arc<PositionInfo>; 2]>,
    donor: Option<&[Arc<PositionInfo>; 2]>,
) -> LocusScore {
    let (Some(p), Some(d)) = (patient, donor) else {
        return LocusScore::untyped(locus);
    };
    let mut score = LocusScore::untyped(locus);
    score.typed = true;
    score.tce = None;
    match (effective(p), effective(d)) {
        (Effective::NothingExpressed, Effective::NothingExpressed) => {
            score.grades = [Grade::NullVsNull; 2];
            score.confidences = [Confidence::Exact; 2];
        }
        (Effective::NothingExpressed, Effective::Expressed(_))
        | (Effective::Expressed(_), Effective::NothingExpressed) => {
            let patient_null = p[0].is_null();
            score.mismatches = 2;
            // A patient expressing nothing sees the donor's antigens; a donor expressing
            // nothing sees none of the patient's, and the patient's are foreign to it.
            (score.gvh, score.hvg) = if patient_null { (0, 2) } else { (2, 0) };
            score.grades = [Grade::Mismatch; 2];
            score.confidences = [Confidence::Mismatch; 2];
            score.antigen_mismatches = 2;
        }
        (Effective::Expressed(pe), Effective::Expressed(de)) => {
            let m = [
                [pe[0].meets(de[0]), pe[0].meets(de[1])],
                [pe[1].meets(de[0]), pe[1].meets(de[1])],
            ];
            let count = match_count(m);
            score.mismatches = 2 - count;
            // The better orientation: straight when it pairs both, or pairs one and cross does not pair both.
            let straight = (m[0][0] && m[1][1]) || (!(m[0][1] && m[1][0]) && (m[0][0] || m[1][1]));
            let pairs = if straight {
                [(0, 0), (1, 1)]
            } else {
                [(0, 1), (1, 0)]
            };
            let unmet_patient = (0..2)
                .filter(|&i| !m[i][0] && !m[i][1])
                .count()
                .min(distinct(pe));
            let unmet_donor = (0..2)
                .filter(|&j| !m[0][j] && !m[1][j])
                .count()
                .min(distinct(de));
            score.gvh = (unmet_patient as u8).min(score.mismatches);
            score.hvg = (unmet_donor as u8).min(score.mismatches);
            for (k, (i, j)) in pairs.into_iter().enumerate() {
                let (pp, dp) = (pe[i], de[j]);
                let mut g = grade(pp, dp);
                // The original position was null and carries its partner's set.
                if g != Grade::Mismatch && (p[i].is_null() || d[j].is_null()) {
                    g = Grade::ExpressingVsNull;
                }
                score.grades[k] = g;
                score.confidences[k] = confidence(pp, dp);
            }
            // The mismatched pairs of the chosen orientation (there are `mismatches` of them).
            for (k, (i, j)) in pairs.into_iter().enumerate() {
                if score.grades[k] == Grade::Mismatch {
                    if pe[i].shares_antigen(de[j]) {
                        score.allele_mismatches += 1;
                    } else {
                        score.antigen_mismatches += 1;
                    }
                }
            }
        }
    }
    if locus == Locus::Dpb1 {
        score.tce = Some(if score.mismatches == 0 {
            TceMatch::Matched
        } else {
            tce_match(p, d)
        });
    }
    score
}

/// A patient–donor pair scored over all six loci.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairScore {
    pub loci: [LocusScore; 6],
}

impl PairScore {
    pub fn compute(patient: &Subject, donor: &Subject) -> PairScore {
        PairScore {
            loci: std::array::from_fn(|i| {
                score_locus(Locus::ALL[i], patient[i].as_ref(), donor[i].as_ref())
            }),
        }
    }

    pub fn locus(&self, locus: Locus) -> &LocusScore {
        &self.loci[locus.index()]
    }

    /// Bidirectional mismatches over the given loci.
    pub fn total(&self, loci: &[Locus]) -> u8 {
        loci.iter().map(|l| self.loci[l.index()].mismatches).sum()
    }

    pub fn antigen_mismatches(&self, loci: &[Locus]) -> u8 {
        loci.iter()
            .map(|l| self.loci[l.index()].antigen_mismatches)
            .sum()
    }

    pub fn confidence_points(&self, loci: &[Locus]) -> u32 {
        loci.iter()
            .flat_map(|l| self.loci[l.index()].confidences)
            .map(Confidence::points)
            .sum()
    }

    /// `10/10`, `9/10`, `8/8`…: matched positions over searched positions.
    pub fn grade_text(&self, loci: &[Locus]) -> String {
        let positions = 2 * loci.len() as u8;
        format!("{}/{}", positions - self.total(loci), positions)
    }

    /// Cord unit grading (rules §8): antigen level at A and B, P-group level at DRB1;
    /// returns the mismatch count (0 → 6/6).
    pub fn cord_mismatches(patient: &Subject, donor: &Subject) -> u8 {
        CORD_LOCI
            .iter()
            .map(|&locus| {
                cord_locus_mismatches(
                    locus,
                    patient[locus.index()].as_ref(),
                    donor[locus.index()].as_ref(),
                )
            })
            .sum()
    }
}

/// The loci a cord unit is graded on (rules §8).
pub const CORD_LOCI: [Locus; 3] = [Locus::A, Locus::B, Locus::Drb1];

/// One locus's share of [`PairScore::cord_mismatches`]: it depends on that locus's typings
/// alone, so a search can work it out once per distinct donor genotype.
pub fn cord_locus_mismatches(
    locus: Locus,
    patient: Option<&[Arc<PositionInfo>; 2]>,
    donor: Option<&[Arc<PositionInfo>; 2]>,
) -> u8 {
    if locus == Locus::Drb1 {
        return score_locus(locus, patient, donor).mismatches;
    }
    let (Some(p), Some(d)) = (patient, donor) else {
        return 0;
    };
    let (Effective::Expressed(pe), Effective::Expressed(de)) = (effective(p), effective(d)) else {
        return score_locus(locus, Some(p), Some(d)).mismatches;
    };
    let antigen_meets = |a: &PositionInfo, b: &PositionInfo| a.meets(b) || a.shares_antigen(b);
    let m = [
        [antigen_meets(pe[0], de[0]), antigen_meets(pe[0], de[1])],
        [antigen_meets(pe[1], de[0]), antigen_meets(pe[1], de[1])],
    ];
    2 - match_count(m)
}
