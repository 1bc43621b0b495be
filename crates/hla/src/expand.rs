//! Expansion of one position's typing to its set of P-group keys (rules, section 3), with
//! memoisation: a registry holds millions of donors but only tens of thousands of distinct
//! typing strings.

use std::sync::{Arc, RwLock};

use bitvec::prelude::*;
use rustc_hash::FxHashMap;

use crate::error::TypingError;
use crate::gl::AlleleList;
use crate::mac::MacDictionary;
use crate::release::{AlleleId, LocusId, PKeyId, Release};
use crate::token::{SerologyLocus, Token};

/// A set of P-group keys of one locus as a bit set over the locus's interned key ids, so
/// "do these two typings share a P group" is a word-wise AND.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PSet {
    bits: BitVec<u64, Lsb0>,
}

impl PSet {
    pub fn new(key_count: usize) -> PSet {
        PSet {
            bits: bitvec![u64, Lsb0; 0; key_count],
        }
    }
    pub fn insert(&mut self, id: PKeyId) {
        self.bits.set(id as usize, true);
    }
    pub fn contains(&self, id: PKeyId) -> bool {
        let id = id as usize;
        self.bits
            .as_raw_slice()
            .get(id / 64)
            .is_some_and(|w| w >> (id % 64) & 1 != 0)
    }
    /// True when the two sets share a key: a word-wise AND over the raw words.
    pub fn intersects(&self, other: &PSet) -> bool {
        self.bits
            .as_raw_slice()
            .iter()
            .zip(other.bits.as_raw_slice())
            .any(|(a, b)| a & b != 0)
    }
    pub fn len(&self) -> usize {
        self.bits.count_ones()
    }
    pub fn is_empty(&self) -> bool {
        self.bits.not_any()
    }
    pub fn ids(&self) -> impl Iterator<Item = PKeyId> + '_ {
        self.bits.iter_ones().map(|i| i as PKeyId)
    }
    pub fn words(&self) -> &[u64] {
        self.bits.as_raw_slice()
    }
}

/// What one position expresses.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PositionKind {
    /// The P-group keys the position can be (never empty).
    Expressed(PSet),
    /// Every alternative is a null allele: the position expresses nothing.
    Null,
    /// `NEW`: typed but unassigned; meets every set.
    New,
}

/// The expansion of one position's typing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PositionSet {
    pub locus: LocusId,
    pub kind: PositionKind,
    /// Things the reader should know, e.g. a deleted name read as its successor.
    pub warnings: Vec<String>,
}

