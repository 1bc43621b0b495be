//! Index snapshots: `boai index snapshot` writes one; `boai serve --snapshot` starts from it
//! and catches up with every change made after it was written; a damaged snapshot, one
//! from another Boai or IMGT/HLA release, or from another database is refused by name and
//! the server reads the store instead.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use super::servers::{PATIENT, Server, found, serve_with, token};
use super::{boai, http, import_donor_lines, registry_urls, registry_with_station};

fn import(url: &str, dir: &Path, prefix: &str, n: usize) {
    let file = dir.join(format!("{prefix}.txt"));
    let lines: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}%{PATIENT}")).collect();
    import_donor_lines(url, &file, &lines);
}

/// A server started from `snapshot`, and what it said on its standard error once loaded.
fn serve_from(url: &str, snapshot: &Path, log: PathBuf) -> (Server, String) {
    serve_logged(url, &["--snapshot", snapshot.to_str().unwrap()], log)
}

/// A server started with `args`, and what it said on its standard error once loaded.
fn serve_logged(url: &str, args: &[&str], log: PathBuf) -> (Server, String) {
    let server = serve_with(url, args, Stdio::from(std::fs::File::create(&log).unwrap()));
    // The load's line follows readiness by a moment.
    let said = (0..50)
        .find_map(|_| {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("index loaded") {
                return Some(text);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
            None
        })
        .unwrap_or_else(|| panic!("no load line in {}", log.display()));
    (server, said)
}

/// The snapshot with its header edited (and its checksum made right again).
fn with_header(snapshot: &Path, field: &str, value: serde_json::Value, out: &Path) {
    let bytes = std::fs::read(snapshot).unwrap();
    assert_eq!(&bytes[..8], b"BOAISNAP");
    let len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[12..12 + len]).unwrap();
    header[field] = value;
    let header = serde_json::to_vec(&header).unwrap();
    let mut edited = b"BOAISNAP".to_vec();
    edited.extend_from_slice(&(header.len() as u32).to_le_bytes());
    edited.extend_from_slice(&header);
    edited.extend_from_slice(&bytes[12 + len..bytes.len() - 4]);
    let crc = crc32fast::hash(&edited);
    edited.extend_from_slice(&crc.to_le_bytes());
    std::fs::write(out, edited).unwrap();
}

#[test]
fn a_server_starts_from_a_snapshot_and_catches_up_or_refuses_it_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (u, url) in registry_urls(d, "snapshot").iter().enumerate() {
        registry_with_station(url);
        let station = token(url, "station", Some("BJ01"));
        let coordinator = token(url, "coordinator", None);
        import(url, d, &format!("SNAP{u}"), 30);
        let a = serve_with(url, &[], Stdio::null());
        let body = serde_json::json!({"external_id": "P-SNAP", "gl": PATIENT}).to_string();
        let (status, patient) = http(&a.addr, "POST", "/v1/patients", &coordinator, Some(&body));
        assert_eq!(status, 201, "{patient}");
        let patient = patient["id"].as_i64().unwrap();
        let before = found(&a.addr, &coordinator, patient);
        assert_eq!(before.len(), 30);

        // Without a file to write to: named.
        let o = boai(&["index", "snapshot", "--db", url]);
        assert!(!o.status.success());
        assert!(String::from_utf8_lossy(&o.stderr).contains("--out"));
        // Where the configuration file says.
        let snapshot = d.join(format!("index-{u}.snapshot"));
        let config = d.join(format!("boai-{u}.toml"));
        std::fs::write(
            &config,
            format!("snapshot = {:?}\n", snapshot.display().to_string()),
        )
        .unwrap();
        let config = config.to_str().unwrap();
        let o = boai(&["index", "snapshot", "--db", url, "--config", config]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let written: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(written["donors"], 30, "{written}");
        assert_eq!(
            written["bytes"].as_u64().unwrap(),
            std::fs::metadata(&snapshot).unwrap().len()
        );

        // Changes after the snapshot: withdrawals through a server, an import.
        for id in &before[..3] {
            let (status, body) = http(
                &a.addr,
                "POST",
                &format!("/v1/donors/{id}/consents/recruitment/withdrawal"),
                &station,
                Some(r#"{"reason": "donor asked"}"#),
            );
            assert_eq!(status, 200, "{body}");
        }
        import(url, d, &format!("LATER{u}"), 5);
        let now = found(&a.addr, &coordinator, patient);
        assert_eq!(now.len(), 32);

        let (b, said) = serve_logged(url, &["--config", config], d.join(format!("b-{u}.log")));
        assert!(said.contains("from the snapshot"), "{said}");
        assert_eq!(found(&b.addr, &coordinator, patient), now, "{url}");
        drop(b);

        // Refused by name, and the store read instead.
        let mut damaged = std::fs::read(&snapshot).unwrap();
        let middle = damaged.len() / 2;
        damaged[middle] ^= 0x40;
        let bad = d.join("damaged.snapshot");
        std::fs::write(&bad, damaged).unwrap();
        let other_boai = d.join("other-boai.snapshot");
        with_header(&snapshot, "boai_version", "0.0.1".into(), &other_boai);
        let other_release = d.join("other-release.snapshot");
        with_header(&snapshot, "imgt_release", "3.57.0".into(), &other_release);
        let other_age_out = d.join("other-age-out.snapshot");
        with_header(&snapshot, "age_out", 65.into(), &other_age_out);
        // A position this database has not reached (as after a restore from an older backup).
        let ahead = d.join("ahead.snapshot");
        let far = serde_json::json!({"horizon": 1u64 << 40, "recent": {}, "last_seq": 1u64 << 40});
        with_header(&snapshot, "cursor", far, &ahead);
        let other_db_url = format!("sqlite://{}", d.join(format!("other-{u}.db")).display());
        registry_with_station(&other_db_url);
        let other_db = d.join("other-db.snapshot");
        let o = boai(&[
            "index",
            "snapshot",
            "--db",
            &other_db_url,
            "--out",
            other_db.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        for (file, why) in [
            (&bad, "damaged"),
            (&other_boai, "written by Boai 0.0.1"),
            (&other_release, "built with IMGT/HLA 3.57.0"),
            (&other_db, "another database"),
            (&ahead, "has not reached"),
            (&other_age_out, "built with age_out 65, this server uses 61"),
            (&d.join("missing.snapshot"), "missing.snapshot"),
        ] {
            let (c, said) = serve_from(url, file, d.join(format!("c-{u}.log")));
            assert!(said.contains(why), "{why}: {said}");
            assert!(said.contains("read from the store instead"), "{said}");
            assert!(!said.contains("from the snapshot of"), "{said}");
            assert_eq!(found(&c.addr, &coordinator, patient), now, "{url}: {why}");
        }
    }
}
