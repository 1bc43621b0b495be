//! A search run as the API shows it (`SearchRun`, pages of its hits) and as the registry
//! stores it (`StoredRun`, a compact JSON form read back for paging and re-run diffs).

use std::borrow::Cow;

use axum::http::StatusCode;
use matching::Locus;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;

/// One locus of a hit: mismatches, direction, typed, grades per position, antigen and
/// allele mismatches.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LocusDetail {
    pub mismatches: u8,
    pub gvh: u8,
    pub hvg: u8,
    pub typed: bool,
    #[schema(value_type = [String; 2])]
    pub grades: [Cow<'static, str>; 2],
    pub antigen_mismatches: u8,
    pub allele_mismatches: u8,
    /// How finely the donor is typed here: `allele`, `group` (allele group, MAC, XX or a
    /// list), `serology` or `untyped`.
    #[schema(value_type = String)]
    #[serde(default)]
    pub resolution: Cow<'static, str>,
    /// With probabilities: P(0), P(1), P(2) mismatches at this locus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<[f64; 3]>,
}

/// Match probabilities over the matched loci the frequency set carries (`null` where the
/// patient's or donor's typing is outside it).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HitProbability {
    pub p0: Option<f64>,
    pub p1: Option<f64>,
    pub p2: Option<f64>,
    pub p_more: Option<f64>,
}

/// One ranked donor of a search run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SearchHitOut {
    pub rank: usize,
    pub donor_id: u64,
    /// The donor's GRID (registry operations §2).
    #[serde(default)]
    pub grid: String,
    pub mismatches: u8,
    pub grade: String,
    #[schema(value_type = String)]
    pub donor_type: Cow<'static, str>,
    pub age: Option<u32>,
    #[schema(value_type = String)]
    #[serde(default)]
    pub sex: Cow<'static, str>,
    #[schema(value_type = String)]
    #[serde(default)]
    pub abo: Cow<'static, str>,
    /// `+`, `-` or `?`.
    #[schema(value_type = String)]
    #[serde(default)]
    pub rh: Cow<'static, str>,
    #[schema(value_type = String)]
    #[serde(default)]
    pub cmv: Cow<'static, str>,
    /// The donor's status now (AV, TU, RS, DE), read whenever the run is shown.
    #[schema(value_type = String)]
    #[serde(default)]
    pub status: Cow<'static, str>,
    /// Whether the donor can be asked for this patient now: false once withdrawn, TU, DE
    /// or reserved for another patient since the run.
    #[serde(default)]
    pub available: bool,
    /// Why a donor is not available (`withdrawn`, `reserved for another patient`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_note: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<HitProbability>,
    /// Per matched locus, by name.
    #[schema(value_type = std::collections::BTreeMap<String, LocusDetail>)]
    pub loci: std::collections::BTreeMap<Cow<'static, str>, LocusDetail>,
}

/// A search run: every donor that qualified (`total`), the first `keep` ranked. Stored in
/// the compact `StoredRun` form.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct SearchRun {
    pub total: usize,
    #[serde(default)]
    pub policy: String,
    pub hits: Vec<SearchHitOut>,
    #[serde(default)]
    pub search_ms: f64,
}

/// A page of a run's hits.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchPage<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    pub total: usize,
    pub kept: usize,
    pub offset: usize,
    pub policy: &'a str,
    pub hits: &'a [SearchHitOut],
}

