//! `boai token create|revoke`: API tokens for machines (secrets stored only hashed).

use std::sync::Arc;

use anyhow::Result;
use clap::Subcommand;
use hla::Expander;

use crate::connect::{DbArgs, cli_actor, open, runtime};

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token; the secret is printed once and stored only hashed.
    Create {
        #[command(flatten)]
        db: DbArgs,
        /// station, coordinator, case_manager, admin or auditor.
        #[arg(long)]
        role: String,
        /// The station of a station token.
        #[arg(long)]
        station: Option<String>,
        #[arg(long, default_value = "")]
        label: String,
    },
    /// Revoke a token by id.
    Revoke {
        #[command(flatten)]
        db: DbArgs,
        id: i64,
    },
}

pub fn token(cmd: TokenCommand, expander: Arc<Expander>) -> Result<i32> {
    runtime()?.block_on(async move {
        match cmd {
            TokenCommand::Create {
                db,
                role,
                station,
                label,
            } => {
                let reg = open(&db, expander).await?;
                let (id, secret) = reg
                    .create_token(&role, station.as_deref(), &label, &cli_actor())
                    .await?;
                eprintln!("token {id} ({role}) created; the secret is shown only now:");
                println!("{secret}");
            }
            TokenCommand::Revoke { db, id } => {
                let reg = open(&db, expander).await?;
                reg.revoke_token(id, &cli_actor()).await?;
                eprintln!("token {id} revoked");
            }
        }
        Ok(0)
    })
}
