//! Matching engine tests against the real IMGT/HLA 3.58.0 release and MAC subset.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use hla::{Expander, MacDictionary, Release};
use matching::model::days_from_civil;
use matching::{
    Abo, Cmv, Confidence, CordCells, DonorAttributes, DonorIndex, DonorInput, DonorType, Grade,
    Locus, PairScore, SearchRequest, Sex, Status, Subject, SubjectBuilder, TceMatch,
};

fn shared(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared")
        .join(relative)
}

fn expander() -> Arc<Expander> {
    static E: OnceLock<Arc<Expander>> = OnceLock::new();
    E.get_or_init(|| {
        let dir =
            std::env::var_os("BOAI_HLA_DIR").map_or_else(|| shared("imgt-hla"), PathBuf::from);
        let mac = std::env::var_os("BOAI_MAC_FILE")
            .map_or_else(|| shared("mac/alpha.v3.subset.txt"), PathBuf::from);
        Arc::new(Expander::new(
            Arc::new(Release::load(dir).expect("IMGT/HLA release")),
            Arc::new(MacDictionary::load(mac).expect("MAC dictionary")),
        ))
    })
    .clone()
}

fn subject(gl: &str) -> Subject {
    SubjectBuilder::new(expander())
        .from_gl(gl)
        .unwrap_or_else(|e| panic!("{gl}: {e}"))
}

fn score(patient: &str, donor: &str) -> PairScore {
    PairScore::compute(&subject(patient), &subject(donor))
}

const TEN: [Locus; 5] = [Locus::A, Locus::B, Locus::C, Locus::Drb1, Locus::Dqb1];
const PATIENT: &str = "A*01:01+A*02:01^B*08:01+B*44:02^C*07:01+C*05:01^DRB1*03:01+DRB1*04:01^DQB1*02:01+DQB1*03:01^DPB1*04:01+DPB1*04:01";

/// A test donor: key, each locus's two positions as text, attributes.
type TestDonor = (u32, Vec<(Locus, [String; 2])>, DonorAttributes);

/// Donor cells from a GL string: each locus's two positions as text.
fn donor_input(key: u32, gl: &str, attributes: DonorAttributes) -> TestDonor {
    let parsed = hla::GlString::parse(gl).unwrap();
    let loci = hla::locus_typings(&parsed)
        .unwrap()
        .into_iter()
        .map(|t| {
            (
                Locus::from_name(&t.locus).unwrap(),
                [t.positions[0].to_string(), t.positions[1].to_string()],
            )
        })
        .collect();
    (key, loci, attributes)
}

fn index_of(donors: &[TestDonor]) -> DonorIndex {
    let mut index = DonorIndex::new(expander());
    for (key, loci, attributes) in donors {
        let mut input = DonorInput {
            key: *key,
            attributes: attributes.clone(),
            ..Default::default()
        };
        for (l, pair) in loci {
            input.hla[l.index()] = [Some(pair[0].as_str()), Some(pair[1].as_str())];
        }
        index.upsert(&input).unwrap();
    }
    index
}

fn available() -> DonorAttributes {
    DonorAttributes {
        status: Status::Available,
        ..Default::default()
    }
}

#[test]
fn identical_high_resolution_is_ten_of_ten_definite() {
    let s = score(PATIENT, PATIENT);
    assert_eq!(s.total(&TEN), 0);
    assert_eq!(s.grade_text(&TEN), "10/10");
    for l in TEN {
        assert_eq!(s.locus(l).confidences, [Confidence::Exact; 2], "{l}");
        assert_eq!(s.locus(l).grades, [Grade::GDna; 2], "{l}");
    }
    let s = score("A*01:01:01:01+A*02:01:01:01", "A*01:01:01:01+A*02:01:01:01");
    assert_eq!(s.locus(Locus::A).confidences, [Confidence::Definite; 2]);
}

#[test]
fn homozygous_sides_make_mismatches_one_way() {
    let s = score("A*01:01+A*01:01", "A*01:01+A*02:01");
    let a = s.locus(Locus::A);
    assert_eq!((a.mismatches, a.gvh, a.hvg), (1, 0, 1));
    let s = score("A*01:01+A*02:01", "A*01:01+A*01:01");
    let a = s.locus(Locus::A);
    assert_eq!((a.mismatches, a.gvh, a.hvg), (1, 1, 0));
    let s = score("A*01:01+A*02:01", "A*01:01+A*03:01");
    let a = s.locus(Locus::A);
    assert_eq!((a.mismatches, a.gvh, a.hvg), (1, 1, 1));
    // One copy given is read as homozygous.
    assert_eq!(score("A*01:01", "A*01:01+A*02:01").locus(Locus::A).hvg, 1);
}

#[test]
fn nulls_carry_their_partner_and_null_loci_match_only_nothing() {
    let s = score("A*03:01+A*01:11N", "A*03:01+A*03:01");
    assert_eq!(s.locus(Locus::A).mismatches, 0);
    assert_eq!(s.locus(Locus::A).grades[1], Grade::ExpressingVsNull);
    let s = score("A*03:01+A*01:11N", "A*03:01+A*02:01");
    assert_eq!(
        (
            s.locus(Locus::A).mismatches,
            s.locus(Locus::A).hvg,
            s.locus(Locus::A).gvh
        ),
        (1, 1, 0)
    );
    let s = score("C*04:09N+C*04:09N", "C*04:09N+C*04:09N");
    assert_eq!(s.locus(Locus::C).mismatches, 0);
    assert_eq!(s.locus(Locus::C).grades, [Grade::NullVsNull; 2]);
    let s = score("C*04:09N+C*04:09N", "C*07:01+C*07:01");
    assert_eq!(s.locus(Locus::C).mismatches, 2);
    // A null alternative in a list is dropped.
    assert_eq!(
        score("A*01:01+A*02:01", "A*01:01/A*01:11N+A*02:01")
            .locus(Locus::A)
            .mismatches,
        0
    );
}

