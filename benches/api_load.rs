//! Load on the real HTTP server over loopback: N synthetic donors in a fresh SQLite registry,
//! C concurrent coordinator clients creating 10/10 searches tolerating 2 mismatches for S
//! seconds, while a station client enrols donors and withdraws their consent. Checks: no
//! error responses, no lost writes (every enrolment that returned is in the registry, every
//! withdrawal de-listed), and no withdrawn donor in any search that started after its
//! withdrawal returned. Prints throughput and latency percentiles.
//!
//!   cargo bench --bench api_load -- [--donors 1000000] [--clients 32] [--seconds 60]
//!       [--pg postgres://USER@HOST:PORT/DB] [--sqlite-sync full|normal] [--servers 1]
//!
//! With `--servers N`, N servers (each its own connections, index and change-feed follower)
//! serve the same database: searches go round them, and each enrolment and withdrawal goes
//! through a different server than the one before, so a withdrawal is checked against
//! searches on the others. They run in this one process and share its cores: the figures
//! show what following the feed costs, not what more machines would add.
//!
//! With `--pg`, the registry is a fresh database created on that PostgreSQL server (dropped
//! again at the end) instead of a SQLite file.

#[path = "support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use registry::{Actor, Registry, RegistryConfig};
use serde_json::{Value, json};

