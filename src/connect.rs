//! Opening the registry from the command line: the database flag, the runtime, the actor
//! the audit log records for command-line changes.

use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use hla::Expander;
use registry::{Actor, Clock, Registry, RegistryConfig, SqliteSync};

#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// `sqlite://PATH` (the embedded default) or `postgres://…`.
    #[arg(long, env = "BOAI_DATABASE_URL", default_value = "sqlite://boai.db")]
    pub db: String,
    /// The registry's time zone (IANA name): "today" is its local date.
    #[arg(long, env = "BOAI_TIME_ZONE", default_value = registry::DEFAULT_TIME_ZONE)]
    pub time_zone: String,
    /// The local time (HH:MM) the daily job runs at.
    #[arg(long, env = "BOAI_DAILY_AT", default_value = "02:00")]
    pub daily_at: String,
    /// SQLite durability: `full` (every acknowledged commit survives a power loss) or
    /// `normal` (faster commits; a power loss may lose the last ones).
    #[arg(long, env = "BOAI_SQLITE_SYNC", default_value = "full")]
    pub sqlite_sync: String,
    /// Failed contact attempts in a row after which an available donor goes TU/UC.
    #[arg(long, env = "BOAI_CONTACT_FAILURES_TO_UC", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub contact_failures_to_uc: u32,
    /// Years without contact after which a listed donor is due for reconfirmation.
    #[arg(long, env = "BOAI_RECONFIRM_AFTER_YEARS", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=50))]
    pub reconfirm_after_years: u32,
    /// For tests: a file holding the instant that is "now" (RFC 3339), re-read each time.
    #[arg(long, env = "BOAI_CLOCK_FILE", hide = true)]
    pub clock_file: Option<std::path::PathBuf>,
}

impl DbArgs {
    /// The arguments for `url`, the rest from the environment or the defaults.
    pub fn for_url(url: &str) -> DbArgs {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        DbArgs {
            db: url.to_string(),
            time_zone: env("BOAI_TIME_ZONE").unwrap_or_else(|| registry::DEFAULT_TIME_ZONE.into()),
            daily_at: env("BOAI_DAILY_AT").unwrap_or_else(|| "02:00".into()),
            sqlite_sync: env("BOAI_SQLITE_SYNC").unwrap_or_else(|| "full".into()),
            contact_failures_to_uc: env("BOAI_CONTACT_FAILURES_TO_UC")
                .and_then(|v| v.parse().ok())
                .filter(|n| (1..=20).contains(n))
                .unwrap_or(3),
            reconfirm_after_years: env("BOAI_RECONFIRM_AFTER_YEARS")
                .and_then(|v| v.parse().ok())
                .filter(|n| (1..=50).contains(n))
                .unwrap_or(2),
            clock_file: env("BOAI_CLOCK_FILE").map(Into::into),
        }
    }

    /// The registry's rules with this time zone, clock and daily-job time.
    pub fn config(&self) -> Result<RegistryConfig> {
        let clock = match &self.clock_file {
            Some(path) => Clock::from_file(&self.time_zone, path.clone()),
            None => Clock::system(&self.time_zone),
        }
        .with_context(|| format!("--time-zone {}", self.time_zone))?;
        let daily_job_at: jiff::civil::Time = self.daily_at.parse().with_context(|| {
            format!("--daily-at `{}` is not a time such as 02:00", self.daily_at)
        })?;
        let sqlite_sync = SqliteSync::from_code(&self.sqlite_sync).with_context(|| {
            format!("--sqlite-sync `{}` is not full or normal", self.sqlite_sync)
        })?;
        Ok(RegistryConfig {
            clock,
            daily_job_at,
            sqlite_sync,
            contact_failures_to_uc: self.contact_failures_to_uc,
            reconfirm_after_years: self.reconfirm_after_years,
            ..RegistryConfig::default()
        })
    }
}

/// A runtime for one command.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// The registry at `db`, migrated.
pub async fn open(db: &DbArgs, expander: Arc<Expander>) -> Result<Registry> {
    let reg = Registry::connect(&db.db, expander, db.config()?)
        .await
        .with_context(|| format!("opening {}", db.db))?;
    reg.migrate().await.context("migrating")?;
    Ok(reg)
}

/// The audit log's actor for command-line changes.
pub fn cli_actor() -> Actor {
    let user = std::env::var("USER").unwrap_or_else(|_| "cli".into());
    Actor::new(&format!("cli:{user}"), "admin")
}
