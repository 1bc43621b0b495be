//! Several `boai serve` processes over one database (PostgreSQL, and one SQLite file): a
//! write through one server is seen by a search on any other started after the write
//! returned; withdrawals leave every search at once; an import run while they serve is
//! searchable on all of them when it finishes.

use std::process::{Child, Command, Stdio};

use super::{
    boai, free_loopback_addr, http, import_donor_lines, registry_urls, registry_with_station,
};

pub(super) const PATIENT: &str =
    "A*02:01+A*24:02^B*40:01+B*46:01^C*01:02+C*03:04^DRB1*09:01+DRB1*15:01^DQB1*03:03+DQB1*06:02";

pub(super) struct Server {
    pub(super) addr: String,
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(url: &str) -> Server {
    serve_with(url, &[], Stdio::null())
}

/// A server with more arguments, its standard error sent to `stderr`.
pub(super) fn serve_with(url: &str, extra: &[&str], stderr: Stdio) -> Server {
    let addr = free_loopback_addr();
    let child = Command::new(env!("CARGO_BIN_EXE_boai"))
        .args(["serve", "--db", url, "--addr", &addr])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let server = Server { addr, child };
    let ready = (0..300).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        http(&server.addr, "GET", "/readyz", "", None).0 == 200
    });
    assert!(ready, "server on {} never became ready", server.addr);
    server
}