// The allocator `boai serve` runs with (src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A fresh database on the PostgreSQL server at `server`; returns its URL and name.
async fn fresh_pg_database(server: &str) -> (String, String) {
    use sqlx::Connection;
    let db = format!("boai_load_{}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(server)
        .await
        .expect("connect to PostgreSQL");
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {db}")))
        .execute(&mut admin)
        .await
        .expect("drop");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
        .execute(&mut admin)
        .await
        .expect("create database");
    // The server's URL with its database replaced; its parameters (`?host=` for a unix
    // socket, `sslmode`) kept.
    let (path, params) = server.split_once('?').map_or((server, ""), |(p, q)| (p, q));
    let base = path.rsplit_once('/').map_or(path, |(b, _)| b);
    let params = if params.is_empty() {
        String::new()
    } else {
        format!("?{params}")
    };
    (format!("{base}/{db}{params}"), db)
}

/// One request on a fresh connection: the status and the body as text.
async fn call_text(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    body: &str,
) -> (u16, String) {
    let auth = format!("Authorization: Bearer {token}\r\n");
    let (status, _, body) = support::request(addr, method, path, &auth, body).await;
    (status, body)
}

async fn call(addr: SocketAddr, method: &str, path: &str, token: &str, body: &str) -> (u16, Value) {
    let (status, body) = call_text(addr, method, path, token, body).await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// What a client reads of a search page: the donors found (the rest is skipped unread).
#[derive(serde::Deserialize)]
struct FoundDonors {
    hits: Vec<FoundDonor>,
}

#[derive(serde::Deserialize)]
struct FoundDonor {
    donor_id: i64,
}

use support::{arg, percentile, text_arg};

fn main() {
    // `BOAI_LOG=api::follow=debug` shows each change-feed cycle's time.
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("BOAI_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    let donors = arg("--donors", 1_000_000);
    let clients = arg("--clients", 32);
    let server_count = arg("--servers", 1).max(1);
    let seconds = arg("--seconds", 60) as u64;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(donors, clients, seconds, server_count));
}

async fn run(donors: usize, clients: usize, seconds: u64, server_count: usize) {
    let (expander, freqs) = support::reference();
    let synth = synth::Synth::new(&expander, &freqs, "API").expect("frequencies");
    let dir = tempfile::tempdir().expect("temp dir");
    let pg = text_arg("--pg");
    let (url, pg_db) = match &pg {
        Some(server) => {
            let (url, db) = fresh_pg_database(server).await;
            (url, Some(db))
        }
        None => (
            format!("sqlite://{}", dir.path().join("load.db").display()),
            None,
        ),
    };
    println!(
        "backend: {}",
        if pg.is_some() { "PostgreSQL" } else { "SQLite" }
    );
    let sqlite_sync = text_arg("--sqlite-sync")
        .map(|s| registry::SqliteSync::from_code(&s).expect("--sqlite-sync full|normal"))
        .unwrap_or_default();
    let config = RegistryConfig {
        sqlite_sync,
        ..RegistryConfig::default()
    };
    let reg = Registry::connect(&url, expander.clone(), config)
        .await
        .expect("connect");
    reg.migrate().await.expect("migrate");
    let admin = Actor::new("bench", "admin");
    support::seed(&reg, &synth, donors, dir.path()).await;
    // Patients: synthetic typings; the writer enrols donors with the first one's typing so
    // that they top its searches (and would show if a withdrawal were missed).
    let people = synth.patients(50, 11);
    let mut patients = Vec::new();
    for p in &people {
        let new = registry::NewPatient {
            external_id: format!("PAT-{}", p.key),
            gl: synth.gl_string(p),
            ..Default::default()
        };
        patients.push(reg.register_patient(&new, &admin).await.unwrap());
    }
    let probe_typing = synth.gl_string(&people[0]);
    let (_, coordinator) = reg
        .create_token("coordinator", None, "load", &admin)
        .await
        .unwrap();
    let (_, station) = reg
        .create_token("station", Some("BJ01"), "load", &admin)
        .await
        .unwrap();
    let reg = Arc::new(reg);
    // Each server: its own registry connections, index and change-feed follower over the
    // same database, as separate `boai serve` processes would have (here in one process,
    // sharing its cores).
    let mut servers = Vec::new();
    let mut addrs = Vec::new();
    let mut feeds = Vec::new();
    for s in 0..server_count {
        let own = if s == 0 {
            reg.clone()
        } else {
            let config = RegistryConfig {
                sqlite_sync,
                ..RegistryConfig::default()
            };
            Arc::new(
                Registry::connect(&url, expander.clone(), config)
                    .await
                    .expect("connect"),
            )
        };
        let state = api::AppState::new(own);
        let t = Instant::now();
        let indexed = state.load_index().await.expect("index");
        feeds.push(state.feed.clone());
        println!(
            "server {}: index of {indexed} donors loaded in {:.1} s",
            s + 1,
            t.elapsed().as_secs_f64()
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        addrs.push(listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(api::serve(state, listener, async {
            stopped.await.ok();
        }));
        servers.push((stop, server));
    }
    let addrs = Arc::new(addrs);

    let cpu_before = process_cpu_seconds();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let errors = Arc::new(AtomicUsize::new(0));
    let violations = Arc::new(AtomicUsize::new(0));
    // Withdrawals that have returned: (donor id, when it returned).
    let withdrawn: Arc<Mutex<Vec<(i64, Instant)>>> = Arc::default();
    let latencies: Arc<Mutex<Vec<f64>>> = Arc::default();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (coordinator, patients, addrs) = (coordinator.clone(), patients.clone(), addrs.clone());
        let (errors, violations, withdrawn, latencies) = (
            errors.clone(),
            violations.clone(),
            withdrawn.clone(),
            latencies.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut i = c;
            while Instant::now() < deadline {
                // Every fourth search is the probe patient's, whose best donors are being
                // enrolled and withdrawn.
                // Searches go round the servers.
                let addr = addrs[i % addrs.len()];
                let patient = if i % 4 == 0 {
                    patients[0]
                } else {
                    patients[i % patients.len()]
                };
                i += clients;
                let body =
                    json!({"patient_id": patient, "max_mismatches": 2, "keep": 100}).to_string();
                let began = Instant::now();
                let gone_before: Vec<i64> = withdrawn
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|(_, at)| *at <= began)
                    .map(|(id, _)| *id)
                    .collect();
                let (status, result) =
                    call_text(addr, "POST", "/v1/searches", &coordinator, &body).await;
                latencies
                    .lock()
                    .unwrap()
                    .push(began.elapsed().as_secs_f64() * 1e3);
                if status != 201 {
                    errors.fetch_add(1, Ordering::Relaxed);
                    eprintln!("search: {status} {result}");
                    continue;
                }
                let found: FoundDonors = match serde_json::from_str(&result) {
                    Ok(found) => found,
                    Err(e) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        eprintln!("search page does not read: {e}");
                        continue;
                    }
                };
                for h in found.hits {
                    if gone_before.contains(&h.donor_id) {
                        violations.fetch_add(1, Ordering::Relaxed);
                        eprintln!("withdrawn donor {} found", h.donor_id);
                    }
                }
            }
        }));
    }
    // The station: enrol a donor, then withdraw the one enrolled before it.
    let writer = {
        let (station, errors, withdrawn, addrs) = (
            station.clone(),
            errors.clone(),
            withdrawn.clone(),
            addrs.clone(),
        );
        tokio::spawn(async move {
            let mut enrolled: Vec<i64> = Vec::new();
            let mut write_ms: Vec<f64> = Vec::new();
            let mut withdrawals = 0;
            let mut n = 0;
            while Instant::now() < deadline {
                n += 1;
                let body = json!({
                    "external_id": format!("LOAD-{n}"), "station": "BJ01", "birth_date": "1995-04-10",
                    "identity": {"family_name": "Load", "given_name": format!("Donor {n}"), "national_id": format!("LOAD-NID-{n}")},
                    "consent_form_version": "CMDP-2024-1", "typing": probe_typing,
                })
                .to_string();
                // Enrolments and withdrawals alternate between the servers.
                let addr = addrs[n % addrs.len()];
                let started = Instant::now();
                let (status, donor) = call(addr, "POST", "/v1/donors", &station, &body).await;
                write_ms.push(started.elapsed().as_secs_f64() * 1e3);
                if status != 201 {
                    errors.fetch_add(1, Ordering::Relaxed);
                    eprintln!("enrol: {status} {donor}");
                    continue;
                }
                enrolled.push(donor["id"].as_i64().unwrap());
                if enrolled.len() >= 2 && n % 2 == 0 {
                    let id = enrolled[enrolled.len() - 2];
                    let (status, r) = call(
                        addrs[(n + 1) % addrs.len()],
                        "POST",
                        &format!("/v1/donors/{id}/consents/recruitment/withdrawal"),
                        &station,
                        r#"{"reason": "load test"}"#,
                    )
                    .await;
                    if status == 200 {
                        withdrawn.lock().unwrap().push((id, Instant::now()));
                        withdrawals += 1;
                    } else {
                        errors.fetch_add(1, Ordering::Relaxed);
                        eprintln!("withdraw: {status} {r}");
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (enrolled, withdrawals, write_ms)
        })
    };
    for t in tasks {
        t.await.unwrap();
    }
    let (enrolled, withdrawals, mut write_ms) = writer.await.unwrap();
    write_ms.sort_by(f64::total_cmp);
    let cpu = process_cpu_seconds()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    for (stop, server) in servers {
        stop.send(()).ok();
        server.await.unwrap().unwrap();
    }
    // Lost writes: every enrolment that returned is there, every withdrawal de-listed.
    let withdrawn_ids: Vec<i64> = withdrawn
        .lock()
        .unwrap()
        .iter()
        .map(|(id, _)| *id)
        .collect();
    let mut lost = 0;
    for id in &enrolled {
        match reg.donor(*id).await {
            Ok(d) if d.listed != withdrawn_ids.contains(id) => {}
            other => {
                lost += 1;
                eprintln!("donor {id}: {other:?}");
            }
        }
    }
    let mut l = latencies.lock().unwrap().clone();
    l.sort_by(f64::total_cmp);
    let secs = seconds as f64;
    println!(
        "{} searches by {clients} clients in {seconds} s over {} donors, {server_count} server(s): {:.1} searches/s; latency ms p50 {:.1}, p95 {:.1}, p99 {:.1}, max {:.1}",
        l.len(),
        donors,
        l.len() as f64 / secs,
        percentile(&l, 0.50),
        percentile(&l, 0.95),
        percentile(&l, 0.99),
        l.last().copied().unwrap_or(f64::NAN)
    );
    if let Some(cpu) = cpu {
        println!(
            "CPU {:.1} s of {:.0} core-seconds: {:.2} ms per search (server and clients, one process)",
            cpu,
            secs * std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64),
            cpu * 1e3 / l.len().max(1) as f64
        );
    }
    println!(
        "enrolment latency ms p50 {:.1}, p99 {:.1} ({sqlite_sync:?} on SQLite)",
        percentile(&write_ms, 0.50),
        percentile(&write_ms, 0.99),
    );
    println!(
        "{} enrolments, {withdrawals} withdrawals; errors {}, lost writes {lost}, withdrawn donors found after withdrawal {}",
        enrolled.len(),
        errors.load(Ordering::Relaxed),
        violations.load(Ordering::Relaxed)
    );
    for (s, feed) in feeds.iter().enumerate() {
        println!(
            "server {} change feed: {}",
            s + 1,
            serde_json::to_string(&feed.status()).unwrap_or_default()
        );
    }
    reg.close().await;
    if let (Some(server), Some(db)) = (&pg, pg_db) {
        use sqlx::Connection;
        if let Ok(mut admin) = sqlx::PgConnection::connect(server).await {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {db}")))
                .execute(&mut admin)
                .await;
        }
    }
}

/// User + system CPU time of this process so far (Linux `/proc/self/stat`, clock ticks at
/// the usual 100 Hz), or `None` where that file is not there.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    Some((ticks(11)? + ticks(12)?) / 100.0)
}
