//! One IPD-IMGT/HLA release, loaded from its directory: alleles, G and P groups, serology,
//! deleted names and DPB1 T-cell-epitope groups.

use std::fs;
use std::path::{Path, PathBuf};

use rustc_hash::FxHashMap;

use crate::error::{LoadError, TypingError};
use crate::token::SerologyLocus;

pub type AlleleId = u32;
pub type LocusId = u16;
/// A P-group key's small integer id, per locus.
pub type PKeyId = u32;

/// DPB1 T-cell-epitope group (Crivello et al. 2015): 1 is the most immunogenic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TceGroup {
    Group(u8),
    /// Assigned `0`: a null allele.
    Null,
}

#[derive(Debug, Clone)]
pub struct Allele {
    /// Full name with locus and suffix: `A*01:01:01:02N`.
    pub name: String,
    pub locus: LocusId,
    /// Byte length of the fields part (`01:01:01:02`), which starts after `locus*`.
    pub(crate) fields_start: u8,
    pub(crate) fields_len: u8,
    pub suffix: Option<char>,
    pub p_key: Option<PKeyId>,
    pub g_group: Option<u32>,
    /// Serological antigens from all four columns of `rel_dna_ser.txt` (numbers only): what
    /// matching reads (rules, section 1).
    pub serology: Vec<String>,
    /// The serological equivalents: unambiguous, possible and assumed antigens, in the file's
    /// order, without the expert-assigned exceptions (search determinants of some
    /// registries, not equivalents). Empty where the file assigns none (`?`, no row).
    pub serology_equivalents: Vec<String>,
    /// The unambiguous (or else possible, assumed, expert) assignment, for reduction.
    pub primary_serology: Option<String>,
    pub tce: Option<TceGroup>,
}

impl Allele {
    pub fn is_null(&self) -> bool {
        self.suffix == Some('N')
    }
    /// `01:01:01:02` (no locus, no suffix).
    pub fn fields(&self) -> &str {
        let s = self.fields_start as usize;
        &self.name[s..s + self.fields_len as usize]
    }
    /// The first `n` fields, e.g. `A*01:01` for n = 2.
    pub fn truncated(&self, n: usize) -> String {
        let fields: Vec<&str> = self.fields().split(':').take(n).collect();
        format!(
            "{}*{}",
            &self.name[..self.fields_start as usize - 1],
            fields.join(":")
        )
    }
    pub fn first_field(&self) -> &str {
        self.fields().split(':').next().unwrap_or("")
    }
}

#[derive(Debug, Clone)]
pub struct LocusInfo {
    pub name: String,
    /// P-group keys in nomenclature order; the index is the key's id.
    pub p_keys: Vec<String>,
    pub(crate) p_key_index: FxHashMap<String, PKeyId>,
}

#[derive(Debug, Clone)]
pub struct DeletedName {
    pub successor: Option<String>,
    pub reason: String,
    pub deleted_on: String,
}

#[derive(Debug, Clone)]
pub struct GGroup {
    pub name: String,
    pub members: Vec<AlleleId>,
}

/// A loaded IMGT/HLA release.
#[derive(Debug)]
pub struct Release {
    pub version: String,
    pub dir: PathBuf,
    pub loci: Vec<LocusInfo>,
    locus_index: FxHashMap<String, LocusId>,
    pub alleles: Vec<Allele>,
    /// `A*02:01` (locus and fields, no suffix) → every allele it prefixes at a field boundary.
    prefix: FxHashMap<String, Vec<AlleleId>>,
    pub g_groups: Vec<GGroup>,
    g_group_index: FxHashMap<String, u32>,
    p_groups: FxHashMap<String, Vec<AlleleId>>,
    deleted: FxHashMap<String, DeletedName>,
    /// (serological locus, antigen) → alleles assigned it in any column.
    serology_alleles: FxHashMap<(SerologyLocus, String), Vec<AlleleId>>,
    /// (locus, antigen) → its broad or parent antigen(s) in `rel_ser_ser.txt`.
    ser_parents: FxHashMap<(SerologyLocus, String), Vec<String>>,
    /// (locus, antigen) → its splits and associated antigens.
    ser_children: FxHashMap<(SerologyLocus, String), Vec<String>>,
    /// (locus, broad antigen) → its splits only (for broad XX codes).
    ser_splits: FxHashMap<(SerologyLocus, String), Vec<String>>,
}

