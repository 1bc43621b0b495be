//! `boai serve` and `boai demo`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use hla::Expander;
use registry::Registry;
use registry::import::ImportOptions;

use crate::connect::{DbArgs, cli_actor, open, runtime};

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Where to listen (default 127.0.0.1:8080; the configuration file's `listen`).
    #[arg(long, env = "BOAI_LISTEN")]
    pub addr: Option<SocketAddr>,
    /// Haplotype frequencies for match probabilities (default: the shared NMDP set when
    /// present; without one, a search asking for probabilities is refused).
    #[arg(long, env = "BOAI_FREQ_FILE")]
    pub freqs: Option<PathBuf>,
    #[arg(long, default_value = "API")]
    pub population: String,
    /// Start from this index snapshot (`boai index snapshot`) and catch up from the change
    /// feed, instead of reading every donor (default: the configuration file's
    /// `snapshot`). One that is missing, damaged or from another Boai, IMGT/HLA release or
    /// database is named and the index is read from the store instead.
    #[arg(long, env = "BOAI_SNAPSHOT")]
    pub snapshot: Option<PathBuf>,
    /// How often the scheduler checks whether the daily job is due (seconds).
    #[arg(long, env = "BOAI_JOB_TICK_SECS", default_value_t = 30.0)]
    pub job_tick_secs: f64,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// A fresh SQLite file (replaced if it exists).
    #[arg(long, default_value = "boai-demo.db")]
    pub file: PathBuf,
    #[arg(long, default_value_t = 100_000)]
    pub donors: usize,
    #[arg(long, default_value_t = 5)]
    pub patients: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    #[arg(long, env = "BOAI_FREQ_FILE")]
    pub freqs: Option<PathBuf>,
    /// Years of synthetic registry activity (campaigns, enrolments, contacts, requests,
    /// donations, care, organ registrations and cases) for the reports; 0 for none.
    #[arg(long, default_value_t = 3)]
    pub activity_years: i32,
    /// Donors each station enrols per year of activity.
    #[arg(long, default_value_t = 100)]
    pub activity_donors: usize,
    /// Where reference data missing on this machine is fetched from (as `boai reference
    /// fetch`); a frequency set is fetched only with --freqs-url.
    #[command(flatten)]
    pub reference: crate::cmd_reference::FetchArgs,
}

