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
}

/// One ranked donor of a search run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SearchHitOut {
    pub rank: usize,
    pub donor_id: u64,
    pub mismatches: u8,
    pub grade: String,
    #[schema(value_type = String)]
    pub donor_type: Cow<'static, str>,
    pub age: Option<u32>,
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
            Some(text) if text.starts_with(STORED_RUN_PREFIX) => {
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
                    )
                })
                .collect(),
            loci: loci.into_iter().map(Cow::Borrowed).collect(),
        };
        serde_json::to_string(&stored).expect("run serialise")
    }
}

/// The stored form's version; its text starts with `STORED_RUN_PREFIX`.
const STORED_RUN_FORMAT: u8 = 2;
const STORED_RUN_PREFIX: &str = "{\"format\":2,";

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

/// A hit as a JSON array: rank, donor id, mismatches, grade, donor type, age, and per
/// locus of the run's `loci` its detail (`null` where the hit has none).
#[derive(Serialize, Deserialize)]
struct StoredHit<'a>(
    usize,
    u64,
    u8,
    Cow<'a, str>,
    Cow<'a, str>,
    Option<u32>,
    Vec<Option<StoredLocus<'a>>>,
);

/// A `LocusDetail` as a JSON array, its fields in declaration order.
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
                Ok(SearchHitOut {
                    rank: h.0,
                    donor_id: h.1,
                    mismatches: h.2,
                    grade: h.3.into_owned(),
                    donor_type: Cow::Owned(h.4.into_owned()),
                    age: h.5,
                    loci: loci
                        .iter()
                        .zip(h.6)
                        .filter_map(|(l, d)| {
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
        }
    }

    fn run() -> SearchRun {
        let hit = |rank: usize, donor_id: u64, loci: &[(&'static str, LocusDetail)]| SearchHitOut {
            rank,
            donor_id,
            mismatches: loci.iter().map(|(_, d)| d.mismatches).sum(),
            grade: "9/10".into(),
            donor_type: Cow::Borrowed("A"),
            age: (rank == 1).then_some(31),
            loci: loci
                .iter()
                .map(|(l, d)| (Cow::Borrowed(*l), d.clone()))
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
    fn a_damaged_stored_run_is_an_error_naming_the_search() {
        let text = run().to_stored();
        for damaged in [
            text[..text.len() / 2].to_string(),
            text.replacen("[0,0,0,true", "[0,0,true", 1),
            // A hit with fewer locus details than the run has loci.
            text.replacen(",null]]", "]]", 1),
        ] {
            assert_ne!(damaged, text);
            let e = SearchRun::stored(9, Some(&damaged)).unwrap_err();
            assert!(format!("{e:?}").contains("search 9"), "{e:?}");
        }
    }
}
