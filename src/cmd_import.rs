//! `boai import donors|organ-registrations|hml`: bulk import into the registry, every bad
//! line or element named.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Subcommand;
use hla::Expander;
use registry::import::ImportOptions;

use crate::connect::{DbArgs, cli_actor, open, runtime};

/// A donor file and how to import it (the same for every donor format).
#[derive(Debug, clap::Args)]
pub struct DonorFileArgs {
    #[command(flatten)]
    db: DbArgs,
    file: PathBuf,
    /// The collection station of the donors a typing-only file creates.
    #[arg(long)]
    station: Option<String>,
    /// Load nothing when any row is bad.
    #[arg(long)]
    all_or_nothing: bool,
    /// Rows per transaction: a killed import loses at most the batch in flight.
    #[arg(long, default_value_t = 5000)]
    batch: usize,
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Import donors: `ID%GLSTRING` or Atlas TSV (legacy listing; needs --station) or the
    /// enrolment CSV (`.csv`, columns in crates/registry/src/import.rs).
    Donors(DonorFileArgs),
    /// Import paper organ, body and cornea donation registrations from CSV (columns:
    /// family_name, given_name, national_id, birth_date, organs, tissues, whole_body,
    /// registered_on, region, ethnicity, campaign_id): every bad line named, the good ones
    /// kept.
    OrganRegistrations {
        #[command(flatten)]
        db: DbArgs,
        file: PathBuf,
        /// The station the forms were taken at.
        #[arg(long)]
        station: String,
    },
    /// Import an Atlas donor-import file (JSON, Anthony Nolan's Atlas format): `N` new
    /// donors, `U` updates, `NU` either; `D` (delete) is refused per donor (a donor leaves by
    /// withdrawal or a status change). Needs --station for the donors it creates.
    Atlas(DonorFileArgs),
    /// Import typing results from a lab's HML 1.0.1 file: each sample matched to its donor
    /// by sample barcode or GRID, its typings recorded (the loci given replace the donor's
    /// current ones at those loci), every bad element named by its path.
    Hml {
        #[command(flatten)]
        db: DbArgs,
        file: PathBuf,
        /// Record nothing when any element is bad.
        #[arg(long)]
        all_or_nothing: bool,
    },
}

pub fn import(cmd: ImportCommand, expander: Arc<Expander>) -> Result<i32> {
    let (db, file, station, all_or_nothing, batch) = match cmd {
        ImportCommand::Donors(a) => (a.db, a.file, a.station, a.all_or_nothing, a.batch),
        ImportCommand::Atlas(DonorFileArgs {
            db,
            file,
            station,
            all_or_nothing,
            batch,
        }) => {
            if !file
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("json"))
            {
                anyhow::bail!(
                    "{}: an Atlas donor file is JSON; name it .json",
                    file.display()
                );
            }
            (db, file, station, all_or_nothing, batch)
        }
        ImportCommand::OrganRegistrations { db, file, station } => {
            return import_registrations(db, file, station, expander);
        }
        ImportCommand::Hml {
            db,
            file,
            all_or_nothing,
        } => return import_hml(db, file, all_or_nothing, expander),
    };
    runtime()?.block_on(async move {
        let reg = open(&db, expander).await?;
        let started = Instant::now();
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(indicatif::ProgressStyle::with_template("{spinner} {msg} {pos} rows stored ({per_sec})").expect("template"));
        bar.set_message(format!("importing {}", file.display()));
        let options = ImportOptions { station, all_or_nothing, batch_size: batch };
        let summary = reg
            .import_donors(&file, &options, &cli_actor(), reg.today(), &|n| bar.set_position(n as u64))
            .await
            .with_context(|| format!("importing {}", file.display()))?;
        bar.finish_and_clear();
        let json = file.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
        for e in &summary.errors {
            if json {
                println!("{}: donor {}: {}: {}", file.display(), e.line, e.field, e.reason);
            } else {
                println!("{}:{e}", file.display());
            }
        }
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "read {}, created {}, updated {}, unchanged {}, rejected {}{} in {secs:.2} s ({:.0} rows/s)",
            summary.read,
            summary.created,
            summary.updated,
            summary.unchanged,
            summary.rejected,
            if all_or_nothing && summary.rejected > 0 { " — nothing loaded (--all-or-nothing)" } else { "" },
            summary.read as f64 / secs.max(1e-9)
        );
        reg.close().await;
        Ok(i32::from(summary.rejected > 0))
    })
}

fn import_registrations(
    db: DbArgs,
    file: PathBuf,
    station: String,
    expander: Arc<Expander>,
) -> Result<i32> {
    runtime()?.block_on(async move {
        let reg = open(&db, expander).await?;
        let input =
            std::fs::File::open(&file).with_context(|| format!("opening {}", file.display()))?;
        let report = reg
            .import_organ_registrations(
                std::io::BufReader::new(input),
                Some(&station),
                &cli_actor(),
            )
            .await
            .with_context(|| format!("importing {}", file.display()))?;
        for e in &report.errors {
            println!("{}:{}: {}: {}", file.display(), e.line, e.field, e.reason);
        }
        eprintln!(
            "created {} registrations, refused {} lines",
            report.created,
            report.errors.len()
        );
        reg.close().await;
        Ok(i32::from(!report.errors.is_empty()))
    })
}

fn import_hml(
    db: DbArgs,
    file: PathBuf,
    all_or_nothing: bool,
    expander: Arc<Expander>,
) -> Result<i32> {
    let text = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    let text = String::from_utf8(text)
        .with_context(|| format!("{}: an HML document must be UTF-8", file.display()))?;
    runtime()?.block_on(async move {
        let reg = open(&db, expander).await?;
        let options = registry::hml::HmlOptions { all_or_nothing };
        let report = reg
            .import_hml(&text, &options, &cli_actor(), reg.today())
            .await
            .with_context(|| format!("importing {}", file.display()))?;
        for r in &report.recorded {
            println!(
                "{}:{}: sample {} {} donor {} as {}",
                file.display(),
                r.path,
                r.sample,
                if r.unchanged {
                    "already recorded for"
                } else {
                    "recorded for"
                },
                r.donor_id,
                r.gl
            );
        }
        for e in &report.errors {
            println!("{}:{}: {}", file.display(), e.path, e.reason);
        }
        eprintln!(
            "{} samples: {} recorded, {} errors{}",
            report.samples,
            report.recorded.len(),
            report.errors.len(),
            if all_or_nothing && !report.errors.is_empty() {
                " — nothing recorded (--all-or-nothing)"
            } else {
                ""
            }
        );
        reg.close().await;
        Ok(i32::from(!report.errors.is_empty()))
    })
}
