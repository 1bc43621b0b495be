//! Match probability (rules §7): how likely a typing pair really has 0, 1, 2 or more
//! mismatches, from population haplotype frequencies.
//!
//! A [`HaplotypeSet`] holds one population's haplotypes as P-group keys of the loaded
//! release. Imputation lists the haplotype pairs consistent with a typing; the probability
//! computation never enumerates donor pairs: for each patient genotype it groups the donor's
//! candidate haplotypes by a signature (which donor position each can fill, and which patient
//! key it equals, per locus), and combines groups pairwise; the likelihood of all pairs
//! drawn from groups s and t is F_s² (s = t) or 2·F_s·F_t, which is exact.

use std::sync::{Arc, RwLock};

use hla::{PKeyId, PositionKind, Release};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::model::Locus;
use crate::position::PositionInfo;
use crate::score::{Subject, match_count};

/// The loci a frequency set may carry, in the NMDP file's order.
pub const SET_LOCI: [Locus; 5] = [Locus::A, Locus::C, Locus::B, Locus::Drb1, Locus::Dqb1];

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FrequencyError {
    #[error("line {line}: {reason}")]
    Format { line: usize, reason: String },
    #[error("invalid JSON frequency set: {0}")]
    Json(String),
    #[error("no haplotypes for population `{population}` (the file has: {known})")]
    UnknownPopulation { population: String, known: String },
    #[error("locus {0} cannot be used for match probability (A, B, C, DRB1, DQB1)")]
    Locus(String),
}

/// A population's haplotypes: per haplotype a P-key id per locus of `loci`, and a frequency.
#[derive(Debug, Clone)]
pub struct HaplotypeSet {
    pub name: String,
    pub loci: Vec<Locus>,
    keys: Vec<Vec<PKeyId>>,
    freqs: Vec<f64>,
    /// Names the release does not know; haplotypes carrying them are left out.
    pub unmapped: Vec<String>,
    /// Frequency mass of the haplotypes left out.
    pub unmapped_mass: f64,
    cache: Arc<RwLock<FxHashMap<String, Arc<Imputation>>>>,
}

/// The documented JSON layout for frequency sets users bring.
#[derive(Debug, Serialize, Deserialize)]
pub struct JsonSet {
    /// Population name (`API`, `EUR`, … or any label).
    pub population: String,
    /// Locus names, in the order of each haplotype's alleles.
    pub loci: Vec<String>,
    pub haplotypes: Vec<JsonHaplotype>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct JsonHaplotype {
    /// Allele names (`A*01:01`, `HLA-A*01:01g`, `A*01:01:01G`, `A*01:01P`).
    pub alleles: Vec<String>,
    pub frequency: f64,
}

/// The P key a frequency-set allele name maps to: `HLA-` and the ARD `g` suffix stripped,
/// then the P key of the first expressed allele the name stands for.
fn p_key_of(release: &Release, locus: Locus, name: &str) -> Option<PKeyId> {
    let bare = name.trim().trim_start_matches("HLA-");
    let bare = bare.strip_suffix('g').unwrap_or(bare);
    let locus_id = release.locus_id(locus.name())?;
    if !bare.starts_with(&format!("{}*", locus.name())) {
        return None;
    }
    if bare.ends_with('P') {
        return release.p_key_id(locus_id, bare);
    }
    let members: Vec<u32> = match bare.strip_suffix('G') {
        Some(_) => release.g_group(bare)?.members.clone(),
        None => release.alleles_with_prefix(bare).to_vec(),
    };
    members.into_iter().find_map(|a| release.allele(a).p_key)
}

impl HaplotypeSet {
    fn build(
        name: &str,
        loci: Vec<Locus>,
        rows: Vec<(usize, Vec<String>, f64)>,
        release: &Release,
    ) -> Result<HaplotypeSet, FrequencyError> {
        let mut set = HaplotypeSet {
            name: name.to_string(),
            loci,
            keys: Vec::new(),
            freqs: Vec::new(),
            unmapped: Vec::new(),
            unmapped_mass: 0.0,
            cache: Arc::default(),
        };
        // Haplotypes are sorted by their keys so results never depend on file order.
        let mut mapped: Vec<(Vec<PKeyId>, f64)> = Vec::new();
        for (line, names, freq) in rows {
            if names.len() != set.loci.len() {
                return Err(FrequencyError::Format {
                    line,
                    reason: format!("{} alleles for {} loci", names.len(), set.loci.len()),
                });
            }
            if !(freq.is_finite() && freq >= 0.0) {
                return Err(FrequencyError::Format {
                    line,
                    reason: format!("frequency {freq} is not a non-negative number"),
                });
            }
            let mut keys = Vec::with_capacity(names.len());
            for (l, n) in set.loci.iter().zip(&names) {
                match p_key_of(release, *l, n) {
                    Some(k) => keys.push(k),
                    None => {
                        if !set.unmapped.contains(n) {
                            set.unmapped.push(n.clone());
                        }
                    }
                }
            }
            if keys.len() == names.len() {
                mapped.push((keys, freq));
            } else {
                set.unmapped_mass += freq;
            }
        }
        mapped.sort_by(|a, b| a.0.cmp(&b.0));
        // The same keys twice (two g groups with one P key): one haplotype, frequencies added.
        for (keys, f) in mapped {
            if set.keys.last() == Some(&keys) {
                *set.freqs.last_mut().expect("parallel") += f;
            } else {
                set.keys.push(keys);
                set.freqs.push(f);
            }
        }
        Ok(set)
    }

