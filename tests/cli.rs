//! End-to-end tests of the `boai` command line, run as a real process.

use std::io::Write;
use std::process::{Command, Output, Stdio};

#[path = "cli/atlas.rs"]
mod atlas;
#[path = "cli/config.rs"]
mod config;
#[path = "cli/hml.rs"]
mod hml;
#[path = "cli/reference.rs"]
mod reference;
#[path = "cli/servers.rs"]
mod servers;
#[path = "cli/users.rs"]
mod users;

#[path = "cli/snapshot.rs"]
mod snapshot;

fn boai(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_boai"))
        .args(args)
        .output()
        .expect("run boai")
}

fn boai_stdin(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_boai"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run boai");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// A loopback address with a port free a moment ago, for a server to listen on.
fn free_loopback_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

fn stdout_lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

#[test]
fn hla_expand_prints_one_sorted_json_object_per_typing() {
    let out = boai(&["hla", "expand", "A*02:AB", "A*01:06"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        r#"{"null":false,"p_groups":["A*02:01P","A*02:02P"],"release":"3.58.0","typing":"A*02:AB"}"#
    );
    assert_eq!(
        lines[1],
        r#"{"null":false,"p_groups":["A*01:06"],"release":"3.58.0","typing":"A*01:06"}"#
    );
}

#[test]
fn hla_expand_reports_invalid_typings_and_goes_on() {
    let out = boai(&["hla", "expand", "A*99:01", "A*01:01:01:02N", "A*02:ZZZ"]);
    assert_eq!(out.status.code(), Some(1));
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["typing"], "A*99:01");
    assert!(lines[0]["error"].as_str().unwrap().contains("A*99:01"));
    assert_eq!(lines[1]["null"], true);
    assert!(lines[2]["error"].as_str().unwrap().contains("ZZZ"));
}

#[test]
fn hla_expand_gl_strings_give_one_object_per_locus_position() {
    let out = boai_stdin(
        &["hla", "expand"],
        "hla#3.58.0#A*01:01+A*03:01^B*08:01+B*08:01\nDQB1*02:01:10\n",
    );
    assert!(out.status.success());
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[1]["locus"], "A");
    assert_eq!(lines[1]["position"], 2);
    assert_eq!(lines[1]["p_groups"][0], "A*03:01P");
    assert_eq!(lines[3]["locus"], "B");
    assert!(
        lines[4]["warnings"][0]
            .as_str()
            .unwrap()
            .contains("DQB1*02:02:15")
    );
}

#[test]
fn hla_reduce_keeps_the_gl_structure() {
    let out = boai(&[
        "hla",
        "reduce",
        "--to",
        "g",
        "A*01:01:01:01+A*02:01:01:01^B*08:01:01:01+B*44:02:01:01",
    ]);
    assert!(out.status.success());
    let lines = stdout_lines(&out);
    assert_eq!(
        lines[0]["reduced"],
        "A*01:01:01G+A*02:01:01G^B*08:01:01G+B*44:02:01G"
    );
    let out = boai(&["hla", "reduce", "--to", "serology", "A*02:01+A*24:02"]);
    assert_eq!(stdout_lines(&out)[0]["reduced"], "A2+A24");
    let out = boai(&["hla", "reduce", "--to", "lgx", "A*01:01:01:05"]);
    assert_eq!(stdout_lines(&out)[0]["reduced"], "A*01:01");
    let out = boai(&["hla", "reduce", "--to", "tce", "DPB1*04:01+DPB1*09:01"]);
    assert_eq!(stdout_lines(&out)[0]["reduced"], "TCE3+TCE1");
    let out = boai(&["hla", "reduce", "--to", "x", "A*01:01"]);
    assert_eq!(out.status.code(), Some(2));

    // No serological equivalent: kept at two fields, and said so.
    let out = boai(&["hla", "reduce", "--to", "serology", "C*12:02+C*03:04"]);
    let line = &stdout_lines(&out)[0];
    assert_eq!(line["reduced"], "C*12:02+Cw10");
    assert!(
        line["warnings"][0]
            .as_str()
            .unwrap()
            .contains("no serological equivalent"),
        "{line}"
    );
    let out = boai(&["hla", "reduce", "--to", "g-compact", "A*02:01"]);
    assert_eq!(
        stdout_lines(&out)[0]["reduced"],
        "A*02:01/A*02:01:01G/A*02:01:02G"
    );
    // Many typings from stdin, repeated lists reduced once: a bad one is named on its own
    // line, the others are reduced, and the exit code says something failed.
    let out = boai_stdin(
        &["hla", "reduce", "--to", "lgx", "--timings"],
        "A*01:01:01:05+A*02:01\nA*01:01:01:05+A*99:99\nhla#3.1.0#A*01:01\nA*02:01+A*01:01:01:05\n",
    );
    assert_eq!(out.status.code(), Some(1));
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["reduced"], "A*01:01+A*02:01");
    assert!(lines[1]["error"].as_str().unwrap().contains("A*99:99"));
    assert!(lines[2]["error"].as_str().unwrap().contains("3.1.0"));
    assert_eq!(lines[3]["reduced"], "A*02:01+A*01:01");
    assert!(String::from_utf8_lossy(&out.stderr).contains("reduced 4 typings to lgx in"));
}

