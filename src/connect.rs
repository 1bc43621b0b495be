//! Opening the registry from the command line: the database flag, the runtime, the actor
//! the audit log records for command-line changes.

use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use hla::Expander;
use registry::{Actor, Registry, RegistryConfig};

#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// `sqlite://PATH` (the embedded default) or `postgres://…`.
    #[arg(long, env = "BOAI_DATABASE_URL", default_value = "sqlite://boai.db")]
    pub db: String,
}

/// A runtime for one command.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// The registry at `db`, migrated.
pub async fn open(db: &DbArgs, expander: Arc<Expander>) -> Result<Registry> {
    let reg = Registry::connect(&db.db, expander, RegistryConfig::default())
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
