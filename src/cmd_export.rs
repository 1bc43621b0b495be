//! `boai export atlas`: the registry's donors in Atlas's donor-import format.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Subcommand;
use hla::Expander;
use registry::atlas::AtlasExportOptions;

use crate::connect::{DbArgs, cli_actor, open, runtime};

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Listed donors with international_sharing consent (or every listed donor with
    /// --all-listed) as an Atlas donor-import JSON file: full, or differential with --since.
    /// Audited with its counts; prints the position to give the next differential export.
    Atlas {
        #[command(flatten)]
        db: DbArgs,
        /// The file to write (replaced only once the export is whole).
        #[arg(long)]
        out: PathBuf,
        /// Donors changed since this local date (YYYY-MM-DD) or position (an earlier
        /// export's, RFC 3339): a differential file (updateMode diff).
        #[arg(long)]
        since: Option<String>,
        /// Every listed donor, not only those consenting to international sharing (a
        /// registry moving its own data).
        #[arg(long)]
        all_listed: bool,
    },
}

pub fn export(cmd: ExportCommand, expander: Arc<Expander>) -> Result<i32> {
    let ExportCommand::Atlas {
        db,
        out,
        since,
        all_listed,
    } = cmd;
    runtime()?.block_on(async move {
        let reg = open(&db, expander).await?;
        // Written beside the target, then renamed: a failed export leaves no half file.
        let mut staging_name = out.file_name().unwrap_or_default().to_os_string();
        staging_name.push(format!(".partial-{}", std::process::id()));
        let staging = out.with_file_name(staging_name);
        let file = std::fs::File::create(&staging)
            .with_context(|| format!("creating {}", staging.display()))?;
        let options = AtlasExportOptions { since, all_listed };
        let result = reg
            .export_atlas(std::io::BufWriter::new(file), &options, &cli_actor())
            .await
            .context("exporting to Atlas's format");
        let summary = match result.and_then(|s| {
            std::fs::rename(&staging, &out)
                .with_context(|| format!("writing {}", out.display()))
                .map(|()| s)
        }) {
            Ok(s) => s,
            Err(e) => {
                let _ = std::fs::remove_file(&staging);
                return Err(e);
            }
        };
        for (id, why) in &summary.skipped {
            eprintln!("skipped donor {id}: {why}");
        }
        eprintln!(
            "{}: {} export of {} donors ({} deleted, {} skipped); position {} (give it as --since to the next differential export)",
            out.display(),
            summary.update_mode,
            summary.donors,
            summary.deleted,
            summary.skipped.len(),
            summary.position
        );
        reg.close().await;
        Ok(0)
    })
}
