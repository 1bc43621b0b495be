//! Reproducible synthetic donor and patient populations: two haplotypes per person drawn
//! from a five-locus frequency file (A~C~B~DRB1~DQB1), mapped to alleles of the loaded
//! release, degraded to the resolution mix real registries hold, plus donor attributes.
//! Same seed, same population: the generator is a fixed xoshiro256** seeded per block of
//! people, so the output does not depend on thread count or on dependency versions.

use std::path::Path;

use hla::{Expander, MacDictionary, Release};
use matching::{Abo, Cmv, CordCells, DonorAttributes, DonorType, Locus, Sex, Status};
use rayon::prelude::*;
use rustc_hash::FxHashMap;

mod rng;
pub use rng::Rng;

#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Format {
        path: String,
        line: usize,
        reason: String,
    },
    #[error("population `{0}` is not in the frequency file (it has: {1})")]
    UnknownPopulation(String, String),
}

/// The share of each resolution in a synthetic population.
#[derive(Debug, Clone, Copy)]
pub struct ResolutionMix {
    /// Donors typed at high resolution (two-field names or G groups) at every typed locus.
    pub high: f64,
    /// Donors typed with MACs.
    pub mac: f64,
    /// Of the rest: XX codes with this probability, else serology.
    pub xx_of_rest: f64,
    /// Probability that C, DQB1, DPB1 are untyped for a low-resolution donor.
    pub untyped: [f64; 3],
}

impl Default for ResolutionMix {
    /// Close to the Atlas 20k corpus: about a third high resolution, a third MACs, the rest
    /// XX and serology; C untyped in ~37%, DQB1 ~54%, DPB1 ~65% of donors.
    fn default() -> Self {
        ResolutionMix {
            high: 0.34,
            mac: 0.34,
            xx_of_rest: 0.62,
            untyped: [0.56, 0.80, 0.97],
        }
    }
}

/// One synthetic person: a cell index per locus position into [`Synth::cell_text`]
/// (`None` untyped), and attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    pub key: u32,
    pub cells: [[Option<u32>; 2]; 6],
    /// The true two-field alleles (for tests and probability checks).
    pub truth: [[u32; 2]; 6],
    pub donor_type: DonorType,
    pub status: Status,
    pub birth_day: u16,
    pub sex: Sex,
    pub abo: Abo,
    pub rh_positive: bool,
    pub cmv: Cmv,
    pub registry: u8,
    pub cord: Option<CordCells>,
}

/// How one true allele can be written.
#[derive(Debug, Clone)]
struct Forms {
    high: u32,
    g_group: Option<u32>,
    xx: u32,
    serology: Option<u32>,
    macs: Vec<u32>,
}

pub struct Synth {
    population: String,
    /// Per locus: the cell texts (Atlas style, without locus: `*02:01`, `*02:AB`, `24`).
    texts: [Vec<String>; 6],
    /// Per locus: true allele index → its forms. The true allele's high form text is
    /// `texts[locus][forms.high]`.
    forms: [Vec<Forms>; 6],
    /// Haplotypes as true allele indexes for A, B, C, DRB1, DQB1, and cumulative frequency.
    haplotypes: Vec<[u32; 5]>,
    cumulative: Vec<f64>,
    /// DPB1: true allele indexes and cumulative frequencies.
    dpb1: Vec<u32>,
    dpb1_cumulative: Vec<f64>,
    pub mix: ResolutionMix,
    /// Frequency-file names the release could not place.
    pub unmapped: Vec<String>,
    pub registries: Vec<String>,
}

/// Approximate DPB1 allele frequencies (the five-locus file has no DPB1): common East Asian
/// and European alleles, normalised at load.
const DPB1_FREQUENCIES: &[(&str, f64)] = &[
    ("05:01", 0.33),
    ("02:01", 0.17),
    ("04:01", 0.12),
    ("02:02", 0.06),
    ("04:02", 0.07),
    ("03:01", 0.06),
    ("09:01", 0.05),
    ("13:01", 0.04),
    ("14:01", 0.03),
    ("01:01", 0.03),
    ("17:01", 0.02),
    ("06:01", 0.02),
];

/// Five-locus file order A~C~B~DRB1~DQB1 → our locus order.
const FILE_LOCI: [Locus; 5] = [Locus::A, Locus::C, Locus::B, Locus::Drb1, Locus::Dqb1];
const MACS_PER_ALLELE: usize = 12;
const BLOCK: usize = 4096;

