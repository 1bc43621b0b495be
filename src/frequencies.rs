//! Haplotype frequency sets: where they are found (flag, environment, `../shared`) and
//! how they load.

use std::path::PathBuf;

use anyhow::{Context, Result};
use hla::Expander;
use matching::HaplotypeSet;

pub fn freqs_path(freqs: &Option<PathBuf>) -> PathBuf {
    freqs_path_in(freqs, &crate::datadir::default_dir())
}

/// `freqs_path`, looking in the data directory `data`.
pub fn freqs_path_in(freqs: &Option<PathBuf>, data: &std::path::Path) -> PathBuf {
    freqs.clone().unwrap_or_else(|| {
        crate::datadir::Manifest::read(data)
            .and_then(|m| m.frequencies_path(data))
            .unwrap_or_else(|| {
                crate::refdata::fallback("frequencies/NMDP_2007_FiveLocus_Freqs.csv")
            })
    })
}

/// `freqs_path`, checked to exist; when missing, the error says what to run.
pub fn existing_freqs_path(freqs: &Option<PathBuf>) -> Result<PathBuf> {
    let path = freqs_path(freqs);
    if !path.exists() {
        anyhow::bail!(
            "haplotype frequency set {} not found: run `boai reference fetch --freqs-url URL` \
             (it fills {}), or pass --freqs FILE or set BOAI_FREQ_FILE",
            path.display(),
            crate::datadir::default_dir().display()
        );
    }
    Ok(path)
}

/// A haplotype frequency set: the NMDP CSV layout, or the JSON layout for `.json` files.
pub fn load_haplotype_set(
    freqs: &Option<PathBuf>,
    population: &str,
    expander: &Expander,
) -> Result<HaplotypeSet> {
    let path = existing_freqs_path(freqs)?;
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let is_json = path.extension().is_some_and(|e| e == "json");
    let set = if is_json {
        HaplotypeSet::from_json(&text, expander.release())
    } else {
        HaplotypeSet::from_nmdp_csv(&text, population, true, expander.release())
    }
    .with_context(|| format!("frequency set {}", path.display()))?;
    if !set.name.eq_ignore_ascii_case(population) && !is_json {
        eprintln!(
            "note: population {population} is not in {}; using the global set",
            path.display()
        );
    }
    if !set.unmapped.is_empty() {
        eprintln!(
            "note: {} names in {} are not in IMGT/HLA {} ({:.4} of the frequency mass left out): {}",
            set.unmapped.len(),
            path.display(),
            expander.release().version,
            set.unmapped_mass,
            set.unmapped
                .iter()
                .take(8)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(set)
}