pub(super) fn token(url: &str, role: &str, station: Option<&str>) -> String {
    let mut args = vec!["token", "create", "--db", url, "--role", role];
    if let Some(s) = station {
        args.extend(["--station", s]);
    }
    let o = boai(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// The donor ids a zero-mismatch search for `patient` finds on `addr`.
pub(super) fn found(addr: &str, coordinator: &str, patient: i64) -> Vec<i64> {
    let body = format!(r#"{{"patient_id": {patient}, "max_mismatches": 0}}"#);
    let (status, search) = http(addr, "POST", "/v1/searches", coordinator, Some(&body));
    assert_eq!(status, 201, "{addr}: {search}");
    let path = format!("/v1/searches/{}/results?limit=1000", search["id"]);
    let (status, page) = http(addr, "GET", &path, coordinator, None);
    assert_eq!(status, 200, "{addr}: {page}");
    assert_eq!(
        page["hits"].as_array().unwrap().len() as u64,
        search["total"].as_u64().unwrap()
    );
    let mut ids: Vec<i64> = page["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["donor_id"].as_i64().unwrap())
        .collect();
    ids.sort();
    ids
}

/// An enrolment at BJ01 with the patient's typing, recruitment consent given.
fn enrolment(external_id: &str, national_id: &str) -> String {
    serde_json::json!({
        "external_id": external_id, "station": "BJ01", "birth_date": "1995-04-10",
        "sex": "F", "abo": "A", "rh": "+", "cmv": "neg",
        "identity": {"family_name": "Li", "given_name": "Na", "national_id": national_id},
        "consent_form_version": "CMDP-2024-1", "typing": PATIENT
    })
    .to_string()
}

fn enrol(addr: &str, station: &str, n: usize) -> i64 {
    let body = enrolment(&format!("MS-{n}"), &format!("MSN{n}"));
    let (status, donor) = http(addr, "POST", "/v1/donors", station, Some(&body));
    assert_eq!(status, 201, "{donor}");
    donor["id"].as_i64().unwrap()
}

#[test]
fn servers_over_one_database_see_each_others_writes() {
    let dir = tempfile::tempdir().unwrap();
    for url in registry_urls(dir.path(), "servers") {
        registry_with_station(&url);
        let station = token(&url, "station", Some("BJ01"));
        let coordinator = token(&url, "coordinator", None);
        let servers: Vec<Server> = (0..3).map(|_| serve(&url)).collect();
        let (a, b, c) = (&servers[0].addr, &servers[1].addr, &servers[2].addr);
        let body = serde_json::json!({"external_id": "P-MS", "gl": PATIENT}).to_string();
        let (status, patient) = http(a, "POST", "/v1/patients", &coordinator, Some(&body));
        assert_eq!(status, 201, "{patient}");
        let patient = patient["id"].as_i64().unwrap();

        // Enrolled through A, found by B and C.
        let mut enrolled = Vec::new();
        for n in 0..20 {
            let at = &servers[n % 3].addr;
            let id = enrol(at, &station, n);
            enrolled.push(id);
            let other = &servers[(n + 1) % 3].addr;
            assert!(
                found(other, &coordinator, patient).contains(&id),
                "{url}: donor {id} enrolled through {at}, not found by {other}"
            );
        }
        enrolled.sort();
        for s in [a, b, c] {
            assert_eq!(found(s, &coordinator, patient), enrolled, "{url}: {s}");
        }

        // An import run while they serve is searchable on all of them when it finishes.
        let file = dir.path().join("more.txt");
        let lines: Vec<String> = (0..200).map(|n| format!("IMP-{n}%{PATIENT}")).collect();
        import_donor_lines(&url, &file, &lines);
        let all = found(a, &coordinator, patient);
        assert_eq!(all.len(), 220, "{url}");
        for s in [b, c] {
            assert_eq!(found(s, &coordinator, patient), all, "{url}: {s}");
        }

        // 200 withdrawals, each through one server, each followed by a search on another:
        // a withdrawn donor leaves every search at once.
        let mut present = all.clone();
        for (i, id) in all.iter().take(200).enumerate() {
            let through = &servers[i % 3].addr;
            let (status, body) = http(
                through,
                "POST",
                &format!("/v1/donors/{id}/consents/recruitment/withdrawal"),
                &station,
                Some(r#"{"reason": "donor asked"}"#),
            );
            assert_eq!(status, 200, "{url}: {body}");
            present.retain(|d| d != id);
            let other = &servers[(i + 1) % 3].addr;
            let seen = found(other, &coordinator, patient);
            assert!(
                !seen.contains(id),
                "{url}: donor {id} withdrawn through {through} still found by {other}"
            );
            assert_eq!(seen, present, "{url}: {other}");
        }
        for s in [a, b, c] {
            assert_eq!(found(s, &coordinator, patient), present, "{url}: {s}");
        }

        // Concurrent writers through all three servers lose nothing.
        let written: Vec<i64> = std::thread::scope(|scope| {
            let handles: Vec<_> = servers
                .iter()
                .enumerate()
                .map(|(k, server)| {
                    let station = station.clone();
                    scope.spawn(move || {
                        (0..25)
                            .map(|n| enrol(&server.addr, &station, 1000 + k * 100 + n))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        present.extend(&written);
        present.sort();
        for s in [a, b, c] {
            assert_eq!(found(s, &coordinator, patient), present, "{url}: {s}");
        }
        drop(servers);

        // A server killed (SIGKILL) while writes go through it restarts, catches up, and
        // agrees with a fresh load; every write it acknowledged is kept.
        let mut victim = serve(&url);
        let witness = serve(&url);
        let acknowledged = std::thread::scope(|scope| {
            let addr = victim.addr.clone();
            let station = station.clone();
            let writer = scope.spawn(move || {
                let mut ok = Vec::new();
                for n in 0..400 {
                    let body = enrolment(&format!("KILL-{n}"), &format!("KN{n}"));
                    match http(&addr, "POST", "/v1/donors", &station, Some(&body)) {
                        (201, d) => ok.push(d["id"].as_i64().unwrap()),
                        (0, _) => break,
                        (status, d) => panic!("{status}: {d}"),
                    }
                }
                ok
            });
            std::thread::sleep(std::time::Duration::from_millis(300));
            victim.child.kill().unwrap();
            victim.child.wait().unwrap();
            writer.join().unwrap()
        });
        assert!(
            !acknowledged.is_empty(),
            "{url}: no write got through before the kill"
        );
        drop(victim);
        let restarted = serve(&url);
        let fresh = serve(&url);
        let after_restart = found(&restarted.addr, &coordinator, patient);
        for id in &acknowledged {
            assert!(
                after_restart.contains(id),
                "{url}: acknowledged donor {id} lost"
            );
        }
        assert_eq!(
            after_restart,
            found(&fresh.addr, &coordinator, patient),
            "{url}"
        );
        assert_eq!(
            after_restart,
            found(&witness.addr, &coordinator, patient),
            "{url}"
        );

        // A server whose database connections are cut catches up when they return.
        if url.starts_with("postgres") {
            let db = url.rsplit('/').next().unwrap();
            let server_url = std::env::var("BOAI_TEST_PG_URL").unwrap();
            let cut = format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}' AND pid <> pg_backend_pid()"
            );
            let o = Command::new("psql")
                .args([server_url.as_str(), "-q", "-c", &cut])
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            // The first write after the cut may meet a dead connection; a retry succeeds.
            let id = (0..20)
                .find_map(|attempt| {
                    std::thread::sleep(std::time::Duration::from_millis(100 * attempt));
                    let body = enrolment(&format!("CUT-{attempt}"), &format!("CUT{attempt}"));
                    match http(&restarted.addr, "POST", "/v1/donors", &station, Some(&body)) {
                        (201, d) => d["id"].as_i64(),
                        _ => None,
                    }
                })
                .expect("a write after the cut");
            let seen = (0..20).find_map(|attempt| {
                std::thread::sleep(std::time::Duration::from_millis(100 * attempt));
                let body = format!(r#"{{"patient_id": {patient}, "max_mismatches": 0}}"#);
                match http(
                    &witness.addr,
                    "POST",
                    "/v1/searches",
                    &coordinator,
                    Some(&body),
                ) {
                    (201, _) => Some(found(&witness.addr, &coordinator, patient)),
                    _ => None,
                }
            });
            assert!(
                seen.expect("searches again after the cut").contains(&id),
                "{url}"
            );
        }
    }
}

/// TLS to PostgreSQL as to a managed server: `sslmode=verify-full` with the server's
/// certificate connects encrypted; without a certificate it trusts, the connection is
/// refused rather than made in clear.
#[test]
fn postgresql_over_tls_is_verified() {
    let Ok(server) = std::env::var("BOAI_TEST_PG_URL") else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI=true but BOAI_TEST_PG_URL is not set"
        );
        return;
    };
    let ca = match std::env::var("BOAI_TEST_PG_CA") {
        Ok(ca) => ca,
        Err(_) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but BOAI_TEST_PG_CA (the test server's certificate) is not set")
        }
        Err(_) => return eprintln!("BOAI_TEST_PG_CA not set: TLS test skipped"),
    };
    let dir = tempfile::tempdir().unwrap();
    let url = registry_urls(dir.path(), "tls").pop().unwrap();
    assert!(url.starts_with("postgres"), "{server}");
    let db = url.rsplit('/').next().unwrap().to_string();
    let verified = format!("{url}?sslmode=verify-full&sslrootcert={ca}");
    registry_with_station(&verified);
    let served = serve(&verified);
    let encrypted = format!(
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.datname = '{db}' AND s.ssl"
    );
    let o = Command::new("psql")
        .args([server.as_str(), "-tA", "-c", &encrypted])
        .output()
        .unwrap();
    let n: u32 = String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    assert!(
        n > 0,
        "no encrypted connection from the server: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    drop(served);
    // No certificate to trust: refused, not connected in clear.
    let o = boai(&["db", "stats", "--db", &format!("{url}?sslmode=verify-full")]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr).to_lowercase();
    assert!(err.contains("certificate") || err.contains("tls"), "{err}");
}