impl PositionSet {
    pub fn is_null(&self) -> bool {
        matches!(self.kind, PositionKind::Null)
    }
    /// P-group key names in nomenclature order.
    pub fn p_key_names<'r>(&self, release: &'r Release) -> Vec<&'r str> {
        match &self.kind {
            PositionKind::Expressed(set) => set
                .ids()
                .map(|id| release.p_key_name(self.locus, id))
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// The alleles a typing stands for, before the null rule is applied.
#[derive(Debug, Clone, Default)]
pub struct Alternatives {
    pub alleles: Vec<AlleleId>,
    pub new: bool,
    pub warnings: Vec<String>,
}

impl Alternatives {
    /// The alternatives section 3 keeps: the expressed ones, or all when every one is null.
    pub fn expressed_or_all_null(&self, release: &Release) -> (Vec<AlleleId>, bool) {
        let expressed: Vec<AlleleId> = self
            .alleles
            .iter()
            .copied()
            .filter(|&a| !release.allele(a).is_null())
            .collect();
        if expressed.is_empty() && !self.alleles.is_empty() {
            (self.alleles.clone(), true)
        } else {
            (expressed, false)
        }
    }
}

type Memo = RwLock<FxHashMap<String, Result<Arc<PositionSet>, TypingError>>>;

/// Expands typings against one release and MAC dictionary, memoising by typing text.
pub struct Expander {
    release: Arc<Release>,
    macs: Arc<MacDictionary>,
    memo: Memo,
}

const MAX_RENAME_CHAIN: usize = 8;

impl Expander {
    pub fn new(release: Arc<Release>, macs: Arc<MacDictionary>) -> Expander {
        Expander {
            release,
            macs,
            memo: RwLock::new(FxHashMap::default()),
        }
    }

    pub fn release(&self) -> &Release {
        &self.release
    }

    /// Parse a GL string for this release: a versioned one must name it.
    pub fn parse_gl(&self, text: &str) -> Result<crate::GlString, TypingError> {
        let gl = crate::GlString::parse(text)?;
        self.release.check_gl_version(&gl)?;
        Ok(gl)
    }

    pub fn release_arc(&self) -> &Arc<Release> {
        &self.release
    }

    pub fn macs(&self) -> &MacDictionary {
        &self.macs
    }

    /// Distinct typings memoised so far.
    pub fn memo_len(&self) -> usize {
        self.memo.read().expect("memo lock").len()
    }

    pub fn clear_memo(&self) {
        self.memo.write().expect("memo lock").clear();
    }

    fn memoised(
        &self,
        key: &str,
        compute: impl FnOnce() -> Result<Arc<PositionSet>, TypingError>,
    ) -> Result<Arc<PositionSet>, TypingError> {
        if let Some(hit) = self.memo.read().expect("memo lock").get(key) {
            return hit.clone();
        }
        let value = compute();
        self.memo
            .write()
            .expect("memo lock")
            .insert(key.to_string(), value.clone());
        value
    }

    /// Expand one position given as text (`A*02:AB`, or `*02:AB` / `24` with `locus`),
    /// memoised on the text itself so repeated typings skip parsing too.
    pub fn expand_text(
        &self,
        text: &str,
        locus: Option<&str>,
    ) -> Result<Arc<PositionSet>, TypingError> {
        let key = match locus {
            Some(l) => format!("{l}\t{text}"),
            None => text.to_string(),
        };
        self.memoised(&key, || {
            let list = AlleleList::parse(text, locus)?;
            self.expand_list_uncached(&list).map(Arc::new)
        })
    }

    /// Expand one parsed position, memoised.
    pub fn expand_list(&self, list: &AlleleList) -> Result<Arc<PositionSet>, TypingError> {
        let key = list.to_string();
        self.memoised(&key, || self.expand_list_uncached(list).map(Arc::new))
    }

    /// Expand one parsed position without the memo (the cold path).
    pub fn expand_list_uncached(&self, list: &AlleleList) -> Result<PositionSet, TypingError> {
        let release = &*self.release;
        let alternatives = self.alternatives(list)?;
        let locus = release
            .locus_id(list.locus())
            .expect("alternatives() checked the locus");
        if alternatives.new {
            return Ok(PositionSet {
                locus,
                kind: PositionKind::New,
                warnings: alternatives.warnings,
            });
        }
        let (kept, all_null) = alternatives.expressed_or_all_null(release);
        if all_null {
            return Ok(PositionSet {
                locus,
                kind: PositionKind::Null,
                warnings: alternatives.warnings,
            });
        }
        let mut set = PSet::new(release.locus(locus).p_keys.len());
        for a in kept {
            if let Some(k) = release.allele(a).p_key {
                set.insert(k);
            }
        }
        Ok(PositionSet {
            locus,
            kind: PositionKind::Expressed(set),
            warnings: alternatives.warnings,
        })
    }

    /// The alleles a position's typing stands for (section 2), nulls included.
    pub fn alternatives(&self, list: &AlleleList) -> Result<Alternatives, TypingError> {
        let mut out = Alternatives::default();
        for token in &list.0 {
            self.resolve_token(token, &mut out, 0)?;
        }
        out.alleles.sort_unstable();
        out.alleles.dedup();
        Ok(out)
    }

    fn check_locus(&self, token: &Token) -> Result<LocusId, TypingError> {
        self.release
            .locus_id(token.locus())
            .ok_or_else(|| TypingError::UnknownLocus {
                token: token.to_string(),
                locus: token.locus().to_string(),
                release: self.release.version.clone(),
            })
    }

    /// Alleles named by an allele name (`A*02:01`, `A*01:01N`), without the deleted-name step.
    fn alleles_named(&self, locus: &str, fields: &[String], suffix: Option<char>) -> Vec<AlleleId> {
        let key = format!("{locus}*{}", fields.join(":"));
        let ids = self.release.alleles_with_prefix(&key);
        match suffix {
            // A shortened name that keeps a suffix stands only for the members carrying it.
            Some(s) => ids
                .iter()
                .copied()
                .filter(|&a| self.release.allele(a).suffix == Some(s))
                .collect(),
            None => ids.to_vec(),
        }
    }

    fn resolve_token(
        &self,
        token: &Token,
        out: &mut Alternatives,
        depth: usize,
    ) -> Result<(), TypingError> {
        let release = &*self.release;
        let locus_id = self.check_locus(token)?;
        match token {
            Token::Allele {
                locus,
                fields,
                suffix,
            } => {
                let ids = self.alleles_named(locus, fields, *suffix);
                if !ids.is_empty() {
                    out.alleles.extend(ids);
                    return Ok(());
                }
                let name = token.to_string();
                match release.deleted(&name) {
                    Some(deleted) => match &deleted.successor {
                        Some(successor) if depth < MAX_RENAME_CHAIN => {
                            out.warnings.push(format!(
                                "{name} was deleted from IMGT/HLA on {} ({}); read as {successor}",
                                deleted.deleted_on, deleted.reason
                            ));
                            let next = Token::parse(successor, None)?;
                            self.resolve_token(&next, out, depth + 1)
                        }
                        _ => Err(TypingError::DeletedAllele {
                            token: name,
                            reason: deleted.reason.clone(),
                        }),
                    },
                    None => Err(TypingError::UnknownAllele {
                        token: name,
                        release: release.version.clone(),
                    }),
                }
            }
            Token::Mac { locus, group, code } => {
                let mac = self.macs.get(code).ok_or_else(|| TypingError::UnknownMac {
                    token: token.to_string(),
                    code: code.clone(),
                })?;
                let names = self.macs.names(mac, locus, group);
                let before = out.alleles.len();
                for name in &names {
                    // Names absent from the loaded release are dropped (rules, section 2).
                    if let Ok(Token::Allele {
                        locus,
                        fields,
                        suffix,
                    }) = Token::parse(name, None)
                    {
                        out.alleles
                            .extend(self.alleles_named(&locus, &fields, suffix));
                    }
                }
                if out.alleles.len() == before {
                    return Err(TypingError::EmptyMac {
                        token: token.to_string(),
                        expansion: names.join("/"),
                        release: release.version.clone(),
                    });
                }
                Ok(())
            }
            Token::Xx { locus, group } => {
                let ids = release.alleles_with_prefix(&format!("{locus}*{group}"));
                if !ids.is_empty() {
                    out.alleles.extend_from_slice(ids);
                    return Ok(());
                }
                // The XX of a broad antigen without an allele group of its own stands for
                // its splits: DRB1*02:XX = DR2 → DRB1*15, DRB1*16.
                let before = out.alleles.len();
                if let Some(ser) = SerologyLocus::of_molecular(locus) {
                    let broad = group.trim_start_matches('0');
                    for split in release.antigen_splits(ser, broad) {
                        let split_group = format!("{split:0>2}");
                        out.alleles.extend_from_slice(
                            release.alleles_with_prefix(&format!("{locus}*{split_group}")),
                        );
                    }
                }
                if out.alleles.len() == before {
                    return Err(TypingError::UnknownGroup {
                        token: token.to_string(),
                        kind: "allele",
                        release: release.version.clone(),
                    });
                }
                Ok(())
            }
            Token::GGroup { .. } => {
                let g = release.g_group(&token.to_string()).ok_or_else(|| {
                    TypingError::UnknownGroup {
                        token: token.to_string(),
                        kind: "G",
                        release: release.version.clone(),
                    }
                })?;
                out.alleles.extend_from_slice(&g.members);
                Ok(())
            }
            Token::PGroup { .. } => {
                let members = release.p_group_members(&token.to_string()).ok_or_else(|| {
                    TypingError::UnknownGroup {
                        token: token.to_string(),
                        kind: "P",
                        release: release.version.clone(),
                    }
                })?;
                out.alleles.extend_from_slice(members);
                Ok(())
            }
            Token::Serology { locus, antigen } => {
                let before = out.alleles.len();
                for member in release.antigen_family(*locus, antigen) {
                    out.alleles.extend(
                        release
                            .alleles_with_antigen(*locus, &member)
                            .iter()
                            .copied()
                            .filter(|&a| release.allele(a).locus == locus_id),
                    );
                }
                if out.alleles.len() == before {
                    return Err(TypingError::UnknownAntigen {
                        token: token.to_string(),
                        release: release.version.clone(),
                    });
                }
                Ok(())
            }
            Token::New { .. } => {
                out.new = true;
                Ok(())
            }
        }
    }
}