struct Builder<'a> {
    release: &'a Release,
    macs_by_entry: FxHashMap<String, Vec<String>>,
    texts: [Vec<String>; 6],
    text_ids: [FxHashMap<String, u32>; 6],
    forms: [Vec<Forms>; 6],
    form_ids: [FxHashMap<String, u32>; 6],
}

impl Builder<'_> {
    fn text(&mut self, locus: Locus, text: String) -> u32 {
        let l = locus.index();
        if let Some(&id) = self.text_ids[l].get(&text) {
            return id;
        }
        let id = self.texts[l].len() as u32;
        self.texts[l].push(text.clone());
        self.text_ids[l].insert(text, id);
        id
    }

    /// The forms of a two-field allele (`A*02:01`), or None if the release lacks it.
    fn allele(&mut self, locus: Locus, two_field: &str) -> Option<u32> {
        let l = locus.index();
        if let Some(&id) = self.form_ids[l].get(two_field) {
            return Some(id);
        }
        let release = self.release;
        let ids = release.alleles_with_prefix(two_field);
        let first = ids
            .iter()
            .map(|&a| release.allele(a))
            .find(|a| !a.is_null())?;
        let fields = two_field.split_once('*')?.1.to_string();
        let (group, second) = fields.split_once(':')?;
        let high = self.text(locus, format!("*{fields}"));
        let g_group = first.g_group.map(|g| {
            let name = &release.g_groups[g as usize].name;
            let t = format!("*{}", name.split_once('*').map_or("", |x| x.1));
            self.text(locus, t)
        });
        let xx = self.text(locus, format!("*{group}:XX"));
        let serology = first
            .primary_serology
            .clone()
            .filter(|_| locus != Locus::Dpb1)
            .map(|s| self.text(locus, s));
        let mut macs = Vec::new();
        if let Some(codes) = self.macs_by_entry.get(second).cloned() {
            for code in codes.into_iter().take(MACS_PER_ALLELE) {
                macs.push(self.text(locus, format!("*{group}:{code}")));
            }
        }
        let id = self.forms[l].len() as u32;
        self.forms[l].push(Forms {
            high,
            g_group,
            xx,
            serology,
            macs,
        });
        self.form_ids[l].insert(two_field.to_string(), id);
        Some(id)
    }
}

impl Synth {
    /// Load a population from an NMDP five-locus frequency file (`race,haplotype,freq,rank`).
    pub fn new(expander: &Expander, freqs: &Path, population: &str) -> Result<Synth, SynthError> {
        let text = std::fs::read_to_string(freqs).map_err(|source| SynthError::Io {
            path: freqs.display().to_string(),
            source,
        })?;
        let release = expander.release();
        let mut builder = Builder {
            release,
            macs_by_entry: mac_reverse_index(expander.macs()),
            texts: Default::default(),
            text_ids: Default::default(),
            forms: Default::default(),
            form_ids: Default::default(),
        };
        let mut haplotypes = Vec::new();
        let mut cumulative = Vec::new();
        let mut unmapped = Vec::new();
        let mut populations: Vec<String> = Vec::new();
        let mut total = 0.0;
        for (i, line) in text.lines().enumerate() {
            let cols: Vec<&str> = line.trim().split(',').collect();
            if cols.len() < 3 || cols[0] == "race" {
                continue;
            }
            if !populations.iter().any(|p| p == cols[0]) {
                populations.push(cols[0].to_string());
            }
            if !cols[0].eq_ignore_ascii_case(population) {
                continue;
            }
            let freq: f64 = cols[2].parse().map_err(|_| SynthError::Format {
                path: freqs.display().to_string(),
                line: i + 1,
                reason: format!("frequency `{}` is not a number", cols[2]),
            })?;
            let names: Vec<&str> = cols[1].split('~').collect();
            if names.len() != 5 {
                return Err(SynthError::Format {
                    path: freqs.display().to_string(),
                    line: i + 1,
                    reason: "expected five loci A~C~B~DRB1~DQB1".into(),
                });
            }
            let mut hap = [0u32; 5];
            let mut ok = true;
            for (k, name) in names.iter().enumerate() {
                let bare = name.trim_start_matches("HLA-").trim_end_matches('g');
                let locus = FILE_LOCI[k];
                let two: Vec<&str> = bare.split(':').take(2).collect();
                match builder.allele(locus, &two.join(":")) {
                    Some(id) => hap[locus_slot(locus)] = id,
                    None => {
                        ok = false;
                        if !unmapped.iter().any(|u| u == name) {
                            unmapped.push(name.to_string());
                        }
                    }
                }
            }
            if ok && freq > 0.0 {
                total += freq;
                haplotypes.push(hap);
                cumulative.push(total);
            }
        }
        if haplotypes.is_empty() {
            return Err(SynthError::UnknownPopulation(
                population.to_string(),
                populations.join(", "),
            ));
        }
        let mut dpb1 = Vec::new();
        let mut dpb1_cumulative = Vec::new();
        let mut acc = 0.0;
        for (name, f) in DPB1_FREQUENCIES {
            if let Some(id) = builder.allele(Locus::Dpb1, &format!("DPB1*{name}")) {
                acc += f;
                dpb1.push(id);
                dpb1_cumulative.push(acc);
            }
        }
        Ok(Synth {
            population: population.to_ascii_uppercase(),
            texts: builder.texts,
            forms: builder.forms,
            haplotypes,
            cumulative,
            dpb1,
            dpb1_cumulative,
            mix: ResolutionMix::default(),
            unmapped,
            registries: (1..=31).map(|i| format!("CMDP-{i:02}")).collect(),
        })
    }