    /// The NMDP five-locus layout (`race,haplotype,freq,rank`; `~`-joined `HLA-A*01:01g`
    /// names in A~C~B~DRB1~DQB1 order). `population` = `GLOBAL` (or a population absent from
    /// the file, with `fallback_to_global`) averages all populations of the file.
    pub fn from_nmdp_csv(
        text: &str,
        population: &str,
        fallback_to_global: bool,
        release: &Release,
    ) -> Result<HaplotypeSet, FrequencyError> {
        let mut by_pop: FxHashMap<String, Vec<(usize, Vec<String>, f64)>> = FxHashMap::default();
        let mut order: Vec<String> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with("race,") || line.starts_with('#') {
                continue;
            }
            let cols: Vec<&str> = line.split(',').collect();
            if cols.len() < 3 {
                return Err(FrequencyError::Format {
                    line: i + 1,
                    reason: "expected race,haplotype,freq[,rank]".into(),
                });
            }
            let freq: f64 = cols[2].trim().parse().map_err(|_| FrequencyError::Format {
                line: i + 1,
                reason: format!("frequency `{}` is not a number", cols[2]),
            })?;
            let pop = cols[0].trim().to_ascii_uppercase();
            if !order.contains(&pop) {
                order.push(pop.clone());
            }
            by_pop.entry(pop).or_default().push((
                i + 1,
                cols[1].split('~').map(str::to_string).collect(),
                freq,
            ));
        }
        let wanted = population.to_ascii_uppercase();
        let (name, rows) = match by_pop.remove(&wanted) {
            Some(rows) if wanted != "GLOBAL" => (wanted, rows),
            _ if wanted == "GLOBAL" || fallback_to_global => {
                let n = order.len().max(1) as f64;
                let mut all: Vec<(usize, Vec<String>, f64)> = order
                    .iter()
                    .filter_map(|p| by_pop.get(p).cloned())
                    .flatten()
                    .collect();
                if let Some(rows) = by_pop.get(&wanted) {
                    all.extend(rows.iter().cloned());
                }
                for row in &mut all {
                    row.2 /= n;
                }
                ("GLOBAL".to_string(), all)
            }
            _ => {
                return Err(FrequencyError::UnknownPopulation {
                    population: population.into(),
                    known: order.join(", "),
                });
            }
        };
        if rows.is_empty() {
            return Err(FrequencyError::UnknownPopulation {
                population: population.into(),
                known: order.join(", "),
            });
        }
        Self::build(&name, SET_LOCI.to_vec(), rows, release)
    }