#[test]
fn untyped_loci_are_potential_matches_and_flagged() {
    let s = score(
        PATIENT,
        "A*01:01+A*02:01^B*08:01+B*44:02^DRB1*03:01+DRB1*04:01",
    );
    assert_eq!(s.total(&TEN), 0);
    assert!(!s.locus(Locus::C).typed && !s.locus(Locus::Dqb1).typed && s.locus(Locus::A).typed);
    assert_eq!(s.locus(Locus::C).confidences, [Confidence::Potential; 2]);
    let s = score(
        PATIENT,
        "A*01:01+A*NEW^B*08:01+B*44:02^DRB1*03:01+DRB1*04:01",
    );
    assert_eq!(s.locus(Locus::A).mismatches, 0);
}

#[test]
fn low_resolution_forms_match_what_they_contain() {
    // MAC AB = 01/02 → A*02:01/A*02:02; XX; G group; serology.
    assert_eq!(
        score("A*02:01+A*02:01", "A*02:AB+A*02:XX")
            .locus(Locus::A)
            .mismatches,
        0
    );
    assert_eq!(
        score("A*02:01+A*02:01", "A*02:AB+A*02:XX")
            .locus(Locus::A)
            .confidences,
        [Confidence::Potential; 2]
    );
    assert_eq!(
        score("A*03:01+A*03:01", "A*02:AB+A*03:XX")
            .locus(Locus::A)
            .mismatches,
        1
    );
    assert_eq!(
        score("A*01:01+A*01:01", "A*01:01:01G+A*01:01P")
            .locus(Locus::A)
            .mismatches,
        0
    );
    let s = score("A*02:01+A*24:02", "A2+A9");
    assert_eq!(s.locus(Locus::A).mismatches, 0);
    let grades = s.locus(Locus::A).grades;
    assert!(
        grades.contains(&Grade::Split) && grades.contains(&Grade::Broad),
        "{grades:?}"
    );
    // Serology siblings are not family: B38 does not meet a B39 allele; it meets the broad B16,
    // and meets B39 only through alleles known just as B16 (a potential, broad-level match).
    assert_eq!(
        score("B38+B38", "B*39:01+B*39:01")
            .locus(Locus::B)
            .mismatches,
        2
    );
    assert_eq!(score("B38+B38", "B16+B16").locus(Locus::B).mismatches, 0);
    let sibling = score("B38+B38", "B39+B39");
    assert_eq!(
        sibling.locus(Locus::B).confidences,
        [Confidence::Potential; 2]
    );
    assert_eq!(sibling.locus(Locus::B).grades, [Grade::Broad; 2]);
    // DR2 as an XX code stands for DR15 and DR16.
    assert_eq!(
        score("DRB1*15:01+DRB1*16:01", "DRB1*02:XX+DRB1*02:XX")
            .locus(Locus::Drb1)
            .mismatches,
        0
    );
}

#[test]
fn allele_and_antigen_mismatches() {
    let s = score("A*02:01+A*02:01", "A*02:05+A*02:05");
    let a = s.locus(Locus::A);
    assert_eq!(
        (a.mismatches, a.allele_mismatches, a.antigen_mismatches),
        (2, 2, 0)
    );
    let s = score("A*02:01+A*02:01", "A*03:01+A*02:01");
    let a = s.locus(Locus::A);
    assert_eq!(
        (a.mismatches, a.allele_mismatches, a.antigen_mismatches),
        (1, 0, 1)
    );
}

#[test]
fn dpb1_permissiveness() {
    let dpb1 = |p: &str, d: &str| score(p, d).locus(Locus::Dpb1).tce.unwrap();
    // 04:01 and 02:01 are TCE group 3, 09:01 group 1.
    assert_eq!(
        dpb1("DPB1*04:01+DPB1*04:01", "DPB1*04:01+DPB1*04:01"),
        TceMatch::Matched
    );
    assert_eq!(
        dpb1("DPB1*04:01+DPB1*04:01", "DPB1*04:01+DPB1*02:01"),
        TceMatch::Permissive
    );
    assert_eq!(
        dpb1("DPB1*04:01+DPB1*04:01", "DPB1*04:01+DPB1*09:01"),
        TceMatch::NonPermissiveHvG
    );
    assert_eq!(
        dpb1("DPB1*04:01+DPB1*09:01", "DPB1*04:01+DPB1*04:01"),
        TceMatch::NonPermissiveGvH
    );
    // DPB1 is scored, never used to exclude a donor.
    let index = index_of(&[donor_input(
        1,
        &PATIENT.replace("DPB1*04:01+DPB1*04:01", "DPB1*09:01+DPB1*09:01"),
        available(),
    )]);
    let result = index
        .search(&SearchRequest::new(subject(PATIENT), 0))
        .unwrap();
    assert_eq!(result.total, 1);
    assert_eq!(result.hits[0].score.locus(Locus::Dpb1).mismatches, 2);
}