/// Reads the `# version: IPD-IMGT/HLA 3.58.0` header line.
fn header_version(path: &Path, text: &str) -> Result<String, LoadError> {
    for line in text.lines().take(10) {
        if let Some(rest) = line.strip_prefix("# version:") {
            let v = rest.trim().trim_start_matches("IPD-IMGT/HLA").trim();
            if !v.is_empty() {
                return Ok(v.to_string());
            }
        }
    }
    Err(LoadError::File {
        path: path.to_path_buf(),
        reason: "no `# version:` header line".into(),
    })
}

fn read(path: &Path) -> Result<String, LoadError> {
    fs::read_to_string(path).map_err(|e| LoadError::io(path, e))
}

/// Data lines with their 1-based line numbers (header comments skipped).
fn data_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.starts_with('#') && !l.trim().is_empty())
}

/// Sort key for nomenclature order: numeric fields, then suffix.
pub(crate) fn nomenclature_key(name: &str) -> (String, Vec<u32>, String) {
    // A name without `*` is an antigen or group (`A19`, `Cw10`, `TCE2`): its letters, then
    // its number, so `A2` sorts before `A19`.
    let (locus, rest) = name.split_once('*').unwrap_or_else(|| {
        let digits = name
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(name.len());
        name.split_at(digits)
    });
    let mut nums = Vec::new();
    let mut tail = String::new();
    for f in rest.split(':') {
        let digits: String = f.chars().take_while(|c| c.is_ascii_digit()).collect();
        nums.push(digits.parse().unwrap_or(u32::MAX));
        tail.push_str(&f[digits.len()..]);
    }
    (locus.to_string(), nums, tail)
}

impl Release {
    /// Refuse a versioned GL string that names another release (`3.58` and `3.58.0` are
    /// the same release; `3.1.0` is not).
    pub fn check_gl_version(&self, gl: &crate::GlString) -> Result<(), TypingError> {
        match &gl.version {
            Some(v) => self.check_gl_version_text(v, &gl.to_string()),
            None => Ok(()),
        }
    }

    /// As `check_gl_version`, for a version read from the text `gl`.
    pub(crate) fn check_gl_version_text(&self, version: &str, gl: &str) -> Result<(), TypingError> {
        if same_release(version, &self.version) {
            return Ok(());
        }
        Err(TypingError::OtherRelease {
            token: gl.to_string(),
            version: version.to_string(),
            release: self.version.clone(),
        })
    }

    /// Load a release directory (the layout of github.com/ANHIG/IMGTHLA).
    pub fn load(dir: impl AsRef<Path>) -> Result<Release, LoadError> {
        let dir = dir.as_ref();
        let allelelist_path = dir.join("Allelelist.txt");
        let allelelist = read(&allelelist_path)?;
        let version = header_version(&allelelist_path, &allelelist)?;

        let mut release = Release {
            version: version.clone(),
            dir: dir.to_path_buf(),
            loci: Vec::new(),
            locus_index: FxHashMap::default(),
            alleles: Vec::with_capacity(45_000),
            prefix: FxHashMap::default(),
            g_groups: Vec::new(),
            g_group_index: FxHashMap::default(),
            p_groups: FxHashMap::default(),
            deleted: FxHashMap::default(),
            serology_alleles: FxHashMap::default(),
            ser_parents: FxHashMap::default(),
            ser_children: FxHashMap::default(),
            ser_splits: FxHashMap::default(),
        };
        let mut by_name: FxHashMap<String, AlleleId> = FxHashMap::default();
        for (line_no, line) in data_lines(&allelelist) {
            if line.starts_with("AlleleID") {
                continue;
            }
            let (_, name) = line.split_once(',').ok_or_else(|| {
                LoadError::format(&allelelist_path, line_no, "expected `AlleleID,Allele`")
            })?;
            let (locus, fields) = name.split_once('*').ok_or_else(|| {
                LoadError::format(&allelelist_path, line_no, format!("`{name}` has no `*`"))
            })?;
            let locus_id = release.intern_locus(locus);
            let suffix = fields.chars().last().filter(|c| c.is_ascii_alphabetic());
            let fields_len = fields.len() - suffix.map_or(0, |_| 1);
            let id = release.alleles.len() as AlleleId;
            release.alleles.push(Allele {
                name: name.to_string(),
                locus: locus_id,
                fields_start: (locus.len() + 1) as u8,
                fields_len: fields_len as u8,
                suffix,
                p_key: None,
                g_group: None,
                serology: Vec::new(),
                serology_equivalents: Vec::new(),
                primary_serology: None,
                tce: None,
            });
            by_name.insert(name.to_string(), id);
            let field_text = &fields[..fields_len];
            let mut end = 0;
            for part in field_text.split(':') {
                end += part.len();
                release
                    .prefix
                    .entry(format!("{locus}*{}", &field_text[..end]))
                    .or_default()
                    .push(id);
                end += 1;
            }
        }
        if release.alleles.is_empty() {
            return Err(LoadError::File {
                path: allelelist_path,
                reason: "no alleles".into(),
            });
        }

        release.load_p_groups(&dir.join("wmda/hla_nom_p.txt"), &by_name)?;
        release.load_g_groups(&dir.join("wmda/hla_nom_g.txt"), &by_name)?;
        release.load_rel_dna_ser(&dir.join("wmda/rel_dna_ser.txt"), &by_name)?;
        release.load_rel_ser_ser(&dir.join("wmda/rel_ser_ser.txt"))?;
        release.load_hla_nom(&dir.join("wmda/hla_nom.txt"))?;
        release.load_tce(&dir.join("tce/dpb_tce.csv"), &by_name)?;
        Ok(release)
    }