    /// The JSON layout (see [`JsonSet`]).
    pub fn from_json(text: &str, release: &Release) -> Result<HaplotypeSet, FrequencyError> {
        let parsed: JsonSet =
            serde_json::from_str(text).map_err(|e| FrequencyError::Json(e.to_string()))?;
        let loci = parsed
            .loci
            .iter()
            .map(|l| {
                Locus::from_name(l)
                    .filter(|l| SET_LOCI.contains(l))
                    .ok_or_else(|| FrequencyError::Locus(l.clone()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let rows = parsed
            .haplotypes
            .into_iter()
            .enumerate()
            .map(|(i, h)| (i + 1, h.alleles, h.frequency))
            .collect();
        Self::build(&parsed.population, loci, rows, release)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn slot(&self, locus: Locus) -> Option<usize> {
        self.loci.iter().position(|l| *l == locus)
    }

    /// Per haplotype and set locus: 2 bits (fits position 1, fits position 2) of the typing.
    fn fits(&self, subject: &Subject) -> Vec<u32> {
        let per_locus: Vec<Option<[Option<&PositionInfo>; 2]>> = self
            .loci
            .iter()
            .map(|l| {
                subject[l.index()].as_ref().map(|pair| {
                    // A null or NEW position cannot be told from the set's expressed groups:
                    // it fits any haplotype.
                    [usable(&pair[0]), usable(&pair[1])]
                })
            })
            .collect();
        self.keys
            .iter()
            .map(|keys| {
                let mut sig = 0u32;
                for (s, pos) in per_locus.iter().enumerate() {
                    let bits = match pos {
                        None => 3,
                        Some(pair) => {
                            let fit = |p: Option<&PositionInfo>| match p {
                                None => true,
                                Some(info) => match &info.set.kind {
                                    PositionKind::Expressed(set) => set.contains(keys[s]),
                                    _ => true,
                                },
                            };
                            u32::from(fit(pair[0])) | (u32::from(fit(pair[1])) << 1)
                        }
                    };
                    sig |= bits << (2 * s);
                }
                sig
            })
            .collect()
    }

    fn compatible(&self, a: u32, b: u32) -> bool {
        (0..self.loci.len()).all(|s| {
            let (x, y) = ((a >> (2 * s)) & 3, (b >> (2 * s)) & 3);
            (x & 1 != 0 && y & 2 != 0) || (x & 2 != 0 && y & 1 != 0)
        })
    }

    /// A typing's candidate haplotypes (each fits one position at every locus) with their
    /// fit signatures; cached per typing text.
    fn candidates(&self, subject: &Subject) -> Arc<Imputation> {
        let key = subject_key(subject);
        if let Some(hit) = self.cache.read().expect("cache").get(&key) {
            return hit.clone();
        }
        let fits = self.fits(subject);
        let candidates: Vec<(u32, u32)> = fits
            .iter()
            .enumerate()
            .filter(|(_, sig)| (0..self.loci.len()).all(|s| (*sig >> (2 * s)) & 3 != 0))
            .map(|(i, &sig)| (i as u32, sig))
            .collect();
        let value = Arc::new(Imputation { candidates });
        let mut cache = self.cache.write().expect("cache");
        if cache.len() > 200_000 {
            cache.clear();
        }
        cache.insert(key, value.clone());
        value
    }

    /// The haplotype pairs (h1 ≤ h2, indexes into the set) consistent with a typing, and
    /// their likelihoods f(h1)·f(h2), doubled when h1 ≠ h2. Only candidates (haplotypes that
    /// fit a position at every locus) are paired, grouped by fit signature so only
    /// compatible groups are combined.
    pub fn impute(&self, subject: &Subject) -> Vec<(u32, u32, f64)> {
        let imp = self.candidates(subject);
        let mut groups: FxHashMap<u32, Vec<u32>> = FxHashMap::default();
        for &(h, sig) in &imp.candidates {
            groups.entry(sig).or_default().push(h);
        }
        let mut sigs: Vec<u32> = groups.keys().copied().collect();
        sigs.sort_unstable();
        let mut out = Vec::new();
        for (i, &s) in sigs.iter().enumerate() {
            for &t in &sigs[i..] {
                if !self.compatible(s, t) {
                    continue;
                }
                let (gs, gt) = (&groups[&s], &groups[&t]);
                for &a in gs {
                    for &b in gt {
                        if s == t && b < a {
                            continue;
                        }
                        let f = self.freqs[a as usize] * self.freqs[b as usize];
                        let (lo, hi) = (a.min(b), a.max(b));
                        out.push((lo, hi, if a == b { f } else { 2.0 * f }));
                    }
                }
            }
        }
        out
    }

    /// Haplotype names (P keys) of haplotype `h`, for display.
    pub fn haplotype_keys(&self, h: u32, release: &Release) -> Vec<String> {
        self.loci
            .iter()
            .zip(&self.keys[h as usize])
            .map(|(l, &k)| {
                release
                    .locus_id(l.name())
                    .map_or(String::new(), |id| release.p_key_name(id, k).to_string())
            })
            .collect()
    }

    pub fn frequency(&self, h: u32) -> f64 {
        self.freqs[h as usize]
    }

    /// P(0), P(1), P(2), P(>2) mismatches over `loci` and per locus, for a patient and a donor.
    pub fn match_probability(
        &self,
        patient: &Subject,
        donor: &Subject,
        loci: &[Locus],
    ) -> Result<MatchProbability, FrequencyError> {
        let slots: Vec<(Locus, usize)> = loci
            .iter()
            .map(|l| {
                self.slot(*l)
                    .map(|s| (*l, s))
                    .ok_or_else(|| FrequencyError::Locus(l.name().into()))
            })
            .collect::<Result<_, _>>()?;
        let mut result = MatchProbability::empty(loci);
        // Patient genotypes, projected onto the searched loci and merged.
        let mut patient_genotypes: FxHashMap<Vec<(PKeyId, PKeyId)>, f64> = FxHashMap::default();
        for (a, b, w) in self.impute(patient) {
            let proj: Vec<(PKeyId, PKeyId)> = slots
                .iter()
                .map(|&(_, s)| {
                    let (x, y) = (self.keys[a as usize][s], self.keys[b as usize][s]);
                    (x.min(y), x.max(y))
                })
                .collect();
            *patient_genotypes.entry(proj).or_default() += w;
        }
        let donor = self.candidates(donor);
        result.patient_unrepresented = patient_genotypes.is_empty();
        // The donor's total likelihood, by fit signature alone.
        let mut by_fit: FxHashMap<u32, f64> = FxHashMap::default();
        for &(h, sig) in &donor.candidates {
            *by_fit.entry(sig).or_default() += self.freqs[h as usize];
        }
        let fit_groups: Vec<(u32, f64)> = sorted_groups(by_fit);
        let mut donor_total = 0.0;
        for (i, &(s, fs)) in fit_groups.iter().enumerate() {
            for &(t, ft) in &fit_groups[i..] {
                if self.compatible(s, t) {
                    donor_total += if s == t { fs * fs } else { 2.0 * fs * ft };
                }
            }
        }
        result.donor_unrepresented = donor_total <= 0.0;
        if result.patient_unrepresented || result.donor_unrepresented {
            return Ok(result);
        }
        let patient_total: f64 = patient_genotypes.values().sum();
        let n = slots.len();
        debug_assert!(n <= 16, "class bits hold 16 loci");
        let mut totals = [0.0f64; 4];
        let mut per_locus = vec![[0.0f64; 3]; n];
        let mut genotypes: Vec<(Vec<(PKeyId, PKeyId)>, f64)> =
            patient_genotypes.into_iter().collect();
        genotypes.sort_by(|a, b| a.0.cmp(&b.0));
        for (g, wp) in genotypes {
            // Group donor candidates by (fit signature, equality with the patient's keys).
            let mut groups: FxHashMap<(u32, u32), f64> = FxHashMap::default();
            for &(h, sig) in &donor.candidates {
                let keys = &self.keys[h as usize];
                let mut class = 0u32;
                for (i, &(_, s)) in slots.iter().enumerate() {
                    let k = keys[s];
                    class |= (u32::from(k == g[i].0) | (u32::from(k == g[i].1) << 1)) << (2 * i);
                }
                *groups.entry((sig, class)).or_default() += self.freqs[h as usize];
            }
            let mut groups: Vec<((u32, u32), f64)> = groups.into_iter().collect();
            groups.sort_by_key(|g| g.0);
            for (i, &((fs, cs), f1)) in groups.iter().enumerate() {
                for &((ft, ct), f2) in &groups[i..] {
                    if !self.compatible(fs, ft) {
                        continue;
                    }
                    let mass = if (fs, cs) == (ft, ct) {
                        f1 * f1
                    } else {
                        2.0 * f1 * f2
                    } * wp;
                    let mut total = 0usize;
                    for (l, locus_acc) in per_locus.iter_mut().enumerate() {
                        let (x, y) = ((cs >> (2 * l)) & 3, (ct >> (2 * l)) & 3);
                        let m = [[x & 1 != 0, y & 1 != 0], [x & 2 != 0, y & 2 != 0]];
                        let mm = (2 - match_count(m)) as usize;
                        locus_acc[mm] += mass;
                        total += mm;
                    }
                    totals[total.min(3)] += mass;
                }
            }
        }
        let denom = patient_total * donor_total;
        result.p0 = Some(totals[0] / denom);
        result.p1 = Some(totals[1] / denom);
        result.p2 = Some(totals[2] / denom);
        result.p_more = Some(totals[3] / denom);
        for (i, (_, acc)) in result.per_locus.iter_mut().enumerate() {
            *acc = Some([
                per_locus[i][0] / denom,
                per_locus[i][1] / denom,
                per_locus[i][2] / denom,
            ]);
        }
        Ok(result)
    }
}

fn usable(p: &Arc<PositionInfo>) -> Option<&PositionInfo> {
    matches!(p.set.kind, PositionKind::Expressed(_)).then_some(&**p)
}

fn sorted_groups(map: FxHashMap<u32, f64>) -> Vec<(u32, f64)> {
    let mut v: Vec<(u32, f64)> = map.into_iter().collect();
    v.sort_by_key(|a| a.0);
    v
}

fn subject_key(subject: &Subject) -> String {
    let mut key = String::new();
    for (l, pair) in subject.iter().enumerate() {
        if let Some([a, b]) = pair {
            key.push_str(&format!("{l}:{}+{};", a.text, b.text));
        }
    }
    key
}

/// Cached per typing: the candidate haplotypes and their fit signatures.
#[derive(Debug)]
pub struct Imputation {
    candidates: Vec<(u32, u32)>,
}

impl Imputation {
    pub fn candidate_count(&self) -> usize {
        self.candidates.len()
    }
}

/// P(k mismatches) over the searched loci and per locus; `None` when a side is unrepresented.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MatchProbability {
    pub loci: Vec<String>,
    pub p0: Option<f64>,
    pub p1: Option<f64>,
    pub p2: Option<f64>,
    pub p_more: Option<f64>,
    /// Per locus: [P(0), P(1), P(2)] mismatches.
    #[serde(skip)]
    pub per_locus: Vec<(Locus, Option<[f64; 3]>)>,
    pub patient_unrepresented: bool,
    pub donor_unrepresented: bool,
}

impl MatchProbability {
    fn empty(loci: &[Locus]) -> MatchProbability {
        MatchProbability {
            loci: loci.iter().map(|l| l.name().to_string()).collect(),
            p0: None,
            p1: None,
            p2: None,
            p_more: None,
            per_locus: loci.iter().map(|l| (*l, None)).collect(),
            patient_unrepresented: false,
            donor_unrepresented: false,
        }
    }

    /// The all-loci 0-mismatch probability.
    pub fn p_match(&self) -> Option<f64> {
        self.p0
    }

    /// As the JSON object `boai match probability` prints.
    pub fn to_json(&self) -> serde_json::Value {
        let per_locus: serde_json::Map<String, serde_json::Value> = self
            .per_locus
            .iter()
            .map(|(l, p)| {
                (
                    l.name().to_string(),
                    match p {
                        Some([a, b, c]) => serde_json::json!({"p0": a, "p1": b, "p2": c}),
                        None => serde_json::Value::Null,
                    },
                )
            })
            .collect();
        serde_json::json!({
            "loci": self.loci, "p0": self.p0, "p1": self.p1, "p2": self.p2, "p_more": self.p_more,
            "per_locus": per_locus,
            "patient_unrepresented": self.patient_unrepresented, "donor_unrepresented": self.donor_unrepresented,
        })
    }
}
