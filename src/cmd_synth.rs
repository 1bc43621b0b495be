//! `boai synth`: a synthetic donor or patient population.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use hla::Expander;
use matching::{DonorType, Locus};
use synth::Synth;

use crate::activity::{ActivityPlan, make_activity};
use crate::connect::{DbArgs, runtime};
use crate::frequencies::existing_freqs_path;

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum SynthKind {
    Donors,
    Patients,
    /// Years of registry activity in the database at --db (see `activity.rs`).
    Activity,
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
    /// People to write (donors, patients).
    #[arg(long)]
    count: Option<usize>,
    #[arg(long, default_value = "API")]
    population: String,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The file to write (donors, patients).
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "gl")]
    format: SynthFormat,
    /// Haplotype frequency file (NMDP five-locus CSV).
    #[arg(long, env = "BOAI_FREQ_FILE")]
    freqs: Option<PathBuf>,
    /// Activity: years of it, ending today.
    #[arg(long, default_value_t = 3)]
    years: i32,
    /// Activity: donors enrolled per station and year.
    #[arg(long, default_value_t = 120)]
    donors_per_station: usize,
    /// Activity: the registry to fill.
    #[command(flatten)]
    db: DbArgs,
}

pub fn synth(args: SynthArgs, expander: Arc<Expander>) -> Result<i32> {
    let synth = Synth::new(
        &expander,
        &existing_freqs_path(&args.freqs)?,
        &args.population,
    )?;
    if args.kind == SynthKind::Activity {
        return activity(&args, &synth, expander);
    }
    let count = args
        .count
        .context("--count is required for donors and patients")?;
    let out_path = args
        .out
        .clone()
        .context("--out is required for donors and patients")?;
    let started = Instant::now();
    let people = match args.kind {
        SynthKind::Donors => synth.donors(count, args.seed),
        _ => synth.patients(count, args.seed),
    };
    let generated = started.elapsed();
    let file = std::fs::File::create(&out_path)
        .with_context(|| format!("creating {}", out_path.display()))?;
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
        out_path.display()
    );
    Ok(0)
}

/// `boai synth activity`: fill the registry at --db.
fn activity(args: &SynthArgs, synth: &Synth, expander: Arc<Expander>) -> Result<i32> {
    let plan = ActivityPlan {
        years: args.years,
        donors_per_station: args.donors_per_station,
        seed: args.seed,
    };
    runtime()?.block_on(async {
        let started = Instant::now();
        let reg = open_for_activity(&args.db, expander).await?;
        let counts = make_activity(&reg, synth, &plan, jiff::Timestamp::now()).await?;
        reg.close().await;
        println!("{}", serde_json::to_string_pretty(&counts)?);
        eprintln!(
            "{} years of activity (seed {}) in {:.1} s",
            plan.years,
            plan.seed,
            started.elapsed().as_secs_f64()
        );
        Ok(0)
    })
}

/// The registry at `db` on a manual clock (activity moves it day by day), with SQLite
/// commits synced at checkpoints: generated data is cheap to make again.
pub async fn open_for_activity(db: &DbArgs, expander: Arc<Expander>) -> Result<registry::Registry> {
    let mut config = db.config()?;
    let zone = config.clock.zone_name().to_string();
    config.clock = registry::Clock::manual(&zone, jiff::Timestamp::now())?;
    config.sqlite_sync = registry::SqliteSync::Normal;
    let url = db.url()?;
    let reg = registry::Registry::connect(&url, expander, config)
        .await
        .with_context(|| format!("opening {}", crate::config::masked(&url)))?;
    reg.migrate().await.context("migrating")?;
    Ok(reg)
}