impl SearchRun {
    pub fn page(&self, id: Option<i64>, offset: usize, limit: usize) -> SearchPage<'_> {
        let from = offset.min(self.hits.len());
        let to = (from + limit.clamp(1, 1000)).min(self.hits.len());
        SearchPage {
            id,
            total: self.total,
            kept: self.hits.len(),
            offset,
            policy: &self.policy,
            hits: &self.hits[from..to],
        }
    }

    /// The run as CSV (RFC 4180, via the `csv` crate): one row per kept hit, in rank order,
    /// then per matched locus its mismatches, position grades and typing resolution.
    pub fn to_csv(&self) -> Result<Vec<u8>, String> {
        let mut loci: Vec<Locus> = self
            .hits
            .iter()
            .flat_map(|h| h.loci.keys().filter_map(|l| l.parse::<Locus>().ok()))
            .collect();
        loci.sort();
        loci.dedup();
        let mut w = csv::Writer::from_writer(Vec::new());
        let mut header: Vec<String> = [
            "rank",
            "donor_id",
            "grid",
            "donor_type",
            "grade",
            "mismatches",
            "age",
            "sex",
            "abo",
            "rh",
            "cmv",
            "status",
            "available",
            "status_note",
            "p0",
            "p1",
            "p2",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for l in &loci {
            for what in ["mismatches", "grades", "resolution"] {
                header.push(format!("{l}_{what}"));
            }
        }
        w.write_record(&header).map_err(|e| e.to_string())?;
        let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.6}"));
        for h in &self.hits {
            let p = h.probability.as_ref();
            let mut row = vec![
                h.rank.to_string(),
                h.donor_id.to_string(),
                h.grid.clone(),
                h.donor_type.to_string(),
                h.grade.clone(),
                h.mismatches.to_string(),
                h.age.map_or(String::new(), |a| a.to_string()),
                h.sex.to_string(),
                h.abo.to_string(),
                h.rh.to_string(),
                h.cmv.to_string(),
                h.status.to_string(),
                h.available.to_string(),
                h.status_note.clone().unwrap_or_default(),
                opt(p.and_then(|p| p.p0)),
                opt(p.and_then(|p| p.p1)),
                opt(p.and_then(|p| p.p2)),
            ];
            for l in &loci {
                match h.loci.get(l.name()) {
                    Some(d) => {
                        row.push(d.mismatches.to_string());
                        row.push(format!("{}/{}", d.grades[0], d.grades[1]));
                        row.push(d.resolution.to_string());
                    }
                    None => row.extend([String::new(), String::new(), String::new()]),
                }
            }
            w.write_record(&row).map_err(|e| e.to_string())?;
        }
        w.into_inner().map_err(|e| e.to_string())
    }

    /// The stored last run of search `id` (none yet: an empty run). A stored run that does
    /// not read back is an error, never an empty page or an "everything is new" diff.
    /// Reads the compact form `to_stored` writes and the page-shaped form written before it.
    pub fn stored(id: i64, text: Option<&str>) -> Result<SearchRun, ApiError> {
        let unreadable = |e: String| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the stored run of search {id} does not read back: {e}"),
            )
        };
        match text {
            None => Ok(SearchRun::default()),
            Some(text) if STORED_RUN_PREFIXES.iter().any(|p| text.starts_with(p)) => {
                serde_json::from_str::<StoredRun>(text)
                    .map_err(|e| e.to_string())
                    .and_then(StoredRun::into_run)
                    .map_err(unreadable)
            }
            Some(text) => serde_json::from_str(text).map_err(|e| unreadable(e.to_string())),
        }
    }

    /// The text stored for this run: the compact form (see `StoredRun`).
    pub fn to_stored(&self) -> String {
        let mut loci: Vec<&str> = Vec::new();
        for h in &self.hits {
            for name in h.loci.keys() {
                if !loci.contains(&name.as_ref()) {
                    loci.push(name);
                }
            }
        }
        let stored = StoredRun {
            format: STORED_RUN_FORMAT,
            total: self.total,
            policy: Cow::Borrowed(&self.policy),
            search_ms: self.search_ms,
            hits: self
                .hits
                .iter()
                .map(|h| {
                    StoredHit(
                        h.rank,
                        h.donor_id,
                        h.mismatches,
                        Cow::Borrowed(&h.grade),
                        Cow::Borrowed(&h.donor_type),
                        h.age,
                        loci.iter()
                            .map(|&name| {
                                h.loci.get(name).map(|d| {
                                    StoredLocus(
                                        d.mismatches,
                                        d.gvh,
                                        d.hvg,
                                        d.typed,
                                        [Cow::Borrowed(&d.grades[0]), Cow::Borrowed(&d.grades[1])],
                                        d.antigen_mismatches,
                                        d.allele_mismatches,
                                    )
                                })
                            })
                            .collect(),
                        h.probability.as_ref().map(|p| {
                            (
                                p.p0,
                                p.p1,
                                p.p2,
                                p.p_more,
                                loci.iter()
                                    .map(|&name| h.loci.get(name).and_then(|d| d.probability))
                                    .collect(),
                            )
                        }),
                    )
                })
                .collect(),
            loci: loci.into_iter().map(Cow::Borrowed).collect(),
        };
        serde_json::to_string(&stored).expect("run serialise")
    }
}

