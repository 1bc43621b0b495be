//! `boai synth`, `boai match pairs`, `boai search --donors FILE`, `boai bench search`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use hla::Expander;
use matching::{
    DonorIndex, DonorInput, DonorType, HaplotypeSet, Locus, ProbabilityOptions, SearchRequest,
    SearchResult, SubjectBuilder,
};
use serde_json::json;
use synth::Synth;

use crate::donors::{load_donor_file, load_subjects};

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum SynthKind {
    Donors,
    Patients,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum SynthFormat {
    /// `ID%GLSTRING` lines.
    Gl,
    /// Atlas-style TSV columns.
    Tsv,
}

#[derive(Debug, Args)]
pub struct SynthArgs {
    kind: SynthKind,
    #[arg(long)]
    count: usize,
    #[arg(long, default_value = "API")]
    population: String,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long)]
    out: PathBuf,
    #[arg(long, value_enum, default_value = "gl")]
    format: SynthFormat,
    /// Haplotype frequency file (NMDP five-locus CSV).
    #[arg(long, env = "BOAI_FREQ_FILE")]
    freqs: Option<PathBuf>,
}

pub fn freqs_path(freqs: &Option<PathBuf>) -> PathBuf {
    freqs
        .clone()
        .unwrap_or_else(|| crate::refdata::fallback("frequencies/NMDP_2007_FiveLocus_Freqs.csv"))
}