#[test]
fn cord_units_are_graded_at_antigen_level_for_a_and_b() {
    let patient = subject("A*02:01+A*24:02^B*40:01+B*46:01^DRB1*09:01+DRB1*15:01");
    let cord = subject("A*02:05+A*24:02^B*40:01+B*46:01^DRB1*09:01+DRB1*15:01");
    assert_eq!(
        PairScore::cord_mismatches(&patient, &cord),
        0,
        "A*02:05 is an A2 antigen match"
    );
    let cord2 = subject("A*02:01+A*24:02^B*40:01+B*46:01^DRB1*09:01+DRB1*15:02");
    assert_eq!(
        PairScore::cord_mismatches(&patient, &cord2),
        1,
        "DRB1 is graded at P-group level"
    );
    let attrs = |tnc: f32| DonorAttributes {
        donor_type: DonorType::Cord,
        cord: Some(CordCells {
            tnc_e7: tnc,
            cd34_e5: 20.0,
        }),
        ..available()
    };
    let far = "A*01:01+A*03:01^B*07:02+B*08:01^DRB1*09:01+DRB1*15:01";
    let index = index_of(&[
        donor_input(
            1,
            "A*02:05+A*24:02^B*40:01+B*46:01^DRB1*09:01+DRB1*15:01",
            attrs(100.0),
        ),
        donor_input(
            2,
            "A*02:05+A*24:02^B*40:01+B*46:01^DRB1*09:01+DRB1*15:01",
            attrs(200.0),
        ),
        donor_input(3, far, attrs(300.0)),
    ]);
    let mut req = SearchRequest::new(patient, 5);
    req.loci = vec![Locus::A, Locus::B, Locus::Drb1];
    req.donor_type = Some(DonorType::Cord);
    req.patient_weight_kg = Some(50.0);
    let result = index.search(&req).unwrap();
    assert_eq!(
        result.total, 2,
        "a cord unit with more than 2 mismatches is not offered"
    );
    assert_eq!(result.hits[0].key, 2, "same grade: the larger dose first");
    let cord = result.hits[0].cord.as_ref().unwrap();
    assert_eq!(cord.grade, "6/6");
    assert_eq!(cord.tnc_e7_per_kg, Some(4.0));
    assert_eq!(cord.dose_sufficient, Some(true));
    assert_eq!(
        result.hits[0].grade(&req.loci),
        "5/6",
        "A*02:05 is an allele mismatch at P-group level"
    );
}

#[test]
fn ranking_follows_the_default_policy_and_breaks_ties_on_key() {
    let today = days_from_civil(2026, 1, 1);
    let born = |y: i32| Some(days_from_civil(y, 6, 1) as u16);
    let with = |year: i32, sex: Sex, cmv: Cmv| DonorAttributes {
        birth_day: born(year),
        sex,
        cmv,
        abo: Abo::A,
        ..available()
    };
    let one_allele_mm = PATIENT.replace("A*02:01", "A*02:05");
    let one_antigen_mm = PATIENT.replace("A*02:01", "A*03:01");
    let donors = vec![
        donor_input(7, PATIENT, with(1990, Sex::Male, Cmv::Negative)),
        donor_input(3, PATIENT, with(1990, Sex::Male, Cmv::Negative)),
        donor_input(5, PATIENT, with(2000, Sex::Female, Cmv::Negative)),
        donor_input(9, PATIENT, with(2000, Sex::Male, Cmv::Negative)),
        donor_input(2, &one_antigen_mm, with(2005, Sex::Male, Cmv::Negative)),
        donor_input(4, &one_allele_mm, with(1980, Sex::Male, Cmv::Negative)),
    ];
    let index = index_of(&donors);
    let mut req = SearchRequest::new(subject(PATIENT), 2);
    req.today = today;
    let keys: Vec<u32> = index
        .search(&req)
        .unwrap()
        .hits
        .iter()
        .map(|h| h.key)
        .collect();
    // 0 mismatches: younger first (2000: male before female), then 1990 tie → key 3 before 7;
    // then the allele mismatch before the antigen mismatch.
    assert_eq!(keys, [9, 5, 3, 7, 4, 2]);
    for _ in 0..3 {
        let again: Vec<u32> = index
            .search(&req)
            .unwrap()
            .hits
            .iter()
            .map(|h| h.key)
            .collect();
        assert_eq!(again, keys);
    }
    req.limit = 2;
    let result = index.search(&req).unwrap();
    assert_eq!((result.total, result.hits.len()), (6, 2));
    assert_eq!(
        result.hits.iter().map(|h| h.rank).collect::<Vec<_>>(),
        [1, 2]
    );
}

