//! `boai search`: donors for a patient, from a donor file (`--donors`) or the registry
//! (`--db`).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use hla::Expander;
use matching::{
    DonorIndex, DonorType, Locus, ProbabilityOptions, SearchRequest, SearchResult, SubjectBuilder,
};
use serde_json::json;

use crate::cmd_match::parse_loci;
use crate::connect::{DbArgs, open, runtime};
use crate::donors::load_donor_file;
use crate::frequencies::load_haplotype_set;

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum OutputFormat {
    Csv,
    Json,
    /// One `DONOR_ID%GLSTRING` line per ranked donor: its typing as a GL string.
    Gl,
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
    req.today = crate::connect::DbArgs::for_url("").config()?.clock.today();
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
/// One `ID%GL` line per hit, in rank order; `gl_of` gives a donor's typing as a GL string.
fn print_gl(
    result: &SearchResult,
    id_of: &dyn Fn(u32) -> String,
    gl_of: &dyn Fn(u32) -> Option<String>,
) -> Result<()> {
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    for h in &result.hits {
        match gl_of(h.key) {
            Some(gl) => writeln!(w, "{}%{gl}", id_of(h.key))?,
            None => eprintln!("note: donor {} has no typing on record now", id_of(h.key)),
        }
    }
    w.flush()?;
    Ok(())
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
        OutputFormat::Gl => unreachable!("GL output is printed by print_gl"),
        OutputFormat::Csv => {
            // Written with the `csv` crate: quoting follows RFC 4180 whatever a field holds.
            let mut out = csv::Writer::from_writer(&mut w);
            let matched = [Locus::A, Locus::B, Locus::C, Locus::Drb1, Locus::Dqb1];
            let with_p = req.probability.is_some();
            let mut header: Vec<String> = ["rank", "donor_id", "total"].map(String::from).to_vec();
            header.extend(matched.iter().map(|l| l.to_string()));
            header.push("grade".into());
            if with_p {
                header.extend(["p0", "p1", "p2"].map(String::from));
            }
            header.extend(
                [
                    "DPB1",
                    "dpb1_tce",
                    "antigen_mismatches",
                    "untyped",
                    "donor_type",
                    "cord_grade",
                ]
                .map(String::from),
            );
            out.write_record(&header)?;
            for h in &result.hits {
                let mut row = vec![h.rank.to_string(), id_of(h.key), h.total.to_string()];
                row.extend(
                    matched
                        .iter()
                        .map(|l| h.score.locus(*l).mismatches.to_string()),
                );
                row.push(h.grade(&req.loci));
                if with_p {
                    let p = h.probability.as_ref();
                    let fmt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.6}"));
                    row.push(fmt(p.and_then(|p| p.p0)));
                    row.push(fmt(p.and_then(|p| p.p1)));
                    row.push(fmt(p.and_then(|p| p.p2)));
                }
                let dpb1 = h.score.locus(Locus::Dpb1);
                let untyped: Vec<&str> = req
                    .loci
                    .iter()
                    .filter(|l| !h.score.locus(**l).typed)
                    .map(|l| l.name())
                    .collect();
                row.push(dpb1.mismatches.to_string());
                row.push(dpb1.tce.map_or("", |t| t.code()).to_string());
                row.push(h.score.antigen_mismatches(&req.loci).to_string());
                row.push(untyped.join(" "));
                row.push(h.attributes.donor_type.to_string());
                row.push(h.cord.as_ref().map_or(String::new(), |c| c.grade.clone()));
                out.write_record(&row)?;
            }
            out.flush()?;
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
    let id_of = |k: u32| loaded.ids[k as usize].clone();
    if args.format == OutputFormat::Gl {
        // The hits' typings are read again from the file: the index keeps P-group sets,
        // not the text, and keeping the text of every donor would double its memory.
        let wanted: std::collections::HashSet<String> =
            result.hits.iter().map(|h| id_of(h.key)).collect();
        let release = builder_release(&loaded.index);
        let mut typings = std::collections::HashMap::new();
        for record in hla::input::SubjectReader::open(donors)?.flatten() {
            if wanted.contains(&record.id)
                && let Ok(loci) = record.locus_typings(&release)
            {
                typings.insert(record.id.clone(), gl_of_loci(&loci));
            }
        }
        print_gl(&result, &id_of, &|k| typings.get(&id_of(k)).cloned())?;
        return Ok(0);
    }
    print_result(&result, &req, args.format, &id_of)?;
    Ok(0)
}

fn builder_release(index: &DonorIndex) -> Arc<hla::Release> {
    index.expander().release_arc().clone()
}

/// `A*01:01+A*02:01^B*…`: each locus's two positions.
fn gl_of_loci(loci: &[hla::LocusTyping]) -> String {
    loci.iter()
        .map(|l| format!("{}+{}", l.positions[0], l.positions[1]))
        .collect::<Vec<_>>()
        .join("^")
}

/// `boai search --db URL …`: the registry's searchable donors, same output as the file search.
pub fn search_db(args: SearchArgs, db: String, expander: Arc<Expander>) -> Result<i32> {
    if args.donors.is_some() {
        bail!("give either --donors FILE or --db URL, not both");
    }
    runtime()?.block_on(async move {
        let reg = open(&DbArgs::for_url(&db), expander.clone()).await?;
        let mut builder = SubjectBuilder::new(expander.clone());
        let mut req = build_request(&args, &mut builder)?;
        if let Some(patient) = args.patient_id {
            req.also_offered = reg
                .donors_reserved_for(patient)
                .await?
                .into_iter()
                .map(|id| id as u32)
                .collect();
        }
        let mut index = DonorIndex::new(expander);
        let t = Instant::now();
        let loaded = reg.load_index(&mut index, reg.today()).await?;
        let load_s = t.elapsed().as_secs_f64();
        // Donor ids shown are the registry's external ids (as in the file they came from).
        let mut ids = std::collections::HashMap::new();
        let started = Instant::now();
        let result = index.search(&req)?;
        let mut typings = std::collections::HashMap::new();
        for h in &result.hits {
            let d = reg.donor(h.key as i64).await?;
            ids.insert(h.key, d.external_id);
            if let Some(gl) = d.current_typing {
                typings.insert(h.key, gl);
            }
        }
        eprintln!(
            "{} of {loaded} searchable donors qualify (index loaded in {load_s:.2} s, search {:.1} ms)",
            result.total,
            started.elapsed().as_secs_f64() * 1e3
        );
        let id_of = |k: u32| ids.get(&k).cloned().unwrap_or_default();
        if args.format == OutputFormat::Gl {
            print_gl(&result, &id_of, &|k| typings.get(&k).cloned())?;
        } else {
            print_result(&result, &req, args.format, &id_of)?;
        }
        reg.close().await;
        Ok(0)
    })
}
