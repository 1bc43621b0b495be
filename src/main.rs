//! The `boai` command line.

mod cmd_hla;
mod refdata;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "boai",
    version,
    about = "Boai: volunteer donor registry and HLA matching engine"
)]
struct Cli {
    #[command(flatten)]
    refdata: refdata::RefDataArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// HLA nomenclature: expand, reduce and validate typings.
    #[command(subcommand)]
    Hla(cmd_hla::HlaCommand),
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("BOAI_LOG").unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => std::process::ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Hla(cmd) => {
            let expander = cli.refdata.expander()?;
            cmd_hla::run(cmd, &expander)
        }
    }
}