#[test]
fn filters_limits_and_index_updates() {
    let attrs = |registry: &str, year: i32| DonorAttributes {
        registry: registry.into(),
        birth_day: Some(days_from_civil(year, 3, 1) as u16),
        ..available()
    };
    let mut index = index_of(&[
        donor_input(1, PATIENT, attrs("CMDP-01", 1990)),
        donor_input(2, PATIENT, attrs("CMDP-02", 2000)),
        donor_input(
            3,
            &PATIENT.replace("A*02:01", "A*03:01"),
            attrs("CMDP-01", 1995),
        ),
    ]);
    let mut req = SearchRequest::new(subject(PATIENT), 1);
    req.today = days_from_civil(2026, 1, 1);
    let keys = |index: &DonorIndex, req: &SearchRequest| {
        let mut k: Vec<u32> = index
            .search(req)
            .unwrap()
            .hits
            .iter()
            .map(|h| h.key)
            .collect();
        k.sort();
        k
    };
    assert_eq!(keys(&index, &req), [1, 2, 3]);
    req.locus_max[Locus::A.index()] = 0;
    assert_eq!(keys(&index, &req), [1, 2]);
    req.locus_max[Locus::A.index()] = 2;
    req.registries = vec!["CMDP-01".into()];
    assert_eq!(keys(&index, &req), [1, 3]);
    req.registries.clear();
    req.age_range = Some((30, 40));
    assert_eq!(keys(&index, &req), [1, 3]);
    req.age_range = None;
    // Status change, removal and re-typing take effect at once.
    index.set_status(1, Status::TemporarilyUnavailable).unwrap();
    assert_eq!(keys(&index, &req), [2, 3]);
    // A donor offered whatever its status (RS for this patient), other filters still on.
    index.set_status(2, Status::Reserved).unwrap();
    assert_eq!(keys(&index, &req), [3]);
    req.also_offered = vec![2, 2, 999];
    assert_eq!(keys(&index, &req), [2, 3]);
    req.registries = vec!["CMDP-01".into()];
    assert_eq!(keys(&index, &req), [3], "the registry filter still applies");
    req.registries.clear();
    req.also_offered = vec![3];
    assert_eq!(keys(&index, &req), [3], "an AV donor is not found twice");
    req.also_offered.clear();
    index.set_status(2, Status::Available).unwrap();
    assert_eq!(keys(&index, &req), [2, 3]);
    index.remove(2).unwrap();
    assert_eq!(keys(&index, &req), [3]);
    assert!(!index.contains(2) && index.remove(2).is_err());
    let (_, loci, _) = donor_input(
        3,
        &PATIENT
            .replace("A*02:01", "A*03:01")
            .replace("B*08:01", "B*07:02"),
        attrs("CMDP-01", 1995),
    );
    let mut input = DonorInput {
        key: 3,
        attributes: attrs("CMDP-01", 1995),
        ..Default::default()
    };
    for (l, pair) in &loci {
        input.hla[l.index()] = [Some(pair[0].as_str()), Some(pair[1].as_str())];
    }
    index.upsert(&input).unwrap();
    assert_eq!(keys(&index, &req), Vec::<u32>::new(), "two mismatches now");
    assert_eq!(index.len(), 2);
    // Invalid HLA is refused and names the token.
    input.hla[0] = [Some("A*99:99"), Some("A*01:01")];
    let err = index.upsert(&input).unwrap_err().to_string();
    assert!(err.contains("A*99:99"), "{err}");
    // Request validation.
    let mut bad = SearchRequest::new(subject(PATIENT), 6);
    assert!(index.search(&bad).is_err());
    bad.max_mismatches = 1;
    bad.loci = vec![Locus::A, Locus::B];
    assert!(index.search(&bad).unwrap_err().to_string().contains("DRB1"));
}

