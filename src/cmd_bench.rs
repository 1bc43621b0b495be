//! `boai bench search|impute`: benchmarks that print their figures.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use clap::Subcommand;
use hla::Expander;
use matching::{DonorIndex, DonorInput, Locus, ProbabilityOptions, SearchRequest, SubjectBuilder};
use serde_json::json;
use synth::Synth;

use crate::donors::load_subjects;
use crate::frequencies::{existing_freqs_path, load_haplotype_set};

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Build an index from a synthetic population and time 10/10 searches.
    Search(SearchBench),
    /// Time genotype imputation of every distinct typing of a donor file.
    Impute {
        /// Donor file (default: the Atlas 20k corpus).
        #[arg(long)]
        corpus: Option<PathBuf>,
        #[arg(long, default_value = "API")]
        population: String,
        #[arg(long, env = "BOAI_FREQ_FILE")]
        freqs: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

/// `boai bench search` options.
#[derive(Debug, clap::Args)]
pub struct SearchBench {
    #[arg(long)]
    donors: usize,
    #[arg(long, default_value = "API")]
    population: String,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, default_value_t = 100)]
    patients: usize,
    #[arg(long)]
    json: bool,
    #[arg(long, env = "BOAI_FREQ_FILE")]
    freqs: Option<PathBuf>,
    /// Add a row: 10/10 searches tolerating 2 mismatches with match probabilities for the
    /// top 1,000 results.
    #[arg(long)]
    probability: bool,
    /// Run each 10/10 search this many times and time its fastest run: steadier figures on
    /// a shared machine (the first run also warms the caches). The probability row runs once.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    repeat: u32,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Sequential read bandwidth of this machine: both cores summing a 512 MiB buffer.
fn read_bandwidth_gbs() -> f64 {
    use rayon::prelude::*;
    let words = (512usize << 20) / 8;
    let buf: Vec<u64> = (0..words as u64).collect();
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        let s: u64 = buf
            .par_chunks(1 << 16)
            .map(|c| c.iter().fold(0u64, |a, &b| a.wrapping_add(b)))
            .reduce(|| 0, u64::wrapping_add);
        std::hint::black_box(s);
        best = best.min(t.elapsed().as_secs_f64());
    }
    (words * 8) as f64 / best / 1e9
}

fn progress(len: u64, msg: &str) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new(len);
    pb.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({eta})")
            .expect("template"),
    );
    pb.set_message(msg.to_string());
    pb
}

fn bench_impute(
    corpus: Option<PathBuf>,
    population: &str,
    freqs: &Option<PathBuf>,
    json: bool,
    expander: Arc<Expander>,
) -> Result<i32> {
    let corpus =
        corpus.unwrap_or_else(|| crate::refdata::fallback("corpora/atlas-donors/donors-20k.tsv"));
    let (subjects, rejected) = load_subjects(&corpus, expander.clone())?;
    // Distinct typings (the cache key of imputation).
    let mut seen = rustc_hash::FxHashSet::default();
    let mut distinct = Vec::new();
    for (_, s) in subjects {
        let key: Vec<String> = s
            .iter()
            .map(|p| {
                p.as_ref()
                    .map_or(String::new(), |[a, b]| format!("{}+{}", a.text, b.text))
            })
            .collect();
        if seen.insert(key) {
            distinct.push(s);
        }
    }
    let set = load_haplotype_set(freqs, population, &expander)?;
    let mut times = Vec::with_capacity(distinct.len());
    let (mut pairs, mut unrepresented) = (0usize, 0usize);
    let started = Instant::now();
    for s in &distinct {
        let t = Instant::now();
        let n = set.impute(s).len();
        times.push(t.elapsed().as_secs_f64() * 1e3);
        pairs += n;
        unrepresented += usize::from(n == 0);
    }
    let total = started.elapsed().as_secs_f64();
    times.sort_by(f64::total_cmp);
    let mean = total * 1e3 / distinct.len().max(1) as f64;
    if json {
        println!(
            "{}",
            json!({"typings": distinct.len(), "population": set.name, "haplotypes": set.len(), "total_seconds": total,
            "mean_ms": mean, "p50_ms": percentile(&times, 0.5), "p95_ms": percentile(&times, 0.95), "max_ms": times.last(),
            "mean_pairs": pairs as f64 / distinct.len().max(1) as f64, "unrepresented": unrepresented, "rejected": rejected})
        );
    } else {
        println!(
            "typings           {} distinct ({} rejected) from {}",
            distinct.len(),
            rejected,
            corpus.display()
        );
        println!("frequency set     {} ({} haplotypes)", set.name, set.len());
        println!(
            "imputation        {total:.2} s, mean {mean:.3} ms per typing (p50 {:.3}, p95 {:.3}, max {:.1})",
            percentile(&times, 0.5),
            percentile(&times, 0.95),
            times.last().unwrap_or(&0.0)
        );
        println!(
            "haplotype pairs   {:.1} per typing; {unrepresented} typings unrepresented (no haplotype pair explains them)",
            pairs as f64 / distinct.len().max(1) as f64
        );
    }
    Ok(0)
}

