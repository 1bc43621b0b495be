//! `boai reference fetch` against a loopback mirror of `../shared` in the repository's raw
//! layout (`/<release without dots>/<path>`), from an empty data directory with no
//! `../shared` reachable: a good set, then a truncated transfer, a file of another release
//! and a file cut short at a line, each refused with the previous set left in place.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use sha2::Digest;

const FILES: [&str; 7] = [
    "Allelelist.txt",
    "wmda/hla_nom_g.txt",
    "wmda/hla_nom_p.txt",
    "wmda/rel_dna_ser.txt",
    "wmda/rel_ser_ser.txt",
    "wmda/hla_nom.txt",
    "tce/dpb_tce.csv",
];

/// What the mirror does with one path: serve these bytes, or announce them whole and send
/// only the first half (a transfer that breaks off).
#[derive(Clone)]
enum Serve {
    Whole(Vec<u8>),
    BreakOff(Vec<u8>),
}

/// A loopback HTTP/1.1 server of fixed paths; its routes can change between requests.
struct Mirror {
    url: String,
    routes: Arc<Mutex<HashMap<String, Serve>>>,
}

impl Mirror {
    fn start(routes: HashMap<String, Serve>) -> Mirror {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let routes = Arc::new(Mutex::new(routes));
        let served = routes.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                if reader.read_line(&mut request).is_err() {
                    continue;
                }
                let mut header = String::new();
                while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                    header.clear();
                }
                let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
                let answer = served.lock().unwrap().get(&path).cloned();
                let _ = match answer {
                    Some(Serve::Whole(body)) => stream
                        .write_all(
                            format!(
                                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                body.len()
                            )
                            .as_bytes(),
                        )
                        .and_then(|_| stream.write_all(&body)),
                    Some(Serve::BreakOff(body)) => stream
                        .write_all(
                            format!(
                                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                body.len()
                            )
                            .as_bytes(),
                        )
                        .and_then(|_| stream.write_all(&body[..body.len() / 2])),
                    None => stream.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    ),
                };
            }
        });
        Mirror { url, routes }
    }

    fn set(&self, path: &str, serve: Serve) {
        self.routes.lock().unwrap().insert(path.to_string(), serve);
    }
}

const GENOTYPE: &str =
    "A*02:01+A*01:01^B*08:01+B*44:02^C*07:01+C*05:01^DRB1*03:01+DRB1*04:01^DQB1*02:01+DQB1*03:01";

fn shared() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared")
}

/// `boai` with only the data directory to find reference data in.
fn boai_in(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_boai"))
        .args(args)
        .env("BOAI_DATA_DIR", data)
        .env("BOAI_SHARED_DIR", data.join("no-shared-here"))
        .env_remove("BOAI_HLA_DIR")
        .env_remove("BOAI_MAC_FILE")
        .env_remove("BOAI_FREQ_FILE")
        .output()
        .expect("run boai")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The MAC subset as NMDP publishes the dictionary: one text file in a zip archive.
fn mac_zip() -> Vec<u8> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut bytes);
    zip.start_file("alpha.v3.txt", zip::write::SimpleFileOptions::default())
        .unwrap();
    zip.write_all(&std::fs::read(shared().join("mac/alpha.v3.subset.txt")).unwrap())
        .unwrap();
    zip.finish().unwrap();
    bytes.into_inner()
}

/// A mirror of the release's files, the MAC dictionary (zipped) and the frequency set (at
/// `freqs_path`), all whole.
fn full_mirror(freqs_path: &str) -> Mirror {
    let mut routes = HashMap::new();
    for path in FILES {
        let bytes = std::fs::read(shared().join("imgt-hla").join(path)).unwrap();
        routes.insert(format!("/3580/{path}"), Serve::Whole(bytes));
    }
    routes.insert("/mac/alpha.v3.zip".into(), Serve::Whole(mac_zip()));
    let freqs = std::fs::read(shared().join("frequencies/NMDP_2007_FiveLocus_Freqs.csv")).unwrap();
    routes.insert(freqs_path.into(), Serve::Whole(freqs));
    Mirror::start(routes)
}

