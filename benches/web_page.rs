//! The search workbench page with 100 results, at scale: N synthetic donors in a fresh
//! SQLite registry, the real HTTP server on loopback, a signed-in coordinator's session
//! cookie. For synthetic patients whose 10/10 search tolerating 2 mismatches keeps at least
//! 100 donors, the page `/searches/{id}?size=100&page=P` is fetched again and again (pages
//! 1–3 in turn, so each fetch looks up other donors' current status), and each answer is
//! checked to hold 100 result rows. The figure is the page's own time on the server (its
//! `Server-Timing: total` header: reading the search and its page through the API, the
//! donors' current status, rendering the HTML), with the round trip beside it.
//!
//!   cargo bench --bench web_page -- [--donors 1000000] [--fetches 60] [--patients 5]

#[path = "support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::Instant;

use registry::{Actor, Registry, RegistryConfig};
use serde_json::json;
use support::{arg, percentile, request};

fn main() {
    let donors = arg("--donors", 1_000_000);
    let fetches = arg("--fetches", 60);
    let patients = arg("--patients", 5);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(donors, fetches, patients));
}

/// The `total` duration (ms) of a `Server-Timing` header in a response head.
fn server_total(head: &str) -> Option<f64> {
    head.lines()
        .find(|l| l.to_ascii_lowercase().starts_with("server-timing:"))?
        .split(',')
        .find_map(|part| {
            part.trim()
                .trim_start_matches("server-timing:")
                .trim()
                .strip_prefix("total;dur=")
        })
        .and_then(|v| v.trim().parse().ok())
}

async fn run(donors: usize, fetches: usize, wanted: usize) {
    let (expander, freqs) = support::reference();
    let synth = synth::Synth::new(&expander, &freqs, "API").expect("frequencies");
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("pages.db").display());
    let reg = Registry::connect(&url, expander.clone(), RegistryConfig::default())
        .await
        .expect("connect");
    reg.migrate().await.expect("migrate");
    support::seed(&reg, &synth, donors, dir.path()).await;
    let admin = Actor::new("bench", "admin");
    let (_, token) = reg
        .create_token("coordinator", None, "pages", &admin)
        .await
        .unwrap();
    reg.create_person("coord", "coordinator", None, "bench password 1", &admin)
        .await
        .unwrap();
    let (secret, _) = reg
        .sign_in("coord", "bench password 1", None)
        .await
        .unwrap()
        .expect("the coordinator signs in");
    let state = api::AppState::new(Arc::new(reg));
    let started = Instant::now();
    let indexed = state.load_index().await.expect("index");
    println!(
        "indexed {indexed} donors in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let registry = state.registry.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(api::serve(state, listener, std::future::pending()));
    let bearer = format!("Authorization: Bearer {token}\r\n");
    let cookie = format!("Cookie: boai_session={secret}\r\n");

    // Searches that keep at least 100 donors.
    let mut searches = Vec::new();
    for p in synth.patients(200, 11) {
        if searches.len() == wanted {
            break;
        }
        let new = registry::NewPatient {
            external_id: format!("PAT-{}", p.key),
            gl: synth.gl_string(&p),
            ..Default::default()
        };
        let patient = registry.register_patient(&new, &admin).await.unwrap();
        let body = json!({"patient_id": patient, "max_mismatches": 2}).to_string();
        let (status, _, answer) = request(addr, "POST", "/v1/searches", &bearer, &body).await;
        assert_eq!(status, 201, "{answer}");
        let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
        if answer["kept"].as_u64().unwrap_or(0) >= 300 {
            searches.push(answer["id"].as_i64().unwrap());
        }
    }
    assert_eq!(
        searches.len(),
        wanted,
        "not enough patients with 300 donors found"
    );

    let mut server_ms = Vec::new();
    let mut round_trip_ms = Vec::new();
    let mut bytes = 0;
    for i in 0..fetches + wanted {
        let id = searches[i % wanted];
        let page = 1 + (i / wanted) % 3;
        let t = Instant::now();
        let (status, head, body) = request(
            addr,
            "GET",
            &format!("/searches/{id}?size=100&page={page}"),
            &cookie,
            "",
        )
        .await;
        let trip = t.elapsed().as_secs_f64() * 1e3;
        assert_eq!(status, 200, "{head}");
        assert_eq!(
            body.matches("data-donor=").count(),
            100,
            "a page of 100 results"
        );
        // The first fetch of each search warms its caches; the rest are timed.
        if i >= wanted {
            server_ms.push(server_total(&head).expect("a Server-Timing header"));
            round_trip_ms.push(trip);
            bytes = body.len();
        }
    }
    server_ms.sort_by(f64::total_cmp);
    round_trip_ms.sort_by(f64::total_cmp);
    println!(
        "search page, 100 results, {indexed} donors, {} fetches over {wanted} searches ({} KB of HTML each)",
        server_ms.len(),
        bytes / 1024
    );
    println!(
        "server time ms: median {:.1}  p95 {:.1}  max {:.1}   (target: under 300)",
        percentile(&server_ms, 0.5),
        percentile(&server_ms, 0.95),
        server_ms.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "round trip ms:  median {:.1}  p95 {:.1}",
        percentile(&round_trip_ms, 0.5),
        percentile(&round_trip_ms, 0.95)
    );
}
