//! `boai reference fetch`: the reference data, fetched the way the field's tools do
//! (IPD-IMGT/HLA asks that its files be fetched, not mirrored or vendored), checked as a
//! whole before it replaces anything.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use clap::{Args, Subcommand};
use hla::{MacDictionary, Release};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};

use crate::datadir::{FetchedFile, Manifest};

/// The files Boai reads from a release, by their path in the IPD-IMGT/HLA repository.
pub const IMGT_FILES: [&str; 7] = [
    "Allelelist.txt",
    "wmda/hla_nom_g.txt",
    "wmda/hla_nom_p.txt",
    "wmda/rel_dna_ser.txt",
    "wmda/rel_ser_ser.txt",
    "wmda/hla_nom.txt",
    "tce/dpb_tce.csv",
];

/// The loci whose alleles must all appear in the G and P files.
const MATCHED_LOCI: [&str; 9] = [
    "A", "B", "C", "DRB1", "DRB3", "DRB4", "DRB5", "DQB1", "DPB1",
];

#[derive(Debug, Subcommand)]
pub enum ReferenceCommand {
    /// Download an IPD-IMGT/HLA release, the MAC dictionary and (with --freqs-url) a
    /// haplotype frequency set into the data directory, check them, then switch to them.
    Fetch(FetchArgs),
    /// Print the data directory's manifest (what is fetched, from where, checksums).
    Show {
        #[arg(long, env = "BOAI_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Args)]
pub struct FetchArgs {
    /// The IPD-IMGT/HLA release (`3.58.0`).
    #[arg(long, default_value = "3.58.0")]
    pub release: String,
    /// The repository's raw files: `URL/<release without dots>/<path>`.
    #[arg(
        long = "from",
        default_value = "https://raw.githubusercontent.com/ANHIG/IMGTHLA"
    )]
    pub from: String,
    /// NMDP's MAC dictionary (`alpha.v3.zip`, or a `.txt`).
    #[arg(long, default_value = "https://hml.nmdp.org/mac/files/alpha.v3.zip")]
    pub mac_url: String,
    /// A haplotype frequency set (NMDP CSV layout); none is fetched without it.
    #[arg(long)]
    pub freqs_url: Option<String>,
    /// Where to keep the data (default: `BOAI_DATA_DIR`, else the platform's data directory).
    #[arg(long, env = "BOAI_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

pub fn run(cmd: ReferenceCommand) -> Result<i32> {
    match cmd {
        ReferenceCommand::Fetch(args) => fetch(args),
        ReferenceCommand::Show { data_dir } => {
            let dir = data_dir.unwrap_or_else(crate::datadir::default_dir);
            match Manifest::read(&dir) {
                Some(m) => println!("{}", serde_json::to_string_pretty(&m)?),
                None => bail!(
                    "no reference data in {}: run `boai reference fetch`",
                    dir.display()
                ),
            }
            Ok(0)
        }
    }
}

pub fn fetch(args: FetchArgs) -> Result<i32> {
    let data = args
        .data_dir
        .clone()
        .unwrap_or_else(crate::datadir::default_dir);
    let release = args.release.trim().to_string();
    ensure!(
        release.split('.').count() == 3 && release.split('.').all(|p| p.parse::<u32>().is_ok()),
        "--release `{release}` is not an IPD-IMGT/HLA release like 3.58.0"
    );
    let sets = data.join("sets");
    std::fs::create_dir_all(&sets).with_context(|| format!("creating {}", sets.display()))?;
    let staging = sets.join(format!(".staging-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    // Whatever goes wrong, the staging directory goes and the previous set stays in use.
    let result = stage(&args, &release, &staging).and_then(|files| {
        let id = set_id(&release, &files);
        let set = sets.join(&id);
        if set.exists() {
            std::fs::remove_dir_all(&staging)?;
        } else {
            std::fs::rename(&staging, &set)
                .with_context(|| format!("moving the checked set to {}", set.display()))?;
        }
        Ok((id, files))
    });
    let (id, files) = match result {
        Ok(done) => done,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            let kept = match Manifest::read(&data) {
                Some(m) => format!(
                    "nothing was replaced: {} keeps IPD-IMGT/HLA {} as fetched on {}",
                    data.display(),
                    m.imgt_hla_release,
                    m.fetched_at
                ),
                None => format!(
                    "nothing was replaced: {} has no reference data yet",
                    data.display()
                ),
            };
            return Err(e.context(format!(
                "{kept} (offline? --from URL, --mac-url URL take a mirror with the same layout)"
            )));
        }
    };
    let find = |prefix: &str| {
        files
            .iter()
            .find(|f| f.path.starts_with(prefix))
            .map(|f| format!("sets/{id}/{}", f.path))
    };
    let mac_file = find("mac/");
    let mac_last_updated = match &mac_file {
        Some(f) => MacDictionary::load(data.join(f))?.last_updated.clone(),
        None => None,
    };
    let manifest = Manifest {
        imgt_hla_release: release.clone(),
        imgt_hla_dir: format!("sets/{id}/imgt-hla"),
        mac_file,
        mac_last_updated,
        frequencies_file: find("frequencies/"),
        fetched_at: jiff::Timestamp::now().to_string(),
        files,
    };
    manifest.write(&data)?;
    remove_other_sets(&sets, &id);
    println!(
        "IPD-IMGT/HLA {release}, the MAC dictionary{} are in {} (manifest: {})",
        if manifest.frequencies_file.is_some() {
            " and the frequency set"
        } else {
            ""
        },
        data.display(),
        data.join(crate::datadir::MANIFEST).display()
    );
    Ok(0)
}

/// Download every file into `staging` and check the set; returns the files fetched.
fn stage(args: &FetchArgs, release: &str, staging: &Path) -> Result<Vec<FetchedFile>> {
    let agent = ureq::Agent::new_with_defaults();
    let base = format!(
        "{}/{}",
        args.from.trim_end_matches('/'),
        release.replace('.', "")
    );
    let mut files = Vec::new();
    for path in IMGT_FILES {
        let url = format!("{base}/{path}");
        files.push(download(
            &agent,
            &url,
            staging,
            &format!("imgt-hla/{path}"),
        )?);
    }
    let mac_name = file_name(&args.mac_url, "alpha.v3.zip");
    files.push(download(
        &agent,
        &args.mac_url,
        staging,
        &format!("mac/{mac_name}"),
    )?);
    if let Some(url) = &args.freqs_url {
        let name = file_name(url, "frequencies.csv");
        files.push(download(
            &agent,
            url,
            staging,
            &format!("frequencies/{name}"),
        )?);
    }
    check_set(staging, release, &mac_name, args.freqs_url.as_deref())?;
    Ok(files)
}

fn file_name(url: &str, default: &str) -> String {
    let name = url.rsplit('/').next().unwrap_or_default();
    let name = name.split(['?', '#']).next().unwrap_or_default();
    if name.is_empty() || name.starts_with('.') {
        default.to_string()
    } else {
        name.to_string()
    }
}

/// Fetch `url` to `staging/relative`, refusing a body shorter than announced.
fn download(agent: &ureq::Agent, url: &str, staging: &Path, relative: &str) -> Result<FetchedFile> {
    let target = staging.join(relative);
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let response = agent
        .get(url)
        .call()
        .with_context(|| format!("downloading {url}"))?;
    let announced: Option<u64> = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let bar = ProgressBar::new(announced.unwrap_or(0));
    bar.set_style(
        ProgressStyle::with_template("{msg:40} {bytes:>10}/{total_bytes:10} {bar:30}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(relative.to_string());
    let mut reader = response
        .into_body()
        .into_with_config()
        .limit(1 << 32)
        .reader();
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(&target).with_context(|| format!("creating {}", target.display()))?,
    );
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader
            .read(&mut buf)
            .with_context(|| format!("downloading {url}: the transfer broke off"))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        bytes += n as u64;
        bar.set_position(bytes);
    }
    out.flush()?;
    bar.finish_and_clear();
    if let Some(expected) = announced {
        ensure!(
            bytes == expected,
            "downloading {url}: got {bytes} bytes of {expected} (a truncated transfer)"
        );
    }
    ensure!(bytes > 0, "downloading {url}: the file is empty");
    Ok(FetchedFile {
        path: relative.to_string(),
        url: url.to_string(),
        bytes,
        sha256: format!("{:x}", hasher.finalize()),
    })
}

/// The whole set parses, its files name one release (the one asked for), every allele of
/// the matched loci appears in the G file and every expressed one in the P file, the MACs
/// and frequencies parse.
fn check_set(staging: &Path, release: &str, mac_name: &str, freqs: Option<&str>) -> Result<()> {
    let dir = staging.join("imgt-hla");
    let loaded = Release::load(&dir).context("the downloaded IPD-IMGT/HLA files do not load")?;
    ensure!(
        same_release(&loaded.version, release),
        "the downloaded files are IPD-IMGT/HLA {}, not {release}",
        loaded.version
    );
    let listed = |path: &str| -> Result<std::collections::HashSet<String>> {
        let text = std::fs::read_to_string(dir.join(path))?;
        let mut names = std::collections::HashSet::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let mut cols = line.split(';');
            let (Some(locus), Some(members)) = (cols.next(), cols.next()) else {
                continue;
            };
            for m in members.split('/').filter(|m| !m.is_empty()) {
                names.insert(format!("{locus}{m}"));
            }
        }
        Ok(names)
    };
    let (g, p) = (listed("wmda/hla_nom_g.txt")?, listed("wmda/hla_nom_p.txt")?);
    let alleles = std::fs::read_to_string(dir.join("Allelelist.txt"))?;
    for name in alleles
        .lines()
        .filter(|l| l.starts_with("HLA"))
        .filter_map(|l| l.split(',').nth(1))
    {
        let locus = name.split('*').next().unwrap_or_default();
        if !MATCHED_LOCI.contains(&locus) {
            continue;
        }
        // The P file leaves null alleles out (they have no protein); the G file lists all.
        let in_p = !name.ends_with('N');
        for (file, names) in [("wmda/hla_nom_g.txt", &g), ("wmda/hla_nom_p.txt", &p)] {
            if file.ends_with("_p.txt") && !in_p {
                continue;
            }
            ensure!(
                names.contains(name),
                "{name} of Allelelist.txt is missing from {file}: the set is truncated or mixed"
            );
        }
    }
    let macs = MacDictionary::load(staging.join("mac").join(mac_name))
        .context("the downloaded MAC dictionary does not load")?;
    ensure!(
        !macs.is_empty(),
        "the downloaded MAC dictionary has no codes"
    );
    if let Some(url) = freqs {
        let path = staging
            .join("frequencies")
            .join(file_name(url, "frequencies.csv"));
        let text = std::fs::read_to_string(&path)?;
        let set = matching::HaplotypeSet::from_nmdp_csv(&text, "GLOBAL", true, &loaded)
            .with_context(|| format!("the downloaded frequency set {url} does not load"))?;
        ensure!(
            !set.is_empty(),
            "the downloaded frequency set {url} has no haplotypes"
        );
    }
    Ok(())
}

fn same_release(a: &str, b: &str) -> bool {
    let parts = |v: &str| -> Vec<String> {
        let mut p: Vec<String> = v
            .split('.')
            .map(|x| x.trim_start_matches('0').to_string())
            .collect();
        while p.len() < 3 {
            p.push(String::new());
        }
        p
    };
    parts(a) == parts(b)
}

/// A set's directory name: its release and the start of a hash of its files' checksums.
fn set_id(release: &str, files: &[FetchedFile]) -> String {
    let mut hasher = Sha256::new();
    for f in files {
        hasher.update(f.path.as_bytes());
        hasher.update(f.sha256.as_bytes());
    }
    format!("{release}-{}", &format!("{:x}", hasher.finalize())[..12])
}

/// Older sets go once the manifest names the new one.
fn remove_other_sets(sets: &Path, keep: &str) {
    let Ok(entries) = std::fs::read_dir(sets) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name != keep && !name.starts_with(".staging-") {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