/// The server's state, with match probabilities when a frequency set is given or the shared
/// one is present.
fn state_for(reg: Registry, freqs: &Option<PathBuf>, population: &str) -> Result<api::AppState> {
    let expander = reg.expander().clone();
    let state = api::AppState::new(Arc::new(reg));
    let path = crate::frequencies::freqs_path(freqs);
    if freqs.is_none() && !path.exists() {
        eprintln!(
            "no haplotype frequencies at {}: searches will not offer probabilities",
            path.display()
        );
        return Ok(state);
    }
    let started = Instant::now();
    let set = crate::frequencies::load_haplotype_set(freqs, population, &expander)?;
    eprintln!(
        "haplotype frequencies: {} haplotypes ({population}) from {} in {:.1} s",
        set.len(),
        path.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(state.with_haplotypes(Arc::new(set)))
}

/// Bind, load the index, start the jobs, serve until Ctrl-C or SIGTERM, drain.
async fn serve_state(
    state: api::AppState,
    addr: SocketAddr,
    job_tick: Duration,
    snapshot: Option<PathBuf>,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    // /healthz answers while the index loads; /readyz once it is in.
    let loading = state.clone();
    let started = Instant::now();
    let load = tokio::spawn(async move {
        match snapshot {
            Some(path) => loading.load_index_from(&path).await,
            None => loading.load_index().await.map(|donors| api::IndexLoad {
                donors,
                snapshot: None,
                refused: None,
            }),
        }
    });
    // The scheduler waits for the index (`ready`) before its first run.
    let jobs = api::jobs::spawn_scheduler(state.clone(), job_tick);
    let server = tokio::spawn(api::serve(state, listener, shutdown_signal()));
    let loaded = load.await?.context("loading the matching index")?;
    if let Some(why) = &loaded.refused {
        eprintln!("{why}: the index was read from the store instead");
    }
    let from = match &loaded.snapshot {
        Some(h) => format!(" from the snapshot of {} (caught up since)", h.written_at),
        None => String::new(),
    };
    eprintln!(
        "index loaded{from}: {} searchable donors in {:.1} s; serving on http://{addr} (docs at /docs)",
        loaded.donors,
        started.elapsed().as_secs_f64()
    );
    server.await??;
    jobs.abort();
    eprintln!("stopped after draining requests in flight");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        tokio::signal::ctrl_c().await.ok();
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// Where `serve` listens: the flag or `BOAI_LISTEN`, the configuration file's `listen`, or
/// 127.0.0.1:8080.
pub fn listen_addr(args: &ServeArgs) -> Result<SocketAddr> {
    Ok(match args.addr {
        Some(a) => a,
        None => args
            .db
            .file()?
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
    })
}

pub fn serve(args: ServeArgs, expander: Arc<Expander>) -> Result<i32> {
    runtime()?.block_on(async move {
        let reg = open(&args.db, expander).await?;
        anyhow::ensure!(
            args.job_tick_secs.is_finite() && args.job_tick_secs > 0.0,
            "--job-tick-secs must be a positive number of seconds"
        );
        let state = state_for(reg, &args.freqs, &args.population)?;
        let snapshot = args.snapshot.clone().or(args.db.file()?.snapshot);
        serve_state(
            state,
            listen_addr(&args)?,
            Duration::from_secs_f64(args.job_tick_secs),
            snapshot,
        )
        .await?;
        Ok(0)
    })
}

/// The demo's reference data: what is missing on this machine (no flag, environment, data
/// directory or `../shared` copy) is fetched first, with progress bars; when that fails
/// (offline), the error says what to run.
fn demo_reference(
    args: &mut DemoArgs,
    refdata: &crate::refdata::RefDataArgs,
) -> Result<Arc<Expander>> {
    let data = args
        .reference
        .data_dir
        .clone()
        .unwrap_or_else(crate::datadir::default_dir);
    let mut missing = Vec::new();
    if !refdata.hla_dir_in(&data).exists() {
        missing.push("the IPD-IMGT/HLA release");
    }
    if !refdata.mac_file_in(&data).exists() {
        missing.push("the MAC dictionary");
    }
    let freqs_missing = !crate::frequencies::freqs_path_in(&args.freqs, &data).exists();
    if freqs_missing && args.reference.freqs_url.is_some() {
        missing.push("a haplotype frequency set");
    }
    if !missing.is_empty() {
        eprintln!(
            "{} not on this machine: fetching into {}",
            missing.join(", "),
            data.display()
        );
        let mut fetch = args.reference.clone();
        fetch.data_dir = Some(data.clone());
        crate::cmd_reference::fetch(fetch).map_err(|e| {
            e.context(format!(
                "the demo needs {}: run `boai reference fetch{}` where the internet is reachable \
                 (or with --from URL --mac-url URL from a mirror), or pass --hla-dir, --mac and --freqs",
                missing.join(", "),
                if freqs_missing { " --freqs-url URL" } else { "" }
            ))
        })?;
    }
    let freqs = crate::frequencies::freqs_path_in(&args.freqs, &data);
    if !freqs.exists() {
        anyhow::bail!(
            "the demo draws its donors from a haplotype frequency set, and none is at {}: run \
             `boai demo --freqs-url URL` or `boai reference fetch --freqs-url URL` (an NMDP \
             frequency CSV), or pass --freqs FILE or set BOAI_FREQ_FILE",
            freqs.display()
        );
    }
    args.freqs = Some(freqs);
    Ok(Arc::new(refdata.expander_in(&data)?))
}

pub fn demo(mut args: DemoArgs, refdata: &crate::refdata::RefDataArgs) -> Result<i32> {
    let expander = demo_reference(&mut args, refdata)?;
    for suffix in ["", "-wal", "-shm"] {
        let mut p = args.file.clone().into_os_string();
        p.push(suffix);
        std::fs::remove_file(&p).ok();
    }
    let url = format!("sqlite://{}", args.file.display());
    let synth = synth::Synth::new(
        &expander,
        &crate::frequencies::existing_freqs_path(&args.freqs)?,
        "API",
    )?;
    runtime()?.block_on(async move {
        let reg = open(&DbArgs::for_url(&url), expander.clone()).await?;
        let actor = cli_actor();
        reg.add_branch("BJ", "Beijing branch", "North", &actor).await?;
        reg.add_station("BJ01", "BJ", "Beijing collection station 1", "North", 150, &actor).await?;
        reg.add_station("BJ02", "BJ", "Beijing collection station 2", "North", 120, &actor).await?;
        reg.add_branch("SH", "Shanghai branch", "East", &actor).await?;
        reg.add_station("SH01", "SH", "Shanghai collection station 1", "East", 100, &actor).await?;
        // Donors: a synthetic population imported as a legacy listing (consent recorded).
        let started = Instant::now();
        let file = tempfile_path("boai-demo-donors.txt");
        {
            let mut out = std::io::BufWriter::new(std::fs::File::create(&file)?);
            for p in synth.donors(args.donors, args.seed) {
                writeln!(out, "D{:07}%{}", p.key, synth.gl_string(&p))?;
            }
        }
        let options = ImportOptions { station: Some("BJ01".into()), all_or_nothing: false, batch_size: 0 };
        let summary = reg
            .import_donors(&file, &options, &actor, reg.today(), &|_| {})
            .await?;
        std::fs::remove_file(&file).ok();
        eprintln!(
            "seeded {} donors in {:.1} s",
            summary.created,
            started.elapsed().as_secs_f64()
        );
        let mut patients = Vec::new();
        for p in synth.patients(args.patients, args.seed + 1) {
            let new = registry::NewPatient {
                external_id: format!("PAT-{:04}", p.key),
                gl: synth.gl_string(&p),
                weight_kg: Some(65.0),
                ..Default::default()
            };
            patients.push(reg.register_patient(&new, &actor).await?);
        }
        if args.activity_years > 0 {
            let started = Instant::now();
            let plan = crate::activity::ActivityPlan { years: args.activity_years, donors_per_station: args.activity_donors, seed: args.seed };
            let filler = crate::cmd_synth::open_for_activity(&DbArgs::for_url(&url), expander.clone()).await?;
            let counts = crate::activity::make_activity(&filler, &synth, &plan, jiff::Timestamp::now()).await?;
            filler.close().await;
            eprintln!(
                "{} years of activity in {:.1} s: {} enrolments, {} donations, {} organ registrations, {} death-donation cases",
                plan.years, started.elapsed().as_secs_f64(), counts.donors, counts.donations, counts.organ_registrations, counts.organ_cases
            );
        }
        let (_, coordinator) = reg.create_token("coordinator", None, "demo coordinator", &actor).await?;
        let (_, auditor) = reg.create_token("auditor", None, "demo auditor", &actor).await?;
        let (_, station) = reg.create_token("station", Some("BJ01"), "demo station BJ01", &actor).await?;
        let base = format!("http://{}", args.addr);
        println!("Boai demo: {url}, {} donors, patients {patients:?}", summary.created);
        println!("coordinator token: {coordinator}");
        println!("station token (BJ01): {station}");
        println!();
        println!("# search for patient {} (10/10, up to 2 mismatches):", patients[0]);
        println!(
            "curl -s -X POST {base}/v1/searches -H 'Authorization: Bearer {coordinator}' -H 'Content-Type: application/json' -d '{{\"patient_id\": {}, \"max_mismatches\": 2}}'",
            patients[0]
        );
        println!("# the next page of its results (search id 1):");
        println!("curl -s '{base}/v1/searches/1/results?offset=20&limit=20' -H 'Authorization: Bearer {coordinator}'");
        let (year, _, _) = matching::model::civil_from_days(reg.today());
        println!("# this year's report with its charts (auditor token {auditor}):");
        println!("curl -s '{base}/v1/reports/yearly?year={year}&format=html' -H 'Authorization: Bearer {auditor}' > report.html");
        println!("# API description: {base}/docs (Swagger UI), {base}/openapi.json");
        // People's accounts for the web pages, one per role, with one password shown once.
        let password = {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(std::process::id() as u64);
            format!("demo-{:016x}", h.finish())
        };
        let people = [
            ("clerk", "station", Some("BJ01")),
            ("coordinator", "coordinator", None),
            ("manager", "case_manager", None),
            ("staff", "admin", None),
            ("auditor", "auditor", None),
        ];
        for (name, role, station) in people {
            reg.create_person(name, role, station, &password, &actor).await?;
        }
        println!("# the web pages: {base}/ — sign in as clerk (station BJ01), coordinator, manager (case manager), staff (registry staff) or auditor, password {password}");
        println!();
        let state = state_for(reg, &args.freqs, "API")?;
        serve_state(state, args.addr, Duration::from_secs(30), None).await?;
        Ok(0)
    })
}

fn tempfile_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{}-{name}", std::process::id()))
}
