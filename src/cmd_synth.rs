//! `boai synth`: a synthetic donor or patient population.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use hla::Expander;
use matching::{DonorType, Locus};
use synth::Synth;

use crate::frequencies::freqs_path;

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