pub fn synth(args: SynthArgs, expander: &Expander) -> Result<i32> {
    let synth = Synth::new(expander, &freqs_path(&args.freqs), &args.population)?;
    let started = Instant::now();
    let people = match args.kind {
        SynthKind::Donors => synth.donors(args.count, args.seed),
        SynthKind::Patients => synth.patients(args.count, args.seed),
    };
    let generated = started.elapsed();
    let file = std::fs::File::create(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let prefix = if args.kind == SynthKind::Donors {
        "D"
    } else {
        "P"
    };
    match args.format {
        SynthFormat::Gl => {
            for p in &people {
                writeln!(out, "{prefix}{:07}%{}", p.key, synth.gl_string(p))?;
            }
        }
        SynthFormat::Tsv => {
            writeln!(
                out,
                "DonorId\tDonorType\tA_1\tA_2\tB_1\tB_2\tC_1\tC_2\tDPB1_1\tDPB1_2\tDQB1_1\tDQB1_2\tDRB1_1\tDRB1_2\tExternalDonorCode"
            )?;
            for p in &people {
                let cell = |l: Locus, i: usize| {
                    p.cells[l.index()][i]
                        .map_or("NULL".to_string(), |c| synth.cell_text(l, c).to_string())
                };
                write!(
                    out,
                    "{}\t{}",
                    p.key,
                    if p.donor_type == DonorType::Cord {
                        2
                    } else {
                        1
                    }
                )?;
                for l in [
                    Locus::A,
                    Locus::B,
                    Locus::C,
                    Locus::Dpb1,
                    Locus::Dqb1,
                    Locus::Drb1,
                ] {
                    write!(out, "\t{}\t{}", cell(l, 0), cell(l, 1))?;
                }
                writeln!(out, "\t{prefix}{:07}", p.key)?;
            }
        }
    }
    out.flush()?;
    eprintln!(
        "{} {} from {} ({} haplotypes), seed {}: generated in {:.2} s ({:.0}/s), written to {}",
        people.len(),
        if args.kind == SynthKind::Donors {
            "donors"
        } else {
            "patients"
        },
        synth.population(),
        synth.haplotype_count(),
        args.seed,
        generated.as_secs_f64(),
        people.len() as f64 / generated.as_secs_f64().max(1e-9),
        args.out.display()
    );
    Ok(0)
}

/// A haplotype frequency set: the NMDP CSV layout, or the JSON layout for `.json` files.
pub fn load_haplotype_set(
    freqs: &Option<PathBuf>,
    population: &str,
    expander: &Expander,
) -> Result<HaplotypeSet> {
    let path = freqs_path(freqs);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let is_json = path.extension().is_some_and(|e| e == "json");
    let set = if is_json {
        HaplotypeSet::from_json(&text, expander.release())
    } else {
        HaplotypeSet::from_nmdp_csv(&text, population, true, expander.release())
    }
    .with_context(|| format!("frequency set {}", path.display()))?;
    if !set.name.eq_ignore_ascii_case(population) && !is_json {
        eprintln!(
            "note: population {population} is not in {}; using the global set",
            path.display()
        );
    }
    if !set.unmapped.is_empty() {
        eprintln!(
            "note: {} names in {} are not in IMGT/HLA {} ({:.4} of the frequency mass left out): {}",
            set.unmapped.len(),
            path.display(),
            expander.release().version,
            set.unmapped_mass,
            set.unmapped
                .iter()
                .take(8)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(set)
}

fn parse_loci(text: &str) -> Result<Vec<Locus>> {
    text.split(',')
        .map(|l| l.trim().parse::<Locus>().map_err(anyhow::Error::msg))
        .collect()
}

#[derive(Debug, Subcommand)]
pub enum MatchCommand {
    /// Score every patient against every donor of two files; CSV per pair.
    Pairs {
        #[arg(long)]
        patients: PathBuf,
        #[arg(long)]
        donors: PathBuf,
        #[arg(long, default_value = "A,B,C,DRB1,DQB1")]
        loci: String,
        /// Write here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Probability that a patient and a donor really have 0, 1, 2 or more mismatches.
    Probability {
        #[arg(long)]
        patient: String,
        #[arg(long)]
        donor: String,
        #[arg(long, default_value = "API")]
        population: String,
        /// NMDP five-locus CSV, or the JSON layout (`.json`).
        #[arg(long, env = "BOAI_FREQ_FILE")]
        freqs: Option<PathBuf>,
        #[arg(long, default_value = "A,B,C,DRB1,DQB1")]
        loci: String,
    },
}

pub fn match_cmd(cmd: MatchCommand, expander: Arc<Expander>) -> Result<i32> {
    let (patients, donors, loci, out) = match cmd {
        MatchCommand::Pairs {
            patients,
            donors,
            loci,
            out,
        } => (patients, donors, loci, out),
        MatchCommand::Probability {
            patient,
            donor,
            population,
            freqs,
            loci,
        } => {
            let loci = parse_loci(&loci)?;
            let set = load_haplotype_set(&freqs, &population, &expander)?;
            let mut builder = SubjectBuilder::new(expander.clone());
            let p = builder
                .from_gl(&patient)
                .with_context(|| format!("patient typing `{patient}`"))?;
            let d = builder
                .from_gl(&donor)
                .with_context(|| format!("donor typing `{donor}`"))?;
            let result = set.match_probability(&p, &d, &loci)?;
            println!("{}", result.to_json());
            return Ok(0);
        }
    };
    let loci = parse_loci(&loci)?;
    let started = Instant::now();
    let (patients, bad_patients) = load_subjects(&patients, expander.clone())?;
    let loaded = load_donor_file(&donors, expander)?;
    let mut writer: Box<dyn Write> = match &out {
        Some(p) => {
            Box::new(std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let mut w = std::io::BufWriter::with_capacity(1 << 20, &mut writer);
    write!(w, "patient_id,donor_id")?;
    for l in &loci {
        write!(w, ",{l}")?;
    }
    writeln!(w, ",total")?;
    let mut pairs = 0usize;
    for (pid, patient) in &patients {
        let counts = loaded.index.mismatch_counts(patient);
        for (row, c) in counts {
            let id = &loaded.ids[loaded.index.key(row) as usize];
            let mut line = format!("{pid},{id}");
            let mut total = 0;
            for l in &loci {
                let v = c[l.index()];
                total += v;
                line.push(',');
                line.push_str(&v.to_string());
            }
            writeln!(w, "{line},{total}")?;
            pairs += 1;
        }
    }
    w.flush()?;
    eprintln!(
        "{} patients × {} donors = {pairs} pairs in {:.2} s ({} patients and {} donors rejected)",
        patients.len(),
        loaded.index.len(),
        started.elapsed().as_secs_f64(),
        bad_patients,
        loaded.rejected
    );
    Ok(i32::from(bad_patients + loaded.rejected > 0))
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum OutputFormat {
    Csv,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum DonorTypeArg {
    Adult,
    Cord,
    All,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Donor file (`ID%GLSTRING` or Atlas TSV, plain or .gz).
    #[arg(long)]
    pub donors: Option<PathBuf>,
    /// The patient's typing as a GL string.
    #[arg(long)]
    pub patient: String,
    #[arg(long, default_value = "A,B,C,DRB1,DQB1")]
    pub loci: String,
    #[arg(long)]
    pub max_mismatches: u8,
    /// Per-locus limits, e.g. `A=0,B=1`.
    #[arg(long)]
    pub locus_max: Option<String>,
    #[arg(long, value_enum, default_value = "all")]
    pub donor_type: DonorTypeArg,
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    #[arg(long, value_enum, default_value = "csv")]
    pub format: OutputFormat,
    /// Patient weight in kg (cord unit cell dose).
    #[arg(long)]
    pub weight: Option<f32>,
    /// Add match probabilities (p0, p1, p2) for the returned donors.
    #[arg(long)]
    pub probability: bool,
    /// With --probability: rank by P(0 mismatches) within each mismatch count.
    #[arg(long)]
    pub rank_by_probability: bool,
    #[arg(long, default_value = "API")]
    pub population: String,
    #[arg(long, env = "BOAI_FREQ_FILE")]
    pub freqs: Option<PathBuf>,
    /// With --db: the registry patient searched for, whose reserved (RS) donors are offered
    /// too (other patients' never are).
    #[arg(long)]
    pub patient_id: Option<i64>,
}

pub fn build_request(args: &SearchArgs, builder: &mut SubjectBuilder) -> Result<SearchRequest> {
    let patient = builder
        .from_gl(&args.patient)
        .with_context(|| format!("patient typing `{}`", args.patient))?;
    let mut req = SearchRequest::new(patient, args.max_mismatches);
    req.loci = parse_loci(&args.loci)?;
    if let Some(spec) = &args.locus_max {
        for part in spec.split(',') {
            let (l, n) = part
                .split_once('=')
                .with_context(|| format!("`{part}`: expected LOCUS=N"))?;
            let locus: Locus = l.trim().parse().map_err(anyhow::Error::msg)?;
            req.locus_max[locus.index()] = n
                .trim()
                .parse()
                .with_context(|| format!("`{part}`: N must be 0, 1 or 2"))?;
        }
    }
    req.donor_type = match args.donor_type {
        DonorTypeArg::Adult => Some(DonorType::Adult),
        DonorTypeArg::Cord => Some(DonorType::Cord),
        DonorTypeArg::All => None,
    };
    req.limit = args.limit;
    req.patient_weight_kg = args.weight;
    req.today = today();
    if args.probability || args.rank_by_probability {
        let set = load_haplotype_set(&args.freqs, &args.population, builder.expander())?;
        req.probability = Some(ProbabilityOptions { set: Arc::new(set) });
        if args.rank_by_probability {
            req.rank_by_probability();
        }
    }
    req.validate()?;
    Ok(req)
}

pub fn today() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    secs / 86_400 + 25_567
}

pub fn print_result(
    result: &SearchResult,
    req: &SearchRequest,
    format: OutputFormat,
    id_of: &dyn Fn(u32) -> String,
) -> Result<()> {
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    match format {
        OutputFormat::Csv => {
            write!(w, "rank,donor_id,total")?;
            for l in [Locus::A, Locus::B, Locus::C, Locus::Drb1, Locus::Dqb1] {
                write!(w, ",{l}")?;
            }
            let with_p = req.probability.is_some();
            write!(w, ",grade")?;
            if with_p {
                write!(w, ",p0,p1,p2")?;
            }
            writeln!(
                w,
                ",DPB1,dpb1_tce,antigen_mismatches,untyped,donor_type,cord_grade"
            )?;
            for h in &result.hits {
                write!(w, "{},{},{}", h.rank, id_of(h.key), h.total)?;
                for l in [Locus::A, Locus::B, Locus::C, Locus::Drb1, Locus::Dqb1] {
                    write!(w, ",{}", h.score.locus(l).mismatches)?;
                }
                let dpb1 = h.score.locus(Locus::Dpb1);
                let untyped: Vec<&str> = req
                    .loci
                    .iter()
                    .filter(|l| !h.score.locus(**l).typed)
                    .map(|l| l.name())
                    .collect();
                write!(w, ",{}", h.grade(&req.loci))?;
                if with_p {
                    let p = h.probability.as_ref();
                    let fmt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.6}"));
                    write!(
                        w,
                        ",{},{},{}",
                        fmt(p.and_then(|p| p.p0)),
                        fmt(p.and_then(|p| p.p1)),
                        fmt(p.and_then(|p| p.p2))
                    )?;
                }
                writeln!(
                    w,
                    ",{},{},{},{},{},{}",
                    dpb1.mismatches,
                    dpb1.tce.map_or("", |t| t.code()),
                    h.score.antigen_mismatches(&req.loci),
                    untyped.join(" "),
                    h.attributes.donor_type,
                    h.cord.as_ref().map_or("", |c| c.grade.as_str())
                )?;
            }
        }
        OutputFormat::Json => {
            let hits: Vec<serde_json::Value> = result
                .hits
                .iter()
                .map(|h| {
                    let loci: serde_json::Map<String, serde_json::Value> = Locus::ALL
                        .iter()
                        .map(|l| {
                            let s = h.score.locus(*l);
                            (l.name().to_string(), json!({
                                "mismatches": s.mismatches, "gvh": s.gvh, "hvg": s.hvg, "typed": s.typed,
                                "grades": s.grades.map(|g| g.code()), "confidence": s.confidences.map(|c| c.code()),
                                "antigen_mismatches": s.antigen_mismatches, "allele_mismatches": s.allele_mismatches,
                                "tce": s.tce.map(|t| t.code()),
                            }))
                        })
                        .collect();
                    json!({
                        "rank": h.rank, "donor_id": id_of(h.key), "total": h.total, "grade": h.grade(&req.loci),
                        "donor_type": h.attributes.donor_type.code(), "age": h.age, "loci": loci,
                        "p_match": h.probability.as_ref().and_then(|p| p.p0),
                        "probability": h.probability.as_ref().map(|p| p.to_json()),
                        "cord": h.cord.as_ref().map(|c| json!({"grade": c.grade, "mismatches": c.mismatches,
                            "tnc_e7_per_kg": c.tnc_e7_per_kg, "cd34_e5_per_kg": c.cd34_e5_per_kg, "dose_sufficient": c.dose_sufficient})),
                    })
                })
                .collect();
            serde_json::to_writer(
                &mut w,
                &json!({"total": result.total, "policy": result.policy, "hits": hits}),
            )?;
            writeln!(w)?;
        }
    }
    w.flush()?;
    Ok(())
}

pub fn search_file(args: SearchArgs, expander: Arc<Expander>) -> Result<i32> {
    let Some(donors) = &args.donors else {
        bail!("--donors FILE is required (the registry-backed search needs --db)");
    };
    if args.patient_id.is_some() {
        bail!("--patient-id names a registry patient: it needs --db");
    }
    let mut builder = SubjectBuilder::new(expander.clone());
    let req = build_request(&args, &mut builder)?;
    let loaded = load_donor_file(donors, expander)?;
    let started = Instant::now();
    let result = loaded.index.search(&req)?;
    eprintln!(
        "{} of {} donors qualify ({:.1} ms)",
        result.total,
        loaded.index.len(),
        started.elapsed().as_secs_f64() * 1e3
    );
    print_result(&result, &req, args.format, &|k| {
        loaded.ids[k as usize].clone()
    })?;
    Ok(0)
}

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
    let synth = Synth::new(&expander, &freqs_path(&freqs), &population)?;
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
            req.today = today();
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
            req.today = today();
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