/// Typing pools per locus: high resolution, MACs, XX, G/P groups, serology, nulls, NEW.
const POOLS: [&[&str]; 6] = [
    &[
        "*01:01",
        "*02:01",
        "*02:05",
        "*02:XX",
        "*02:AB",
        "*24:02",
        "*24:XX",
        "2",
        "24",
        "9",
        "*01:01:01G",
        "*01:11N",
        "NEW",
        "*03:01",
        "*11:01",
        "*02:01P",
    ],
    &[
        "*08:01",
        "*44:02",
        "*44:XX",
        "*07:02",
        "*35:BRKR",
        "44",
        "12",
        "*40:01",
        "*15:01",
        "*46:01",
        "*07:02:01G",
    ],
    &[
        "*07:01", "*05:01", "*07:XX", "*04:09N", "3", "*01:02", "*03:04",
    ],
    &[
        "*03:01", "*04:01", "*04:XX", "*15:01", "*02:XX", "4", "*09:01", "*11:PPV", "*14:XX",
    ],
    &["*02:01", "*03:01", "*03:XX", "*06:02", "2", "*05:01"],
    &["*04:01", "*02:01", "*09:01", "*05:01", "*13:01"],
];

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn cells() -> impl Strategy<Value = [Option<(usize, usize)>; 6]> {
        let locus =
            |l: usize| proptest::option::weighted(0.85, (0..POOLS[l].len(), 0..POOLS[l].len()));
        (locus(0), locus(1), locus(2), locus(3), locus(4), locus(5))
            .prop_map(|(a, b, c, d, e, f)| [a, b, c, d, e, f])
    }

    fn to_input(key: u32, c: &[Option<(usize, usize)>; 6], cord: bool) -> DonorInput<'static> {
        let mut input = DonorInput {
            key,
            attributes: DonorAttributes {
                donor_type: if cord {
                    DonorType::Cord
                } else {
                    DonorType::Adult
                },
                cord: cord.then_some(CordCells {
                    tnc_e7: 100.0,
                    cd34_e5: 20.0,
                }),
                ..available()
            },
            ..Default::default()
        };
        for (l, pair) in c.iter().enumerate() {
            if let Some((a, b)) = pair {
                input.hla[l] = [Some(POOLS[l][*a]), Some(POOLS[l][*b])];
            }
        }
        input
    }

    /// The default order without its "total first" hint: the search scores every donor.
    struct ScoresEveryone;

    impl matching::RankingPolicy for ScoresEveryone {
        fn name(&self) -> &str {
            "scores-everyone"
        }
        fn compare(
            &self,
            a: &matching::SearchHit,
            b: &matching::SearchHit,
            context: &matching::RankingContext<'_>,
        ) -> std::cmp::Ordering {
            matching::DefaultPolicy.compare(a, b, context)
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

        /// The indexed search returns exactly what brute-force pairwise scoring selects.
        #[test]
        fn search_equals_brute_force(
            patient in cells(),
            donors in prop::collection::vec((cells(), prop::bool::weighted(0.1)), 1..120),
            max in 0u8..=5,
            a_max in 0u8..=2,
            eight in any::<bool>(),
            postings_after in prop::option::of(0usize..120),
            rewrites in prop::collection::vec((0usize..120, cells()), 0..8),
            removals in prop::collection::vec(0usize..120, 0..4),
            limit in 1usize..24,
        ) {
            let mut index = DonorIndex::new(expander());
            // Posting lists (when built) always prune, whatever their share of rows.
            index.set_candidate_share(1.0);
            for (i, (c, cord)) in donors.iter().enumerate() {
                if postings_after == Some(i) {
                    index.build_postings();
                }
                index.upsert(&to_input(i as u32 + 1, c, *cord)).unwrap();
            }
            if postings_after.is_some_and(|n| n >= donors.len()) {
                index.build_postings();
            }
            // Writes after the snapshot: re-typed donors and removed ones.
            for (i, c) in &rewrites {
                let i = i % donors.len();
                index.upsert(&to_input(i as u32 + 1, c, donors[i].1)).unwrap();
            }
            for i in &removals {
                let _ = index.remove((i % donors.len()) as u32 + 1);
            }
            let patient_input = to_input(0, &patient, false);
            let mut patient_index = DonorIndex::new(expander());
            let row = patient_index.upsert(&DonorInput { key: 1, ..patient_input }).unwrap();
            let patient_subject = patient_index.subject(row);
            let mut req = SearchRequest::new(patient_subject.clone(), max);
            req.locus_max[Locus::A.index()] = a_max;
            if eight { req.loci = vec![Locus::A, Locus::B, Locus::C, Locus::Drb1]; }
            req.limit = usize::MAX;
            let result = index.search(&req).unwrap();
            let mut expected = Vec::new();
            for (i, _) in donors.iter().enumerate() {
                let key = i as u32 + 1;
                let Some(row) = index.row(key) else { continue };
                let donor = index.subject(row);
                let s = PairScore::compute(&patient_subject, &donor);
                let cord_ok = index.attributes(row).donor_type != DonorType::Cord
                    || PairScore::cord_mismatches(&patient_subject, &donor) <= 2;
                if s.total(&req.loci) <= max && s.locus(Locus::A).mismatches <= a_max
                    && req.loci.iter().all(|l| s.locus(*l).mismatches <= 2) && cord_ok {
                    expected.push((key, s.total(&req.loci), s));
                }
            }
            prop_assert_eq!(result.total, expected.len());
            let mut got: Vec<(u32, u8, PairScore)> = result.hits.iter().map(|h| (h.key, h.total, h.score)).collect();
            got.sort_by_key(|g| g.0);
            prop_assert_eq!(got, expected);
            // Each cord unit's 6/6 grade (graded once per genotype) is its pairwise grade.
            for h in &result.hits {
                let pairwise = (index.attributes(h.row).donor_type == DonorType::Cord)
                    .then(|| PairScore::cord_mismatches(&patient_subject, &index.subject(h.row)));
                prop_assert_eq!(h.cord.as_ref().map(|c| c.mismatches), pairwise, "donor {}", h.key);
            }
            // A limited request: scoring only the lowest totals that fill the limit (the
            // default policy ranks by total first) returns what scoring everyone would.
            req.limit = limit;
            let cut = index.search(&req).unwrap();
            req.policy = Arc::new(ScoresEveryone);
            let full = index.search(&req).unwrap();
            prop_assert_eq!(cut.total, full.total);
            let ranked = |r: &matching::SearchResult| -> Vec<(usize, u32, u8)> {
                r.hits.iter().map(|h| (h.rank, h.key, h.total)).collect()
            };
            prop_assert_eq!(ranked(&cut), ranked(&full));
            // The index through snapshot bytes: the same bytes again, the same ranked
            // results, and the next write lands in the same row.
            let bytes = index.snapshot_bytes();
            let mut loaded = DonorIndex::from_snapshot_bytes(expander(), &bytes).unwrap();
            prop_assert!(loaded.snapshot_bytes() == bytes);
            prop_assert_eq!(loaded.len(), index.len());
            req.policy = Arc::new(matching::DefaultPolicy);
            let again = loaded.search(&req).unwrap();
            prop_assert_eq!(again.total, cut.total);
            prop_assert_eq!(ranked(&again), ranked(&cut));
            let next = to_input(donors.len() as u32 + 1, &patient, false);
            prop_assert_eq!(loaded.upsert(&next).unwrap(), index.upsert(&next).unwrap());
            // Batch counts agree with pairwise scoring too.
            for (row, counts) in index.mismatch_counts(&patient_subject) {
                let s = PairScore::compute(&patient_subject, &index.subject(row));
                for l in Locus::ALL {
                    prop_assert_eq!(counts[l.index()], s.locus(l).mismatches);
                }
            }
        }
    }
}

#[test]
fn ids_widen_past_65535_distinct_typings_without_changing_results() {
    let release = expander().release_arc().clone();
    let names: Vec<String> = release
        .alleles
        .iter()
        .filter(|a| release.locus(a.locus).name == "B" && !a.is_null())
        .map(|a| a.name.clone())
        .take(400)
        .collect();
    let mut index = DonorIndex::new(expander());
    let mut key = 1;
    let base = |index: &mut DonorIndex, key: u32, b: &str| {
        let mut input = DonorInput {
            key,
            attributes: available(),
            ..Default::default()
        };
        input.hla[0] = [Some("A*01:01"), Some("A*02:01")];
        input.hla[1] = [Some(b), Some("B*44:02")];
        input.hla[3] = [Some("DRB1*03:01"), Some("DRB1*04:01")];
        index.upsert(&input).unwrap();
    };
    base(&mut index, key, "B*08:01");
    key += 1;
    let req = SearchRequest::new(
        subject("A*01:01+A*02:01^B*08:01+B*44:02^DRB1*03:01+DRB1*04:01"),
        0,
    );
    let before = index.search(&req).unwrap();
    'outer: for i in 0..names.len() {
        for j in i + 1..names.len() {
            if index.distinct_positions(Locus::B) > 65_600 {
                break 'outer;
            }
            index
                .position_id(Locus::B, &format!("{}/{}", names[i], names[j]))
                .unwrap();
        }
    }
    base(&mut index, key, &format!("{}/{}", names[398], names[399]));
    let after = index.search(&req).unwrap();
    assert_eq!(
        before.hits.iter().map(|h| h.key).collect::<Vec<_>>(),
        after.hits.iter().map(|h| h.key).collect::<Vec<_>>()
    );
    assert_eq!(index.len(), 2);
}

