//! `boai report yearly`: the year's figures for the registry, a branch or a station, as
//! JSON, CSV, Markdown or HTML (with its charts).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Subcommand, ValueEnum};
use hla::Expander;
use registry::ReportFormat;

use crate::connect::{DbArgs, cli_actor, open, runtime};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    Json,
    Csv,
    Md,
    Html,
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// The yearly report (registry operations §10).
    Yearly {
        #[command(flatten)]
        db: DbArgs,
        #[arg(long)]
        year: i32,
        #[arg(long)]
        branch: Option<String>,
        #[arg(long)]
        station: Option<String>,
        #[arg(long, value_enum, default_value = "json")]
        format: FormatArg,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

pub fn report(cmd: ReportCommand, expander: Arc<Expander>) -> Result<i32> {
    let ReportCommand::Yearly {
        db,
        year,
        branch,
        station,
        format,
        out,
    } = cmd;
    let format = match format {
        FormatArg::Json => ReportFormat::Json,
        FormatArg::Csv => ReportFormat::Csv,
        FormatArg::Md => ReportFormat::Md,
        FormatArg::Html => ReportFormat::Html,
    };
    runtime()?.block_on(async move {
        let reg = open(&db, expander).await?;
        let mut actor = cli_actor();
        actor.role = "auditor".into();
        let report = reg
            .yearly_report(year, branch.as_deref(), station.as_deref(), &actor)
            .await?;
        let text = registry::report::render(&report, format)?;
        match out {
            Some(path) => std::fs::write(&path, text)
                .with_context(|| format!("writing {}", path.display()))?,
            None => print!("{text}"),
        }
        reg.close().await;
        Ok(0)
    })
}