#[test]
fn hla_validate_reports_each_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typings.txt");
    std::fs::write(
        &path,
        "D1%A*01:01+A*02:01^B*08:01+B*44:02\nD2%A*01:01+A*99:99\nno percent sign\nD4%A*02:AB+A*03:XX\nD5%DQB1*02:01:10+DQB1*03:01\nD6%A*01:01+B*08:01+C*07:01\n",
    )
    .unwrap();
    let out = boai(&["hla", "validate", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(":2: D2:") && text.contains("A*99:99"),
        "{text}"
    );
    assert!(
        text.contains(":3:") && text.contains("ID%GLSTRING"),
        "{text}"
    );
    assert!(text.contains(":5: D5: warning"), "{text}");
    assert!(text.contains(":6: D6:"), "{text}");
    assert!(!text.contains("D1") && !text.contains("D4"), "{text}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("6 records read, 3 invalid"));
}

#[test]
fn hla_validate_accepts_the_20k_corpus() {
    let corpus = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/corpora/atlas-donors/donors-20k.tsv"
    );
    let out = boai(&["hla", "validate", corpus]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("20000 records read, 0 invalid"));
}

#[test]
fn missing_reference_data_is_a_clear_error() {
    let out = boai(&["--hla-dir", "/nonexistent/imgt", "hla", "expand", "A*01:01"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/imgt") && err.contains("BOAI_HLA_DIR"),
        "{err}"
    );
}

#[test]
fn synth_is_reproducible_and_feeds_match_pairs_and_search() {
    let dir = tempfile::tempdir().unwrap();
    let donors = dir.path().join("donors.txt");
    let donors2 = dir.path().join("donors2.txt");
    let tsv = dir.path().join("donors.tsv");
    let patients = dir.path().join("patients.txt");
    for (kind, count, out, extra) in [
        ("donors", "300", &donors, None),
        ("donors", "300", &donors2, None),
        ("donors", "300", &tsv, Some("tsv")),
        ("patients", "5", &patients, None),
    ] {
        let mut args = vec![
            "synth",
            kind,
            "--count",
            count,
            "--seed",
            "42",
            "--out",
            out.to_str().unwrap(),
        ];
        if let Some(f) = extra {
            args.extend(["--format", f]);
        }
        let o = boai(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(
        std::fs::read(&donors).unwrap(),
        std::fs::read(&donors2).unwrap(),
        "same seed, same file"
    );
    let text = std::fs::read_to_string(&donors).unwrap();
    assert_eq!(text.lines().count(), 300);
    assert!(text.lines().all(|l| l.starts_with('D') && l.contains('%')));
    assert!(
        std::fs::read_to_string(&tsv)
            .unwrap()
            .starts_with("DonorId\tDonorType\tA_1")
    );

    let out = boai(&[
        "match",
        "pairs",
        "--patients",
        patients.to_str().unwrap(),
        "--donors",
        donors.to_str().unwrap(),
        "--loci",
        "A,B,DRB1",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = String::from_utf8(out.stdout).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("patient_id,donor_id,A,B,DRB1,total"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 5 * 300);
    for r in &rows {
        let counts: Vec<u8> = r[2..5].iter().map(|v| v.parse().unwrap()).collect();
        assert!(counts.iter().all(|&c| c <= 2));
        assert_eq!(counts.iter().sum::<u8>(), r[5].parse::<u8>().unwrap());
    }

    // The TSV and the GL file hold the same donors: the same search finds the same ids.
    let patient_gl = std::fs::read_to_string(&patients)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .split_once('%')
        .unwrap()
        .1
        .to_string();
    let search = |file: &std::path::Path| {
        let out = boai(&[
            "search",
            "--donors",
            file.to_str().unwrap(),
            "--patient",
            &patient_gl,
            "--max-mismatches",
            "3",
            "--loci",
            "A,B,DRB1",
            "--limit",
            "1000",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.starts_with("rank,donor_id,total,A,B,C,DRB1,DQB1,grade"));
        let mut ids: Vec<String> = text
            .lines()
            .skip(1)
            .map(|l| {
                let id = l.split(',').nth(1).unwrap();
                id.trim_start_matches('D')
                    .trim_start_matches('0')
                    .to_string()
            })
            .collect();
        ids.sort();
        ids
    };
    let from_gl = search(&donors);
    assert!(!from_gl.is_empty());
    assert_eq!(from_gl, search(&tsv));
}

#[test]
fn search_reports_json_and_rejects_bad_requests() {
    let corpus = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/corpora/atlas-donors/donors-20k.tsv"
    );
    let patient = "A*02:01+A*24:02^B*35:01+B*40:01^C*03:04+C*04:01^DRB1*04:01+DRB1*15:01^DQB1*03:02+DQB1*06:02";
    // The first five hits at two mismatches, from `donors`, in `format`.
    let top5 = |donors: &str, format: &str| {
        boai(&[
            "search",
            "--donors",
            donors,
            "--patient",
            patient,
            "--max-mismatches",
            "2",
            "--format",
            format,
            "--limit",
            "5",
        ])
    };
    let out = top5(corpus, "json");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hits = v["hits"].as_array().unwrap();
    assert!(v["total"].as_u64().unwrap() >= hits.len() as u64 && !hits.is_empty());
    // The same hits as GL strings, one `ID%GL` line each, in rank order; each line reads
    // back as a donor file that searches the same.
    let out = top5(corpus, "gl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let gl = String::from_utf8(out.stdout).unwrap();
    let ids: Vec<&str> = gl.lines().map(|l| l.split('%').next().unwrap()).collect();
    let json_ids: Vec<&str> = hits
        .iter()
        .map(|h| h["donor_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, json_ids, "{gl}");
    let dir = tempfile::tempdir().unwrap();
    let again = dir.path().join("hits.txt");
    std::fs::write(&again, &gl).unwrap();
    let out = top5(again.to_str().unwrap(), "json");
    let v2: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let totals = |v: &serde_json::Value| -> Vec<(String, u64)> {
        v["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h["donor_id"].as_str().unwrap().to_string(),
                    h["total"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(totals(&v2), totals(&v), "{gl}");
    assert_eq!(hits[0]["rank"], 1);
    assert!(hits[0]["loci"]["A"]["grades"].is_array());
    let totals: Vec<u64> = hits.iter().map(|h| h["total"].as_u64().unwrap()).collect();
    assert!(totals.windows(2).all(|w| w[0] <= w[1]), "{totals:?}");

    let out = boai(&[
        "search",
        "--donors",
        corpus,
        "--patient",
        "A*99:99+A*01:01",
        "--max-mismatches",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("A*99:99"));
    let out = boai(&[
        "search",
        "--donors",
        corpus,
        "--patient",
        patient,
        "--max-mismatches",
        "9",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at most 5"));
    let out = boai(&[
        "search",
        "--donors",
        corpus,
        "--patient",
        patient,
        "--max-mismatches",
        "1",
        "--loci",
        "A,B",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("DRB1"));
}

#[test]
fn match_probability_prints_the_documented_json() {
    let p = "A*02:01+A*24:02^B*40:01+B*46:01^C*01:02+C*03:04^DRB1*09:01+DRB1*15:01^DQB1*03:03+DQB1*06:02";
    let out = boai(&["match", "probability", "--patient", p, "--donor", p]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["loci"],
        serde_json::json!(["A", "B", "C", "DRB1", "DQB1"])
    );
    assert!((v["p0"].as_f64().unwrap() - 1.0).abs() < 1e-9);
    assert_eq!(v["per_locus"]["DRB1"]["p0"].as_f64().unwrap().round(), 1.0);
    assert_eq!(v["patient_unrepresented"], false);
    let low = "A*02:XX+A*24:XX^B*40:XX+B*46:XX^DRB1*09:XX+DRB1*15:XX";
    let out = boai(&[
        "match",
        "probability",
        "--patient",
        p,
        "--donor",
        low,
        "--loci",
        "A,B,DRB1",
        "--population",
        "API",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sum: f64 = ["p0", "p1", "p2", "p_more"]
        .iter()
        .map(|k| v[k].as_f64().unwrap())
        .sum();
    assert!((sum - 1.0).abs() < 1e-9, "{v}");
    assert!(v["p0"].as_f64().unwrap() < 1.0);
    assert!(v["per_locus"].get("C").is_none());
    // An unrepresented typing (A*01:06 is carried by no API haplotype) says so and gives no
    // probabilities.
    let out = boai(&[
        "match",
        "probability",
        "--patient",
        "A*01:06+A*01:06^B*08:01+B*08:01^DRB1*03:01+DRB1*03:01",
        "--donor",
        low,
        "--population",
        "API",
        "--loci",
        "A,B,DRB1",
    ]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["patient_unrepresented"], true, "{v}");
    assert_eq!(v["donor_unrepresented"], false, "{v}");
    assert!(v["p0"].is_null() && v["per_locus"]["A"].is_null(), "{v}");
    let out = boai(&[
        "match",
        "probability",
        "--patient",
        p,
        "--donor",
        p,
        "--loci",
        "A,DPB1",
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn search_with_probability_adds_columns_after_grade() {
    let dir = tempfile::tempdir().unwrap();
    let donors = dir.path().join("donors.txt");
    let o = boai(&[
        "synth",
        "donors",
        "--count",
        "2000",
        "--seed",
        "3",
        "--out",
        donors.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    let patient = "A*02:01+A*24:02^B*40:01+B*46:01^C*01:02+C*03:04^DRB1*09:01+DRB1*15:01^DQB1*03:03+DQB1*06:02";
    let out = boai(&[
        "search",
        "--donors",
        donors.to_str().unwrap(),
        "--patient",
        patient,
        "--max-mismatches",
        "4",
        "--probability",
        "--rank-by-probability",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("rank,donor_id,total,A,B,C,DRB1,DQB1,grade,p0,p1,p2,")
    );
    let rows: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    assert!(!rows.is_empty());
    // Within each mismatch count, P(0) never increases down the list.
    for w in rows.windows(2) {
        if w[0][2] == w[1][2] && !w[0][9].is_empty() && !w[1][9].is_empty() {
            assert!(
                w[0][9].parse::<f64>().unwrap() >= w[1][9].parse::<f64>().unwrap(),
                "{w:?}"
            );
        }
    }
}

/// Database URLs to test the registry commands on: a SQLite file, and a fresh PostgreSQL
/// database on the server at BOAI_TEST_PG_URL (required when CI=true).
fn registry_urls(dir: &std::path::Path, name: &str) -> Vec<String> {
    let mut urls = vec![format!(
        "sqlite://{}",
        dir.join(format!("{name}.db")).display()
    )];
    match std::env::var("BOAI_TEST_PG_URL") {
        Ok(server) => {
            let db = format!("boai_cli_{name}_{}", std::process::id());
            for sql in [
                format!("DROP DATABASE IF EXISTS {db}"),
                format!("CREATE DATABASE {db}"),
            ] {
                let o = Command::new("psql")
                    .args([server.as_str(), "-q", "-c", &sql])
                    .output()
                    .expect("psql");
                assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            }
            urls.push(format!("{}/{db}", server.rsplit_once('/').unwrap().0));
        }
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but BOAI_TEST_PG_URL is not set")
        }
        Err(_) => eprintln!("BOAI_TEST_PG_URL not set: PostgreSQL part skipped"),
    }
    urls
}

/// A migrated registry at `url` with station BJ01.
fn registry_with_station(url: &str) {
    for args in [
        vec!["db", "migrate", "--db", url],
        vec![
            "db",
            "add-station",
            "BJ01",
            "--branch",
            "BJ",
            "--name",
            "BJ 1",
            "--db",
            url,
        ],
    ] {
        let o = boai(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
}

/// Write `lines` (ID%GLSTRING) to `file` and import them into station BJ01 of `url`.
fn import_donor_lines(url: &str, file: &std::path::Path, lines: &[String]) {
    std::fs::write(file, lines.join("\n") + "\n").unwrap();
    let o = boai(&[
        "import",
        "donors",
        file.to_str().unwrap(),
        "--station",
        "BJ01",
        "--db",
        url,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn stats(url: &str) -> serde_json::Value {
    let o = boai(&["db", "stats", "--db", url]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn a_killed_import_leaves_whole_batches_and_a_rerun_completes_it() {
    let dir = tempfile::tempdir().unwrap();
    let donors = dir.path().join("donors.txt");
    assert!(
        boai(&[
            "synth",
            "donors",
            "--count",
            "60000",
            "--seed",
            "9",
            "--out",
            donors.to_str().unwrap()
        ])
        .status
        .success()
    );
    for url in registry_urls(dir.path(), "crash") {
        let o = boai(&[
            "db",
            "add-station",
            "--db",
            &url,
            "BJ01",
            "--branch",
            "BJ",
            "--name",
            "Beijing 1",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let mut child = Command::new(env!("CARGO_BIN_EXE_boai"))
            .args([
                "import",
                "donors",
                "--db",
                &url,
                donors.to_str().unwrap(),
                "--station",
                "BJ01",
                "--batch",
                "1000",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill it once some batches are in.
        let started = std::time::Instant::now();
        loop {
            let n = stats(&url)["donors"].as_i64().unwrap();
            if n > 0 || started.elapsed().as_secs() > 120 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let s = stats(&url);
        let n = s["donors"].as_i64().unwrap();
        assert!(n > 0 && n < 60_000, "{url}: {n} donors when killed");
        assert_eq!(n % 1000, 0, "{url}: only whole batches are committed ({n})");
        assert_eq!(
            (s["typings"].as_i64(), s["consents"].as_i64()),
            (Some(n), Some(n)),
            "{url}: consistent"
        );
        // The rerun completes it; a third run changes nothing.
        let o = boai(&[
            "import",
            "donors",
            "--db",
            &url,
            donors.to_str().unwrap(),
            "--station",
            "BJ01",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let summary = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(
            summary.contains(&format!("created {}", 60_000 - n))
                && summary.contains(&format!("unchanged {n}")),
            "{url}: {summary}"
        );
        let s = stats(&url);
        assert_eq!(
            (
                s["donors"].as_i64(),
                s["typings"].as_i64(),
                s["consents"].as_i64()
            ),
            (Some(60_000), Some(60_000), Some(60_000)),
            "{url}"
        );
        let o = boai(&[
            "import",
            "donors",
            "--db",
            &url,
            donors.to_str().unwrap(),
            "--station",
            "BJ01",
        ]);
        assert!(String::from_utf8_lossy(&o.stderr).contains("unchanged 60000"));
        // The registry-backed search runs over the imported donors.
        let patient = std::fs::read_to_string(&donors)
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .split_once('%')
            .unwrap()
            .1
            .to_string();
        let o = boai(&[
            "search",
            "--db",
            &url,
            "--patient",
            &patient,
            "--max-mismatches",
            "0",
            "--loci",
            "A,B,DRB1",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let text = String::from_utf8(o.stdout).unwrap();
        assert!(
            text.lines()
                .skip(1)
                .any(|l| l.split(',').nth(1) == Some("D0000001")),
            "{url}: {text}"
        );
    }
}

/// `boai token create` prints a secret once; `boai serve` answers with it, refuses it once
/// revoked, and stops cleanly on SIGTERM.
#[test]
fn serve_answers_tokens_and_stops_on_sigterm() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("serve.db").display());
    let created = boai(&["token", "create", "--db", &url, "--role", "coordinator"]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let secret = String::from_utf8_lossy(&created.stdout).trim().to_string();
    assert!(secret.starts_with("boai_") && secret.len() > 40, "{secret}");
    // A free loopback port.
    let addr = free_loopback_addr();
    let mut server = Command::new(env!("CARGO_BIN_EXE_boai"))
        .args(["serve", "--db", &url, "--addr", &addr])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let get = |path: &str, token: &str| -> u16 {
        let attempt = || -> Option<u16> {
            let mut s = std::net::TcpStream::connect(&addr).ok()?;
            write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\r\n").ok()?;
            let mut text = String::new();
            s.read_to_string(&mut text).ok()?;
            text.split(' ').nth(1)?.parse().ok()
        };
        attempt().unwrap_or(0)
    };
    let mut ready = false;
    for _ in 0..100 {
        if get("/readyz", "") == 200 {
            ready = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(ready, "the server became ready");
    assert_eq!(get("/v1/stations", &secret), 200);
    assert_eq!(get("/v1/stations", "boai_wrong"), 401);
    let revoked = boai(&["token", "revoke", "--db", &url, "1"]);
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    assert_eq!(get("/v1/stations", &secret), 401, "revoked");
    let killed = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = server.wait().unwrap();
    let mut err = String::new();
    server
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "exit {status:?}: {err}");
    assert!(err.contains("stopped after draining"), "{err}");
}

#[test]
fn bench_search_prints_its_figures_and_rejects_a_zero_repeat() {
    let out = boai(&[
        "bench",
        "search",
        "--donors",
        "3000",
        "--patients",
        "4",
        "--repeat",
        "2",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = &stdout_lines(&out)[0];
    assert_eq!(report["donors"], 3000);
    assert_eq!(report["patients"], 4);
    assert_eq!(report["repeat"], 2);
    for figure in ["p50_ms", "p95_ms", "max_ms", "mean_ms"] {
        for mm in ["0", "1", "2"] {
            let ms = report[figure][mm].as_f64().unwrap_or(-1.0);
            assert!(ms > 0.0, "{figure}[{mm}] = {}", report[figure][mm]);
        }
    }
    // The percentiles come from one sorted list per tier; the timed searches found donors.
    for mm in ["0", "1", "2"] {
        let ms = |figure: &str| report[figure][mm].as_f64().unwrap();
        assert!(
            ms("p50_ms") <= ms("p95_ms") && ms("p95_ms") <= ms("max_ms"),
            "{report}"
        );
        assert!(ms("mean_ms") <= ms("max_ms"), "{report}");
    }
    assert!(report["mean_results"].as_f64().unwrap() > 0.0, "{report}");

    let out = boai(&["bench", "search", "--donors", "10", "--repeat", "0"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--repeat"), "{err}");
}

/// One HTTP/1.1 request to a server: (status, JSON body or Null).
fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    use std::io::Read;
    let attempt = || -> Option<(u16, serde_json::Value)> {
        let mut s = std::net::TcpStream::connect(addr).ok()?;
        let body = body.unwrap_or("");
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        let status = text.split(' ').nth(1)?.parse().ok()?;
        let json = text
            .split_once("\r\n\r\n")
            .and_then(|(_, b)| serde_json::from_str(b).ok())
            .unwrap_or(serde_json::Value::Null);
        Some((status, json))
    };
    attempt().unwrap_or((0, serde_json::Value::Null))
}

/// `boai serve` runs the daily job by itself at the registry's local time: with its clock
/// moved (a clock file stands in for time passing), a reservation lapses after its 53rd
/// working day (a holiday not counted) and a donor ages out at 61, with no manual step.
#[test]
fn serve_runs_the_daily_job_by_itself_as_the_clock_moves() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("clock.db").display());
    let clock = dir.path().join("now.txt");
    let set_clock = |at: &str| std::fs::write(&clock, at).unwrap();
    // Thursday 2026-12-03, 10:00 in Beijing.
    set_clock("2026-12-03T02:00:00Z");
    let run = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_boai"))
            .args(args)
            .env("BOAI_CLOCK_FILE", &clock)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    run(&[
        "db",
        "add-station",
        "--db",
        &url,
        "BJ01",
        "--branch",
        "BJ",
        "--name",
        "Beijing 1",
    ]);
    run(&[
        "db",
        "holiday",
        "add",
        "--db",
        &url,
        "2027-01-01",
        "New Year",
    ]);
    let station = run(&[
        "token",
        "create",
        "--db",
        &url,
        "--role",
        "station",
        "--station",
        "BJ01",
    ]);
    let coordinator = run(&["token", "create", "--db", &url, "--role", "coordinator"]);
    let addr = free_loopback_addr();
    let mut server = Command::new(env!("CARGO_BIN_EXE_boai"))
        .args([
            "serve",
            "--db",
            &url,
            "--addr",
            &addr,
            "--job-tick-secs",
            "0.1",
        ])
        .env("BOAI_CLOCK_FILE", &clock)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ready = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        http(&addr, "GET", "/readyz", "", None).0 == 200
    });
    assert!(ready, "the server became ready");
    let typing = "A*02:01+A*24:02^B*40:01+B*46:01^C*01:02+C*03:04^DRB1*09:01+DRB1*15:01^DQB1*03:03+DQB1*06:02";
    let enrol = |external: &str, national_id: &str, born: &str| -> i64 {
        let body = serde_json::json!({
            "external_id": external, "station": "BJ01", "birth_date": born, "sex": "M",
            "identity": {"family_name": "Zhang", "given_name": "Wei", "national_id": national_id},
            "consent_form_version": "CMDP-2024-1", "typing": typing
        })
        .to_string();
        let (s, d) = http(&addr, "POST", "/v1/donors", &station, Some(&body));
        assert_eq!(s, 201, "{d}");
        d["id"].as_i64().unwrap()
    };
    let reserved = enrol("K1", "KN1", "1995-04-10");
    let older = enrol("K2", "KN2", "1981-12-20");
    let (s, p) = http(
        &addr,
        "POST",
        "/v1/patients",
        &coordinator,
        Some(&serde_json::json!({"external_id": "KP1", "gl": typing}).to_string()),
    );
    assert_eq!(s, 201, "{p}");
    let body =
        serde_json::json!({"patient_id": p["id"], "donor_id": reserved, "kind": "reservation"})
            .to_string();
    let (s, r) = http(&addr, "POST", "/v1/requests", &coordinator, Some(&body));
    assert_eq!(s, 201, "{r}");
    let (_, r) = http(
        &addr,
        "GET",
        &format!("/v1/requests/{}", r["id"]),
        &coordinator,
        None,
    );
    // The 53rd working day after Thursday 2026-12-03, weekends and 2027-01-01 not counted.
    let mut day = jiff::civil::date(2026, 12, 3);
    let mut left = 53;
    while left > 0 {
        day = day.tomorrow().unwrap();
        let weekend = matches!(
            day.weekday(),
            jiff::civil::Weekday::Saturday | jiff::civil::Weekday::Sunday
        );
        if !weekend && day != jiff::civil::date(2027, 1, 1) {
            left -= 1;
        }
    }
    assert_eq!(r["expires_on"], day.to_string(), "{r}");
    let status = |id: i64| {
        let (_, d) = http(&addr, "GET", &format!("/v1/donors/{id}"), &station, None);
        (
            d["status"].as_str().unwrap_or_default().to_string(),
            d["status_reason"].as_str().map(str::to_string),
        )
    };
    let wait_for = |id: i64, want: &str| {
        (0..100).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(100));
            status(id).0 == want
        })
    };
    assert_eq!(status(reserved).0, "RS");
    // On its last day (10:00 local) the reservation still holds.
    set_clock(&format!("{day}T10:00:00+08:00"));
    std::thread::sleep(std::time::Duration::from_millis(600));
    assert_eq!(status(reserved).0, "RS", "held through its last day");
    // The next day, at 02:30 local, the job has run by itself: the donor is available again.
    set_clock(&format!("{}T02:30:00+08:00", day.tomorrow().unwrap()));
    assert!(
        wait_for(reserved, "AV"),
        "the reservation lapsed: {:?}",
        status(reserved)
    );
    assert_eq!(status(older).0, "AV");
    // The day before the 61st birthday nothing happens; on it, the donor ages out.
    set_clock("2042-12-19T10:00:00+08:00");
    std::thread::sleep(std::time::Duration::from_millis(600));
    assert_eq!(status(older).0, "AV");
    set_clock("2042-12-20T03:00:00+08:00");
    assert!(wait_for(older, "DE"), "aged out: {:?}", status(older));
    assert_eq!(status(older).1.as_deref(), Some("DO"));
    assert_eq!(status(reserved).0, "AV", "47 is not 61");
    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(server.wait().unwrap().success());
    // Once a day's run happened, `boai db daily` (for cron) does not run it again.
    let o = Command::new(env!("CARGO_BIN_EXE_boai"))
        .args(["db", "daily", "--db", &url])
        .env("BOAI_CLOCK_FILE", &clock)
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("already ran for 2042-12-20"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // The next day it does, and prints its counts.
    set_clock("2042-12-21T09:00:00+08:00");
    let counts: serde_json::Value =
        serde_json::from_str(&run(&["db", "daily", "--db", &url])).unwrap();
    assert_eq!(
        (counts["run_on"].as_str(), counts["aged_out"].as_u64()),
        (Some("2042-12-21"), Some(0)),
        "{counts}"
    );
}

/// `boai synth activity` makes the same activity from the same seed on either backend, the
/// yearly report reads it in every form, and paper registrations import with bad lines
/// named.
#[test]
fn synth_activity_feeds_the_yearly_report_in_every_form() {
    let dir = tempfile::tempdir().unwrap();
    let mut reports = Vec::new();
    for url in registry_urls(dir.path(), "activity") {
        for (code, branch, target) in [("BJ01", "BJ", "40"), ("SH01", "SH", "30")] {
            let o = boai(&[
                "db",
                "add-station",
                "--db",
                &url,
                code,
                "--branch",
                branch,
                "--name",
                code,
                "--target",
                target,
            ]);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
        let o = boai(&[
            "synth",
            "activity",
            "--db",
            &url,
            "--years",
            "2",
            "--donors-per-station",
            "20",
            "--seed",
            "3",
        ]);
        assert!(
            o.status.success(),
            "{url}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let counts: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert!(
            counts["donors"].as_u64().unwrap() > 0
                && counts["organ_registrations"].as_u64().unwrap() > 0,
            "{url}: {counts}"
        );
        let year = jiff::Zoned::now()
            .with_time_zone(jiff::tz::TimeZone::get("Asia/Shanghai").unwrap())
            .year()
            .to_string();
        let o = boai(&["report", "yearly", "--db", &url, "--year", &year]);
        assert!(
            o.status.success(),
            "{url}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(
            report["donors_listed_new"], report["samples_collected"],
            "{url}: each enrolment takes a sample"
        );
        let html = dir.path().join("report.html");
        let o = boai(&[
            "report",
            "yearly",
            "--db",
            &url,
            "--year",
            &year,
            "--format",
            "html",
            "--out",
            html.to_str().unwrap(),
        ]);
        assert!(
            o.status.success(),
            "{url}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let page = std::fs::read_to_string(&html).unwrap();
        assert_eq!(page.matches("<svg").count(), 4, "{url}");
        assert!(
            page.contains(report["summary"]["zh"].as_str().unwrap()),
            "{url}"
        );
        let o = boai(&[
            "report", "yearly", "--db", &url, "--year", &year, "--branch", "SH", "--format", "md",
        ]);
        assert!(
            String::from_utf8_lossy(&o.stdout)
                .starts_with(&format!("# Boai yearly report {year} · branch SH")),
            "{url}"
        );
        let o = boai(&["report", "yearly", "--db", &url, "--year", "1899"]);
        assert_eq!(o.status.code(), Some(2), "{url}");
        assert!(String::from_utf8_lossy(&o.stderr).contains("year"), "{url}");
        // Donor ids are the database's (PostgreSQL's sequences may skip); the rest is the activity's.
        let mut figures = report.clone();
        for o in figures["donation_ordinals"].as_array_mut().unwrap() {
            o.as_object_mut().unwrap().remove("donor_id");
        }
        reports.push(figures);

        let csv = dir.path().join("paper.csv");
        std::fs::write(&csv, "family_name,given_name,national_id,birth_date,organs,whole_body\nLi,Ming,PAPER-1,1970-01-01,kidney;liver,no\nLi,Hua,PAPER-2,1970-01-01,brain,no\n").unwrap();
        let o = boai(&[
            "import",
            "organ-registrations",
            "--db",
            &url,
            "--station",
            "BJ01",
            csv.to_str().unwrap(),
        ]);
        assert_eq!(
            o.status.code(),
            Some(1),
            "{url}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.contains(":3: organs: "), "{url}: {out}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("created 1 registrations"),
            "{url}"
        );
    }
    // Same seed, same activity: the backends hold the same figures.
    if let [sqlite, postgres] = &reports[..] {
        assert_eq!(sqlite, postgres);
    }
}
