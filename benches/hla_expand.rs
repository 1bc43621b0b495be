//! HLA nomenclature benchmark: release load time, and expansions per second over the 240,000
//! typing cells (20,000 donors × 12 positions) of the Atlas 20k corpus, cold (no memo) and
//! memoised (first pass filling the memo, then a warm pass).
//!
//! `cargo bench --bench hla_expand` (release build). Reference data: BOAI_HLA_DIR,
//! BOAI_MAC_FILE, BOAI_CORPUS, falling back to ../shared.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hla::input::{SubjectReader, SubjectTyping};
use hla::{AlleleList, Expander, MacDictionary, Release};

fn path(var: &str, fallback: &str) -> PathBuf {
    std::env::var_os(var).map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../shared")
                .join(fallback)
        },
        PathBuf::from,
    )
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

const RUNS: usize = 7;

fn main() {
    let hla_dir = path("BOAI_HLA_DIR", "imgt-hla");
    let mac_file = path("BOAI_MAC_FILE", "mac/alpha.v3.subset.txt");
    let corpus = path("BOAI_CORPUS", "corpora/atlas-donors/donors-20k.tsv");

    let mut loads = Vec::new();
    let mut release = None;
    for _ in 0..RUNS {
        let t = Instant::now();
        release = Some(Release::load(&hla_dir).expect("load IMGT/HLA release"));
        loads.push(t.elapsed());
    }
    let release = Arc::new(release.unwrap());
    let mut mac_loads = Vec::new();
    let mut macs = None;
    for _ in 0..RUNS {
        let t = Instant::now();
        macs = Some(MacDictionary::load(&mac_file).expect("load MAC dictionary"));
        mac_loads.push(t.elapsed());
    }
    let macs = Arc::new(macs.unwrap());

    // Every cell of the corpus: (locus, Some(text)) or (locus, None) for NULL (untyped).
    let mut cells: Vec<(String, Option<String>)> = Vec::new();
    for record in SubjectReader::open(&corpus).expect("open corpus") {
        let record = record.expect("corpus record");
        let SubjectTyping::Cells(loci) = record.typing else {
            panic!("corpus is not the TSV layout")
        };
        for (locus, pair) in loci {
            for cell in pair {
                cells.push((locus.clone(), cell));
            }
        }
    }
    let typed = cells.iter().filter(|c| c.1.is_some()).count();

    let expander = Expander::new(release.clone(), macs.clone());
    // Cold: parse and expand every cell from scratch.
    let mut cold = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let mut ok = 0usize;
        for (locus, text) in &cells {
            if let Some(text) = text {
                let list = AlleleList::parse(text, Some(locus)).expect("parse");
                expander.expand_list_uncached(&list).expect("expand");
                ok += 1;
            }
        }
        assert_eq!(ok, typed);
        cold.push(t.elapsed());
    }
    // Memoised: a fresh memo, then a warm pass.
    let mut first = Vec::new();
    let mut warm = Vec::new();
    let mut distinct = 0;
    for _ in 0..3 {
        expander.clear_memo();
        let t = Instant::now();
        for (locus, text) in &cells {
            if let Some(text) = text {
                expander.expand_text(text, Some(locus)).expect("expand");
            }
        }
        first.push(t.elapsed());
        distinct = expander.memo_len();
        let t = Instant::now();
        for (locus, text) in &cells {
            if let Some(text) = text {
                expander.expand_text(text, Some(locus)).expect("expand");
            }
        }
        warm.push(t.elapsed());
    }

    let rate = |d: Duration| cells.len() as f64 / d.as_secs_f64();
    println!(
        "IMGT/HLA {} ({} alleles), MAC dictionary {} codes",
        release.version,
        release.alleles.len(),
        macs.len()
    );
    println!(
        "release load            median {:>8.1} ms  (min {:.1}, max {:.1}; {RUNS} runs)",
        median(loads.clone()).as_secs_f64() * 1e3,
        loads.iter().min().unwrap().as_secs_f64() * 1e3,
        loads.iter().max().unwrap().as_secs_f64() * 1e3
    );
    println!(
        "MAC dictionary load     median {:>8.1} ms",
        median(mac_loads).as_secs_f64() * 1e3
    );
    println!(
        "corpus cells            {} ({} typed, {} NULL), {} distinct typed cells",
        cells.len(),
        typed,
        cells.len() - typed,
        distinct
    );
    for (label, runs) in [
        ("cold (no memo)", cold),
        ("memoised, empty memo", first),
        ("memoised, warm memo", warm),
    ] {
        let m = median(runs);
        println!(
            "{label:<23} median {:>8.1} ms  {:>12.0} cells/s",
            m.as_secs_f64() * 1e3,
            rate(m)
        );
    }
}