/// The stored form's version; its text starts with `STORED_RUN_PREFIX`. Format 3 added each
/// hit's probabilities as a trailing array element, so a format-2 run reads without them.
/// A hit's GRID, sex, ABO, Rh, CMV, status and typing resolutions are not stored: they are
/// read whenever the run is shown (`routes::searches::mark_current`), as they are then, for
/// the hits shown: every search stores a thousand hits, few are ever looked at.
const STORED_RUN_FORMAT: u8 = 3;
const STORED_RUN_PREFIX: &str = "{\"format\":3,";
const STORED_RUN_PREFIXES: [&str; 2] = [STORED_RUN_PREFIX, "{\"format\":2,"];

/// A run as stored in `searches.last_result`: the same content as `SearchRun`, with hits and
/// per-locus details as JSON arrays and the locus names once per run, about a quarter of
/// the page-shaped JSON: each search writes it, so it is kept small.
#[derive(Serialize, Deserialize)]
struct StoredRun<'a> {
    /// Serialised first: `stored` tells the forms apart by the text's start.
    format: u8,
    total: usize,
    policy: Cow<'a, str>,
    search_ms: f64,
    /// The locus names of every hit's `loci`, in this order.
    loci: Vec<Cow<'a, str>>,
    hits: Vec<StoredHit<'a>>,
}

/// A hit as a JSON array: rank, donor id, mismatches, grade, donor type, age, per locus
/// of the run's `loci` its detail (`null` where the hit has none), then (format 3) the
/// probabilities (`null` unless asked).
#[derive(Serialize, Deserialize)]
struct StoredHit<'a>(
    usize,
    u64,
    u8,
    Cow<'a, str>,
    Cow<'a, str>,
    Option<u32>,
    Vec<Option<StoredLocus<'a>>>,
    #[serde(default)] Option<StoredProbability>,
);

/// p0, p1, p2, p_more, and per locus of the run's `loci` P(0), P(1), P(2).
type StoredProbability = (
    Option<f64>,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    Vec<Option<[f64; 3]>>,
);

/// A `LocusDetail` as a JSON array, its fields in declaration order (without the
/// resolution, read when shown, and the probability, stored per hit).
#[derive(Serialize, Deserialize)]
struct StoredLocus<'a>(u8, u8, u8, bool, [Cow<'a, str>; 2], u8, u8);