mod probability {
    use super::*;
    use hla::PositionKind;
    use matching::HaplotypeSet;
    use matching::score::match_count;
    use proptest::prelude::*;

    const LOCI3: [Locus; 3] = [Locus::A, Locus::B, Locus::Drb1];
    /// Small sets: haplotypes over A, B, DRB1.
    const HAPS: &[([&str; 3], f64)] = &[
        (["A*02:01", "B*40:01", "DRB1*09:01"], 0.20),
        (["A*24:02", "B*46:01", "DRB1*15:01"], 0.15),
        (["A*02:07", "B*46:01", "DRB1*09:01"], 0.12),
        (["A*11:01", "B*40:01", "DRB1*12:01"], 0.10),
        (["A*02:01", "B*46:01", "DRB1*15:01"], 0.08),
        (["A*24:02", "B*40:02", "DRB1*09:01"], 0.07),
        (["A*33:03", "B*58:01", "DRB1*03:01"], 0.06),
        (["A*11:01", "B*15:01", "DRB1*04:05"], 0.05),
        (["A*02:06", "B*40:01", "DRB1*15:01"], 0.04),
    ];

    fn set_json(haps: &[([&str; 3], f64)]) -> String {
        let h: Vec<serde_json::Value> = haps
            .iter()
            .map(|(a, f)| serde_json::json!({"alleles": a, "frequency": f}))
            .collect();
        serde_json::json!({"population": "TEST", "loci": ["A", "B", "DRB1"], "haplotypes": h})
            .to_string()
    }

    fn set(haps: &[([&str; 3], f64)]) -> HaplotypeSet {
        HaplotypeSet::from_json(&set_json(haps), expander().release()).unwrap()
    }

    fn key(name: &str) -> u32 {
        let e = expander();
        let s = e.expand_text(name, None).unwrap();
        let PositionKind::Expressed(set) = &s.kind else {
            panic!()
        };
        let ids: Vec<u32> = set.ids().collect();
        assert_eq!(ids.len(), 1, "{name}");
        ids[0]
    }

    /// Every haplotype pair of the set, by brute force (rules §7 as written).
    fn brute(
        haps: &[([&str; 3], f64)],
        patient: &Subject,
        donor: &Subject,
    ) -> Option<([f64; 4], Vec<[f64; 3]>)> {
        let keys: Vec<[u32; 3]> = haps
            .iter()
            .map(|(a, _)| [key(a[0]), key(a[1]), key(a[2])])
            .collect();
        let fits = |pos: &Arc<matching::PositionInfo>, k: u32| match &pos.set.kind {
            PositionKind::Expressed(s) => s.contains(k),
            _ => true,
        };
        let genotypes = |subject: &Subject| {
            let mut out = Vec::new();
            for i in 0..haps.len() {
                for j in i..haps.len() {
                    let ok = LOCI3
                        .iter()
                        .enumerate()
                        .all(|(s, l)| match &subject[l.index()] {
                            None => true,
                            Some([p1, p2]) => {
                                (fits(p1, keys[i][s]) && fits(p2, keys[j][s]))
                                    || (fits(p1, keys[j][s]) && fits(p2, keys[i][s]))
                            }
                        });
                    if ok {
                        let w = haps[i].1 * haps[j].1 * if i == j { 1.0 } else { 2.0 };
                        out.push((i, j, w));
                    }
                }
            }
            out
        };
        let (pg, dg) = (genotypes(patient), genotypes(donor));
        if pg.is_empty() || dg.is_empty() {
            return None;
        }
        let (wp, wd): (f64, f64) = (pg.iter().map(|g| g.2).sum(), dg.iter().map(|g| g.2).sum());
        let mut totals = [0.0; 4];
        let mut per_locus = vec![[0.0; 3]; 3];
        for &(a, b, w1) in &pg {
            for &(c, d, w2) in &dg {
                let mut total = 0;
                for s in 0..3 {
                    let (x, y, u, v) = (keys[a][s], keys[b][s], keys[c][s], keys[d][s]);
                    let mm = (2 - match_count([[x == u, x == v], [y == u, y == v]])) as usize;
                    per_locus[s][mm] += w1 * w2 / (wp * wd);
                    total += mm;
                }
                totals[total.min(3)] += w1 * w2 / (wp * wd);
            }
        }
        Some((totals, per_locus))
    }

    const POOL: [&[&str]; 3] = [
        &[
            "A*02:01", "A*24:02", "A*02:XX", "A*11:01", "A*02:AB", "A*24:XX", "A*33:03", "A*NEW",
            "A2", "A*02:06",
        ],
        &[
            "B*40:01", "B*46:01", "B*40:XX", "B*58:01", "B*15:01", "B*40:02", "B*46:XX",
        ],
        &[
            "DRB1*09:01",
            "DRB1*15:01",
            "DRB1*15:XX",
            "DRB1*12:01",
            "DRB1*04:XX",
            "DRB1*03:01",
            "DR9",
        ],
    ];

