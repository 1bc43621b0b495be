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

#[test]
fn reference_fetch_checks_the_whole_set_before_replacing_anything() {
    let data = tempfile::tempdir().unwrap();
    let data = data.path();
    let mut routes = HashMap::new();
    for path in FILES {
        let bytes = std::fs::read(shared().join("imgt-hla").join(path)).unwrap();
        routes.insert(format!("/3580/{path}"), Serve::Whole(bytes));
    }
    routes.insert("/mac/alpha.v3.zip".into(), Serve::Whole(mac_zip()));
    let freqs = std::fs::read(shared().join("frequencies/NMDP_2007_FiveLocus_Freqs.csv")).unwrap();
    routes.insert(
        "/freqs/NMDP_2007_FiveLocus_Freqs.csv".into(),
        Serve::Whole(freqs),
    );
    let mirror = Mirror::start(routes);
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
