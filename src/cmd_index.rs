//! `boai index snapshot`: write the matching index to a snapshot file a server can start
//! from (`boai serve --snapshot FILE`), then catch up from the change feed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Subcommand;
use hla::Expander;

use crate::connect::{DbArgs, open, runtime};

#[derive(Debug, Subcommand)]
pub enum IndexCommand {
    /// Read the index from the registry and write it, with the change feed position it
    /// covers, to a snapshot file (written beside it and renamed, so a server never reads
    /// half of one). Prints what it wrote as JSON.
    Snapshot {
        #[command(flatten)]
        db: DbArgs,
        /// The file (default: the configuration file's `snapshot`).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

pub fn index(cmd: IndexCommand, expander: Arc<Expander>) -> Result<i32> {
    let IndexCommand::Snapshot { db, out } = cmd;
    let out = match out.or(db.file()?.snapshot) {
        Some(out) => out,
        None => anyhow::bail!("--out FILE (or `snapshot` in the configuration file) is needed"),
    };
    runtime()?.block_on(async move {
        let reg = open(&db, expander).await?;
        let started = Instant::now();
        let written = reg
            .write_index_snapshot(&out)
            .await
            .with_context(|| format!("writing the index snapshot {}", out.display()))?;
        let h = &written.header;
        println!(
            "{}",
            serde_json::json!({
                "file": out.display().to_string(),
                "donors": h.donors,
                "bytes": written.bytes,
                "seconds": (started.elapsed().as_secs_f64() * 100.0).round() / 100.0,
                "boai_version": h.boai_version,
                "imgt_release": h.imgt_release,
                "origin": h.origin,
            })
        );
        Ok(0)
    })
}
