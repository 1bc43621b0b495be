//! `boai db migrate|stats|add-station|daily|holiday`.

use std::sync::Arc;

use anyhow::Result;
use clap::Subcommand;
use hla::Expander;

use crate::connect::{DbArgs, cli_actor, open, runtime};

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
    /// Run the daily job now (for cron), unless the run due now already ran (e.g. in a
    /// server): TU expiry, reservation expiry, age-out, stale suspended searches stopped,
    /// active searches re-run. Prints its counts as JSON.
    Daily(DbArgs),
    /// The holidays working days skip (reservations count working days).
    Holiday {
        #[command(subcommand)]
        cmd: HolidayCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum HolidayCommand {
    /// Add (or rename) a holiday.
    Add {
        #[command(flatten)]
        db: DbArgs,
        /// `YYYY-MM-DD`.
        day: String,
        name: String,
    },
    Remove {
        #[command(flatten)]
        db: DbArgs,
        day: String,
    },
    /// List a year's holidays (or all) as JSON lines.
    List {
        #[command(flatten)]
        db: DbArgs,
        #[arg(long)]
        year: Option<i32>,
    },
}

pub fn db(cmd: DbCommand, expander: Arc<Expander>) -> Result<i32> {
    runtime()?.block_on(async move {
        match cmd {
            DbCommand::Migrate(db) => {
                let reg = open(&db, expander).await?;
                eprintln!("{}: migrated", crate::config::masked(&db.url()?));
                reg.close().await;
            }
            DbCommand::Stats(db) => {
                let reg = open(&db, expander).await?;
                println!("{}", reg.stats(reg.today()).await?);
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
                reg.add_station_and_branch(&code, &branch, &name, &region, target, &actor)
                    .await?;
                eprintln!("station {code} added to branch {branch}");
                reg.close().await;
            }
            DbCommand::Daily(db) => {
                let reg = Arc::new(open(&db, expander).await?);
                let state = api::AppState::new(reg.clone());
                state.load_index().await?;
                match api::jobs::run_daily_if_due(&state, &cli_actor())
                    .await
                    .map_err(|e| anyhow::anyhow!("daily job: {}", e.detail))?
                {
                    Some(outcome) => println!("{}", serde_json::to_string(&outcome)?),
                    None => eprintln!(
                        "the daily job already ran for {}",
                        api::jobs::due_date(&state)
                    ),
                }
                reg.close().await;
            }
            DbCommand::Holiday { cmd } => match cmd {
                HolidayCommand::Add { db, day, name } => {
                    let reg = open(&db, expander).await?;
                    reg.add_holiday(&day, &name, &cli_actor()).await?;
                    eprintln!("holiday {day} ({name}) added");
                    reg.close().await;
                }
                HolidayCommand::Remove { db, day } => {
                    let reg = open(&db, expander).await?;
                    reg.remove_holiday(&day, &cli_actor()).await?;
                    eprintln!("holiday {day} removed");
                    reg.close().await;
                }
                HolidayCommand::List { db, year } => {
                    let reg = open(&db, expander).await?;
                    for h in reg.holidays(year).await? {
                        println!("{}", serde_json::to_string(&h)?);
                    }
                    reg.close().await;
                }
            },
        }
        Ok(0)
    })
}
