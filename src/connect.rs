//! Opening the registry from the command line: the database flag, the runtime, the actor
//! the audit log records for command-line changes.

use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use hla::Expander;
use registry::{Actor, Clock, Registry, RegistryConfig, SqliteSync};

use crate::config::{ConfigFile, number};

#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// `sqlite://PATH` (the embedded default, `sqlite://boai.db`) or `postgres://…`
    /// (`sslmode` and `sslrootcert` honoured).
    #[arg(long, env = "BOAI_DATABASE_URL")]
    pub db: Option<String>,
    /// A configuration file (TOML; see src/config.rs): flags and environment variables
    /// override what it says.
    #[arg(long = "config", env = "BOAI_CONFIG")]
    pub config_file: Option<std::path::PathBuf>,
    /// The registry's time zone (IANA name; default Asia/Shanghai): "today" is its local date.
    #[arg(long, env = "BOAI_TIME_ZONE")]
    pub time_zone: Option<String>,
    /// The local time (HH:MM; default 02:00) the daily job runs at.
    #[arg(long, env = "BOAI_DAILY_AT")]
    pub daily_at: Option<String>,
    /// SQLite durability: `full` (the default: every acknowledged commit survives a power
    /// loss) or `normal` (faster commits; a power loss may lose the last ones).
    #[arg(long, env = "BOAI_SQLITE_SYNC")]
    pub sqlite_sync: Option<String>,
    /// Failed contact attempts in a row after which an available donor goes TU/UC (default 3).
    #[arg(long, env = "BOAI_CONTACT_FAILURES_TO_UC")]
    pub contact_failures_to_uc: Option<u32>,
    /// Years without contact after which a listed donor is due for reconfirmation (default 2).
    #[arg(long, env = "BOAI_RECONFIRM_AFTER_YEARS")]
    pub reconfirm_after_years: Option<u32>,
    /// For tests: a file holding the instant that is "now" (RFC 3339), re-read each time.
    #[arg(long, env = "BOAI_CLOCK_FILE", hide = true)]
    pub clock_file: Option<std::path::PathBuf>,
}

impl DbArgs {
    /// The arguments for `url`, the rest from the environment, the configuration file or
    /// the defaults.
    pub fn for_url(url: &str) -> DbArgs {
        DbArgs {
            db: Some(url.to_string()),
            config_file: crate::config::env("BOAI_CONFIG").map(Into::into),
            time_zone: None,
            daily_at: None,
            sqlite_sync: None,
            contact_failures_to_uc: None,
            reconfirm_after_years: None,
            clock_file: crate::config::env("BOAI_CLOCK_FILE").map(Into::into),
        }
    }

    /// The configuration file's settings (none without a file).
    pub fn file(&self) -> Result<ConfigFile> {
        match self
            .config_file
            .clone()
            .or_else(|| crate::config::env("BOAI_CONFIG").map(Into::into))
        {
            Some(path) => ConfigFile::read(&path),
            None => Ok(ConfigFile::default()),
        }
    }

    /// The database URL: the flag or `BOAI_DATABASE_URL`, the file's, else `sqlite://boai.db`.
    pub fn url(&self) -> Result<String> {
        Ok(self
            .db
            .clone()
            .or_else(|| crate::config::env("BOAI_DATABASE_URL"))
            .or(self.file()?.database_url)
            .unwrap_or_else(|| "sqlite://boai.db".into()))
    }

    /// The registry's rules: each from its flag, its environment variable, the file, or
    /// the default; checked together.
    pub fn config(&self) -> Result<RegistryConfig> {
        let file = self.file()?;
        let text = |flag: &Option<String>, name: &str, file: &Option<String>, default: &str| {
            flag.clone()
                .or_else(|| crate::config::env(name))
                .or_else(|| file.clone())
                .unwrap_or_else(|| default.to_string())
        };
        let time_zone = text(
            &self.time_zone,
            "BOAI_TIME_ZONE",
            &file.time_zone,
            registry::DEFAULT_TIME_ZONE,
        );
        let daily_at = text(&self.daily_at, "BOAI_DAILY_AT", &file.daily_at, "02:00");
        let sync = text(
            &self.sqlite_sync,
            "BOAI_SQLITE_SYNC",
            &file.sqlite_sync,
            "full",
        );
        let clock = match &self.clock_file {
            Some(path) => Clock::from_file(&time_zone, path.clone()),
            None => Clock::system(&time_zone),
        }
        .with_context(|| format!("time_zone `{time_zone}`"))?;
        let daily_job_at: jiff::civil::Time = daily_at
            .parse()
            .with_context(|| format!("daily_at `{daily_at}` is not a time such as 02:00"))?;
        let sqlite_sync = SqliteSync::from_code(&sync)
            .with_context(|| format!("sqlite_sync `{sync}` is not full or normal"))?;
        let d = RegistryConfig::default();
        let (ages, iv) = (&file.ages, &file.intervals);
        let config = RegistryConfig {
            clock,
            daily_job_at,
            sqlite_sync,
            ion: number("BOAI_ION", file.ion, d.ion)?,
            min_enrol_age: number("BOAI_MIN_ENROL_AGE", ages.min_enrol, d.min_enrol_age)?,
            max_enrol_age: number("BOAI_MAX_ENROL_AGE", ages.max_enrol, d.max_enrol_age)?,
            age_out: number("BOAI_AGE_OUT", ages.age_out, d.age_out)?,
            reservation_working_days: number(
                "BOAI_RESERVATION_WORKING_DAYS",
                iv.reservation_working_days,
                d.reservation_working_days,
            )?,
            extended_reservation_working_days: number(
                "BOAI_EXTENDED_RESERVATION_WORKING_DAYS",
                iv.extended_reservation_working_days,
                d.extended_reservation_working_days,
            )?,
            suspended_search_days: number(
                "BOAI_SUSPENDED_SEARCH_DAYS",
                iv.suspended_search_days,
                d.suspended_search_days,
            )?,
            pbsc_interval_days: number("BOAI_PBSC_DAYS", iv.pbsc_days, d.pbsc_interval_days)?,
            dli_interval_days: number("BOAI_DLI_DAYS", iv.dli_days, d.dli_interval_days)?,
            contact_failures_to_uc: match self.contact_failures_to_uc {
                Some(v) => v,
                None => number(
                    "BOAI_CONTACT_FAILURES_TO_UC",
                    iv.contact_failures_to_uc,
                    d.contact_failures_to_uc,
                )?,
            },
            reconfirm_after_years: match self.reconfirm_after_years {
                Some(v) => v,
                None => number(
                    "BOAI_RECONFIRM_AFTER_YEARS",
                    iv.reconfirm_after_years,
                    d.reconfirm_after_years,
                )?,
            },
            pool_max_connections: match crate::config::env("BOAI_POOL_MAX_CONNECTIONS") {
                Some(v) => Some(v.trim().parse().map_err(|_| {
                    anyhow::anyhow!("BOAI_POOL_MAX_CONNECTIONS=`{v}` is not a number")
                })?),
                None => file.pool.max_connections,
            },
            ..d
        };
        crate::config::check_rules(&config)?;
        Ok(config)
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
    let url = db.url()?;
    let reg = Registry::connect(&url, expander, db.config()?)
        .await
        .with_context(|| format!("opening {}", crate::config::masked(&url)))?;
    reg.migrate().await.context("migrating")?;
    Ok(reg)
}

/// The audit log's actor for command-line changes.
pub fn cli_actor() -> Actor {
    let user = std::env::var("USER").unwrap_or_else(|_| "cli".into());
    Actor::new(&format!("cli:{user}"), "admin")
}
