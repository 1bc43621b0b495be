//! `boai match pairs|probability`: batch scoring of two typing files, and the match
//! probability of one pair.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Subcommand;
use hla::Expander;
use matching::{Locus, SubjectBuilder};

use crate::donors::{load_donor_file, load_subjects};
use crate::frequencies::load_haplotype_set;

pub fn parse_loci(text: &str) -> Result<Vec<Locus>> {
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
