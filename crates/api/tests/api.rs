//! End to end: the real server on a loopback port, over HTTP, on a SQLite file and on a
//! PostgreSQL database.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use hla::{Expander, MacDictionary, Release};
use registry::{Actor, Registry, RegistryConfig};
use serde_json::{Value, json};
use sqlx::Connection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TYPING: &str =
    "A*02:01+A*24:02^B*40:01+B*46:01^C*01:02+C*03:04^DRB1*09:01+DRB1*15:01^DQB1*03:03+DQB1*06:02";

fn shared(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared")
        .join(relative)
}

fn expander() -> Arc<Expander> {
    static E: OnceLock<Arc<Expander>> = OnceLock::new();
    E.get_or_init(|| {
        let dir =
            std::env::var_os("BOAI_HLA_DIR").map_or_else(|| shared("imgt-hla"), PathBuf::from);
        let mac = std::env::var_os("BOAI_MAC_FILE")
            .map_or_else(|| shared("mac/alpha.v3.subset.txt"), PathBuf::from);
        Arc::new(Expander::new(
            Arc::new(Release::load(dir).unwrap()),
            Arc::new(MacDictionary::load(mac).unwrap()),
        ))
    })
    .clone()
}

/// The registry's rules with a clock that stands at 10:00 in Beijing on 2026-11-22 until a
/// test moves it.
fn config() -> RegistryConfig {
    RegistryConfig {
        clock: registry::Clock::manual(
            registry::DEFAULT_TIME_ZONE,
            "2026-11-22T02:00:00Z".parse().unwrap(),
        )
        .unwrap(),
        ..RegistryConfig::default()
    }
}

/// A fresh registry per backend.
async fn registries(name: &str) -> Vec<(String, Registry, Option<tempfile::TempDir>)> {
    let mut out = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("boai.db").display());
    let reg = Registry::connect(&url, expander(), config()).await.unwrap();
    reg.migrate().await.unwrap();
    out.push(("sqlite".to_string(), reg, Some(dir)));
    match std::env::var("BOAI_TEST_PG_URL") {
        Ok(server) => {
            let db = format!("boai_api_{}_{}", name, std::process::id());
            let mut admin = sqlx::PgConnection::connect(&server).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {db}")))
                .execute(&mut admin)
                .await
                .unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
                .execute(&mut admin)
                .await
                .unwrap();
            let url = format!("{}/{db}", server.rsplit_once('/').unwrap().0);
            let reg = Registry::connect(&url, expander(), config()).await.unwrap();
            reg.migrate().await.unwrap();
            out.push(("postgres".to_string(), reg, None));
        }
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but BOAI_TEST_PG_URL is not set: PostgreSQL tests must run");
        }
        Err(_) => eprintln!("BOAI_TEST_PG_URL not set: PostgreSQL part of `{name}` skipped"),
    }
    out
}

/// The real server on a loopback port; returns its address and a handle that stops it.
async fn start(reg: Registry) -> (SocketAddr, tokio::sync::oneshot::Sender<()>, Arc<Registry>) {
    start_with(reg, None).await
}

/// The NMDP 2007 haplotype frequencies (API population) for match probabilities.
fn haplotypes() -> Arc<matching::HaplotypeSet> {
    let text =
        std::fs::read_to_string(shared("frequencies/NMDP_2007_FiveLocus_Freqs.csv")).unwrap();
    Arc::new(
        matching::HaplotypeSet::from_nmdp_csv(&text, "API", true, expander().release()).unwrap(),
    )
}

/// `start`, with haplotype frequencies for probabilities.
async fn start_with(
    reg: Registry,
    haplotypes: Option<Arc<matching::HaplotypeSet>>,
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>, Arc<Registry>) {
    let reg = Arc::new(reg);
    let mut state = api::AppState::new(reg.clone());
    if let Some(set) = haplotypes {
        state = state.with_haplotypes(set);
    }
    let (addr, stop) = serve_state(state).await;
    (addr, stop, reg)
}

/// The real server for `state` (its index loaded) on a loopback port; its address and a
/// handle that stops it.
async fn serve_state(state: api::AppState) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    state.load_index().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(api::serve(state, listener, async {
        stopped.await.ok();
    }));
    (addr, stop)
}

/// One HTTP/1.1 request over a fresh connection: (status, JSON body or Null, content type).
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, Value, String) {
    let (status, body, content_type) = call_text(addr, method, path, token, body).await;
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::Null),
        content_type,
    )
}

/// One HTTP/1.1 request: (status, body text, content type).
async fn call_text(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|l| l.strip_prefix("content-type: "))
        .unwrap_or("")
        .to_string();
    (status, body.to_string(), content_type)
}

struct Tokens {
    admin: String,
    station: String,
    other_station: String,
    coordinator: String,
    case_manager: String,
    auditor: String,
}

async fn tokens(reg: &Registry) -> Tokens {
    let a = Actor::new("test", "admin");
    reg.add_branch("BJ", "Beijing", "North", &a).await.unwrap();
    reg.add_station("BJ01", "BJ", "Beijing 1", "North", 100, &a)
        .await
        .unwrap();
    reg.add_station("BJ02", "BJ", "Beijing 2", "North", 100, &a)
        .await
        .unwrap();
    let a = &a;
    let t = |role: &'static str, station: Option<&'static str>| async move {
        reg.create_token(role, station, "test", a).await.unwrap().1
    };
    Tokens {
        admin: t("admin", None).await,
        station: t("station", Some("BJ01")).await,
        other_station: t("station", Some("BJ02")).await,
        coordinator: t("coordinator", None).await,
        case_manager: t("case_manager", None).await,
        auditor: t("auditor", None).await,
    }
}

fn enrolment(external: &str, national_id: &str) -> String {
    json!({
        "external_id": external, "station": "BJ01", "birth_date": "1995-04-10", "sex": "F",
        "abo": "A", "rh": "+", "cmv": "neg",
        "identity": {"family_name": "Li", "given_name": "Na", "national_id": national_id,
                     "phone": "+86 10 0000 0000",
                     "emergency_contacts": [{"name": "Li Wei", "phone": "+86 10 1111 1111"}]},
        "consent_form_version": "CMDP-2024-1",
        "typing": TYPING
    })
    .to_string()
}

