//! `boai user create|list|disable|enable`: accounts for the people who sign in to the web
//! pages. The password is read from standard input (never an argument: arguments show in
//! process lists and shell history) and stored only as an argon2id hash.

use std::io::Read;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use hla::Expander;

use crate::connect::{DbArgs, cli_actor, open, runtime};

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a person's account.
    Create {
        #[command(flatten)]
        db: DbArgs,
        /// The sign-in name (no spaces), e.g. `wang.li`.
        name: String,
        /// station, coordinator, case_manager, admin or auditor.
        #[arg(long)]
        role: String,
        /// A station clerk's station.
        #[arg(long)]
        station: Option<String>,
        /// Read the password from standard input (its first line).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// List the accounts.
    List {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Disable an account (its sessions end).
    Disable {
        #[command(flatten)]
        db: DbArgs,
        name: String,
    },
    /// Set a new password (from standard input): clears a lock-out, ends the sessions.
    Password {
        #[command(flatten)]
        db: DbArgs,
        name: String,
        /// Read the password from standard input (its first line).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Enable a disabled account again (and clear a lock-out).
    Enable {
        #[command(flatten)]
        db: DbArgs,
        name: String,
    },
}

fn password_from_stdin() -> Result<String> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("reading the password from standard input")?;
    let line = text.lines().next().unwrap_or("").to_string();
    if line.is_empty() {
        bail!("no password on standard input");
    }
    Ok(line)
}

pub fn user(cmd: UserCommand, expander: Arc<Expander>) -> Result<i32> {
    runtime()?.block_on(async move {
        match cmd {
            UserCommand::Create {
                db,
                name,
                role,
                station,
                password_stdin: _,
            } => {
                let password = password_from_stdin()?;
                let reg = open(&db, expander).await?;
                let p = reg
                    .create_person(&name, &role, station.as_deref(), &password, &cli_actor())
                    .await?;
                eprintln!("account {} created: {} ({})", p.id, p.name, p.role);
            }
            UserCommand::List { db } => {
                let reg = open(&db, expander).await?;
                for p in reg.people().await? {
                    println!(
                        "{}\t{}\t{}\t{}\t{}",
                        p.id,
                        p.name,
                        p.role,
                        p.station.as_deref().unwrap_or("-"),
                        if p.disabled { "disabled" } else { "active" }
                    );
                }
            }
            UserCommand::Password { db, name, .. } => {
                let password = password_from_stdin()?;
                let reg = open(&db, expander).await?;
                let person = find(&reg, &name).await?;
                reg.set_person_password(person.id, &password, &cli_actor())
                    .await?;
                eprintln!("password of {name} set; its sessions ended");
            }
            UserCommand::Disable { db, name } => set_disabled(&db, expander, &name, true).await?,
            UserCommand::Enable { db, name } => set_disabled(&db, expander, &name, false).await?,
        }
        Ok(0)
    })
}

async fn set_disabled(
    db: &DbArgs,
    expander: Arc<Expander>,
    name: &str,
    disabled: bool,
) -> Result<()> {
    let reg = open(db, expander).await?;
    let p = find(&reg, name).await?;
    reg.set_person_disabled(p.id, disabled, &cli_actor())
        .await?;
    eprintln!(
        "account {} {}",
        p.name,
        if disabled { "disabled" } else { "enabled" }
    );
    Ok(())
}

async fn find(reg: &registry::Registry, name: &str) -> Result<registry::people::Person> {
    match reg.people().await?.into_iter().find(|p| p.name == name) {
        Some(p) => Ok(p),
        None => bail!("no account named `{name}`"),
    }
}