#[test]
fn reference_fetch_checks_the_whole_set_before_replacing_anything() {
    let data = tempfile::tempdir().unwrap();
    let data = data.path();
    let mirror = full_mirror("/freqs/NMDP_2007_FiveLocus_Freqs.csv");
    let mac_url = format!("{}/mac/alpha.v3.zip", mirror.url);
    let freqs_url = format!("{}/freqs/NMDP_2007_FiveLocus_Freqs.csv", mirror.url);
    let fetch = |extra: &[&str]| {
        let mut args = vec![
            "reference",
            "fetch",
            "--from",
            &mirror.url,
            "--mac-url",
            &mac_url,
        ];
        args.extend_from_slice(extra);
        boai_in(data, &args)
    };

    // Nothing fetched yet: a command that needs the release says what to run.
    let out = boai_in(data, &["hla", "expand", "A*02:AB"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("boai reference fetch"),
        "{}",
        text(&out)
    );

    let out = fetch(&["--freqs-url", &freqs_url]);
    assert!(out.status.success(), "{}", text(&out));
    let out = boai_in(data, &["hla", "expand", "A*02:AB"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(r#""p_groups":["A*02:01P","A*02:02P"]"#),
        "{}",
        text(&out)
    );
    let manifest = boai_in(data, &["reference", "show"]);
    let manifest: serde_json::Value = serde_json::from_slice(&manifest.stdout).unwrap();
    assert_eq!(manifest["imgt_hla_release"], "3.58.0");
    let files = manifest["files"].as_array().unwrap();
    assert_eq!(files.len(), FILES.len() + 2);
    for f in files {
        let on_disk = std::fs::read(data.join(format!(
            "{}/{}",
            manifest["imgt_hla_dir"].as_str().unwrap().trim_end_matches("/imgt-hla"),
            f["path"].as_str().unwrap()
        )))
        .unwrap();
        assert_eq!(on_disk.len() as u64, f["bytes"].as_u64().unwrap(), "{f}");
        let digest = format!("{:x}", sha2::Sha256::digest(&on_disk));
        assert_eq!(f["sha256"].as_str(), Some(digest.as_str()), "{f}");
    }
    // The frequency set is found through the data directory too.
    let out = boai_in(
        data,
        &[
            "match",
            "probability",
            "--patient",
            GENOTYPE,
            "--donor",
            GENOTYPE,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));

    // Each broken mirror is refused with its reason, and the set in use stays.
    let good = std::fs::read(shared().join("imgt-hla/wmda/hla_nom_g.txt")).unwrap();
    let p_file = std::fs::read(shared().join("imgt-hla/wmda/hla_nom_p.txt")).unwrap();
    let mut other_release =
        std::fs::read_to_string(shared().join("imgt-hla/wmda/rel_dna_ser.txt")).unwrap();
    other_release = other_release.replacen("3.58.0", "3.57.0", 1);
    let cut_at_a_line = {
        let half = &p_file[..p_file.len() / 2];
        half[..=half.iter().rposition(|&b| b == b'\n').unwrap()].to_vec()
    };
    let cases: [(&str, Serve, &str); 3] = [
        (
            "/3580/wmda/hla_nom_g.txt",
            Serve::BreakOff(good.clone()),
            "hla_nom_g.txt",
        ),
        (
            "/3580/wmda/rel_dna_ser.txt",
            Serve::Whole(other_release.into_bytes()),
            "3.57.0",
        ),
        (
            "/3580/wmda/hla_nom_p.txt",
            Serve::Whole(cut_at_a_line),
            "missing from wmda/hla_nom_p.txt",
        ),
    ];
    let before = std::fs::read(data.join("manifest.json")).unwrap();
    for (path, broken, reason) in cases {
        let original = mirror.routes.lock().unwrap()[path].clone();
        mirror.set(path, broken);
        let out = fetch(&[]);
        assert_eq!(out.status.code(), Some(2), "{path}: {}", text(&out));
        assert!(text(&out).contains(reason), "{path}: {}", text(&out));
        assert!(
            text(&out).contains("nothing was replaced"),
            "{}",
            text(&out)
        );
        assert_eq!(
            std::fs::read(data.join("manifest.json")).unwrap(),
            before,
            "{path}"
        );
        let out = boai_in(data, &["hla", "expand", "A*02:AB"]);
        assert!(out.status.success(), "{path}: {}", text(&out));
        mirror.set(path, original);
    }
    // A set fetched without a frequency set has none: a command that needs one says what
    // to run.
    let out = fetch(&[]);
    assert!(out.status.success(), "{}", text(&out));
    let donors = data.join("donors.txt");
    let out = boai_in(
        data,
        &[
            "synth",
            "donors",
            "--count",
            "1",
            "--seed",
            "1",
            "--out",
            donors.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("boai reference fetch --freqs-url"),
        "{}",
        text(&out)
    );
    // A damaged manifest is named, not silently passed over.
    let manifest_path = data.join("manifest.json");
    let kept = std::fs::read(&manifest_path).unwrap();
    std::fs::write(&manifest_path, b"{not json").unwrap();
    let out = boai_in(data, &["hla", "expand", "A*02:AB"]);
    assert!(text(&out).contains("is not a manifest"), "{}", text(&out));
    std::fs::write(&manifest_path, kept).unwrap();
    // No staging directory is left behind.
    let sets: Vec<String> = std::fs::read_dir(data.join("sets"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(sets.len(), 1, "{sets:?}");
}

/// `boai demo` on a machine with no reference data: offline it says what to run; an
/// interrupted download or a corrupt file leaves nothing behind; without a frequency set it
/// says how to get one; with the mirror's URLs it fetches what is missing and serves.
#[test]
fn demo_fetches_what_is_missing_and_says_what_to_run_when_it_cannot() {
    let data = tempfile::tempdir().unwrap();
    let data = data.path();
    let mirror = full_mirror("/freqs/f.csv");
    let mac_url = format!("{}/mac/alpha.v3.zip", mirror.url);
    let freqs_url = format!("{}/freqs/f.csv", mirror.url);
    let addr = super::free_loopback_addr();
    let db = data.join("demo.db");
    let demo_args = |from: &str, extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = [
            "demo",
            "--donors",
            "300",
            "--activity-years",
            "0",
            "--file",
            db.to_str().unwrap(),
            "--addr",
            &addr,
            "--from",
            from,
            "--mac-url",
            &mac_url,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let run = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        boai_in(data, &args)
    };
    let no_set_yet = || {
        assert!(!data.join("manifest.json").exists());
        let sets = data.join("sets");
        let left = std::fs::read_dir(&sets).map_or(0, |d| d.count());
        assert_eq!(left, 0, "something was left in {}", sets.display());
    };

    // Offline (nothing listens there): the demo says what to run.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = run(demo_args(&format!("http://{closed}"), &[]));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("run `boai reference fetch"),
        "{}",
        text(&out)
    );
    no_set_yet();

    // A download broken off half-way, then a file of another release: refused whole.
    let g = std::fs::read(shared().join("imgt-hla/wmda/hla_nom_g.txt")).unwrap();
    mirror.set("/3580/wmda/hla_nom_g.txt", Serve::BreakOff(g.clone()));
    let out = run(demo_args(&mirror.url, &[]));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("hla_nom_g.txt"), "{}", text(&out));
    no_set_yet();
    mirror.set("/3580/wmda/hla_nom_g.txt", Serve::Whole(g));
    let p = std::fs::read_to_string(shared().join("imgt-hla/wmda/hla_nom_p.txt")).unwrap();
    mirror.set(
        "/3580/wmda/hla_nom_p.txt",
        Serve::Whole(p.replacen("3.58.0", "3.41.0", 1).into_bytes()),
    );
    let out = run(demo_args(&mirror.url, &[]));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("3.41.0"), "{}", text(&out));
    no_set_yet();
    mirror.set("/3580/wmda/hla_nom_p.txt", Serve::Whole(p.into_bytes()));

    // The release and MAC dictionary arrive; with no frequency set the demo says how to
    // get one.
    let out = run(demo_args(&mirror.url, &[]));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--freqs-url URL"), "{}", text(&out));
    assert!(data.join("manifest.json").exists());
    let out = boai_in(data, &["hla", "expand", "A*02:AB"]);
    assert!(out.status.success(), "{}", text(&out));

    // With the frequency set's URL the demo fetches it, seeds its registry and serves.
    let args = demo_args(&mirror.url, &["--freqs-url", &freqs_url]);
    let mut demo = Command::new(env!("CARGO_BIN_EXE_boai"))
        .args(&args)
        .env("BOAI_DATA_DIR", data)
        .env("BOAI_SHARED_DIR", data.join("no-shared-here"))
        .env_remove("BOAI_HLA_DIR")
        .env_remove("BOAI_MAC_FILE")
        .env_remove("BOAI_FREQ_FILE")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let ready = (0..600).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(200));
        let answer = std::net::TcpStream::connect(&addr).ok().and_then(|mut s| {
            write!(
                s,
                "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            .ok()?;
            let mut text = String::new();
            std::io::Read::read_to_string(&mut s, &mut text).ok()?;
            Some(text)
        });
        answer.is_some_and(|t| t.starts_with("HTTP/1.1 200"))
    });
    demo.kill().ok();
    let out = demo.wait_with_output().unwrap();
    assert!(ready, "the demo never served: {}", text(&out));
    assert!(text(&out).contains("300 donors"), "{}", text(&out));
    let manifest = boai_in(data, &["reference", "show"]);
    assert!(
        String::from_utf8_lossy(&manifest.stdout).contains("frequencies/"),
        "{}",
        text(&manifest)
    );
}