fn hit_ids(body: &Value) -> Vec<i64> {
    body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["donor_id"].as_i64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_donor_workflow_over_http() {
    for (backend, reg, _dir) in registries("workflow").await {
        let t = tokens(&reg).await;
        let (addr, stop, reg) = start(reg).await;
        let b = backend.as_str();
        assert_eq!(call(addr, "GET", "/healthz", None, None).await.0, 200);
        assert_eq!(call(addr, "GET", "/readyz", None, None).await.0, 200);
        // A station enrols two donors (consent and typing with the enrolment).
        let (s, d1, _) = call(
            addr,
            "POST",
            "/v1/donors",
            Some(&t.station),
            Some(&enrolment("E1", "N1")),
        )
        .await;
        assert_eq!(s, 201, "{b}: {d1}");
        let d1 = d1["id"].as_i64().unwrap();
        let (s, d2, _) = call(
            addr,
            "POST",
            "/v1/donors",
            Some(&t.station),
            Some(&enrolment("E2", "N2")),
        )
        .await;
        assert_eq!(s, 201, "{b}");
        let d2 = d2["id"].as_i64().unwrap();
        // Same national id again: 409, and nothing else changed.
        let (s, p, ct) = call(
            addr,
            "POST",
            "/v1/donors",
            Some(&t.station),
            Some(&enrolment("E3", "N1")),
        )
        .await;
        assert_eq!(
            (s, ct.as_str()),
            (409, "application/problem+json"),
            "{b}: {p}"
        );
        // A sample, and a typing naming it.
        let (s, sample, _) = call(addr, "POST", &format!("/v1/donors/{d1}/samples"), Some(&t.station),
            Some(r#"{"collected_on": "2026-11-20", "volume_ml": 4.0, "barcode": "BC-1", "lab": "BJ-HLA"}"#)).await;
        assert_eq!(s, 201, "{b}: {sample}");
        let typing =
            json!({"gl": TYPING, "sample_id": sample["id"], "lab": "BJ-HLA", "method": "NGS"})
                .to_string();
        assert_eq!(
            call(
                addr,
                "POST",
                &format!("/v1/donors/{d1}/typings"),
                Some(&t.station),
                Some(&typing)
            )
            .await
            .0,
            201
        );
        let (_, typings, _) = call(
            addr,
            "GET",
            &format!("/v1/donors/{d1}/typings"),
            Some(&t.coordinator),
            None,
        )
        .await;
        let typings = typings["typings"].as_array().unwrap().clone();
        assert_eq!(typings.len(), 2, "{b}");
        assert_eq!(
            (
                typings[0]["current"].as_bool(),
                typings[0]["sample_id"].as_i64()
            ),
            (Some(true), sample["id"].as_i64()),
            "{b}"
        );
        let (_, samples, _) = call(
            addr,
            "GET",
            &format!("/v1/donors/{d1}/samples"),
            Some(&t.station),
            None,
        )
        .await;
        assert_eq!(samples["samples"][0]["barcode"], "BC-1", "{b}");
        let (_, consents, _) = call(
            addr,
            "GET",
            &format!("/v1/donors/{d1}/consents"),
            Some(&t.station),
            None,
        )
        .await;
        assert_eq!(consents["consents"][0]["scope"], "recruitment", "{b}");
        // Attributes and contacts change; the audit names the fields, not the values.
        let (s, updated, _) = call(
            addr,
            "PATCH",
            &format!("/v1/donors/{d1}"),
            Some(&t.station),
            Some(r#"{"cmv": "pos", "phone": "+86 10 2222 2222"}"#),
        )
        .await;
        assert_eq!(
            (s, updated["cmv"].as_str()),
            (200, Some("pos")),
            "{b}: {updated}"
        );
        assert_eq!(
            call(
                addr,
                "PATCH",
                &format!("/v1/donors/{d1}"),
                Some(&t.station),
                Some(r#"{"cmv": "maybe"}"#)
            )
            .await
            .0,
            422
        );
        let (s, ab, _) = call(
            addr,
            "PATCH",
            &format!("/v1/donors/{d1}"),
            Some(&t.station),
            Some(r#"{"abo": "AB", "rh": "-"}"#),
        )
        .await;
        assert_eq!((s, ab["abo"].as_str()), (200, Some("AB")), "{b}: {ab}");
        assert_eq!(
            call(
                addr,
                "PATCH",
                &format!("/v1/donors/{d1}"),
                Some(&t.station),
                Some(r#"{"rh": "?"}"#)
            )
            .await
            .0,
            422,
            "{b}: rh is + or -"
        );
        assert_eq!(
            call(
                addr,
                "PATCH",
                &format!("/v1/donors/{d1}"),
                Some(&t.station),
                Some(r#"{"colour": "blue"}"#)
            )
            .await
            .0,
            422,
            "{b}: unknown fields refused"
        );
        assert_eq!(
            call(
                addr,
                "PATCH",
                &format!("/v1/donors/{d1}"),
                Some(&t.station),
                Some("{}")
            )
            .await
            .0,
            422,
            "{b}: nothing to update"
        );
        // Invalid HLA names the token.
        let (s, p, _) = call(
            addr,
            "POST",
            &format!("/v1/donors/{d1}/typings"),
            Some(&t.station),
            Some(&json!({"gl": TYPING.replace("B*40:01", "B*40:9999")}).to_string()),
        )
        .await;
        assert_eq!(s, 422, "{b}");
        assert!(
            p["detail"].as_str().unwrap().contains("B*40:9999"),
            "{b}: {p}"
        );
        // Two copies of different loci joined by `+` are refused, the token named.
        let (s, p, _) = call(
            addr,
            "POST",
            &format!("/v1/donors/{d1}/typings"),
            Some(&t.station),
            Some(
                &json!({"gl": "A*02:01+B*40:01^B*07:02+B*07:02^DRB1*15:01+DRB1*15:01"}).to_string(),
            ),
        )
        .await;
        assert_eq!(s, 422, "{b}: {p}");
        let detail = p["detail"].as_str().unwrap();
        assert!(
            detail.contains("A*02:01") && detail.contains("different loci"),
            "{b}: {p}"
        );
        // A coordinator registers the patient and finds both donors.
        let patient_body =
            json!({"external_id": "PAT-1", "gl": TYPING, "weight_kg": 60.0}).to_string();
        let (s, patient, _) = call(
            addr,
            "POST",
            "/v1/patients",
            Some(&t.coordinator),
            Some(&patient_body),
        )
        .await;
        assert_eq!(s, 201, "{b}: {patient}");
        let patient = patient["id"].as_i64().unwrap();
        let other_body = json!({"external_id": "PAT-2", "gl": TYPING}).to_string();
        let other = call(
            addr,
            "POST",
            "/v1/patients",
            Some(&t.coordinator),
            Some(&other_body),
        )
        .await
        .1["id"]
            .as_i64()
            .unwrap();
        let criteria = json!({"patient_id": patient, "max_mismatches": 2}).to_string();
        let (s, search, _) = call(
            addr,
            "POST",
            "/v1/searches",
            Some(&t.coordinator),
            Some(&criteria),
        )
        .await;
        assert_eq!(s, 201, "{b}: {search}");
        assert_eq!(search["total"], 2, "{b}");
        assert_eq!(hit_ids(&search), [d1, d2], "{b}");
        assert_eq!(search["hits"][0]["grade"], "10/10");
        assert_eq!(search["hits"][0]["loci"]["DRB1"]["mismatches"], 0);
        let search_id = search["id"].as_i64().unwrap();
        let (s, page, _) = call(
            addr,
            "GET",
            &format!("/v1/searches/{search_id}/results?offset=1&limit=1"),
            Some(&t.coordinator),
            None,
        )
        .await;
        assert_eq!(
            (s, page["total"].as_i64(), hit_ids(&page)),
            (200, Some(2), vec![d2]),
            "{b}"
        );
        // Coordinators see matching data by id, never identity.
        assert_eq!(
            call(
                addr,
                "GET",
                &format!("/v1/donors/{d1}"),
                Some(&t.coordinator),
                None
            )
            .await
            .0,
            200
        );
        assert_eq!(
            call(
                addr,
                "GET",
                &format!("/v1/donors/{d1}/identity?reason=x"),
                Some(&t.coordinator),
                None
            )
            .await
            .0,
            403
        );
        // Confirmatory typing, then a reservation: RS for this patient only.
        let req =
            |kind: &str| json!({"patient_id": patient, "donor_id": d1, "kind": kind}).to_string();
        let (s, ct_req, _) = call(
            addr,
            "POST",
            "/v1/requests",
            Some(&t.coordinator),
            Some(&req("confirmatory_typing")),
        )
        .await;
        assert_eq!(s, 201, "{b}: {ct_req}");
        assert_eq!(
            call(
                addr,
                "POST",
                "/v1/requests",
                Some(&t.coordinator),
                Some(&req("confirmatory_typing"))
            )
            .await
            .0,
            409,
            "{b}: one open request of a kind"
        );
        // A case manager opens workups only: refused by the registry, with the answer a
        // route the role may not call gets.
        let (s, r, _) = call(
            addr,
            "POST",
            "/v1/requests",
            Some(&t.case_manager),
            Some(&req("extended_typing")),
        )
        .await;
        assert_eq!(s, 403, "{b}: {r}");
        assert_eq!(r["detail"], "this token may not do that", "{b}");
        assert_eq!(
            call(
                addr,
                "POST",
                &format!("/v1/requests/{}/close", ct_req["id"]),
                Some(&t.coordinator),
                Some(r#"{"state": "done"}"#)
            )
            .await
            .0,
            200
        );
        assert_eq!(
            call(
                addr,
                "POST",
                "/v1/requests",
                Some(&t.coordinator),
                Some(&req("reservation"))
            )
            .await
            .0,
            201
        );
        let (_, donor, _) = call(
            addr,
            "GET",
            &format!("/v1/donors/{d1}"),
            Some(&t.coordinator),
            None,
        )
        .await;
        assert_eq!(donor["status"], "RS", "{b}");
        let (_, again, _) = call(
            addr,
            "POST",
            &format!("/v1/searches/{search_id}/runs"),
            Some(&t.coordinator),
            None,
        )
        .await;
        assert_eq!(
            (
                again["total"].as_i64(),
                again["gone"].as_array().map(Vec::len)
            ),
            (Some(2), Some(0)),
            "{b}: own patient still sees the RS donor: {again}"
        );
        let (_, theirs, _) = call(
            addr,
            "POST",
            "/v1/searches",
            Some(&t.coordinator),
            Some(&json!({"patient_id": other, "max_mismatches": 2}).to_string()),
        )
        .await;
        assert_eq!(hit_ids(&theirs), [d2], "{b}: another patient does not");
        // Workup by the case manager, who may then read the identity (audited).
        let (s, workup, _) = call(
            addr,
            "POST",
            "/v1/requests",
            Some(&t.case_manager),
            Some(&req("workup")),
        )
        .await;
        assert_eq!(s, 201, "{b}: {workup}");
        // The case manager takes the donor's workup consent (the donor is in the case).
        let (s, c, _) = call(
            addr,
            "POST",
            &format!("/v1/donors/{d1}/consents"),
            Some(&t.case_manager),
            Some(r#"{"scope": "workup", "form_version": "W-2024"}"#),
        )
        .await;
        assert_eq!(s, 201, "{b}: {c}");
        // Milestones in the workup's order: the medical exam comes after the session.
        let milestones = format!("/v1/requests/{}/milestones", workup["id"]);
        let exam = r#"{"milestone": "medical_exam", "on": "2026-12-01", "ok": true}"#;
        assert_eq!(
            call(addr, "POST", &milestones, Some(&t.case_manager), Some(exam))
                .await
                .0,
            409,
            "{b}: no information session yet"
        );
        let session = r#"{"milestone": "information_session", "on": "2026-11-30"}"#;
        assert_eq!(
            call(
                addr,
                "POST",
                &milestones,
                Some(&t.case_manager),
                Some(session)
            )
            .await
            .0,
            201
        );
        let early = r#"{"milestone": "medical_exam", "on": "2026-11-29", "ok": true}"#;
        let (s, p, _) = call(
            addr,
            "POST",
            &milestones,
            Some(&t.case_manager),
            Some(early),
        )
        .await;
        assert_eq!(
            (s, p["errors"][0]["field"].as_str()),
            (422, Some("on")),
            "{b}: {p}"
        );
        assert_eq!(
            call(addr, "POST", &milestones, Some(&t.case_manager), Some(exam))
                .await
                .0,
            201
        );
        let (s, identity, _) = call(
            addr,
            "GET",
            &format!("/v1/donors/{d1}/identity?reason=workup%20call"),
            Some(&t.case_manager),
            None,
        )
        .await;
        assert_eq!(
            (s, identity["family_name"].as_str()),
            (200, Some("Li")),
            "{b}"
        );
        assert_eq!(
            call(
                addr,
                "GET",
                &format!("/v1/donors/{d2}/identity?reason=x"),
                Some(&t.case_manager),
                None
            )
            .await
            .0,
            403,
            "{b}: not in an open case"
        );
        // Donation, then follow-ups fall due.
        let donation = json!({"donor_id": d1, "patient_id": patient, "product": "PBSC", "donated_on": "2026-11-20", "station": "BJ01"}).to_string();
        let (s, dn, _) = call(
            addr,
            "POST",
            "/v1/donations",
            Some(&t.case_manager),
            Some(&donation),
        )
        .await;
        assert_eq!(s, 201, "{b}: {dn}");
        let (_, due, _) = call(
            addr,
            "GET",
            "/v1/followups/due?on=2026-11-22",
            Some(&t.case_manager),
            None,
        )
        .await;
        let due = due["followups"].as_array().unwrap().clone();
        assert_eq!(due.len(), 1, "{b}: the 2-day follow-up");
        let (s, c, _) = call(
            addr,
            "POST",
            &format!("/v1/donors/{d1}/consents"),
            Some(&t.case_manager),
            Some(r#"{"scope": "follow_up_contact", "form_version": "F-2024"}"#),
        )
        .await;
        assert_eq!(s, 201, "{b}: {c}");
        assert_eq!(
            call(
                addr,
                "POST",
                &format!("/v1/followups/{}", due[0]["id"]),
                Some(&t.case_manager),
                Some(r#"{"state": "done", "on": "2026-11-22", "outcome": "well"}"#)
            )
            .await
            .0,
            200
        );
        // Withdrawal takes the other donor out of search before it returns.
        let (s, w, _) = call(
            addr,
            "POST",
            &format!("/v1/donors/{d2}/consents/recruitment/withdrawal"),
            Some(&t.station),
            Some(r#"{"reason": "moved away"}"#),
        )
        .await;
        assert_eq!(s, 200, "{b}: {w}");
        let (_, after, _) = call(
            addr,
            "POST",
            "/v1/searches",
            Some(&t.coordinator),
            Some(&json!({"patient_id": other, "max_mismatches": 2}).to_string()),
        )
        .await;
        assert_eq!(after["total"], 0, "{b}: withdrawn donor gone");
        // Another station sees nothing of these donors; the auditor reads the trail.
        assert_eq!(
            call(
                addr,
                "GET",
                &format!("/v1/donors/{d1}"),
                Some(&t.other_station),
                None
            )
            .await
            .0,
            403
        );
        assert_eq!(
            call(
                addr,
                "GET",
                "/v1/donors/999999",
                Some(&t.other_station),
                None
            )
            .await
            .0,
            403,
            "{b}: no existence leak"
        );
        let (s, audit, _) = call(
            addr,
            "GET",
            &format!("/v1/audit?entity=donor&entity_id={d1}"),
            Some(&t.auditor),
            None,
        )
        .await;
        assert_eq!(s, 200);
        let actions: Vec<&str> = audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        assert!(actions.contains(&"identity.read"), "{b}: {actions:?}");
        // Newest first: the two updates name their fields, never the values.
        let updates: Vec<&str> = audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "donor.update")
            .map(|e| e["reason"].as_str().unwrap())
            .collect();
        assert_eq!(updates, ["abo, rh", "cmv, phone"], "{b}");
        // The trail names tokens and request ids, never a person.
        assert!(
            audit["entries"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["actor"].as_str().unwrap().starts_with("token:")
                    && e["request_id"].as_str().is_some_and(|r| r.len() == 36)),
            "{b}: {audit}"
        );
        // Organ donation: intent registered by a station, a case after death recorded by a
        // case manager with family consent and a witness; a revoked intent backs no case.
        let organ = |nid: &str| {
            format!(
                r#"{{"family_name": "Zhao", "given_name": "Lei", "national_id": "{nid}", "birth_date": "1970-02-02", "organs": ["kidney", "liver"], "tissues": ["cornea"]}}"#
            )
        };
        let (s, r, _) = call(
            addr,
            "POST",
            "/v1/organ-registrations",
            Some(&t.station),
            Some(&organ("ORG-1")),
        )
        .await;
        assert_eq!(s, 201, "{b}: {r}");
        let registration = r["id"].as_i64().unwrap();
        let case = |reg: i64, witness: &str| {
            let witnesses = if witness.is_empty() {
                "[]".to_string()
            } else {
                format!(r#"["{witness}"]"#)
            };
            format!(
                r#"{{"registration_id": {reg}, "kind": "organ", "died_on": "2026-11-01", "opo": "Provincial OPO", "family_consent": {{"relations": ["spouse", "adult_children"], "in_writing": true, "consented_on": "2026-11-01"}}, "witnesses": {witnesses}}}"#
            )
        };
        let (s, r, _) = call(
            addr,
            "POST",
            "/v1/organ-cases",
            Some(&t.case_manager),
            Some(&case(registration, "")),
        )
        .await;
        assert_eq!(s, 422, "{b}: {r}");
        assert!(r.to_string().contains("witness"), "{b}: {r}");
        let (s, r, _) = call(
            addr,
            "POST",
            "/v1/organ-cases",
            Some(&t.case_manager),
            Some(&case(registration, "Red Cross officer Wang")),
        )
        .await;
        assert_eq!(s, 201, "{b}: {r}");
        let (s, r, _) = call(
            addr,
            "POST",
            "/v1/organ-cases",
            Some(&t.case_manager),
            Some(&case(999_999, "Wang")),
        )
        .await;
        assert_eq!(
            (s, r["errors"][0]["field"].as_str()),
            (422, Some("registration_id")),
            "{b}: {r}"
        );
        let (s, r, _) = call(
            addr,
            "POST",
            "/v1/organ-registrations",
            Some(&t.station),
            Some(&organ("ORG-2")),
        )
        .await;
        assert_eq!(s, 201, "{b}: {r}");
        let revoked = r["id"].as_i64().unwrap();
        let (s, _, _) = call(
            addr,
            "POST",
            &format!("/v1/organ-registrations/{revoked}/revocation"),
            Some(&t.station),
            None,
        )
        .await;
        assert_eq!(s, 200, "{b}");
        // What an active registration gives can change; a revoked one cannot, and only
        // known organs are recorded.
        let change = r#"{"organs": ["kidney"], "tissues": [], "whole_body": true}"#;
        let (s, r, _) = call(
            addr,
            "POST",
            &format!("/v1/organ-registrations/{registration}"),
            Some(&t.station),
            Some(change),
        )
        .await;
        assert_eq!((s, r["state"].as_str()), (200, Some("active")), "{b}: {r}");
        // Another station may neither change nor revoke it; an unknown one is 404.
        for path in [
            format!("/v1/organ-registrations/{registration}"),
            format!("/v1/organ-registrations/{registration}/revocation"),
        ] {
            let (s, r, _) = call(addr, "POST", &path, Some(&t.other_station), Some(change)).await;
            assert_eq!(s, 403, "{b} {path}: {r}");
        }
        let (s, r, _) = call(
            addr,
            "POST",
            "/v1/organ-registrations/999999/revocation",
            Some(&t.station),
            None,
        )
        .await;
        assert_eq!(s, 404, "{b}: {r}");
        let (s, r, _) = call(
            addr,
            "POST",
            &format!("/v1/organ-registrations/{revoked}"),
            Some(&t.station),
            Some(change),
        )
        .await;
        assert_eq!(s, 409, "{b}: {r}");
        let (s, r, _) = call(
            addr,
            "POST",
            &format!("/v1/organ-registrations/{registration}"),
            Some(&t.station),
            Some(r#"{"organs": ["spleen"]}"#),
        )
        .await;
        assert_eq!(s, 422, "{b}: {r}");
        assert!(r.to_string().contains("organs"), "{b}: {r}");
        let (s, r, _) = call(
            addr,
            "POST",
            "/v1/organ-cases",
            Some(&t.case_manager),
            Some(&case(revoked, "Wang")),
        )
        .await;
        assert_eq!(s, 409, "{b}: {r}");
        let _ = t.admin;
        stop.send(()).ok();
        reg.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_checks_the_token_and_the_role() {
    for (backend, reg, _dir) in registries("roles").await {
        let t = tokens(&reg).await;
        let (addr, stop, reg) = start(reg).await;
        let (_, d, _) = call(
            addr,
            "POST",
            "/v1/donors",
            Some(&t.station),
            Some(&enrolment("R1", "RN1")),
        )
        .await;
        let d = d["id"].as_i64().unwrap();
        let (_, sample, _) = call(
            addr,
            "POST",
            &format!("/v1/donors/{d}/samples"),
            Some(&t.station),
            Some(r#"{"collected_on": "2026-11-20", "barcode": "BC-R1"}"#),
        )
        .await;
        let sample = sample["id"].as_i64().unwrap();
        use Who::*;
        #[derive(Clone, Copy, PartialEq, Debug)]
        enum Who {
            Admin,
            Station,
            Coordinator,
            CaseManager,
            Auditor,
        }
        let all = [Admin, Station, Coordinator, CaseManager, Auditor];
        // (method, path, body, roles allowed)
        let routes: Vec<(&str, String, &str, Vec<Who>)> = vec![
            (
                "POST",
                "/v1/stations".into(),
                r#"{"code": "SH01", "branch": "SH", "name": "Shanghai 1"}"#,
                vec![Admin],
            ),
            ("GET", "/v1/stations".into(), "", all.to_vec()),
            ("POST", "/v1/people".into(), "{}", vec![Admin]),
            ("GET", "/v1/people".into(), "", vec![Admin]),
            (
                "POST",
                "/v1/people/1/disabled".into(),
                r#"{"disabled": false}"#,
                vec![Admin],
            ),
            ("POST", "/v1/people/1/password".into(), "{}", vec![Admin]),
            ("POST", "/v1/donors".into(), "{}", vec![Station]),
            (
                "GET",
                format!("/v1/donors/{d}"),
                "",
                vec![Station, Coordinator, CaseManager],
            ),
            (
                "GET",
                format!("/v1/donors/{d}/identity?reason=check"),
                "",
                vec![Station],
            ),
            (
                "POST",
                format!("/v1/donors/{d}/typings"),
                "{}",
                vec![Station],
            ),
            (
                "GET",
                format!("/v1/donors/{d}/typings"),
                "",
                vec![Station, Coordinator, CaseManager],
            ),
            ("PATCH", format!("/v1/donors/{d}"), "{}", vec![Station]),
            (
                "GET",
                format!("/v1/donors/{d}/samples"),
                "",
                vec![Station, CaseManager],
            ),
            (
                "GET",
                format!("/v1/donors/{d}/consents"),
                "",
                vec![Station, CaseManager],
            ),
            (
                "POST",
                format!("/v1/donors/{d}/samples"),
                "{}",
                vec![Station],
            ),
            (
                "POST",
                format!("/v1/samples/{sample}/state"),
                r#"{"state": "shipped"}"#,
                vec![Station],
            ),
            (
                "POST",
                format!("/v1/donors/{d}/consents"),
                "{}",
                vec![Station, CaseManager],
            ),
            (
                "POST",
                // An unknown scope: the role passes, the registry answers 422 before any
                // ownership question (case managers reach only donors in their cases).
                format!("/v1/donors/{d}/consents/nonsense/withdrawal"),
                "{}",
                vec![Station, CaseManager],
            ),
            (
                "GET",
                "/v1/donors".into(),
                "",
                vec![Station, Coordinator, CaseManager],
            ),
            ("GET", "/v1/samples".into(), "", vec![Station, CaseManager]),
            (
                "GET",
                "/v1/patients".into(),
                "",
                vec![Coordinator, CaseManager],
            ),
            (
                "GET",
                "/v1/patients/1/searches".into(),
                "",
                vec![Coordinator],
            ),
            ("GET", "/v1/searches".into(), "", vec![Coordinator]),
            (
                "GET",
                "/v1/searches/1/results.csv".into(),
                "",
                vec![Coordinator],
            ),
            (
                "GET",
                "/v1/searches/1/results.gl".into(),
                "",
                vec![Coordinator],
            ),
            ("GET", "/v1/searches/1/runs".into(), "", vec![Coordinator]),
            (
                "GET",
                "/v1/requests".into(),
                "",
                vec![Coordinator, CaseManager, Auditor],
            ),
            (
                "GET",
                "/v1/requests/1".into(),
                "",
                vec![Coordinator, CaseManager, Auditor],
            ),
            (
                "GET",
                "/v1/donations".into(),
                "",
                vec![Coordinator, CaseManager, Auditor],
            ),
            (
                "GET",
                "/v1/followups?state=due".into(),
                "",
                vec![CaseManager],
            ),
            (
                "GET",
                "/v1/organ-registrations".into(),
                "",
                vec![Station, Admin],
            ),
            (
                "GET",
                "/v1/organ-registrations/999999".into(),
                "",
                vec![Station, Admin],
            ),
            ("GET", "/v1/holidays".into(), "", all.to_vec()),
            (
                "POST",
                "/v1/holidays".into(),
                r#"{"day": "2027-01-01", "name": "New Year"}"#,
                vec![Admin],
            ),
            ("DELETE", "/v1/holidays/2030-01-01".into(), "", vec![Admin]),
            ("POST", "/v1/jobs/daily".into(), "", vec![Admin]),
            (
                "POST",
                format!("/v1/donors/{d}/status"),
                "{}",
                vec![Station, CaseManager],
            ),
            ("POST", "/v1/patients".into(), "{}", vec![Coordinator]),
            (
                "GET",
                "/v1/patients/1".into(),
                "",
                vec![Coordinator, CaseManager],
            ),
            ("POST", "/v1/searches".into(), "{}", vec![Coordinator]),
            ("GET", "/v1/searches/1".into(), "", vec![Coordinator]),
            (
                "GET",
                "/v1/searches/1/results".into(),
                "",
                vec![Coordinator],
            ),
            ("POST", "/v1/searches/1/runs".into(), "", vec![Coordinator]),
            (
                "POST",
                "/v1/searches/1/state".into(),
                "{}",
                vec![Coordinator],
            ),
            (
                "POST",
                "/v1/requests".into(),
                r#"{"patient_id": 1, "donor_id": 1, "kind": "workup"}"#,
                vec![Coordinator, CaseManager],
            ),
            (
                "POST",
                "/v1/requests/1/close".into(),
                "{}",
                vec![Coordinator, CaseManager],
            ),
            (
                "POST",
                "/v1/requests/1/milestones".into(),
                "{}",
                vec![CaseManager],
            ),
            ("POST", "/v1/donations".into(), "{}", vec![CaseManager]),
            ("GET", "/v1/followups/due".into(), "", vec![CaseManager]),
            ("POST", "/v1/followups/1".into(), "{}", vec![CaseManager]),
            (
                "POST",
                "/v1/organ-registrations".into(),
                "{}",
                vec![Station, Admin],
            ),
            (
                "POST",
                "/v1/organ-registrations/1".into(),
                "{}",
                vec![Station, Admin],
            ),
            (
                "POST",
                "/v1/organ-registrations/1/revocation".into(),
                "",
                vec![Station, Admin],
            ),
            (
                "POST",
                "/v1/organ-registrations/import".into(),
                "family_name",
                vec![Station, Admin],
            ),
            (
                "POST",
                "/v1/typings/hml".into(),
                "<hml/>",
                vec![Station, Admin],
            ),
            ("POST", "/v1/organ-cases".into(), "{}", vec![CaseManager]),
            (
                "GET",
                "/v1/organ-cases".into(),
                "",
                vec![CaseManager, Auditor, Admin],
            ),
            (
                "GET",
                "/v1/organ-cases/1".into(),
                "",
                vec![CaseManager, Auditor, Admin],
            ),
            (
                "POST",
                "/v1/organ-cases/1/completion".into(),
                "{}",
                vec![CaseManager],
            ),
            (
                "POST",
                "/v1/organ-cases/1/cancellation".into(),
                "{}",
                vec![CaseManager],
            ),
            (
                "POST",
                format!("/v1/donors/{d}/contacts"),
                "{}",
                vec![Station, CaseManager],
            ),
            (
                "GET",
                format!("/v1/donors/{d}/contacts"),
                "",
                vec![Station, CaseManager],
            ),
            (
                "GET",
                "/v1/retention/reconfirmation".into(),
                "",
                vec![Station, CaseManager],
            ),
            ("POST", "/v1/care".into(), "{}", vec![CaseManager]),
            ("GET", "/v1/care".into(), "", vec![CaseManager, Auditor]),
            ("POST", "/v1/campaigns".into(), "{}", vec![Station, Admin]),
            ("GET", "/v1/campaigns".into(), "", all.to_vec()),
            ("GET", "/v1/campaigns/1".into(), "", all.to_vec()),
            (
                "GET",
                "/v1/reports/yearly?year=2026".into(),
                "",
                all.to_vec(),
            ),
            ("GET", "/v1/audit".into(), "", vec![Auditor]),
            (
                "POST",
                "/v1/hla/expand".into(),
                r#"{"typings": ["A*02:01"]}"#,
                all.to_vec(),
            ),
        ];
        let token = |w: Who| match w {
            Admin => t.admin.as_str(),
            Station => t.station.as_str(),
            Coordinator => t.coordinator.as_str(),
            CaseManager => t.case_manager.as_str(),
            Auditor => t.auditor.as_str(),
        };
        for (method, path, body, allowed) in &routes {
            let body = (!body.is_empty()).then_some(*body);
            for bad in [None, Some("boai_not-a-token")] {
                let (s, p, ct) = call(addr, method, path, bad, body).await;
                assert_eq!(
                    (s, ct.as_str()),
                    (401, "application/problem+json"),
                    "{backend} {method} {path} {bad:?}: {p}"
                );
            }
            for who in all {
                let (s, p, _) = call(addr, method, path, Some(token(who)), body).await;
                if allowed.contains(&who) {
                    assert!(
                        s != 401 && s != 403,
                        "{backend} {method} {path} as {who:?}: {s} {p}"
                    );
                } else {
                    assert_eq!(s, 403, "{backend} {method} {path} as {who:?}: {p}");
                    assert_eq!(p["detail"], "this token may not do that", "nothing leaks");
                }
            }
        }
        // A revoked token is refused.
        let (id, secret) = reg
            .create_token(
                "coordinator",
                None,
                "short-lived",
                &Actor::new("t", "admin"),
            )
            .await
            .unwrap();
        assert_eq!(
            call(addr, "GET", "/v1/stations", Some(&secret), None)
                .await
                .0,
            200
        );
        reg.revoke_token(id, &Actor::new("t", "admin"))
            .await
            .unwrap();
        assert_eq!(
            call(addr, "GET", "/v1/stations", Some(&secret), None)
                .await
                .0,
            401,
            "{backend}"
        );
        // Bad input: malformed JSON 400, wrong shape 422, too large 413, unknown route 404.
        assert_eq!(
            call(
                addr,
                "POST",
                "/v1/patients",
                Some(&t.coordinator),
                Some("{\"external_id\": ")
            )
            .await
            .0,
            400
        );
        assert_eq!(
            call(
                addr,
                "POST",
                "/v1/patients",
                Some(&t.coordinator),
                Some(r#"{"external_id": 5}"#)
            )
            .await
            .0,
            422
        );
        let huge = format!(r#"{{"typings": ["{}"]}}"#, "A".repeat(api::BODY_LIMIT + 10));
        assert_eq!(
            call(
                addr,
                "POST",
                "/v1/hla/expand",
                Some(&t.coordinator),
                Some(&huge)
            )
            .await
            .0,
            413,
            "{backend}"
        );
        assert_eq!(
            call(addr, "GET", "/v1/nothing", Some(&t.coordinator), None)
                .await
                .0,
            404
        );
        // A path id that is not a number is a 400 problem naming the path, on every route.
        for (who, path) in [
            (&t.coordinator, "/v1/patients/abc"),
            (&t.coordinator, "/v1/searches/abc/results"),
            (&t.station, "/v1/donors/abc"),
            (&t.case_manager, "/v1/followups/abc"),
        ] {
            let method = if path.starts_with("/v1/followups") {
                "POST"
            } else {
                "GET"
            };
            let (s, p, ct) = call(addr, method, path, Some(who), Some("{}")).await;
            assert_eq!(
                (s, ct.as_str(), p["errors"][0]["field"].as_str()),
                (400, "application/problem+json", Some("path")),
                "{backend} {path}: {p}"
            );
        }
        // The API describes itself.
        let (s, doc, _) = call(addr, "GET", "/openapi.json", None, None).await;
        assert_eq!(s, 200);
        let documented: Vec<&str> = doc["paths"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        // A concrete path matches a documented template segment by segment.
        let fits = |template: &str, path: &str| {
            let concrete: Vec<&str> = path.split('?').next().unwrap().split('/').collect();
            let parts: Vec<&str> = template.split('/').collect();
            parts.len() == concrete.len()
                && parts
                    .iter()
                    .zip(&concrete)
                    .all(|(t, c)| t == c || t.starts_with('{'))
        };
        // Every routed operation above is documented, method and path.
        for (method, path, _, _) in &routes {
            let found = documented.iter().any(|template| {
                fits(template, path) && doc["paths"][*template][method.to_lowercase()].is_object()
            });
            assert!(
                found,
                "{method} {path} is missing from the OpenAPI document"
            );
        }
        // And every documented operation is in the table above, so it was called (and, as
        // a /v1 operation, answered 401 without a token: an unrouted one answers 404); the
        // open health checks are called here.
        for template in &documented {
            for method in doc["paths"][*template].as_object().unwrap().keys() {
                if !template.starts_with("/v1/") {
                    let (s, p, _) = call(addr, &method.to_uppercase(), template, None, None).await;
                    assert!(
                        s != 404 && s != 405,
                        "{method} {template} is not routed: {s} {p}"
                    );
                    continue;
                }
                let tested = routes
                    .iter()
                    .any(|(m, path, _, _)| m.eq_ignore_ascii_case(method) && fits(template, path));
                assert!(
                    tested,
                    "{method} {template} is documented but not in the route table"
                );
            }
        }
        stop.send(()).ok();
        reg.close().await;
    }
}

/// A small JSON call that must answer `status`; returns the body.
async fn expect(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&str>,
    status: u16,
) -> Value {
    let (s, v, _) = call(addr, method, path, Some(token), body).await;
    assert_eq!(s, status, "{method} {path}: {v}");
    v
}

/// A 409 `consent-required` problem naming `scope`.
fn assert_consent_required(problem: &Value, scope: &str) {
    assert!(
        problem["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("/consent-required")),
        "{problem}"
    );
    assert_eq!(problem["scope"], scope, "{problem}");
}

/// A patient registered by the coordinator; its id.
async fn patient(addr: SocketAddr, t: &Tokens, external: &str) -> i64 {
    let body = json!({"external_id": external, "gl": TYPING, "weight_kg": 60.0}).to_string();
    expect(
        addr,
        "POST",
        "/v1/patients",
        &t.coordinator,
        Some(&body),
        201,
    )
    .await["id"]
        .as_i64()
        .unwrap()
}

async fn enrol(
    addr: SocketAddr,
    token: &str,
    external: &str,
    national_id: &str,
    station: &str,
) -> i64 {
    let body = enrolment(external, national_id).replace("\"BJ01\"", &format!("\"{station}\""));
    expect(addr, "POST", "/v1/donors", token, Some(&body), 201).await["id"]
        .as_i64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staged_consent_is_enforced_at_every_step_over_http() {
    for (backend, reg, _dir) in registries("consent").await {
        let t = tokens(&reg).await;
        let (addr, stop, reg) = start(reg).await;
        let b = backend.as_str();
        let d = enrol(addr, &t.station, "C1", "CN1", "BJ01").await;
        let p = patient(addr, &t, "P-C1").await;
        let req = |kind: &str| json!({"patient_id": p, "donor_id": d, "kind": kind}).to_string();
        let ct = expect(
            addr,
            "POST",
            "/v1/requests",
            &t.coordinator,
            Some(&req("confirmatory_typing")),
            201,
        )
        .await;
        // Confirmatory typing without its consent: the sample and the result are refused
        // and nothing is recorded.
        let sample = json!({"collected_on": "2026-11-21", "volume_ml": 20.0, "barcode": "CT-1", "request_id": ct["id"]}).to_string();
        let refused = expect(
            addr,
            "POST",
            &format!("/v1/donors/{d}/samples"),
            &t.station,
            Some(&sample),
            409,
        )
        .await;
        assert_consent_required(&refused, "confirmatory_typing");
        let plain = r#"{"collected_on": "2026-11-21", "barcode": "CT-2"}"#;
        let refused = expect(
            addr,
            "POST",
            &format!("/v1/donors/{d}/samples"),
            &t.station,
            Some(plain),
            409,
        )
        .await;
        assert_consent_required(&refused, "confirmatory_typing");
        let typing = json!({"gl": TYPING, "method": "NGS"}).to_string();
        let refused = expect(
            addr,
            "POST",
            &format!("/v1/donors/{d}/typings"),
            &t.station,
            Some(&typing),
            409,
        )
        .await;
        assert_consent_required(&refused, "confirmatory_typing");
        let samples = expect(
            addr,
            "GET",
            &format!("/v1/donors/{d}/samples"),
            &t.station,
            None,
            200,
        )
        .await;
        assert_eq!(samples["samples"].as_array().unwrap().len(), 0, "{b}");
        let typings = expect(
            addr,
            "GET",
            &format!("/v1/donors/{d}/typings"),
            &t.station,
            None,
            200,
        )
        .await;
        assert_eq!(
            typings["typings"].as_array().unwrap().len(),
            1,
            "{b}: only the enrolment's"
        );
        // Coordinators and auditors record no consents; a case manager only the case scopes
        // of donors in a case (this donor is: the confirmatory typing is open).
        for token in [&t.coordinator, &t.auditor] {
            let body = r#"{"scope": "confirmatory_typing", "form_version": "CT-1"}"#;
            expect(
                addr,
                "POST",
                &format!("/v1/donors/{d}/consents"),
                token,
                Some(body),
                403,
            )
            .await;
        }
        expect(
            addr,
            "POST",
            &format!("/v1/donors/{d}/consents"),
            &t.case_manager,
            Some(r#"{"scope": "research", "form_version": "R-1"}"#),
            403,
        )
        .await;
        expect(
            addr,
            "POST",
            &format!("/v1/donors/{d}/consents"),
            &t.case_manager,
            Some(r#"{"scope": "confirmatory_typing", "form_version": "CT-1"}"#),
            201,
        )
        .await;
        let s = expect(
            addr,
            "POST",
            &format!("/v1/donors/{d}/samples"),
            &t.station,
            Some(&sample),
            201,
        )
        .await;
        assert_eq!(s["request_id"], ct["id"], "{b}");
        let typed = json!({"gl": TYPING, "method": "NGS", "sample_id": s["id"]}).to_string();
        expect(
            addr,
            "POST",
            &format!("/v1/donors/{d}/typings"),
            &t.station,
            Some(&typed),
            201,
        )
        .await;
        expect(
            addr,
            "POST",
            &format!("/v1/requests/{}/close", ct["id"]),
            &t.coordinator,
            Some(r#"{"state": "done"}"#),
            200,
        )
        .await;
        // Workup: the information session (where workup consent is taken) is allowed; every
        // later milestone and the donation need the consent.
        let w = expect(
            addr,
            "POST",
            "/v1/requests",
            &t.case_manager,
            Some(&req("workup")),
            201,
        )
        .await["id"]
            .as_i64()
            .unwrap();
        let milestone =
            |m: &str, on: &str| json!({"milestone": m, "on": on, "ok": true}).to_string();
        let ms = format!("/v1/requests/{w}/milestones");
        expect(
            addr,
            "POST",
            &ms,
            &t.case_manager,
            Some(&milestone("information_session", "2026-11-23")),
            201,
        )
        .await;
        let refused = expect(
            addr,
            "POST",
            &ms,
            &t.case_manager,
            Some(&milestone("medical_exam", "2026-11-24")),
            409,
        )
        .await;
        assert_consent_required(&refused, "workup");
        let donation = json!({"donor_id": d, "patient_id": p, "product": "PBSC", "donated_on": "2026-11-22", "station": "BJ01"}).to_string();
        let refused = expect(
            addr,
            "POST",
            "/v1/donations",
            &t.case_manager,
            Some(&donation),
            409,
        )
        .await;
        assert_consent_required(&refused, "workup");
        let case = expect(
            addr,
            "GET",
            &format!("/v1/requests/{w}"),
            &t.case_manager,
            None,
            200,
        )
        .await;
        assert_eq!(
            case["milestones"].as_array().unwrap().len(),
            1,
            "{b}: {case}"
        );
        let donations = expect(
            addr,
            "GET",
            &format!("/v1/donations?donor_id={d}"),
            &t.case_manager,
            None,
            200,
        )
        .await;
        assert_eq!(donations["items"].as_array().unwrap().len(), 0, "{b}");
        expect(
            addr,
            "POST",
            &format!("/v1/donors/{d}/consents"),
            &t.case_manager,
            Some(r#"{"scope": "workup", "form_version": "W-1"}"#),
            201,
        )
        .await;
        for m in [
            "medical_exam",
            "infectious_markers",
            "clearance",
            "gcsf_start",
        ] {
            expect(
                addr,
                "POST",
                &ms,
                &t.case_manager,
                Some(&milestone(m, "2026-11-24")),
                201,
            )
            .await;
        }
        // After G-CSF start a withdrawal is recorded, never blocked, with a loud warning in
        // the response and on the case.
        let withdrawn = expect(
            addr,
            "POST",
            &format!("/v1/donors/{d}/consents/workup/withdrawal"),
            &t.case_manager,
            Some(r#"{"reason": "afraid"}"#),
            200,
        )
        .await;
        let warning = withdrawn["warnings"][0]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            warning.starts_with("DANGER") && warning.contains("conditioning"),
            "{b}: {withdrawn}"
        );
        let case = expect(
            addr,
            "GET",
            &format!("/v1/requests/{w}"),
            &t.coordinator,
            None,
            200,
        )
        .await;
        assert_eq!(
            case["warnings"][0]["warning"],
            warning.as_str(),
            "{b}: {case}"
        );
        assert_eq!(
            case["milestones"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["milestone"].as_str().unwrap())
                .collect::<Vec<_>>(),
            [
                "information_session",
                "medical_exam",
                "infectious_markers",
                "clearance",
                "gcsf_start"
            ],
            "{b}"
        );
        let refused = expect(
            addr,
            "POST",
            "/v1/donations",
            &t.case_manager,
            Some(&donation),
            409,
        )
        .await;
        assert_consent_required(&refused, "workup");
        // The donor consents again; the donation proceeds.
        expect(
            addr,
            "POST",
            &format!("/v1/donors/{d}/consents"),
            &t.case_manager,
            Some(r#"{"scope": "workup", "form_version": "W-1"}"#),
            201,
        )
        .await;
        expect(
            addr,
            "POST",
            "/v1/donations",
            &t.case_manager,
            Some(&donation),
            201,
        )
        .await;
        // A follow-up contact needs follow-up contact consent.
        let due = expect(
            addr,
            "GET",
            "/v1/followups?state=scheduled&limit=1",
            &t.case_manager,
            None,
            200,
        )
        .await;
        let f = due["items"][0].clone();
        assert_eq!(
            (f["label"].as_str(), f["contact_consent"].as_bool()),
            (Some("2 days"), Some(false)),
            "{b}: {due}"
        );
        let done = r#"{"state": "done", "on": "2026-11-22", "outcome": "well"}"#;
        let refused = expect(
            addr,
            "POST",
            &format!("/v1/followups/{}", f["id"]),
            &t.case_manager,
            Some(done),
            409,
        )
        .await;
        assert_consent_required(&refused, "follow_up_contact");
        expect(
            addr,
            "POST",
            &format!("/v1/donors/{d}/consents"),
            &t.case_manager,
            Some(r#"{"scope": "follow_up_contact", "form_version": "F-1"}"#),
            201,
        )
        .await;
        expect(
            addr,
            "POST",
            &format!("/v1/followups/{}", f["id"]),
            &t.case_manager,
            Some(done),
            200,
        )
        .await;
        let done_list = expect(
            addr,
            "GET",
            "/v1/followups?state=done",
            &t.case_manager,
            None,
            200,
        )
        .await;
        assert_eq!(done_list["items"][0]["id"], f["id"], "{b}");
        stop.send(()).ok();
        reg.close().await;
    }
}

/// Every item of a work list, read two at a time through its cursors; checks each page's
/// size and that ids ascend without repeats.
async fn all_pages(addr: SocketAddr, token: &str, path: &str) -> Vec<Value> {
    let mut items: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    let sep = if path.contains('?') { '&' } else { '?' };
    for _ in 0..100 {
        let url = match &cursor {
            Some(c) => format!("{path}{sep}limit=2&cursor={c}"),
            None => format!("{path}{sep}limit=2"),
        };
        let page = expect(addr, "GET", &url, token, None, 200).await;
        let got = page["items"].as_array().unwrap();
        assert!(got.len() <= 2, "{url}: {page}");
        items.extend(got.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => {
                assert_eq!(got.len(), 2, "{url}: a full page before a next cursor");
                cursor = Some(c.to_string());
            }
            None => break,
        }
    }
    let ids: Vec<i64> = items.iter().map(|i| i["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{path}: {ids:?}");
    items
}

fn ids(items: &[Value]) -> Vec<i64> {
    items.iter().map(|i| i["id"].as_i64().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_lists_page_filter_and_show_each_role_only_its_own() {
    for (backend, reg, _dir) in registries("lists").await {
        let t = tokens(&reg).await;
        let (addr, stop, reg) = start(reg).await;
        let b = backend.as_str();
        // Donors: five at BJ01, two at BJ02; one of BJ01's withdraws.
        let mut own = Vec::new();
        for i in 0..5 {
            own.push(
                enrol(
                    addr,
                    &t.station,
                    &format!("L{i}"),
                    &format!("LN{i}"),
                    "BJ01",
                )
                .await,
            );
        }
        let mut theirs = Vec::new();
        for i in 0..2 {
            theirs.push(
                enrol(
                    addr,
                    &t.other_station,
                    &format!("M{i}"),
                    &format!("MN{i}"),
                    "BJ02",
                )
                .await,
            );
        }
        // Ids need not follow enrolment order (PostgreSQL hands out cached sequence blocks);
        // lists are in id order.
        own.sort();
        theirs.sort();
        expect(
            addr,
            "POST",
            &format!("/v1/donors/{}/consents/recruitment/withdrawal", own[4]),
            &t.station,
            Some("{}"),
            200,
        )
        .await;
        let listed = all_pages(addr, &t.station, "/v1/donors").await;
        assert_eq!(ids(&listed), own, "{b}: a station sees only its own donors");
        assert!(
            listed
                .iter()
                .all(|d| d["station"] == "BJ01" && d.get("identity").is_none()),
            "{b}"
        );
        expect(
            addr,
            "GET",
            "/v1/donors?station=BJ02",
            &t.station,
            None,
            403,
        )
        .await;
        assert_eq!(
            ids(&all_pages(addr, &t.other_station, "/v1/donors").await),
            theirs,
            "{b}"
        );
        assert_eq!(
            ids(&all_pages(addr, &t.coordinator, "/v1/donors?station=BJ02").await),
            theirs,
            "{b}"
        );
        assert_eq!(
            ids(&all_pages(addr, &t.coordinator, "/v1/donors").await).len(),
            7,
            "{b}"
        );
        assert_eq!(
            ids(&all_pages(addr, &t.station, "/v1/donors?listed=false").await),
            [own[4]],
            "{b}"
        );
        assert_eq!(
            ids(&all_pages(addr, &t.station, "/v1/donors?listed=true&status=AV").await),
            own[..4],
            "{b}"
        );
        for bad in [
            "/v1/donors?status=XX",
            "/v1/donors?cursor=abc",
            "/v1/donors?limit=0",
            "/v1/donors?limit=501",
        ] {
            let p = expect(addr, "GET", bad, &t.coordinator, None, 422).await;
            let field = p["errors"][0]["field"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            assert!(bad.contains(&format!("{field}=")), "{b}: {bad}: {p}");
        }
        expect(
            addr,
            "GET",
            "/v1/donors?listed=maybe",
            &t.coordinator,
            None,
            400,
        )
        .await;
        // Samples: three at BJ01 (one shipped), one at BJ02.
        let mut own_samples = Vec::new();
        for (i, d) in own.iter().take(3).enumerate() {
            let body =
                json!({"collected_on": "2026-11-20", "barcode": format!("LS-{i}")}).to_string();
            own_samples.push(
                expect(
                    addr,
                    "POST",
                    &format!("/v1/donors/{d}/samples"),
                    &t.station,
                    Some(&body),
                    201,
                )
                .await["id"]
                    .as_i64()
                    .unwrap(),
            );
        }
        let body = r#"{"collected_on": "2026-11-20", "barcode": "MS-0"}"#;
        let their_sample = expect(
            addr,
            "POST",
            &format!("/v1/donors/{}/samples", theirs[0]),
            &t.other_station,
            Some(body),
            201,
        )
        .await["id"]
            .as_i64()
            .unwrap();
        expect(
            addr,
            "POST",
            &format!("/v1/samples/{}/state", own_samples[1]),
            &t.station,
            Some(r#"{"state": "shipped"}"#),
            200,
        )
        .await;
        assert_eq!(
            ids(&all_pages(addr, &t.station, "/v1/samples").await),
            own_samples,
            "{b}"
        );
        assert_eq!(
            ids(&all_pages(addr, &t.station, "/v1/samples?state=shipped").await),
            [own_samples[1]],
            "{b}"
        );
        assert_eq!(
            ids(&all_pages(addr, &t.other_station, "/v1/samples").await),
            [their_sample],
            "{b}"
        );
        expect(
            addr,
            "GET",
            "/v1/samples?station=BJ01",
            &t.other_station,
            None,
            403,
        )
        .await;
        expect(addr, "GET", "/v1/samples?state=lost", &t.station, None, 422).await;
        assert_eq!(
            ids(&all_pages(addr, &t.case_manager, "/v1/samples").await).len(),
            4,
            "{b}"
        );
        // Patients and their searches.
        let patients = [
            patient(addr, &t, "LP-1").await,
            patient(addr, &t, "LP-2").await,
            patient(addr, &t, "LP-3").await,
        ];
        assert_eq!(
            ids(&all_pages(addr, &t.case_manager, "/v1/patients").await),
            patients,
            "{b}"
        );
        let search = |p: i64| json!({"patient_id": p, "max_mismatches": 1}).to_string();
        let s1 = expect(
            addr,
            "POST",
            "/v1/searches",
            &t.coordinator,
            Some(&search(patients[0])),
            201,
        )
        .await["id"]
            .as_i64()
            .unwrap();
        let s2 = expect(
            addr,
            "POST",
            "/v1/searches",
            &t.coordinator,
            Some(&search(patients[0])),
            201,
        )
        .await["id"]
            .as_i64()
            .unwrap();
        let s3 = expect(
            addr,
            "POST",
            "/v1/searches",
            &t.coordinator,
            Some(&search(patients[1])),
            201,
        )
        .await["id"]
            .as_i64()
            .unwrap();
        expect(
            addr,
            "POST",
            &format!("/v1/searches/{s2}/state"),
            &t.coordinator,
            Some(r#"{"state": "ACT"}"#),
            200,
        )
        .await;
        assert_eq!(
            ids(&all_pages(
                addr,
                &t.coordinator,
                &format!("/v1/patients/{}/searches", patients[0])
            )
            .await),
            [s1, s2],
            "{b}"
        );
        assert_eq!(
            ids(&all_pages(addr, &t.coordinator, "/v1/searches?state=ACT").await),
            [s2],
            "{b}"
        );
        assert_eq!(
            ids(&all_pages(
                addr,
                &t.coordinator,
                &format!("/v1/searches?patient_id={}", patients[1])
            )
            .await),
            [s3],
            "{b}"
        );
        assert!(
            all_pages(addr, &t.coordinator, "/v1/searches?has_new=true")
                .await
                .is_empty(),
            "{b}"
        );
        expect(
            addr,
            "GET",
            "/v1/patients/999999/searches",
            &t.coordinator,
            None,
            404,
        )
        .await;
        expect(
            addr,
            "GET",
            "/v1/searches?state=RUN",
            &t.coordinator,
            None,
            422,
        )
        .await;
        // Requests: typing and reservations; the ones about to expire.
        let open = |p: i64, d: i64, kind: &str| {
            json!({"patient_id": p, "donor_id": d, "kind": kind}).to_string()
        };
        let r1 = expect(
            addr,
            "POST",
            "/v1/requests",
            &t.coordinator,
            Some(&open(patients[0], own[0], "confirmatory_typing")),
            201,
        )
        .await["id"]
            .as_i64()
            .unwrap();
        let r2 = expect(
            addr,
            "POST",
            "/v1/requests",
            &t.coordinator,
            Some(&open(patients[0], own[1], "reservation")),
            201,
        )
        .await;
        let r3 = expect(
            addr,
            "POST",
            "/v1/requests",
            &t.coordinator,
            Some(&open(patients[1], own[2], "extended_typing")),
            201,
        )
        .await["id"]
            .as_i64()
            .unwrap();
        let r2_id = r2["id"].as_i64().unwrap();
        let all_requests = all_pages(addr, &t.auditor, "/v1/requests").await;
        assert_eq!(ids(&all_requests), [r1, r2_id, r3], "{b}");
        assert_eq!(
            ids(&all_pages(
                addr,
                &t.coordinator,
                "/v1/requests?kind=reservation&state=open"
            )
            .await),
            [r2_id],
            "{b}"
        );
        assert_eq!(
            ids(&all_pages(
                addr,
                &t.coordinator,
                &format!("/v1/requests?patient_id={}", patients[1])
            )
            .await),
            [r3],
            "{b}"
        );
        assert_eq!(
            ids(&all_pages(
                addr,
                &t.coordinator,
                &format!("/v1/requests?donor_id={}", own[0])
            )
            .await),
            [r1],
            "{b}"
        );
        // The reservation holds 53 working days: not within 30 days, within 90.
        let reservation = &all_requests[1];
        let expires = reservation["expires_on"].as_str().unwrap();
        assert!(
            expires > "2027-01-20" && expires < "2027-03-01",
            "{b}: {reservation}"
        );
        assert!(
            all_pages(addr, &t.coordinator, "/v1/requests?expiring_within_days=30")
                .await
                .is_empty(),
            "{b}"
        );
        assert_eq!(
            ids(&all_pages(addr, &t.coordinator, "/v1/requests?expiring_within_days=90").await),
            [r2_id],
            "{b}"
        );
        let detail = expect(
            addr,
            "GET",
            &format!("/v1/requests/{r1}"),
            &t.case_manager,
            None,
            200,
        )
        .await;
        assert_eq!(
            (
                detail["kind"].as_str(),
                detail["milestones"].as_array().map(Vec::len)
            ),
            (Some("confirmatory_typing"), Some(0)),
            "{b}"
        );
        expect(
            addr,
            "GET",
            "/v1/requests/999999",
            &t.coordinator,
            None,
            404,
        )
        .await;
        expect(
            addr,
            "GET",
            "/v1/requests?kind=lunch",
            &t.coordinator,
            None,
            422,
        )
        .await;
        // Donations by year.
        let d = own[3];
        let w = expect(
            addr,
            "POST",
            "/v1/requests",
            &t.case_manager,
            Some(&open(patients[2], d, "workup")),
            201,
        )
        .await["id"]
            .as_i64()
            .unwrap();
        expect(
            addr,
            "POST",
            &format!("/v1/donors/{d}/consents"),
            &t.case_manager,
            Some(r#"{"scope": "workup", "form_version": "W"}"#),
            201,
        )
        .await;
        let _ = w;
        let donation =
            |on: &str| json!({"donor_id": d, "product": "PBSC", "donated_on": on}).to_string();
        let dn1 = expect(
            addr,
            "POST",
            "/v1/donations",
            &t.case_manager,
            Some(&donation("2025-06-01")),
            201,
        )
        .await["id"]
            .as_i64()
            .unwrap();
        let dn2 = expect(
            addr,
            "POST",
            "/v1/donations",
            &t.case_manager,
            Some(&donation("2026-11-01")),
            201,
        )
        .await["id"]
            .as_i64()
            .unwrap();
        assert_eq!(
            ids(&all_pages(addr, &t.auditor, "/v1/donations").await),
            [dn1, dn2],
            "{b}"
        );
        assert_eq!(
            ids(&all_pages(addr, &t.auditor, "/v1/donations?year=2026").await),
            [dn2],
            "{b}"
        );
        expect(addr, "GET", "/v1/donations?year=12", &t.auditor, None, 422).await;
        // Follow-ups by state (today is 2026-11-22): the 2025 donation's first ones are overdue.
        let overdue = all_pages(addr, &t.case_manager, "/v1/followups?state=overdue").await;
        assert!(
            overdue
                .iter()
                .all(|f| f["due_on"].as_str().unwrap() < "2026-11-22"),
            "{b}"
        );
        let due = all_pages(addr, &t.case_manager, "/v1/followups?state=due").await;
        assert!(due.len() >= overdue.len() && !overdue.is_empty(), "{b}");
        let scheduled = all_pages(addr, &t.case_manager, "/v1/followups?state=scheduled").await;
        assert_eq!(due.len() + scheduled.len(), 28, "{b}: 14 per donation");
        expect(
            addr,
            "GET",
            "/v1/followups?state=someday",
            &t.case_manager,
            None,
            422,
        )
        .await;
        // Organ registrations: each station sees its own; national ids masked in lists.
        let organ = |id: &str| {
            json!({"family_name": "Wang", "given_name": "Fang", "national_id": id, "birth_date": "1980-01-01", "organs": ["kidney"], "tissues": [], "whole_body": false}).to_string()
        };
        let o1 = expect(
            addr,
            "POST",
            "/v1/organ-registrations",
            &t.station,
            Some(&organ("110101198001010010")),
            201,
        )
        .await["id"]
            .as_i64()
            .unwrap();
        let o2 = expect(
            addr,
            "POST",
            "/v1/organ-registrations",
            &t.station,
            Some(&organ("110101198001010029")),
            201,
        )
        .await["id"]
            .as_i64()
            .unwrap();
        let o3 = expect(
            addr,
            "POST",
            "/v1/organ-registrations",
            &t.other_station,
            Some(&organ("110101198001010037")),
            201,
        )
        .await["id"]
            .as_i64()
            .unwrap();
        expect(
            addr,
            "POST",
            &format!("/v1/organ-registrations/{o2}/revocation"),
            &t.station,
            None,
            200,
        )
        .await;
        let mine = all_pages(addr, &t.station, "/v1/organ-registrations").await;
        assert_eq!(ids(&mine), [o1, o2], "{b}");
        assert_eq!(
            mine[0]["national_id"], "**************0010",
            "{b}: {}",
            mine[0]
        );
        assert_eq!(
            ids(&all_pages(addr, &t.station, "/v1/organ-registrations?state=active").await),
            [o1],
            "{b}"
        );
        assert_eq!(
            ids(&all_pages(addr, &t.other_station, "/v1/organ-registrations").await),
            [o3],
            "{b}"
        );
        assert_eq!(
            ids(&all_pages(addr, &t.admin, "/v1/organ-registrations").await),
            [o1, o2, o3],
            "{b}"
        );
        let full = expect(
            addr,
            "GET",
            &format!("/v1/organ-registrations/{o1}"),
            &t.station,
            None,
            200,
        )
        .await;
        assert_eq!(
            (full["national_id"].as_str(), full["station"].as_str()),
            (Some("110101198001010010"), Some("BJ01")),
            "{b}"
        );
        expect(
            addr,
            "GET",
            &format!("/v1/organ-registrations/{o1}"),
            &t.other_station,
            None,
            403,
        )
        .await;
        expect(
            addr,
            "GET",
            "/v1/organ-registrations/999999",
            &t.station,
            None,
            404,
        )
        .await;
        expect(
            addr,
            "GET",
            "/v1/organ-registrations?station=BJ01",
            &t.other_station,
            None,
            403,
        )
        .await;
        let audit = reg
            .audit_entries(Some("organ_registration"), Some(&o1.to_string()), None, 50)
            .await
            .unwrap();
        assert!(
            audit.iter().any(|e| e.action == "organ.read"),
            "{b}: the full read is audited"
        );
        stop.send(()).ok();
        reg.close().await;
    }
}

/// Move the registry's (manual) clock to an instant.
fn set_clock(reg: &Registry, at: &str) {
    reg.config.clock.set(at.parse().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_reports_carry_section_8_and_searches_follow_their_lifecycle() {
    let set = haplotypes();
    for (backend, reg, _dir) in registries("reports").await {
        let t = tokens(&reg).await;
        let (addr, stop, reg) = start_with(reg, Some(set.clone())).await;
        let b = backend.as_str();
        let d1 = enrol(addr, &t.station, "R1", "RN1", "BJ01").await;
        let d2 = enrol(addr, &t.station, "R2", "RN2", "BJ01").await;
        // One mismatch at A.
        let body = enrolment("R3", "RN3").replace("A*02:01+", "A*01:01+");
        let d3 = expect(addr, "POST", "/v1/donors", &t.station, Some(&body), 201).await["id"]
            .as_i64()
            .unwrap();
        let p = patient(addr, &t, "RP-1").await;
        let q = patient(addr, &t, "RP-2").await;
        let criteria = |extra: Value| {
            let mut c = json!({"patient_id": p, "max_mismatches": 2});
            c.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            c.to_string()
        };
        let run = expect(
            addr,
            "POST",
            "/v1/searches",
            &t.coordinator,
            Some(&criteria(json!({"probability": true}))),
            201,
        )
        .await;
        let s1 = run["id"].as_i64().unwrap();
        assert_eq!(run["total"], 3, "{b}: {run}");
        let hit = run["hits"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["donor_id"] == d1)
            .unwrap()
            .clone();
        registry::validate_grid(hit["grid"].as_str().unwrap()).unwrap();
        for (field, value) in [
            ("sex", "F"),
            ("abo", "A"),
            ("rh", "+"),
            ("cmv", "neg"),
            ("status", "AV"),
            ("donor_type", "adult"),
            ("grade", "10/10"),
        ] {
            assert_eq!(hit[field], value, "{b}: {field} in {hit}");
        }
        assert_eq!(
            (hit["age"].as_u64(), hit["available"].as_bool()),
            (Some(31), Some(true)),
            "{b}: {hit}"
        );
        assert_eq!(hit["loci"]["A"]["resolution"], "allele", "{b}: {hit}");
        let p0 = hit["probability"]["p0"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&p0), "{b}: {hit}");
        assert_eq!(
            hit["loci"]["DRB1"]["probability"].as_array().map(Vec::len),
            Some(3),
            "{b}: {hit}"
        );
        // Per-locus limits and ranking policies by name.
        let strict = expect(
            addr,
            "POST",
            "/v1/searches",
            &t.coordinator,
            Some(&criteria(json!({"locus_max": {"A": 0}}))),
            201,
        )
        .await;
        assert_eq!(hit_ids(&strict).len(), 2, "{b}: {strict}");
        assert!(!hit_ids(&strict).contains(&d3), "{b}");
        assert!(
            strict["hits"][0].get("probability").is_none(),
            "{b}: not asked"
        );
        let by_p = expect(
            addr,
            "POST",
            "/v1/searches",
            &t.coordinator,
            Some(&criteria(
                json!({"probability": true, "policy": "probability-within-grade-v1"}),
            )),
            201,
        )
        .await;
        assert!(
            by_p["policy"]
                .as_str()
                .unwrap()
                .starts_with("probability-within-grade-v1"),
            "{b}: {by_p}"
        );
        for (extra, field) in [
            (json!({"policy": "fastest"}), "policy"),
            (json!({"policy": "probability-within-grade-v1"}), "policy"),
            (json!({"locus_max": {"A": 3}}), "locus_max"),
            (json!({"locus_max": {"Q": 1}}), "locus_max"),
        ] {
            let e = expect(
                addr,
                "POST",
                "/v1/searches",
                &t.coordinator,
                Some(&criteria(extra.clone())),
                422,
            )
            .await;
            assert_eq!(e["errors"][0]["field"], field, "{b}: {extra}: {e}");
        }
        // Read later, the run shows each donor as they are now: d1 reserved for another
        // patient, d2 withdrawn; neither is shown as available.
        expect(
            addr,
            "POST",
            "/v1/requests",
            &t.coordinator,
            Some(&json!({"patient_id": q, "donor_id": d1, "kind": "reservation"}).to_string()),
            201,
        )
        .await;
        expect(
            addr,
            "POST",
            &format!("/v1/donors/{d2}/consents/recruitment/withdrawal"),
            &t.station,
            Some("{}"),
            200,
        )
        .await;
        let page = expect(
            addr,
            "GET",
            &format!("/v1/searches/{s1}/results?limit=10"),
            &t.coordinator,
            None,
            200,
        )
        .await;
        let by_id = |id: i64| {
            page["hits"]
                .as_array()
                .unwrap()
                .iter()
                .find(|h| h["donor_id"] == id)
                .unwrap()
                .clone()
        };
        let (h1, h2, h3) = (by_id(d1), by_id(d2), by_id(d3));
        assert_eq!(
            (
                h1["status"].as_str(),
                h1["available"].as_bool(),
                h1["status_note"].as_str()
            ),
            (
                Some("RS"),
                Some(false),
                Some("reserved for another patient")
            ),
            "{b}: {h1}"
        );
        assert_eq!(
            (h2["available"].as_bool(), h2["status_note"].as_str()),
            (Some(false), Some("withdrawn")),
            "{b}: {h2}"
        );
        assert_eq!(h3["available"], true, "{b}: {h3}");
        // The ranked results as CSV.
        let (s, csv, ct) = call_text(
            addr,
            "GET",
            &format!("/v1/searches/{s1}/results.csv"),
            Some(&t.coordinator),
            None,
        )
        .await;
        assert_eq!(
            (s, ct.as_str()),
            (200, "text/csv; charset=utf-8"),
            "{b}: {csv}"
        );
        let lines: Vec<&str> = csv.lines().collect();
        assert!(lines[0].starts_with("rank,donor_id,grid,donor_type,grade,mismatches,age,sex,abo,rh,cmv,status,available,status_note,p0,p1,p2,A_mismatches,A_grades,A_resolution"), "{b}: {}", lines[0]);
        assert_eq!(lines.len(), 4, "{b}: {csv}");
        let row1 = lines
            .iter()
            .find(|l| l.split(',').nth(1) == Some(&d1.to_string()))
            .unwrap();
        assert!(
            row1.contains(",RS,false,reserved for another patient,"),
            "{b}: {row1}"
        );
        // One GL string per ranked donor, in the CSV's order, each the donor's typing.
        let (s, gl, ct) = call_text(
            addr,
            "GET",
            &format!("/v1/searches/{s1}/results.gl"),
            Some(&t.coordinator),
            None,
        )
        .await;
        assert_eq!(
            (s, ct.as_str()),
            (200, "text/plain; charset=utf-8"),
            "{b}: {gl}"
        );
        let csv_ids: Vec<&str> = lines[1..]
            .iter()
            .filter_map(|l| l.split(',').nth(1))
            .collect();
        let gl_ids: Vec<&str> = gl.lines().filter_map(|l| l.split('%').next()).collect();
        assert_eq!(gl_ids, csv_ids, "{b}: {gl}");
        for line in gl.lines() {
            let (id, typing) = line.split_once('%').unwrap();
            let donor = expect(
                addr,
                "GET",
                &format!("/v1/donors/{id}"),
                &t.station,
                None,
                200,
            )
            .await;
            assert_eq!(donor["typing"].as_str(), Some(typing), "{b}: {line}");
        }
        assert!(
            gl.lines()
                .any(|l| l.starts_with(&format!("{d3}%")) && l.contains("A*01:01")),
            "{b}: {gl}"
        );
        // Lifecycle: an ACT search is re-run by the nightly job; a new donor shows in its
        // next run and lists it under has_new; a SUS search stops after 42 days.
        let s2 = expect(
            addr,
            "POST",
            "/v1/searches",
            &t.coordinator,
            Some(&criteria(json!({}))),
            201,
        )
        .await["id"]
            .as_i64()
            .unwrap();
        expect(
            addr,
            "POST",
            &format!("/v1/searches/{s2}/state"),
            &t.coordinator,
            Some(r#"{"state": "ACT"}"#),
            200,
        )
        .await;
        let s3 = expect(
            addr,
            "POST",
            "/v1/searches",
            &t.coordinator,
            Some(&criteria(json!({}))),
            201,
        )
        .await["id"]
            .as_i64()
            .unwrap();
        expect(
            addr,
            "POST",
            &format!("/v1/searches/{s3}/state"),
            &t.coordinator,
            Some(r#"{"state": "PRE"}"#),
            200,
        )
        .await;
        expect(
            addr,
            "POST",
            &format!("/v1/searches/{s3}/state"),
            &t.coordinator,
            Some(r#"{"state": "SUS"}"#),
            200,
        )
        .await;
        let d4 = enrol(addr, &t.station, "R4", "RN4", "BJ01").await;
        expect(
            addr,
            "POST",
            &format!("/v1/donors/{d3}/consents/recruitment/withdrawal"),
            &t.station,
            Some("{}"),
            200,
        )
        .await;
        // The day's run already happened at 02:00? Not on this clock: 10:00 on the 22nd, no
        // run yet, so the first call runs the 22nd's job.
        let first = expect(addr, "POST", "/v1/jobs/daily", &t.admin, None, 200).await;
        assert_eq!(
            (first["ran"].as_bool(), first["outcome"]["run_on"].as_str()),
            (Some(true), Some("2026-11-22")),
            "{b}: {first}"
        );
        assert!(
            first["outcome"]["searches_with_new"].as_u64() >= Some(1),
            "{b}: {first}"
        );
        let again = expect(addr, "POST", "/v1/jobs/daily", &t.admin, None, 200).await;
        assert_eq!(again["ran"], false, "{b}: one run a day");
        assert_eq!(
            ids(&all_pages(addr, &t.coordinator, "/v1/searches?has_new=true").await),
            [s2],
            "{b}"
        );
        let runs = expect(
            addr,
            "GET",
            &format!("/v1/searches/{s2}/runs"),
            &t.coordinator,
            None,
            200,
        )
        .await;
        let last = runs.as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["new"], json!([d4]), "{b}: {runs}");
        assert_eq!(
            last["gone"],
            json!([d3]),
            "{b}: the withdrawn donor is gone: {runs}"
        );
        let audit = reg
            .audit_entries(Some("job"), Some("2026-11-22"), None, 5)
            .await
            .unwrap();
        assert!(
            audit.iter().any(|e| e.action == "job.daily"
                && e.reason
                    .as_deref()
                    .is_some_and(|r| r.contains("searches_rerun"))),
            "{b}: {audit:?}"
        );
        // 42 days after the suspension: still SUS; 43: stopped, its results dropped.
        set_clock(&reg, "2027-01-02T20:00:00Z"); // 2027-01-03 04:00 in Beijing
        expect(addr, "POST", "/v1/jobs/daily", &t.admin, None, 200).await;
        assert_eq!(
            expect(
                addr,
                "GET",
                &format!("/v1/searches/{s3}"),
                &t.coordinator,
                None,
                200
            )
            .await["state"],
            "SUS",
            "{b}"
        );
        set_clock(&reg, "2027-01-03T20:00:00Z");
        let stopped = expect(addr, "POST", "/v1/jobs/daily", &t.admin, None, 200).await;
        assert_eq!(stopped["outcome"]["searches_stopped"], 1, "{b}: {stopped}");
        let s3_now = expect(
            addr,
            "GET",
            &format!("/v1/searches/{s3}"),
            &t.coordinator,
            None,
            200,
        )
        .await;
        assert_eq!(s3_now["state"], "STP", "{b}: {s3_now}");
        assert!(
            s3_now["state_reason"].as_str().unwrap().contains("42"),
            "{b}: {s3_now}"
        );
        let dropped = expect(
            addr,
            "GET",
            &format!("/v1/searches/{s3}/results"),
            &t.coordinator,
            None,
            200,
        )
        .await;
        assert_eq!(
            (dropped["total"].as_u64(), dropped["kept"].as_u64()),
            (Some(0), Some(0)),
            "{b}: {dropped}"
        );
        expect(
            addr,
            "POST",
            &format!("/v1/searches/{s3}/runs"),
            &t.coordinator,
            None,
            409,
        )
        .await;
        // Between 00:00 and 08:00 in Beijing it is already the next day there: a typing
        // recorded at 07:30 local (23:30 UTC) is dated the local day.
        set_clock(&reg, "2027-01-04T23:30:00Z");
        expect(
            addr,
            "POST",
            &format!("/v1/donors/{d4}/typings"),
            &t.station,
            Some(&json!({"gl": TYPING}).to_string()),
            201,
        )
        .await;
        let typings = expect(
            addr,
            "GET",
            &format!("/v1/donors/{d4}/typings"),
            &t.station,
            None,
            200,
        )
        .await;
        assert_eq!(
            typings["typings"][0]["typed_on"], "2027-01-05",
            "{b}: {typings}"
        );
        stop.send(()).ok();
        reg.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_rules_and_dates_are_answered_with_problems_never_500() {
    for (backend, reg, _dir) in registries("caserules").await {
        let t = tokens(&reg).await;
        let (addr, stop, reg) = start(reg).await;
        let b = backend.as_str();
        let d = enrol(addr, &t.station, "Q1", "QN1", "BJ01").await;
        let e = enrol(addr, &t.station, "Q2", "QN2", "BJ01").await;
        let p1 = patient(addr, &t, "QP-1").await;
        let p2 = patient(addr, &t, "QP-2").await;
        let open = |p: i64, d: i64, kind: &str| {
            json!({"patient_id": p, "donor_id": d, "kind": kind}).to_string()
        };
        // An unknown patient: 404, not a foreign-key 500.
        expect(
            addr,
            "POST",
            "/v1/requests",
            &t.coordinator,
            Some(&open(999_999, d, "reservation")),
            404,
        )
        .await;
        let donation = json!({"donor_id": d, "patient_id": 999_999, "product": "PBSC", "donated_on": "2026-11-01"}).to_string();
        expect(
            addr,
            "POST",
            "/v1/donations",
            &t.case_manager,
            Some(&donation),
            404,
        )
        .await;
        // One workup at a time.
        expect(
            addr,
            "POST",
            "/v1/requests",
            &t.case_manager,
            Some(&open(p1, d, "workup")),
            201,
        )
        .await;
        expect(
            addr,
            "POST",
            "/v1/requests",
            &t.case_manager,
            Some(&open(p2, d, "workup")),
            409,
        )
        .await;
        // RS only from a reservation; AV not by hand while it is open.
        let rs = json!({"status": "RS", "patient_id": p1}).to_string();
        expect(
            addr,
            "POST",
            &format!("/v1/donors/{e}/status"),
            &t.station,
            Some(&rs),
            409,
        )
        .await;
        expect(
            addr,
            "POST",
            "/v1/requests",
            &t.coordinator,
            Some(&open(p2, e, "reservation")),
            201,
        )
        .await;
        expect(
            addr,
            "POST",
            &format!("/v1/donors/{e}/status"),
            &t.station,
            Some(r#"{"status": "AV"}"#),
            409,
        )
        .await;
        // Products and dates, each refusal naming its field.
        expect(
            addr,
            "POST",
            &format!("/v1/donors/{d}/consents"),
            &t.case_manager,
            Some(r#"{"scope": "workup", "form_version": "W"}"#),
            201,
        )
        .await;
        for (body, field) in [
            (
                json!({"donor_id": d, "patient_id": p1, "product": "BM", "donated_on": "2026-11-01"}),
                "product",
            ),
            (
                json!({"donor_id": d, "patient_id": p1, "product": "PBSC", "donated_on": "2078-01-10"}),
                "donated_on",
            ),
            (
                json!({"donor_id": d, "patient_id": p1, "product": "PBSC", "donated_on": "2026-11-1"}),
                "donated_on",
            ),
        ] {
            let p = expect(
                addr,
                "POST",
                "/v1/donations",
                &t.case_manager,
                Some(&body.to_string()),
                422,
            )
            .await;
            assert_eq!(p["errors"][0]["field"], field, "{b}: {body}: {p}");
        }
        for birth in ["1995-3-5", "+1995-03-15", "2030-01-01"] {
            let body = enrolment("Q9", "QN9").replace("1995-04-10", birth);
            let p = expect(addr, "POST", "/v1/donors", &t.station, Some(&body), 422).await;
            assert_eq!(p["errors"][0]["field"], "birth_date", "{b}: {birth}: {p}");
        }
        let sample = r#"{"collected_on": "2026-12-24", "barcode": "Q-1"}"#;
        let p = expect(
            addr,
            "POST",
            &format!("/v1/donors/{d}/samples"),
            &t.station,
            Some(sample),
            422,
        )
        .await;
        assert_eq!(p["errors"][0]["field"], "collected_on", "{b}: {p}");
        // Identity: not for an extended typing alone.
        let f = enrol(addr, &t.station, "Q3", "QN3", "BJ01").await;
        expect(
            addr,
            "POST",
            "/v1/requests",
            &t.coordinator,
            Some(&open(p1, f, "extended_typing")),
            201,
        )
        .await;
        expect(
            addr,
            "GET",
            &format!("/v1/donors/{f}/identity?reason=call"),
            &t.case_manager,
            None,
            403,
        )
        .await;
        // Input checked at the store: blank or oversized text, codes not in their lists.
        let p = expect(
            addr,
            "GET",
            &format!("/v1/donors/{f}/identity?reason=%20"),
            &t.station,
            None,
            422,
        )
        .await;
        assert_eq!(p["errors"][0]["field"], "reason", "{b}: {p}");
        let robot = json!({"external_id": "QP-9", "gl": TYPING, "sex": "robot"}).to_string();
        let p = expect(
            addr,
            "POST",
            "/v1/patients",
            &t.coordinator,
            Some(&robot),
            422,
        )
        .await;
        assert_eq!(p["errors"][0]["field"], "sex", "{b}: {p}");
        let blank_form = enrolment("Q8", "QN8").replace("\"CMDP-2024-1\"", "\"  \"");
        let p = expect(
            addr,
            "POST",
            "/v1/donors",
            &t.station,
            Some(&blank_form),
            422,
        )
        .await;
        assert_eq!(p["errors"][0]["field"], "consent_form_version", "{b}: {p}");
        let long_name =
            enrolment("Q7", "QN7").replace("\"Li\"", &format!("\"{}\"", "L".repeat(1_000)));
        let p = expect(
            addr,
            "POST",
            "/v1/donors",
            &t.station,
            Some(&long_name),
            422,
        )
        .await;
        assert_eq!(p["errors"][0]["field"], "identity.family_name", "{b}: {p}");
        let station = r#"{"code": " ", "branch": "BJ", "name": "Nowhere"}"#;
        let p = expect(addr, "POST", "/v1/stations", &t.admin, Some(station), 422).await;
        assert_eq!(p["errors"][0]["field"], "code", "{b}: {p}");
        stop.send(()).ok();
        reg.close().await;
    }
}

#[path = "api/limits.rs"]
mod limits;

#[path = "api/fuzz.rs"]
mod fuzz;

#[path = "api/reports.rs"]
mod reports;

#[path = "api/typings.rs"]
mod typings;

#[path = "api/metrics.rs"]
mod metrics;

#[path = "api/browser.rs"]
mod browser;