    pub fn population(&self) -> &str {
        &self.population
    }

    pub fn haplotype_count(&self) -> usize {
        self.haplotypes.len()
    }

    /// Atlas-style cell text (no locus): `*02:01`, `*02:AB`, `*02:XX`, `24`.
    pub fn cell_text(&self, locus: Locus, cell: u32) -> &str {
        &self.texts[locus.index()][cell as usize]
    }

    /// The true allele's two-field name (`*02:01`).
    pub fn truth_text(&self, locus: Locus, allele: u32) -> &str {
        &self.texts[locus.index()][self.forms[locus.index()][allele as usize].high as usize]
    }

    /// A cell as a GL token with its locus (`A*02:01`, `A24`, `Cw3`, `DR4`).
    pub fn gl_token(&self, locus: Locus, cell: u32) -> String {
        let text = self.cell_text(locus, cell);
        if text.starts_with('*') {
            format!("{}{text}", locus.name())
        } else {
            let prefix = match locus {
                Locus::C => "Cw",
                Locus::Drb1 => "DR",
                Locus::Dqb1 => "DQ",
                Locus::Dpb1 => "DP",
                other => other.name(),
            };
            format!("{prefix}{text}")
        }
    }

    /// The person's typing as a GL string (untyped loci left out).
    pub fn gl_string(&self, person: &Person) -> String {
        let mut parts = Vec::new();
        for locus in Locus::ALL {
            if let [Some(a), Some(b)] = person.cells[locus.index()] {
                parts.push(format!(
                    "{}+{}",
                    self.gl_token(locus, a),
                    self.gl_token(locus, b)
                ));
            }
        }
        parts.join("^")
    }

    pub fn attributes(&self, person: &Person) -> DonorAttributes {
        DonorAttributes {
            donor_type: person.donor_type,
            status: person.status,
            birth_day: Some(person.birth_day),
            sex: person.sex,
            abo: person.abo,
            rh_positive: Some(person.rh_positive),
            cmv: person.cmv,
            registry: self.registries[person.registry as usize].clone(),
            population: self.population.clone(),
            cord: person.cord,
        }
    }

    fn draw_haplotype(&self, rng: &mut Rng) -> [u32; 5] {
        let total = *self.cumulative.last().expect("non-empty");
        let x = rng.f64() * total;
        let i = self
            .cumulative
            .partition_point(|&c| c <= x)
            .min(self.haplotypes.len() - 1);
        self.haplotypes[i]
    }

    fn draw_dpb1(&self, rng: &mut Rng) -> u32 {
        let total = *self.dpb1_cumulative.last().expect("DPB1 table");
        let x = rng.f64() * total;
        self.dpb1[self
            .dpb1_cumulative
            .partition_point(|&c| c <= x)
            .min(self.dpb1.len() - 1)]
    }

