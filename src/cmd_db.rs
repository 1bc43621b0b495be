//! `boai db migrate|stats|add-station`.

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
                println!("{}", reg.stats(registry::today()).await?);
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