impl StoredRun<'_> {
    fn into_run(self) -> Result<SearchRun, String> {
        // Locus names are few: share the static names where they are known.
        let name = |n: Cow<'_, str>| -> Cow<'static, str> {
            match n.parse::<Locus>() {
                Ok(l) if l.name() == n => Cow::Borrowed(l.name()),
                _ => Cow::Owned(n.into_owned()),
            }
        };
        let loci: Vec<Cow<'static, str>> = self.loci.into_iter().map(name).collect();
        let hits = self
            .hits
            .into_iter()
            .map(|h| {
                if h.6.len() != loci.len() {
                    return Err(format!(
                        "hit {} has {} locus details for {} loci",
                        h.0,
                        h.6.len(),
                        loci.len()
                    ));
                }
                let (probability, per_locus) = match h.7 {
                    Some((p0, p1, p2, p_more, per_locus)) => {
                        (Some(HitProbability { p0, p1, p2, p_more }), per_locus)
                    }
                    None => (None, Vec::new()),
                };
                Ok(SearchHitOut {
                    rank: h.0,
                    donor_id: h.1,
                    grid: String::new(),
                    mismatches: h.2,
                    grade: h.3.into_owned(),
                    donor_type: Cow::Owned(h.4.into_owned()),
                    age: h.5,
                    sex: Cow::Borrowed(""),
                    abo: Cow::Borrowed(""),
                    rh: Cow::Borrowed(""),
                    cmv: Cow::Borrowed(""),
                    status: Cow::Borrowed(""),
                    available: false,
                    status_note: None,
                    probability,
                    loci: loci
                        .iter()
                        .zip(h.6)
                        .enumerate()
                        .filter_map(|(i, (l, d))| {
                            let d = d?;
                            let [g0, g1] = d.4;
                            Some((
                                l.clone(),
                                LocusDetail {
                                    mismatches: d.0,
                                    gvh: d.1,
                                    hvg: d.2,
                                    typed: d.3,
                                    grades: [
                                        Cow::Owned(g0.into_owned()),
                                        Cow::Owned(g1.into_owned()),
                                    ],
                                    antigen_mismatches: d.5,
                                    allele_mismatches: d.6,
                                    resolution: Cow::Borrowed(""),
                                    probability: per_locus.get(i).copied().flatten(),
                                },
                            ))
                        })
                        .collect(),
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(SearchRun {
            total: self.total,
            policy: self.policy.into_owned(),
            hits,
            search_ms: self.search_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn detail(mismatches: u8, grade: &'static str) -> LocusDetail {
        LocusDetail {
            mismatches,
            gvh: mismatches,
            hvg: 0,
            typed: true,
            grades: [Cow::Borrowed(grade), Cow::Borrowed("A")],
            antigen_mismatches: mismatches,
            allele_mismatches: 0,
            // Read when shown, not stored.
            resolution: Cow::Borrowed(""),
            probability: (mismatches == 0).then_some([0.9, 0.1, 0.0]),
        }
    }

    fn run() -> SearchRun {
        let hit = |rank: usize, donor_id: u64, loci: &[(&'static str, LocusDetail)]| SearchHitOut {
            rank,
            donor_id,
            grid: String::new(),
            mismatches: loci.iter().map(|(_, d)| d.mismatches).sum(),
            grade: "9/10".into(),
            donor_type: Cow::Borrowed("A"),
            age: (rank == 1).then_some(31),
            // Read when shown, not stored.
            sex: Cow::Borrowed(""),
            abo: Cow::Borrowed(""),
            rh: Cow::Borrowed(""),
            cmv: Cow::Borrowed(""),
            status: Cow::Borrowed(""),
            available: false,
            status_note: None,
            probability: (rank == 1).then_some(HitProbability {
                p0: Some(0.5),
                p1: Some(0.25),
                p2: None,
                p_more: Some(0.0),
            }),
            // Per-locus probabilities come with the hit's (rank 1's here).
            loci: loci
                .iter()
                .map(|(l, d)| {
                    let mut d = d.clone();
                    if rank != 1 {
                        d.probability = None;
                    }
                    (Cow::Borrowed(*l), d)
                })
                .collect(),
        };
        SearchRun {
            total: 7,
            policy: "default-v1".into(),
            search_ms: 2.5,
            hits: vec![
                hit(1, 42, &[("A", detail(0, "P")), ("DRB1", detail(1, "M"))]),
                // A hit without a detail at one of the run's loci reads back without it.
                hit(2, 7, &[("B", detail(0, "G"))]),
            ],
        }
    }

    fn json(run: &SearchRun) -> Value {
        serde_json::to_value(run).unwrap()
    }

    #[test]
    fn a_stored_run_reads_back_as_it_was() {
        let run = run();
        let text = run.to_stored();
        assert!(text.starts_with(STORED_RUN_PREFIX), "{text}");
        // Much smaller than the page-shaped form.
        assert!(
            text.len() * 2 < serde_json::to_string(&run).unwrap().len(),
            "{text}"
        );
        let back = SearchRun::stored(1, Some(&text)).unwrap();
        assert_eq!(json(&back), json(&run));
    }

    #[test]
    fn a_run_stored_in_the_earlier_form_still_reads() {
        let run = run();
        let text = serde_json::to_string(&run).unwrap();
        let back = SearchRun::stored(1, Some(&text)).unwrap();
        assert_eq!(json(&back), json(&run));
        assert_eq!(
            json(&SearchRun::stored(1, None).unwrap())["hits"],
            json!([])
        );
    }

    #[test]
    fn a_format_2_run_reads_with_the_report_fields_empty() {
        let text = r#"{"format":2,"total":1,"policy":"hla-first-v1","search_ms":1.0,"loci":["A"],"hits":[[1,42,0,"2/2","adult",30,[[0,0,0,true,["P","P"],0,0]]]]}"#;
        let back = SearchRun::stored(1, Some(text)).unwrap();
        let hit = &back.hits[0];
        assert_eq!(
            (hit.donor_id, hit.age, hit.sex.as_ref()),
            (42, Some(30), "")
        );
        assert_eq!(hit.loci["A"].resolution, "");
        assert!(hit.probability.is_none());
    }

    #[test]
    fn a_damaged_stored_run_is_an_error_naming_the_search() {
        let text = run().to_stored();
        for damaged in [
            text[..text.len() / 2].to_string(),
            text.replacen("[0,0,0,true", "[0,0,true", 1),
            // A hit with fewer locus details than the run has loci.
            text.replacen(",null],[0.5,", "],[0.5,", 1),
        ] {
            assert_ne!(damaged, text);
            let e = SearchRun::stored(9, Some(&damaged)).unwrap_err();
            assert!(format!("{e:?}").contains("search 9"), "{e:?}");
        }
    }
}
