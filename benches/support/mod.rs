//! What the HTTP benchmarks share: arguments, reference data, a seeded registry, one
//! request on a fresh connection, percentiles.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use hla::{Expander, MacDictionary, Release};
use registry::import::ImportOptions;
use registry::{Actor, Registry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn text_arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

pub fn shared(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared")
        .join(relative)
}

/// The release, MAC dictionary and frequencies (flags' environment variables, else
/// `../shared`).
pub fn reference() -> (Arc<Expander>, PathBuf) {
    let hla_dir =
        std::env::var_os("BOAI_HLA_DIR").map_or_else(|| shared("imgt-hla"), PathBuf::from);
    let mac = std::env::var_os("BOAI_MAC_FILE")
        .map_or_else(|| shared("mac/alpha.v3.subset.txt"), PathBuf::from);
    let freqs = std::env::var_os("BOAI_FREQ_FILE").map_or_else(
        || shared("frequencies/NMDP_2007_FiveLocus_Freqs.csv"),
        PathBuf::from,
    );
    let expander = Arc::new(Expander::new(
        Arc::new(Release::load(hla_dir).expect("release")),
        Arc::new(MacDictionary::load(mac).expect("MAC dictionary")),
    ));
    (expander, freqs)
}

/// Branch BJ, station BJ01 and `donors` synthetic donors (seed 7) imported into it.
pub async fn seed(reg: &Registry, synth: &synth::Synth, donors: usize, dir: &Path) {
    let admin = Actor::new("bench", "admin");
    reg.add_branch("BJ", "Beijing", "North", &admin)
        .await
        .unwrap();
    reg.add_station("BJ01", "BJ", "Beijing 1", "North", 0, &admin)
        .await
        .unwrap();
    let started = Instant::now();
    let file = dir.join("donors.txt");
    {
        use std::io::Write;
        let mut out = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        for p in synth.donors(donors, 7) {
            writeln!(out, "D{:07}%{}", p.key, synth.gl_string(&p)).unwrap();
        }
    }
    let today = reg.today();
    let options = ImportOptions {
        station: Some("BJ01".into()),
        all_or_nothing: false,
        batch_size: 0,
    };
    let summary = reg
        .import_donors(&file, &options, &admin, today, &|_| {})
        .await
        .expect("import");
    println!(
        "seeded {} donors in {:.1} s",
        summary.created,
        started.elapsed().as_secs_f64()
    );
}

/// One request on a fresh connection with extra header lines (each ending `\r\n`): the
/// status, the head and the body as text.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}