    fn typing() -> impl Strategy<Value = String> {
        let locus =
            |l: usize| proptest::option::weighted(0.8, (0..POOL[l].len(), 0..POOL[l].len()));
        (locus(0), locus(1), locus(2)).prop_map(|(a, b, c)| {
            let parts: Vec<String> = [a, b, c]
                .iter()
                .enumerate()
                .filter_map(|(l, p)| p.map(|(x, y)| format!("{}+{}", POOL[l][x], POOL[l][y])))
                .collect();
            if parts.is_empty() {
                "A*02:01+A*24:02".to_string()
            } else {
                parts.join("^")
            }
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn agrees_with_brute_force_and_sums_to_one(p in typing(), d in typing()) {
            let set = set(HAPS);
            let (patient, donor) = (subject(&p), subject(&d));
            let got = set.match_probability(&patient, &donor, &LOCI3).unwrap();
            match brute(HAPS, &patient, &donor) {
                None => {
                    prop_assert!(got.patient_unrepresented || got.donor_unrepresented);
                    prop_assert!(got.p0.is_none());
                }
                Some((totals, per_locus)) => {
                    let ps = [got.p0.unwrap(), got.p1.unwrap(), got.p2.unwrap(), got.p_more.unwrap()];
                    for k in 0..4 {
                        prop_assert!((ps[k] - totals[k]).abs() < 1e-9, "P({k}) {} vs {}", ps[k], totals[k]);
                    }
                    prop_assert!((ps.iter().sum::<f64>() - 1.0).abs() < 1e-9);
                    for (s, (_, pl)) in got.per_locus.iter().enumerate() {
                        let pl = pl.unwrap();
                        for m in 0..3 {
                            prop_assert!((pl[m] - per_locus[s][m]).abs() < 1e-9);
                        }
                        prop_assert!((pl.iter().sum::<f64>() - 1.0).abs() < 1e-9);
                    }
                }
            }
            // File order never matters.
            let mut reversed: Vec<([&str; 3], f64)> = HAPS.to_vec();
            reversed.reverse();
            let again = self::set(&reversed).match_probability(&patient, &donor, &LOCI3).unwrap();
            for (a, b) in [(got.p0, again.p0), (got.p1, again.p1), (got.p2, again.p2), (got.p_more, again.p_more)] {
                prop_assert!(a.zip(b).is_none_or(|(a, b)| (a - b).abs() < 1e-12) && a.is_some() == b.is_some());
            }
        }
    }

    #[test]
    fn hand_worked_cases() {
        let set = set(HAPS);
        let p = subject("A*02:01+A*24:02^B*40:01+B*46:01^DRB1*09:01+DRB1*15:01");
        let r = set.match_probability(&p, &p, &LOCI3).unwrap();
        assert!(
            (r.p0.unwrap() - 1.0).abs() < 1e-12,
            "identical high resolution: {r:?}"
        );
        // Unrepresented: an allele no haplotype carries.
        let q = subject("A*01:01+A*24:02^B*40:01+B*46:01^DRB1*09:01+DRB1*15:01");
        let r = set.match_probability(&q, &p, &LOCI3).unwrap();
        assert!(r.patient_unrepresented && !r.donor_unrepresented && r.p0.is_none());
        // Untyped DRB1: the population's odds at that locus. In a set where A and B carry no
        // information, P(DRB1 match) is the frequency of the patient's DRB1 genotype.
        let flat = [
            (["A*02:01", "B*40:01", "DRB1*09:01"], 0.5),
            (["A*02:01", "B*40:01", "DRB1*15:01"], 0.3),
            (["A*02:01", "B*40:01", "DRB1*12:01"], 0.2),
        ];
        let flat_set = self::set(&flat);
        let patient = subject("A*02:01+A*02:01^B*40:01+B*40:01^DRB1*09:01+DRB1*15:01");
        let donor = subject("A*02:01+A*02:01^B*40:01+B*40:01");
        let r = flat_set
            .match_probability(&patient, &donor, &LOCI3)
            .unwrap();
        let drb1 = r.per_locus[2].1.unwrap();
        assert!((drb1[0] - 2.0 * 0.5 * 0.3).abs() < 1e-12, "{drb1:?}");
        // P(2 mismatches): donor DRB1 12:01+12:01.
        assert!((drb1[2] - 0.2 * 0.2).abs() < 1e-12, "{drb1:?}");
        assert!((r.p0.unwrap() - drb1[0]).abs() < 1e-12);
    }

    #[test]
    fn the_nmdp_file_loads_with_every_population_and_a_global_fallback() {
        let text =
            std::fs::read_to_string(shared("frequencies/NMDP_2007_FiveLocus_Freqs.csv")).unwrap();
        let release = expander().release_arc().clone();
        for pop in ["API", "EUR", "AFA", "HIS"] {
            let s = HaplotypeSet::from_nmdp_csv(&text, pop, false, &release).unwrap();
            assert!(s.len() > 1000, "{pop}");
            assert!(s.unmapped_mass < 0.01, "{pop}: {:?}", s.unmapped);
        }
        let global = HaplotypeSet::from_nmdp_csv(&text, "XYZ", true, &release).unwrap();
        assert_eq!(global.name, "GLOBAL");
        assert!(HaplotypeSet::from_nmdp_csv(&text, "XYZ", false, &release).is_err());
        // Imputation of a typical low-resolution donor lists consistent pairs only.
        let set = HaplotypeSet::from_nmdp_csv(&text, "API", false, &release).unwrap();
        let donor = subject("A*02:XX+A*24:XX^B*40:XX+B*46:XX^DRB1*09:XX+DRB1*15:XX");
        let pairs = set.impute(&donor);
        assert!(!pairs.is_empty());
        let total: f64 = pairs.iter().map(|p| p.2).sum();
        assert!(total > 0.0 && total < 1.0);
        for (a, b, w) in pairs.iter().take(50) {
            assert!(a <= b);
            let f = set.frequency(*a) * set.frequency(*b) * if a == b { 1.0 } else { 2.0 };
            assert!((f - w).abs() < 1e-15);
        }
        // JSON errors are clear.
        assert!(HaplotypeSet::from_json("{", &release).is_err());
        let bad = r#"{"population":"X","loci":["A","DPB1"],"haplotypes":[]}"#;
        assert!(
            HaplotypeSet::from_json(bad, &release)
                .unwrap_err()
                .to_string()
                .contains("DPB1")
        );
    }

    #[test]
    fn search_adds_probabilities_and_can_rank_by_them() {
        let text =
            std::fs::read_to_string(shared("frequencies/NMDP_2007_FiveLocus_Freqs.csv")).unwrap();
        let set = Arc::new(
            HaplotypeSet::from_nmdp_csv(&text, "API", false, expander().release()).unwrap(),
        );
        let patient = "A*02:01+A*24:02^B*40:01+B*46:01^C*01:02+C*03:04^DRB1*09:01+DRB1*15:01^DQB1*03:03+DQB1*06:02";
        let index = index_of(&[
            donor_input(
                1,
                "A*02:XX+A*24:XX^B*40:XX+B*46:XX^DRB1*09:XX+DRB1*15:XX",
                available(),
            ),
            donor_input(2, patient, available()),
            donor_input(
                3,
                "A*02:01+A*24:02^B*40:01+B*46:01^DRB1*09:01+DRB1*15:01",
                available(),
            ),
        ]);
        let mut req = SearchRequest::new(subject(patient), 0);
        req.probability = Some(matching::ProbabilityOptions { set });
        req.rank_by_probability();
        let result = index.search(&req).unwrap();
        assert_eq!(result.total, 3);
        assert!(result.policy.starts_with("probability-within-grade-v1"));
        let p0: Vec<f64> = result
            .hits
            .iter()
            .map(|h| h.probability.as_ref().unwrap().p0.unwrap())
            .collect();
        assert!(p0.windows(2).all(|w| w[0] >= w[1]), "{p0:?}");
        assert_eq!(result.hits[0].key, 2);
        assert!((p0[0] - 1.0).abs() < 1e-12);
        // Ranking by probability without a frequency set is refused, naming the field.
        let mut without = SearchRequest::new(subject(patient), 0);
        without.rank_by_probability();
        assert_eq!(index.search(&without).unwrap_err().field(), "probability");
    }
}

#[test]
fn typing_resolution_per_locus_is_the_coarser_position() {
    let index = index_of(&[
        donor_input(
            1,
            "A*02:01+A*02:AB^B*07:02+B*08:01:01G^C*07:02+C*07:XX^DRB1*15:01+DRB1*15:01^DQB1*06:02+DQB1*06:02",
            available(),
        ),
        donor_input(2, "A2+A24^B7+B8^DRB1*15:01+DRB1*04:01", available()),
    ]);
    let loci = [Locus::A, Locus::B, Locus::C, Locus::Drb1, Locus::Dqb1];
    let code = |key: u32| -> Vec<&str> {
        index
            .resolutions(index.row(key).unwrap(), &loci)
            .into_iter()
            .map(|r| r.code())
            .collect()
    };
    // A MAC or an XX code makes the locus a group; a G group is one allele's resolution.
    assert_eq!(code(1), ["group", "allele", "group", "allele", "allele"]);
    assert_eq!(
        code(2),
        ["serology", "serology", "untyped", "allele", "untyped"]
    );
}

#[test]
fn a_damaged_snapshot_is_refused_without_panicking() {
    let mut donors = Vec::new();
    for (key, gl) in [
        (1, PATIENT.to_string()),
        (2, PATIENT.replace("A*02:01", "A*24:XX")),
        (7, PATIENT.replace("B*08:01", "B*44:02")),
    ] {
        donors.push(donor_input(key, &gl, available()));
    }
    let mut cord = available();
    cord.donor_type = DonorType::Cord;
    cord.cord = Some(CordCells {
        tnc_e7: 150.0,
        cd34_e5: 20.0,
    });
    donors.push(donor_input(9, PATIENT, cord));
    let mut index = index_of(&donors);
    index.remove(2).unwrap();
    index.build_postings();
    let bytes = index.snapshot_bytes();
    let loaded = DonorIndex::from_snapshot_bytes(expander(), &bytes).unwrap();
    assert_eq!(loaded.snapshot_bytes(), bytes);
    assert_eq!(
        loaded.attributes(loaded.row(9).unwrap()),
        index.attributes(index.row(9).unwrap())
    );
    for cut in 0..bytes.len() {
        assert!(
            DonorIndex::from_snapshot_bytes(expander(), &bytes[..cut]).is_err(),
            "cut at {cut}"
        );
    }
    // Every byte changed: an error or an index that holds together, never a panic. (A
    // key's top bits flipped would ask for a key map gigabytes long: the file's checksum
    // keeps such damage out, so the low bit stands in for it here.)
    for at in 0..bytes.len() {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x01;
        if let Ok(other) = DonorIndex::from_snapshot_bytes(expander(), &damaged) {
            let req = SearchRequest::new(subject(PATIENT), 2);
            other.search(&req).unwrap();
            for row in 0..other.rows() as u32 {
                if other.row(other.key(row)) == Some(row) {
                    other.attributes(row);
                    other.subject(row);
                }
            }
        }
    }
    let Err(err) = DonorIndex::from_snapshot_bytes(expander(), b"not a snapshot") else {
        panic!("read as a snapshot")
    };
    assert!(err.to_string().contains("layout"), "{err}");
}