    fn person(&self, key: u32, rng: &mut Rng, patient: bool) -> Person {
        let h1 = self.draw_haplotype(rng);
        let h2 = self.draw_haplotype(rng);
        let mut truth = [[0u32; 2]; 6];
        for locus in [Locus::A, Locus::B, Locus::C, Locus::Drb1, Locus::Dqb1] {
            truth[locus.index()] = [h1[locus_slot(locus)], h2[locus_slot(locus)]];
        }
        truth[Locus::Dpb1.index()] = [self.draw_dpb1(rng), self.draw_dpb1(rng)];
        let mix = self.mix;
        let profile = if patient { 0.0 } else { rng.f64() };
        let mut cells = [[None; 2]; 6];
        for locus in Locus::ALL {
            let l = locus.index();
            let high = profile < mix.high;
            let untyped_p = match locus {
                Locus::C => mix.untyped[0],
                Locus::Dqb1 => mix.untyped[1],
                Locus::Dpb1 => mix.untyped[2],
                _ => 0.0,
            };
            let untyped_p = if patient {
                0.0
            } else if high {
                untyped_p * 0.3
            } else {
                untyped_p
            };
            if rng.f64() < untyped_p {
                continue;
            }
            for p in 0..2 {
                let forms = &self.forms[l][truth[l][p] as usize];
                let cell = if high {
                    match forms.g_group {
                        Some(g) if !patient && rng.f64() < 0.3 => g,
                        _ => forms.high,
                    }
                } else if profile < mix.high + mix.mac && !forms.macs.is_empty() {
                    forms.macs[rng.below(forms.macs.len())]
                } else {
                    match forms.serology {
                        Some(serology) if rng.f64() >= mix.xx_of_rest => serology,
                        _ => forms.xx,
                    }
                };
                cells[l][p] = Some(cell);
            }
        }
        let cord = !patient && rng.f64() < 0.05;
        let age = if cord {
            0.0
        } else {
            18.0 + 42.0 * rng.f64().powf(1.4)
        };
        let birth_day = (days_2026() as f64 - age * 365.25 - rng.f64() * 365.0).max(0.0) as u16;
        let abo = match rng.f64() {
            x if x < 0.30 => Abo::O,
            x if x < 0.58 => Abo::A,
            x if x < 0.88 => Abo::B,
            _ => Abo::Ab,
        };
        Person {
            key,
            cells,
            truth,
            donor_type: if cord {
                DonorType::Cord
            } else {
                DonorType::Adult
            },
            status: match rng.f64() {
                x if x < 0.93 => Status::Available,
                x if x < 0.98 => Status::TemporarilyUnavailable,
                x if x < 0.99 => Status::Reserved,
                _ => Status::Deferred,
            },
            birth_day,
            sex: if rng.f64() < 0.52 {
                Sex::Male
            } else {
                Sex::Female
            },
            abo,
            rh_positive: rng.f64() < 0.995,
            cmv: if rng.f64() < 0.6 {
                Cmv::Positive
            } else {
                Cmv::Negative
            },
            registry: (rng.below(31)) as u8,
            cord: cord.then(|| CordCells {
                tnc_e7: (60.0 + 120.0 * rng.f64()) as f32,
                cd34_e5: (10.0 + 40.0 * rng.f64()) as f32,
            }),
        }
    }

    fn people(&self, count: usize, seed: u64, patient: bool, first_key: u32) -> Vec<Person> {
        (0..count.div_ceil(BLOCK))
            .into_par_iter()
            .flat_map_iter(|block| {
                let mut rng = Rng::for_block(
                    seed ^ if patient { 0x5041_5449_454E_5453 } else { 0 },
                    block as u64,
                );
                let start = block * BLOCK;
                let end = (start + BLOCK).min(count);
                (start..end)
                    .map(|i| self.person(first_key + i as u32, &mut rng, patient))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// `count` donors with keys 1..=count.
    pub fn donors(&self, count: usize, seed: u64) -> Vec<Person> {
        self.people(count, seed, false, 1)
    }

    /// `count` patients, typed at high resolution at all six loci, keys 1..=count.
    pub fn patients(&self, count: usize, seed: u64) -> Vec<Person> {
        self.people(count, seed, true, 1)
    }
}

fn locus_slot(locus: Locus) -> usize {
    match locus {
        Locus::A => 0,
        Locus::B => 1,
        Locus::C => 2,
        Locus::Drb1 => 3,
        Locus::Dqb1 => 4,
        Locus::Dpb1 => unreachable!("DPB1 is not in the five-locus file"),
    }
}

fn days_2026() -> i64 {
    matching::model::days_from_civil(2026, 1, 1)
}

/// Generic MAC codes by the second field they list, small codes first, then by code.
fn mac_reverse_index(macs: &MacDictionary) -> FxHashMap<String, Vec<String>> {
    let mut by_entry: FxHashMap<String, Vec<(usize, String)>> = FxHashMap::default();
    for (code, mac) in macs.codes() {
        if mac.allele_specific || mac.entries.len() > 8 {
            continue;
        }
        for e in &mac.entries {
            by_entry
                .entry(e.clone())
                .or_default()
                .push((mac.entries.len(), code.to_string()));
        }
    }
    by_entry
        .into_iter()
        .map(|(k, mut v)| {
            v.sort();
            (k, v.into_iter().map(|(_, c)| c).collect())
        })
        .collect()
}
