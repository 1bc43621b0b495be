//! The data directory: reference data fetched by `boai reference fetch`, with a manifest
//! naming the set in use. A new set is written beside the old one and the manifest is
//! replaced in one rename, so a reader sees the old set or the new one, never a mix.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

pub const MANIFEST: &str = "manifest.json";

/// `BOAI_DATA_DIR`, else the platform's data directory (`$XDG_DATA_HOME/boai`,
/// `~/.local/share/boai`; `~/Library/Application Support/boai` on macOS; `%APPDATA%\boai`).
pub fn default_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BOAI_DATA_DIR") {
        return PathBuf::from(dir);
    }
    if cfg!(windows)
        && let Some(appdata) = std::env::var_os("APPDATA")
    {
        return PathBuf::from(appdata).join("boai");
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(xdg).join("boai");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    if cfg!(target_os = "macos") {
        home.join("Library/Application Support/boai")
    } else {
        home.join(".local/share/boai")
    }
}

/// One fetched file: where it came from, its size and SHA-256.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FetchedFile {
    pub path: String,
    pub url: String,
    pub bytes: u64,
    pub sha256: String,
}

/// What the data directory holds: the IMGT/HLA set (a directory in the release's layout),
/// the MAC dictionary and the frequency set, each relative to the data directory.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    pub imgt_hla_release: String,
    pub imgt_hla_dir: String,
    pub mac_file: Option<String>,
    pub mac_last_updated: Option<String>,
    pub frequencies_file: Option<String>,
    pub fetched_at: String,
    pub files: Vec<FetchedFile>,
}

impl Manifest {
    /// The manifest of `dir`, if it has one. One that cannot be read or parsed is named in
    /// a warning (never silently passed over) and the lookup goes on to `../shared`.
    pub fn read(dir: &Path) -> Option<Manifest> {
        let path = dir.join(MANIFEST);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                eprintln!(
                    "warning: {} cannot be read ({e}); ignoring it",
                    path.display()
                );
                return None;
            }
        };
        match serde_json::from_str(&text) {
            Ok(manifest) => Some(manifest),
            Err(e) => {
                eprintln!(
                    "warning: {} is not a manifest `boai reference fetch` wrote ({e}); \
                     ignoring it (fetch again to replace it)",
                    path.display()
                );
                None
            }
        }
    }

    /// Replace `dir`'s manifest in one rename.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let tmp = dir.join(format!(".{MANIFEST}.{}", std::process::id()));
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, dir.join(MANIFEST))
            .with_context(|| format!("replacing {}", dir.join(MANIFEST).display()))?;
        Ok(())
    }

    pub fn hla_dir(&self, dir: &Path) -> PathBuf {
        dir.join(&self.imgt_hla_dir)
    }

    pub fn mac_path(&self, dir: &Path) -> Option<PathBuf> {
        self.mac_file.as_ref().map(|f| dir.join(f))
    }

    pub fn frequencies_path(&self, dir: &Path) -> Option<PathBuf> {
        self.frequencies_file.as_ref().map(|f| dir.join(f))
    }
}
