//! The `boai` command line.

mod activity;
mod cmd_bench;
mod cmd_db;
mod cmd_export;
mod cmd_hla;
mod cmd_import;
mod cmd_index;
mod cmd_match;
mod cmd_reference;
mod cmd_report;
mod cmd_search;
mod cmd_serve;
mod cmd_synth;
mod cmd_token;
mod cmd_user;
mod config;
mod connect;
mod datadir;
mod donors;
mod frequencies;
mod refdata;

use std::sync::Arc;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

// Parsing, import and index building allocate many small strings from several threads;
// mimalloc's per-thread heaps cut that cost by about half against glibc's allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Write a synthetic donor or patient population, or fill a registry with years of
    /// synthetic activity.
    Synth(cmd_synth::SynthArgs),
    /// Batch scoring of two typing files.
    #[command(subcommand)]
    Match(cmd_match::MatchCommand),
    /// Search donors for a patient: from a donor file (--donors) or the registry (--db).
    Search {
        #[command(flatten)]
        args: cmd_search::SearchArgs,
        /// Search the registry at this URL (sqlite://PATH or postgres://…).
        #[arg(long, env = "BOAI_DATABASE_URL")]
        db: Option<String>,
    },
    /// The registry database: migrate, stats, stations.
    #[command(subcommand)]
    Db(cmd_db::DbCommand),
    /// The matching index: write a snapshot file a server can start from.
    #[command(subcommand)]
    Index(cmd_index::IndexCommand),
    /// Import into the registry.
    #[command(subcommand)]
    Import(cmd_import::ImportCommand),
    /// Export from the registry in standard formats.
    #[command(subcommand)]
    Export(cmd_export::ExportCommand),
    /// Benchmarks that print their figures.
    #[command(subcommand)]
    Bench(cmd_bench::BenchCommand),
    /// Reference data: fetch an IPD-IMGT/HLA release, the MAC dictionary and a frequency
    /// set into the data directory, or show what is there.
    #[command(subcommand)]
    Reference(cmd_reference::ReferenceCommand),
    /// Reports from the registry: the yearly figures.
    #[command(subcommand)]
    Report(cmd_report::ReportCommand),
    /// Serve the HTTP API over the registry (loads the matching index first).
    Serve(cmd_serve::ServeArgs),
    /// API tokens.
    #[command(subcommand)]
    Token(cmd_token::TokenCommand),
    /// People's accounts for the web pages.
    #[command(subcommand)]
    User(cmd_user::UserCommand),
    /// The configuration: check it and print what a server would use.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// A fresh SQLite registry with a synthetic population, a coordinator token and ready
    /// `curl` commands; then serves.
    Demo(cmd_serve::DemoArgs),
}

fn main() -> std::process::ExitCode {
    let filter = EnvFilter::try_from_env("BOAI_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    // `BOAI_LOG_FORMAT=json`: one JSON object per line, for a log collector.
    if std::env::var("BOAI_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
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
        Command::Synth(args) => cmd_synth::synth(args, Arc::new(cli.refdata.expander()?)),
        Command::Match(cmd) => cmd_match::match_cmd(cmd, Arc::new(cli.refdata.expander()?)),
        Command::Search { args, db } => match db {
            Some(db) if args.donors.is_none() => {
                cmd_search::search_db(args, db, Arc::new(cli.refdata.expander()?))
            }
            _ => cmd_search::search_file(args, Arc::new(cli.refdata.expander()?)),
        },
        Command::Db(cmd) => cmd_db::db(cmd, Arc::new(cli.refdata.expander()?)),
        Command::Index(cmd) => cmd_index::index(cmd, Arc::new(cli.refdata.expander()?)),
        Command::Import(cmd) => cmd_import::import(cmd, Arc::new(cli.refdata.expander()?)),
        Command::Export(cmd) => cmd_export::export(cmd, Arc::new(cli.refdata.expander()?)),
        Command::Bench(cmd) => cmd_bench::bench(cmd, Arc::new(cli.refdata.expander()?)),
        Command::Reference(cmd) => cmd_reference::run(cmd),
        Command::Config(cmd) => config::run(cmd),
        Command::Report(cmd) => cmd_report::report(cmd, Arc::new(cli.refdata.expander()?)),
        Command::Serve(args) => cmd_serve::serve(args, Arc::new(cli.refdata.expander()?)),
        Command::Token(cmd) => cmd_token::token(cmd, Arc::new(cli.refdata.expander()?)),
        Command::User(cmd) => cmd_user::user(cmd, Arc::new(cli.refdata.expander()?)),
        Command::Demo(args) => cmd_serve::demo(args, &cli.refdata),
    }
}
