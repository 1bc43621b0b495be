//! `boai db …`, `boai import donors`, and the registry-backed `boai search --db`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use hla::Expander;
use matching::{DonorIndex, SubjectBuilder};
use registry::import::ImportOptions;
use registry::{Actor, Registry, RegistryConfig};

use crate::cmd_match::{SearchArgs, build_request, print_result};

#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// `sqlite://PATH` (the embedded default) or `postgres://…`.
    #[arg(long, env = "BOAI_DATABASE_URL", default_value = "sqlite://boai.db")]
    pub db: String,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Apply pending migrations.
    Migrate(DbArgs),
    /// JSON counts: donors by status, typings, consents, follow-ups due and overdue, organ registrations.
    Stats(DbArgs),
    /// Add a collection station (and its branch, if new).
    AddStation {
        #[command(flatten)]
        db: DbArgs,
        code: String,
        #[arg(long)]
        branch: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "")]
        region: String,
        /// Yearly recruitment target (samples).
        #[arg(long, default_value_t = 0)]
        target: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Import donors: `ID%GLSTRING` or Atlas TSV (legacy listing; needs --station) or the
    /// enrolment CSV (`.csv`, columns in crates/registry/src/import.rs).
    Donors {
        #[command(flatten)]
        db: DbArgs,
        file: PathBuf,
        #[arg(long)]
        station: Option<String>,
        /// Load nothing when any row is bad.
        #[arg(long)]
        all_or_nothing: bool,
        /// Rows per transaction: a killed import loses at most the batch in flight.
        #[arg(long, default_value_t = 5000)]
        batch: usize,
    },
}

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

pub async fn open(db: &DbArgs, expander: Arc<Expander>) -> Result<Registry> {
    let reg = Registry::connect(&db.db, expander, RegistryConfig::default())
        .await
        .with_context(|| format!("opening {}", db.db))?;
    reg.migrate().await.context("migrating")?;
    Ok(reg)
}

pub fn cli_actor() -> Actor {
    let user = std::env::var("USER").unwrap_or_else(|_| "cli".into());
    Actor::new(&format!("cli:{user}"), "admin")
}

pub fn db(cmd: DbCommand, expander: Arc<Expander>) -> Result<i32> {
    runtime()?.block_on(async move {
        match cmd {
            DbCommand::Migrate(db) => {
                let reg = open(&db, expander).await?;
                eprintln!("{}: migrated", db.db);
                reg.close().await;
            }
            DbCommand::Stats(db) => {
                let reg = open(&db, expander).await?;
                println!("{}", reg.stats(crate::cmd_match::today()).await?);
                reg.close().await;
            }
            DbCommand::AddStation {
                db,
                code,
                branch,
                name,
                region,
                target,
            } => {
                let reg = open(&db, expander).await?;
                let actor = cli_actor();
                match reg.add_branch(&branch, &branch, &region, &actor).await {
                    Ok(()) | Err(registry::RegistryError::Conflict(_)) => {}
                    Err(e) => return Err(e.into()),
                }
                reg.add_station(&code, &branch, &name, &region, target, &actor)
                    .await?;
                eprintln!("station {code} added to branch {branch}");
                reg.close().await;
            }
        }
        Ok(0)
    })
}

pub fn import(cmd: ImportCommand, expander: Arc<Expander>) -> Result<i32> {
    let ImportCommand::Donors {
        db,
        file,
        station,
        all_or_nothing,
        batch,
    } = cmd;
    runtime()?.block_on(async move {
        let reg = open(&db, expander).await?;
        let started = Instant::now();
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(indicatif::ProgressStyle::with_template("{spinner} {msg} {pos} rows stored ({per_sec})").expect("template"));
        bar.set_message(format!("importing {}", file.display()));
        let options = ImportOptions { station, all_or_nothing, batch_size: batch };
        let summary = reg
            .import_donors(&file, &options, &cli_actor(), crate::cmd_match::today(), &|n| bar.set_position(n as u64))
            .await
            .with_context(|| format!("importing {}", file.display()))?;
        bar.finish_and_clear();
        for e in &summary.errors {
            println!("{}:{e}", file.display());
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

/// `boai search --db URL …`: the registry's searchable donors, same output as the file search.
pub fn search_db(args: SearchArgs, db: String, expander: Arc<Expander>) -> Result<i32> {
    if args.donors.is_some() {
        bail!("give either --donors FILE or --db URL, not both");
    }
    runtime()?.block_on(async move {
        let reg = open(&DbArgs { db }, expander.clone()).await?;
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
        let loaded = reg.load_index(&mut index, crate::cmd_match::today()).await?;
        let load_s = t.elapsed().as_secs_f64();
        // Donor ids shown are the registry's external ids (as in the file they came from).
        let mut ids = std::collections::HashMap::new();
        let started = Instant::now();
        let result = index.search(&req)?;
        for h in &result.hits {
            let d = reg.donor(h.key as i64).await?;
            ids.insert(h.key, d.external_id);
        }
        eprintln!(
            "{} of {loaded} searchable donors qualify (index loaded in {load_s:.2} s, search {:.1} ms)",
            result.total,
            started.elapsed().as_secs_f64() * 1e3
        );
        print_result(&result, &req, args.format, &|k| ids.get(&k).cloned().unwrap_or_default())?;
        reg.close().await;
        Ok(0)
    })
}
