//! Where the reference data lives, in this order: a flag, an environment variable, the data
//! directory `boai reference fetch` fills (`BOAI_DATA_DIR`), or `../shared/...` beside the
//! checkout (`BOAI_SHARED_DIR` moves it). The project never vendors these files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;
use hla::{Expander, MacDictionary, Release};

use crate::datadir::Manifest;

#[derive(Debug, Clone, Args)]
pub struct RefDataArgs {
    /// IPD-IMGT/HLA release directory (Allelelist.txt, wmda/, tce/).
    #[arg(long, env = "BOAI_HLA_DIR", global = true)]
    pub hla_dir: Option<PathBuf>,
    /// NMDP MAC dictionary (alpha.v3.txt or numer.v3.txt, plain or .gz).
    #[arg(long = "mac", env = "BOAI_MAC_FILE", global = true)]
    pub mac_file: Option<PathBuf>,
}

/// `relative` under `BOAI_SHARED_DIR` when set, else under `../shared` from the working
/// directory, else beside this checkout.
pub fn fallback(relative: &str) -> PathBuf {
    if let Some(shared) = std::env::var_os("BOAI_SHARED_DIR") {
        return PathBuf::from(shared).join(relative);
    }
    let from_cwd = Path::new("../shared").join(relative);
    if from_cwd.exists() {
        return from_cwd;
    }
    let beside_checkout = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared")
        .join(relative);
    if beside_checkout.exists() {
        return beside_checkout;
    }
    from_cwd
}

impl RefDataArgs {
    /// The release directory, looking in the data directory `data`.
    pub fn hla_dir_in(&self, data: &Path) -> PathBuf {
        self.hla_dir.clone().unwrap_or_else(|| {
            Manifest::read(data).map_or_else(|| fallback("imgt-hla"), |m| m.hla_dir(data))
        })
    }

    /// The MAC dictionary, looking in the data directory `data`.
    pub fn mac_file_in(&self, data: &Path) -> PathBuf {
        self.mac_file.clone().unwrap_or_else(|| {
            Manifest::read(data)
                .and_then(|m| m.mac_path(data))
                .unwrap_or_else(|| fallback("mac/alpha.v3.subset.txt"))
        })
    }

    fn load_release_in(&self, data: &Path) -> Result<Arc<Release>> {
        let dir = self.hla_dir_in(data);
        if !dir.exists() {
            bail!(
                "IMGT/HLA release directory {} not found: run `boai reference fetch` (it fills {}), \
                 or pass --hla-dir DIR or set BOAI_HLA_DIR",
                dir.display(),
                crate::datadir::default_dir().display()
            );
        }
        let started = std::time::Instant::now();
        let release = Release::load(&dir)
            .with_context(|| format!("loading IMGT/HLA release from {}", dir.display()))?;
        tracing::debug!(release = %release.version, elapsed_ms = started.elapsed().as_millis() as u64, "IMGT/HLA release loaded");
        Ok(Arc::new(release))
    }

    fn load_macs_in(&self, data: &Path) -> Result<Arc<MacDictionary>> {
        let path = self.mac_file_in(data);
        if !path.exists() {
            bail!(
                "MAC dictionary {} not found: run `boai reference fetch` (it fills {}), or pass \
                 --mac FILE or set BOAI_MAC_FILE",
                path.display(),
                crate::datadir::default_dir().display()
            );
        }
        let macs = MacDictionary::load(&path)
            .with_context(|| format!("loading MAC dictionary {}", path.display()))?;
        Ok(Arc::new(macs))
    }

    pub fn expander(&self) -> Result<Expander> {
        self.expander_in(&crate::datadir::default_dir())
    }

    /// The expander, looking in the data directory `data`.
    pub fn expander_in(&self, data: &Path) -> Result<Expander> {
        Ok(Expander::new(
            self.load_release_in(data)?,
            self.load_macs_in(data)?,
        ))
    }
}