pub fn bench(cmd: BenchCommand, expander: Arc<Expander>) -> Result<i32> {
    let SearchBench {
        donors,
        population,
        seed,
        patients,
        json,
        freqs,
        probability,
        repeat,
    } = match cmd {
        BenchCommand::Search(options) => options,
        BenchCommand::Impute {
            corpus,
            population,
            freqs,
            json,
        } => {
            return bench_impute(corpus, &population, &freqs, json, expander);
        }
    };
    let synth = Synth::new(&expander, &existing_freqs_path(&freqs)?, &population)?;
    let t = Instant::now();
    let people = synth.donors(donors, seed);
    let synth_seconds = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let mut index = DonorIndex::new(expander.clone());
    index.reserve(people.len());
    let pb = progress(people.len() as u64, "index");
    for (i, p) in people.iter().enumerate() {
        let mut input = DonorInput {
            key: p.key,
            attributes: synth.attributes(p),
            ..Default::default()
        };
        for l in Locus::ALL {
            let cells = p.cells[l.index()];
            input.hla[l.index()] = [
                cells[0].map(|c| synth.cell_text(l, c)),
                cells[1].map(|c| synth.cell_text(l, c)),
            ];
        }
        index.upsert(&input).map_err(|e| anyhow::anyhow!("{e}"))?;
        if i % 65_536 == 0 {
            pb.set_position(i as u64);
        }
    }
    pb.finish_and_clear();
    index.build_postings();
    let build_seconds = t.elapsed().as_secs_f64();
    drop(people);
    let bytes_per_donor = index.memory_bytes() as f64 / index.len() as f64;

    let mut builder = SubjectBuilder::new(expander.clone());
    let patient_subjects: Vec<_> = synth
        .patients(patients, seed.wrapping_add(1))
        .iter()
        .map(|p| builder.from_gl(&synth.gl_string(p)))
        .collect::<Result<_, _>>()?;

    let mut rows = Vec::new();
    let mut results_total = 0usize;
    let mut searches = 0usize;
    let pb = progress((3 * patient_subjects.len()) as u64, "search");
    for mm in [0u8, 1, 2] {
        let mut lat = Vec::new();
        for subject in &patient_subjects {
            let mut req = SearchRequest::new(subject.clone(), mm);
            req.today = registry::Clock::default().today();
            let mut fastest = f64::INFINITY;
            let mut result = None;
            for _ in 0..repeat {
                let t = Instant::now();
                let run = index.search(&req)?;
                fastest = fastest.min(t.elapsed().as_secs_f64() * 1e3);
                result = Some(run);
            }
            lat.push(fastest);
            results_total += result.map_or(0, |r| r.total);
            searches += 1;
            pb.inc(1);
        }
        lat.sort_by(f64::total_cmp);
        rows.push((
            mm,
            percentile(&lat, 0.5),
            percentile(&lat, 0.95),
            *lat.last().unwrap_or(&0.0),
            lat.iter().sum::<f64>() / lat.len().max(1) as f64,
        ));
    }
    pb.finish_and_clear();
    let mut probability_row = None;
    if probability {
        let set = Arc::new(load_haplotype_set(&freqs, &population, &expander)?);
        let mut lat = Vec::new();
        for subject in &patient_subjects {
            let mut req = SearchRequest::new(subject.clone(), 2);
            req.today = registry::Clock::default().today();
            req.limit = 1000;
            req.probability = Some(ProbabilityOptions { set: set.clone() });
            req.rank_by_probability();
            let t = Instant::now();
            index.search(&req)?;
            lat.push(t.elapsed().as_secs_f64() * 1e3);
        }
        lat.sort_by(f64::total_cmp);
        probability_row = Some((
            percentile(&lat, 0.5),
            percentile(&lat, 0.95),
            *lat.last().unwrap_or(&0.0),
        ));
    }
    let read_bw = read_bandwidth_gbs();
    let scanned = index.rows() as f64 * index.scan_bytes_per_donor(5) as f64;
    let p50_2 = rows[2].1;
    let scan_bw = scanned / (p50_2 / 1e3) / 1e9;
    let mean_results = results_total as f64 / searches.max(1) as f64;
    if json {
        let by_mm = |f: fn(&(u8, f64, f64, f64, f64)) -> f64| -> serde_json::Value {
            rows.iter()
                .map(|r| (r.0.to_string(), json!(f(r))))
                .collect::<serde_json::Map<_, _>>()
                .into()
        };
        println!(
            "{}",
            json!({
                "donors": index.len(), "population": synth.population(), "seed": seed, "patients": patient_subjects.len(),
                "synth_seconds": synth_seconds, "build_seconds": build_seconds, "bytes_per_donor": bytes_per_donor,
                "p50_ms": by_mm(|r| r.1), "p95_ms": by_mm(|r| r.2), "max_ms": by_mm(|r| r.3), "mean_ms": by_mm(|r| r.4), "repeat": repeat,
                "mean_results": mean_results, "read_bandwidth_gbs": read_bw, "scan_bandwidth_gbs": scan_bw,
                "probability_top1000_ms": probability_row.map(|r| json!({"p50": r.0, "p95": r.1, "max": r.2})),
            })
        );
    } else {
        println!("donors            {}", index.len());
        println!(
            "population        {} (seed {seed}), {} patients",
            synth.population(),
            patient_subjects.len()
        );
        println!(
            "synth             {synth_seconds:.2} s ({:.0} donors/s)",
            donors as f64 / synth_seconds
        );
        println!("index build       {build_seconds:.2} s");
        println!("bytes per donor   {bytes_per_donor:.1}");
        println!(
            "distinct typings  A {} B {} C {} DRB1 {} DQB1 {} DPB1 {}",
            index.distinct_positions(Locus::A),
            index.distinct_positions(Locus::B),
            index.distinct_positions(Locus::C),
            index.distinct_positions(Locus::Drb1),
            index.distinct_positions(Locus::Dqb1),
            index.distinct_positions(Locus::Dpb1)
        );
        let genotypes: Vec<String> = Locus::ALL
            .iter()
            .map(|&l| format!("{l} {}", index.distinct_genotypes(l)))
            .collect();
        println!("distinct genotypes {}", genotypes.join(" "));
        if repeat > 1 {
            println!("timing            fastest of {repeat} runs per search");
        }
        println!("10/10 search      p50 ms   p95 ms   max ms  mean ms");
        for (mm, p50, p95, max, mean) in &rows {
            println!("  {mm} mismatches    {p50:>7.2}  {p95:>7.2}  {max:>7.2}  {mean:>7.2}");
        }
        if let Some((p50, p95, max)) = probability_row {
            println!("  2 mm + p(top 1000) {p50:>6.2}  {p95:>7.2}  {max:>7.2}");
        }
        println!("mean results      {mean_results:.1} per search");
        println!("read bandwidth    {read_bw:.2} GB/s (sequential, 2 threads)");
        println!(
            "nominal bandwidth {scan_bw:.2} GB/s (every row's matched columns / p50 at 2 mismatches; posting lists let a search skip most rows)"
        );
    }
    Ok(0)
}
