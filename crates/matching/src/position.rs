//! What the engine knows about one distinct position typing (one gene copy as typed):
//! its P-group set, and the allele-level facts grades, confidence, antigen matching and
//! DPB1 permissiveness need. Built once per distinct typing text.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use hla::{
    AlleleId, AlleleList, Expander, PositionKind, PositionSet, TceGroup, Token, TypingError,
};
use rustc_hash::FxHasher;

/// DPB1 T-cell-epitope group of one position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PositionTce {
    Group(u8),
    Null,
    Unknown,
}

#[derive(Debug, Clone)]
pub struct PositionInfo {
    /// The typing as printed (`A*02:AB`).
    pub text: String,
    pub set: Arc<PositionSet>,
    /// The alleles kept by the null rule (expressed ones, or all when all are null), sorted.
    pub alleles: Box<[AlleleId]>,
    /// Serological antigens of those alleles (an allele without serology counts as its
    /// first field's antigen), sorted.
    pub antigens: Box<[u32]>,
    /// Hashes of the alleles' three- and two-field prefixes and their G groups, sorted.
    pub prefix3: Box<[u64]>,
    pub prefix2: Box<[u64]>,
    pub g_groups: Box<[u32]>,
    /// Every token is a serological antigen.
    pub serology_typed: bool,
    /// The serological antigens as typed (for serology-typed positions), with whether each
    /// is an associated antigen, sorted.
    pub typed_antigens: Box<[(u32, bool)]>,
    pub tce: PositionTce,
    /// The P-group key ids of an expressed position, ascending (empty for null and `NEW`):
    /// a few keys are probed in the other set's bits instead of AND-ing whole sets.
    pub p_keys: Box<[u32]>,
}

/// Up to this many keys, `meets` probes the other position's bits key by key.
const PROBE_KEYS: usize = 8;

fn hash_str(s: &str) -> u64 {
    let mut h = FxHasher::default();
    s.hash(&mut h);
    h.finish()
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Box<[T]> {
    v.sort_unstable();
    v.dedup();
    v.into_boxed_slice()
}

/// True when two sorted slices share an element. A short slice against a long one is
/// binary-searched (a low-resolution typing can stand for thousands of alleles).
pub(crate) fn sorted_intersect<T: Ord>(a: &[T], b: &[T]) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if short.len() * 16 < long.len() {
        return short.iter().any(|x| long.binary_search(x).is_ok());
    }
    let (mut i, mut j) = (0, 0);
    while i < short.len() && j < long.len() {
        match short[i].cmp(&long[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => return true,
        }
    }
    false
}

impl PositionInfo {
    pub fn new(expander: &Expander, list: &AlleleList) -> Result<PositionInfo, TypingError> {
        let set = expander.expand_list(list)?;
        let release = expander.release();
        let alternatives = expander.alternatives(list)?;
        let (kept, _) = alternatives.expressed_or_all_null(release);
        let mut antigens = Vec::new();
        let mut prefix3 = Vec::new();
        let mut prefix2 = Vec::new();
        let mut g_groups = Vec::new();
        let mut tce: Option<PositionTce> = None;
        for &id in &kept {
            let a = release.allele(id);
            if a.serology.is_empty() {
                if let Ok(n) = a.first_field().parse() {
                    antigens.push(n);
                }
            } else {
                antigens.extend(a.serology.iter().filter_map(|s| s.parse::<u32>().ok()));
            }
            prefix3.push(hash_str(&a.truncated(3)));
            prefix2.push(hash_str(&a.truncated(2)));
            if let Some(g) = a.g_group {
                g_groups.push(g);
            }
            let this = match a.tce {
                Some(TceGroup::Group(g)) => PositionTce::Group(g),
                Some(TceGroup::Null) => PositionTce::Null,
                None if a.is_null() => PositionTce::Null,
                None => PositionTce::Unknown,
            };
            tce = Some(match tce {
                None => this,
                Some(prev) if prev == this => prev,
                Some(_) => PositionTce::Unknown,
            });
        }
        let tce = match set.kind {
            PositionKind::Null => PositionTce::Null,
            PositionKind::New => PositionTce::Unknown,
            PositionKind::Expressed(_) => tce.unwrap_or(PositionTce::Unknown),
        };
        let typed_antigens = list
            .0
            .iter()
            .filter_map(|t| match t {
                Token::Serology { locus, antigen } => Some((
                    antigen.parse::<u32>().ok()?,
                    release.is_associated_antigen(*locus, antigen),
                )),
                _ => None,
            })
            .collect();
        let p_keys = match &set.kind {
            PositionKind::Expressed(keys) => keys.ids().collect(),
            _ => Box::default(),
        };
        Ok(PositionInfo {
            p_keys,
            text: list.to_string(),
            typed_antigens: sorted(typed_antigens),
            serology_typed: list.0.iter().all(|t| matches!(t, Token::Serology { .. })),
            set,
            alleles: sorted(kept),
            antigens: sorted(antigens),
            prefix3: sorted(prefix3),
            prefix2: sorted(prefix2),
            g_groups: sorted(g_groups),
            tce,
        })
    }

    pub fn is_null(&self) -> bool {
        self.set.is_null()
    }

    pub fn is_new(&self) -> bool {
        matches!(self.set.kind, PositionKind::New)
    }

    /// One allele only (after the null rule).
    pub fn single_allele(&self) -> bool {
        self.alleles.len() == 1 && !self.is_new()
    }

    /// Exactly one P-group key.
    pub fn single_p_key(&self) -> bool {
        self.p_keys.len() == 1
    }

    /// Rules §3: the sets intersect; `NEW` meets every set. Null positions meet nothing here
    /// (the caller substitutes the partner's set first).
    pub fn meets(&self, other: &PositionInfo) -> bool {
        match (&self.set.kind, &other.set.kind) {
            (PositionKind::New, _) | (_, PositionKind::New) => true,
            (PositionKind::Expressed(a), PositionKind::Expressed(b)) => {
                if self.p_keys.len() <= PROBE_KEYS {
                    self.p_keys.iter().any(|&k| b.contains(k))
                } else if other.p_keys.len() <= PROBE_KEYS {
                    other.p_keys.iter().any(|&k| a.contains(k))
                } else {
                    a.intersects(b)
                }
            }
            _ => false,
        }
    }

    pub fn shares_antigen(&self, other: &PositionInfo) -> bool {
        sorted_intersect(&self.antigens, &other.antigens)
    }
}