    fn intern_locus(&mut self, locus: &str) -> LocusId {
        if let Some(&id) = self.locus_index.get(locus) {
            return id;
        }
        let id = self.loci.len() as LocusId;
        self.loci.push(LocusInfo {
            name: locus.to_string(),
            p_keys: Vec::new(),
            p_key_index: FxHashMap::default(),
        });
        self.locus_index.insert(locus.to_string(), id);
        id
    }

    fn check_version(&self, path: &Path, text: &str) -> Result<(), LoadError> {
        let v = header_version(path, text)?;
        if v != self.version {
            return Err(LoadError::File {
                path: path.to_path_buf(),
                reason: format!(
                    "release {v}, but Allelelist.txt is release {}",
                    self.version
                ),
            });
        }
        Ok(())
    }

    /// `LOCUS*;members;group` lines, shared by the G and P files.
    fn group_lines<'a>(
        path: &'a Path,
        text: &'a str,
    ) -> impl Iterator<Item = Result<(usize, &'a str, &'a str, &'a str), LoadError>> + 'a {
        data_lines(text).map(move |(line_no, line)| {
            let mut parts = line.split(';');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(locus), Some(members), group) => Ok((
                    line_no,
                    locus.trim_end_matches('*'),
                    members,
                    group.unwrap_or("").trim(),
                )),
                _ => Err(LoadError::format(
                    path,
                    line_no,
                    "expected `LOCUS*;ALLELES;GROUP`",
                )),
            }
        })
    }

    fn load_p_groups(
        &mut self,
        path: &Path,
        by_name: &FxHashMap<String, AlleleId>,
    ) -> Result<(), LoadError> {
        let text = read(path)?;
        self.check_version(path, &text)?;
        // Allele → key name first; ids are assigned per locus in nomenclature order after.
        let mut key_of: Vec<Option<String>> = vec![None; self.alleles.len()];
        for row in Self::group_lines(path, &text) {
            let (_, locus, members, group) = row?;
            let key = if group.is_empty() {
                format!("{locus}*{members}")
            } else {
                format!("{locus}*{group}")
            };
            let mut ids = Vec::new();
            for m in members.split('/') {
                // A few listed names may be absent from Allelelist (not expected); skip them.
                if let Some(&id) = by_name.get(&format!("{locus}*{m}")) {
                    key_of[id as usize] = Some(key.clone());
                    ids.push(id);
                }
            }
            if !group.is_empty() {
                self.p_groups.insert(key, ids);
            }
        }
        // Expressed alleles the file does not list are keyed by their two-field name.
        for (i, a) in self.alleles.iter().enumerate() {
            if key_of[i].is_none() && !a.is_null() {
                key_of[i] = Some(a.truncated(2));
            }
        }
        let mut per_locus: Vec<Vec<String>> = vec![Vec::new(); self.loci.len()];
        for (i, key) in key_of.iter().enumerate() {
            if let Some(k) = key {
                per_locus[self.alleles[i].locus as usize].push(k.clone());
            }
        }
        for (locus_id, mut keys) in per_locus.into_iter().enumerate() {
            keys.sort_by_cached_key(|k| nomenclature_key(k));
            keys.dedup();
            let info = &mut self.loci[locus_id];
            info.p_key_index = keys
                .iter()
                .enumerate()
                .map(|(i, k)| (k.clone(), i as PKeyId))
                .collect();
            info.p_keys = keys;
        }
        for (i, key) in key_of.into_iter().enumerate() {
            if let Some(k) = key {
                let locus = self.alleles[i].locus as usize;
                self.alleles[i].p_key = Some(self.loci[locus].p_key_index[&k]);
            }
        }
        Ok(())
    }

    fn load_g_groups(
        &mut self,
        path: &Path,
        by_name: &FxHashMap<String, AlleleId>,
    ) -> Result<(), LoadError> {
        let text = read(path)?;
        self.check_version(path, &text)?;
        for row in Self::group_lines(path, &text) {
            let (_, locus, members, group) = row?;
            if group.is_empty() {
                continue;
            }
            let name = format!("{locus}*{group}");
            let gid = self.g_groups.len() as u32;
            let mut ids = Vec::new();
            for m in members.split('/') {
                if let Some(&id) = by_name.get(&format!("{locus}*{m}")) {
                    self.alleles[id as usize].g_group = Some(gid);
                    ids.push(id);
                }
            }
            self.g_group_index.insert(name.clone(), gid);
            self.g_groups.push(GGroup { name, members: ids });
        }
        Ok(())
    }

    fn load_rel_dna_ser(
        &mut self,
        path: &Path,
        by_name: &FxHashMap<String, AlleleId>,
    ) -> Result<(), LoadError> {
        let text = read(path)?;
        self.check_version(path, &text)?;
        for (line_no, line) in data_lines(&text) {
            let cols: Vec<&str> = line.split(';').collect();
            if cols.len() < 3 {
                return Err(LoadError::format(
                    path,
                    line_no,
                    "expected `LOCUS*;ALLELE;SEROLOGY;…`",
                ));
            }
            let locus = cols[0].trim_end_matches('*');
            let Some(ser_locus) = SerologyLocus::of_molecular(locus) else {
                continue;
            };
            let Some(&id) = by_name.get(&format!("{locus}*{}", cols[1])) else {
                continue;
            };
            let mut antigens: Vec<String> = Vec::new();
            let mut equivalents: Vec<String> = Vec::new();
            let mut primary = None;
            for (column, col) in cols.iter().skip(2).take(4).enumerate() {
                for a in col.split('/') {
                    let a = a.trim();
                    if a.is_empty()
                        || a == "0"
                        || a == "?"
                        || !a.bytes().all(|b| b.is_ascii_digit())
                    {
                        continue;
                    }
                    if primary.is_none() {
                        primary = Some(a.to_string());
                    }
                    if !antigens.iter().any(|x| x == a) {
                        antigens.push(a.to_string());
                    }
                    // The fourth antigen column holds the expert-assigned exceptions.
                    if column < 3 && !equivalents.iter().any(|x| x == a) {
                        equivalents.push(a.to_string());
                    }
                }
            }
            for a in &antigens {
                self.serology_alleles
                    .entry((ser_locus, a.clone()))
                    .or_default()
                    .push(id);
            }
            let allele = &mut self.alleles[id as usize];
            allele.serology = antigens;
            allele.serology_equivalents = equivalents;
            allele.primary_serology = primary;
        }
        self.share_equivalents_within_proteins();
        Ok(())
    }

    /// Alleles sharing two fields encode the same protein, so an expressed allele the file
    /// leaves unassigned takes its protein's assigned equivalents (`B*44:02:01:02S` → 44).
    /// Nothing is made up: a protein no allele of which is assigned stays without one.
    fn share_equivalents_within_proteins(&mut self) {
        let mut by_protein: FxHashMap<String, Vec<String>> = FxHashMap::default();
        for allele in self.alleles.iter().filter(|a| !a.is_null()) {
            let antigens = by_protein.entry(allele.truncated(2)).or_default();
            for a in &allele.serology_equivalents {
                if !antigens.contains(a) {
                    antigens.push(a.clone());
                }
            }
        }
        for allele in self.alleles.iter_mut() {
            if allele.is_null() || !allele.serology_equivalents.is_empty() {
                continue;
            }
            if let Some(antigens) = by_protein.get(&allele.truncated(2)) {
                allele.serology_equivalents = antigens.clone();
            }
        }
    }

    fn load_rel_ser_ser(&mut self, path: &Path) -> Result<(), LoadError> {
        let text = read(path)?;
        self.check_version(path, &text)?;
        for (line_no, line) in data_lines(&text) {
            let cols: Vec<&str> = line.split(';').collect();
            if cols.len() < 4 {
                return Err(LoadError::format(
                    path,
                    line_no,
                    "expected `LOCUS;ANTIGEN;SPLITS;ASSOCIATED`",
                ));
            }
            let Some(locus) = SerologyLocus::from_label(cols[0]) else {
                continue; // Dw: cellular typing, not used for matching
            };
            let parent = cols[1].to_string();
            for (col, is_split) in [(cols[2], true), (cols[3], false)] {
                for child in col.split('/').map(str::trim).filter(|c| !c.is_empty()) {
                    self.ser_parents
                        .entry((locus, child.to_string()))
                        .or_default()
                        .push(parent.clone());
                    self.ser_children
                        .entry((locus, parent.clone()))
                        .or_default()
                        .push(child.to_string());
                    if is_split {
                        self.ser_splits
                            .entry((locus, parent.clone()))
                            .or_default()
                            .push(child.to_string());
                    }
                }
            }
        }
        Ok(())
    }

    fn load_hla_nom(&mut self, path: &Path) -> Result<(), LoadError> {
        let text = read(path)?;
        self.check_version(path, &text)?;
        for (line_no, line) in data_lines(&text) {
            let cols: Vec<&str> = line.split(';').collect();
            if cols.len() < 6 {
                return Err(LoadError::format(
                    path,
                    line_no,
                    "expected six `;`-separated fields",
                ));
            }
            // Only molecular names (`A*`) that have been deleted.
            let Some(locus) = cols[0].strip_suffix('*') else {
                continue;
            };
            if cols[3].is_empty() {
                continue;
            }
            let name = format!("{locus}*{}", cols[1]);
            let successor = (!cols[4].is_empty()).then(|| format!("{locus}*{}", cols[4]));
            self.deleted.insert(
                name,
                DeletedName {
                    successor,
                    reason: cols[5].to_string(),
                    deleted_on: cols[3].to_string(),
                },
            );
        }
        Ok(())
    }

    fn load_tce(
        &mut self,
        path: &Path,
        by_name: &FxHashMap<String, AlleleId>,
    ) -> Result<(), LoadError> {
        let text = read(path)?;
        self.check_version(path, &text)?;
        let mut lines = data_lines(&text);
        let (_, header) = lines.next().ok_or_else(|| LoadError::File {
            path: path.to_path_buf(),
            reason: "no header".into(),
        })?;
        let header: Vec<&str> = header.split(',').map(str::trim).collect();
        let allele_col = header
            .iter()
            .position(|h| *h == "Allele")
            .ok_or_else(|| LoadError::format(path, 7, "no `Allele` column"))?;
        // The newest assignment: the highest-numbered `V<n>_Assignment` column.
        let assignment_col = header
            .iter()
            .enumerate()
            .filter_map(|(i, h)| {
                let n = h
                    .strip_prefix('V')?
                    .strip_suffix("_Assignment")?
                    .parse::<u32>()
                    .ok()?;
                Some((n, i))
            })
            .max()
            .map(|(_, i)| i)
            .ok_or_else(|| LoadError::format(path, 7, "no `V<n>_Assignment` column"))?;
        for (line_no, line) in lines {
            let cols: Vec<&str> = line.split(',').collect();
            let (Some(name), Some(value)) = (cols.get(allele_col), cols.get(assignment_col)) else {
                return Err(LoadError::format(path, line_no, "missing columns"));
            };
            let value: String = value.chars().filter(|c| *c != '$' && *c != 'a').collect();
            let group = match value.trim() {
                "" => None,
                "0" => Some(TceGroup::Null),
                v @ ("1" | "2" | "3") => Some(TceGroup::Group(v.parse().expect("digit"))),
                other => {
                    return Err(LoadError::format(
                        path,
                        line_no,
                        format!("unknown TCE group `{other}`"),
                    ));
                }
            };
            if let Some(&id) = by_name.get(name.trim()) {
                self.alleles[id as usize].tce = group;
            }
        }
        Ok(())
    }

    pub fn locus_id(&self, locus: &str) -> Option<LocusId> {
        self.locus_index.get(locus).copied()
    }

    pub fn locus(&self, id: LocusId) -> &LocusInfo {
        &self.loci[id as usize]
    }

    pub fn allele(&self, id: AlleleId) -> &Allele {
        &self.alleles[id as usize]
    }

    /// Alleles whose name starts with `prefix` (`A*02:01`, no suffix) at a field boundary.
    pub fn alleles_with_prefix(&self, prefix: &str) -> &[AlleleId] {
        self.prefix.get(prefix).map_or(&[], Vec::as_slice)
    }

    pub fn g_group(&self, name: &str) -> Option<&GGroup> {
        self.g_group_index
            .get(name)
            .map(|&i| &self.g_groups[i as usize])
    }

    pub fn p_group_members(&self, name: &str) -> Option<&[AlleleId]> {
        self.p_groups.get(name).map(Vec::as_slice)
    }

    pub fn deleted(&self, name: &str) -> Option<&DeletedName> {
        self.deleted.get(name)
    }

    pub fn p_key_name(&self, locus: LocusId, key: PKeyId) -> &str {
        &self.loci[locus as usize].p_keys[key as usize]
    }

    pub fn p_key_id(&self, locus: LocusId, name: &str) -> Option<PKeyId> {
        self.loci[locus as usize].p_key_index.get(name).copied()
    }

    /// Alleles assigned to `antigen` in `rel_dna_ser.txt` (any column).
    pub fn alleles_with_antigen(&self, locus: SerologyLocus, antigen: &str) -> &[AlleleId] {
        self.serology_alleles
            .get(&(locus, antigen.to_string()))
            .map_or(&[], Vec::as_slice)
    }

    /// The antigen's family: itself, everything below it (splits and associated antigens,
    /// transitively) and everything above it (its broads). Siblings are not family.
    pub fn antigen_family(&self, locus: SerologyLocus, antigen: &str) -> Vec<String> {
        let mut family = vec![antigen.to_string()];
        let mut stack = vec![antigen.to_string()];
        while let Some(a) = stack.pop() {
            for c in self.ser_children.get(&(locus, a)).into_iter().flatten() {
                if !family.contains(c) {
                    family.push(c.clone());
                    stack.push(c.clone());
                }
            }
        }
        let mut stack = vec![antigen.to_string()];
        while let Some(a) = stack.pop() {
            for p in self.ser_parents.get(&(locus, a)).into_iter().flatten() {
                if !family.contains(p) {
                    family.push(p.clone());
                    stack.push(p.clone());
                }
            }
        }
        family
    }

    /// True when `antigen` is listed as an associated antigen (not a split) of another
    /// (`A203` of A2, `B5102` of B51).
    pub fn is_associated_antigen(&self, locus: SerologyLocus, antigen: &str) -> bool {
        self.ser_parents
            .get(&(locus, antigen.to_string()))
            .is_some_and(|parents| {
                parents
                    .iter()
                    .any(|p| !self.antigen_splits(locus, p).iter().any(|s| s == antigen))
            })
    }

    /// The splits of a broad antigen (`DR2` → 15, 16), empty if it has none.
    pub fn antigen_splits(&self, locus: SerologyLocus, antigen: &str) -> &[String] {
        self.ser_splits
            .get(&(locus, antigen.to_string()))
            .map_or(&[], Vec::as_slice)
    }
}

/// Whether two release versions are one release: numeric fields compared, missing trailing
/// fields read as 0.
/// Whether two release versions name the same release (`3.58` and `3.58.0` do).
pub fn same_release(a: &str, b: &str) -> bool {
    let fields = |v: &str| -> Vec<u32> {
        let mut f: Vec<u32> = v
            .split('.')
            .map(|p| p.parse().unwrap_or(u32::MAX))
            .collect();
        while f.len() > 1 && f.last() == Some(&0) {
            f.pop();
        }
        f
    };
    fields(a) == fields(b)
}
