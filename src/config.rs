//! The configuration file (TOML): the registry's rules, its database, the listen address and
//! the pool, for a production server. Each setting is looked for in this order: its flag, its
//! environment variable, the file (`--config FILE` or `BOAI_CONFIG`), the default.
//! `boai config check` reads them all, checks them, and prints what a server would use.
//!
//! ```toml
//! database_url = "postgres://boai@db.internal/boai?sslmode=verify-full&sslrootcert=/etc/boai/ca.crt"
//! time_zone = "Asia/Shanghai"
//! daily_at = "02:00"
//! listen = "0.0.0.0:8080"
//! snapshot = "/var/lib/boai/index.snapshot"
//! ion = 2197
//! [ages]
//! min_enrol = 18
//! max_enrol = 45
//! age_out = 61
//! [intervals]
//! reservation_working_days = 53
//! extended_reservation_working_days = 60
//! suspended_search_days = 42
//! pbsc_days = 90
//! dli_days = 30
//! contact_failures_to_uc = 3
//! reconfirm_after_years = 2
//! [pool]
//! max_connections = 16
//! ```

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub database_url: Option<String>,
    pub time_zone: Option<String>,
    pub daily_at: Option<String>,
    pub sqlite_sync: Option<String>,
    pub listen: Option<SocketAddr>,
    /// The index snapshot `serve` starts from and `boai index snapshot` writes.
    pub snapshot: Option<std::path::PathBuf>,
    pub ion: Option<u16>,
    #[serde(default)]
    pub ages: Ages,
    #[serde(default)]
    pub intervals: Intervals,
    #[serde(default)]
    pub pool: Pool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ages {
    pub min_enrol: Option<u32>,
    pub max_enrol: Option<u32>,
    pub age_out: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Intervals {
    pub reservation_working_days: Option<u32>,
    pub extended_reservation_working_days: Option<u32>,
    pub suspended_search_days: Option<u32>,
    pub pbsc_days: Option<u32>,
    pub dli_days: Option<u32>,
    pub contact_failures_to_uc: Option<u32>,
    pub reconfirm_after_years: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    pub max_connections: Option<u32>,
}

impl ConfigFile {
    /// Read a configuration file; an unknown key or a wrong type is named.
    pub fn read(path: &Path) -> Result<ConfigFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the configuration file {}", path.display()))?;
        toml::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "configuration file {}: {}",
                path.display(),
                e.to_string().trim()
            )
        })
    }
}

/// An environment variable's value, when set and not empty.
pub fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A number from the environment (`name`), else the file's, else the default; the
/// environment's is named when it does not read.
pub fn number<T: std::str::FromStr + Copy>(name: &str, file: Option<T>, default: T) -> Result<T> {
    match env(name) {
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("{name}=`{v}` is not a number")),
        None => Ok(file.unwrap_or(default)),
    }
}

/// The rules checked together: each names its key.
pub fn check_rules(c: &registry::RegistryConfig) -> Result<()> {
    if !(1..=9999).contains(&c.ion) {
        bail!(
            "ion {}: an issuing organisation number has four digits (1–9999)",
            c.ion
        );
    }
    if !(c.min_enrol_age >= 16 && c.min_enrol_age <= c.max_enrol_age && c.max_enrol_age < c.age_out)
    {
        bail!(
            "ages: min_enrol ({}) ≤ max_enrol ({}) < age_out ({}), and min_enrol at least 16",
            c.min_enrol_age,
            c.max_enrol_age,
            c.age_out
        );
    }
    for (key, v, max) in [
        (
            "intervals.reservation_working_days",
            c.reservation_working_days,
            365,
        ),
        (
            "intervals.extended_reservation_working_days",
            c.extended_reservation_working_days,
            365,
        ),
        (
            "intervals.suspended_search_days",
            c.suspended_search_days,
            3650,
        ),
        ("intervals.pbsc_days", c.pbsc_interval_days, 3650),
        ("intervals.dli_days", c.dli_interval_days, 3650),
        (
            "intervals.contact_failures_to_uc",
            c.contact_failures_to_uc,
            20,
        ),
        (
            "intervals.reconfirm_after_years",
            c.reconfirm_after_years,
            50,
        ),
    ] {
        if v == 0 || v > max {
            bail!("{key} = {v}: between 1 and {max}");
        }
    }
    if c.extended_reservation_working_days < c.reservation_working_days {
        bail!(
            "intervals.extended_reservation_working_days ({}) is shorter than reservation_working_days ({})",
            c.extended_reservation_working_days,
            c.reservation_working_days
        );
    }
    if let Some(n) = c.pool_max_connections
        && !(1..=500).contains(&n)
    {
        bail!("pool.max_connections = {n}: between 1 and 500");
    }
    Ok(())
}

/// A database URL with its password masked, for printing.
pub fn masked(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// `boai config check`.
#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Read the configuration (flags, environment, file, defaults), check it, and print
    /// what a server would use as JSON (the database password masked). Exit 2 naming the
    /// setting at fault.
    Check {
        #[command(flatten)]
        db: crate::connect::DbArgs,
        /// Where `serve` would listen.
        #[arg(long, env = "BOAI_LISTEN")]
        addr: Option<SocketAddr>,
        /// The index snapshot `serve` would start from.
        #[arg(long, env = "BOAI_SNAPSHOT")]
        snapshot: Option<std::path::PathBuf>,
    },
}

pub fn run(cmd: ConfigCommand) -> Result<i32> {
    let ConfigCommand::Check { db, addr, snapshot } = cmd;
    let url = db.url()?;
    if !(url.starts_with("sqlite:")
        || url.starts_with("postgres://")
        || url.starts_with("postgresql://"))
    {
        bail!(
            "database_url `{}`: sqlite://PATH or postgres://…",
            masked(&url)
        );
    }
    let c = db.config()?;
    let file = db.file()?;
    let listen = addr
        .or(file.listen)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
    let out = serde_json::json!({
        "config_file": db.config_file.clone().or_else(|| env("BOAI_CONFIG").map(Into::into)),
        "database_url": masked(&url),
        "listen": listen.to_string(),
        "snapshot": snapshot.or(file.snapshot),
        "time_zone": c.clock.zone_name(),
        "daily_at": c.daily_job_at.to_string(),
        "sqlite_sync": format!("{:?}", c.sqlite_sync).to_lowercase(),
        "ion": c.ion,
        "ages": {"min_enrol": c.min_enrol_age, "max_enrol": c.max_enrol_age, "age_out": c.age_out},
        "intervals": {
            "reservation_working_days": c.reservation_working_days,
            "extended_reservation_working_days": c.extended_reservation_working_days,
            "suspended_search_days": c.suspended_search_days,
            "pbsc_days": c.pbsc_interval_days,
            "dli_days": c.dli_interval_days,
            "contact_failures_to_uc": c.contact_failures_to_uc,
            "reconfirm_after_years": c.reconfirm_after_years,
        },
        "pool": {"max_connections": c.pool_max_connections},
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(0)
}
