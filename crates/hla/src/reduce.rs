//! Reductions a coordinator asks for: to G group, to P group, to two-field ARD (`lgx`), to
//! serology, and the DPB1 T-cell-epitope group.

use std::fmt;
use std::str::FromStr;

use rustc_hash::FxHashMap;

use crate::error::TypingError;
use crate::expand::Expander;
use crate::gl::{AlleleList, split_versioned};
use crate::release::{Allele, AlleleId, Release, TceGroup, nomenclature_key};
use crate::token::{SerologyLocus, Token};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduction {
    /// The G group (`A*01:01:01G`), or the allele's own name when it is in none.
    G,
    /// As `G`, with ungrouped alleles folded to their two-field name when every expressed
    /// allele of that name is already covered (`A*02:01:01G/…/A*02:01`): the same alleles,
    /// a far shorter string.
    GCompact,
    /// The P-group key (`A*01:01P`, or the two-field name of an ungrouped allele).
    P,
    /// The two-field name of the G group's first listed member (what py-ard's `lgx` gives);
    /// for an allele in no G group, the two-field name of its P group (py-ard's default),
    /// else its own two-field name with its expression suffix (`A*02:605Q`).
    Lgx,
    /// As `Lgx`, but an allele in no G group keeps its own two-field name (and suffix) even
    /// when it is in a P group (`A*11:107` stays `A*11:107`; `Lgx` gives `A*11:01`).
    LgxOwn,
    /// The serological equivalents `rel_dna_ser.txt` assigns (unambiguous, possible,
    /// assumed: `A*02:65` → `A2/A19`). An allele it assigns none (`C*12:02`, every DPB1)
    /// has no equivalent: it is kept at two fields, with a warning, never given an antigen
    /// made from its first field. A null allele stays null (`A*01:16N`).
    Serology,
    /// DPB1 T-cell-epitope group (`TCE1`…`TCE3`, `TCE0` null, `TCE?` unknown).
    Tce,
}

impl FromStr for Reduction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "g" => Reduction::G,
            "g-compact" => Reduction::GCompact,
            "p" => Reduction::P,
            "lgx" => Reduction::Lgx,
            "lgx-own" => Reduction::LgxOwn,
            "serology" | "ser" => Reduction::Serology,
            "tce" => Reduction::Tce,
            other => {
                return Err(format!(
                    "unknown reduction `{other}` (g, g-compact, p, lgx, lgx-own, serology, tce)"
                ));
            }
        })
    }
}

impl fmt::Display for Reduction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reduction::G => "g",
            Reduction::GCompact => "g-compact",
            Reduction::P => "p",
            Reduction::Lgx => "lgx",
            Reduction::LgxOwn => "lgx-own",
            Reduction::Serology => "serology",
            Reduction::Tce => "tce",
        })
    }
}

/// A reduced position: names in nomenclature order, and any warnings from reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reduced {
    pub names: Vec<String>,
    pub warnings: Vec<String>,
}

impl Expander {
    /// Reduce one position. Each written alternative is reduced on its own: a name that
    /// stands for several alleles drops their null members unless all are null (so
    /// `A*01:01` does not pick up `A*01:01:01:02N`), but a null alternative written as such
    /// is kept (`A*01:01/A*01:16N` keeps `A*01:16N`). Dropping nulls across alternatives is
    /// a matching rule (section 3), not a change of resolution.
    pub fn reduce_list(&self, list: &AlleleList, to: Reduction) -> Result<Reduced, TypingError> {
        let release = self.release();
        let locus = list.locus();
        let alternatives = self.alternatives(list)?;
        if alternatives.new {
            return Ok(Reduced {
                names: vec![format!("{locus}*NEW")],
                warnings: alternatives.warnings,
            });
        }
        if to == Reduction::Tce && locus != "DPB1" {
            return Err(TypingError::WrongLocus {
                token: list.to_string(),
                expected: "DPB1".into(),
                found: locus.into(),
            });
        }
        let serology = match to {
            Reduction::Serology => Some(SerologyLocus::of_molecular(locus).ok_or_else(|| {
                TypingError::syntax(
                    list.to_string(),
                    format!("locus {locus} has no serological antigens"),
                )
            })?),
            _ => None,
        };
        // A serological typing is already at serological resolution: it stays as written
        // (its matching family is wider, but reduction does not widen).
        if serology.is_some() && list.0.iter().all(|t| matches!(t, Token::Serology { .. })) {
            let mut names: Vec<String> = list.0.iter().map(Token::to_string).collect();
            names.sort_unstable();
            names.dedup();
            names.sort_by_cached_key(|n| nomenclature_key(n));
            return Ok(Reduced {
                names,
                warnings: alternatives.warnings,
            });
        }
        let kept = if list.0.len() == 1 {
            alternatives.expressed_or_all_null(release).0
        } else {
            let mut kept = Vec::new();
            for token in &list.0 {
                let one = self.alternatives(&AlleleList(vec![token.clone()]))?;
                kept.extend(one.expressed_or_all_null(release).0);
            }
            kept.sort_unstable();
            kept.dedup();
            kept
        };
        let mut warnings = alternatives.warnings;
        let mut names: Vec<String> = Vec::new();
        let mut without_equivalent: Vec<String> = Vec::new();
        if to == Reduction::GCompact {
            compact_g(release, &kept, &mut names);
        }
        for &id in kept.iter().filter(|_| to != Reduction::GCompact) {
            let allele = release.allele(id);
            match to {
                Reduction::G | Reduction::GCompact => names.push(match allele.g_group {
                    Some(g) => release.g_groups[g as usize].name.clone(),
                    None => allele.name.clone(),
                }),
                Reduction::P => names.push(match allele.p_key {
                    Some(k) => release.p_key_name(allele.locus, k).to_string(),
                    None => allele.name.clone(), // a null allele: it has no P key
                }),
                Reduction::Lgx => names.push(lgx(release, allele, false)),
                Reduction::LgxOwn => names.push(lgx(release, allele, true)),
                Reduction::Serology => {
                    let prefix = serology.map(|s| s.prefix()).unwrap_or_default();
                    if allele.is_null() {
                        names.push(lgx(release, allele, false));
                    } else if allele.serology_equivalents.is_empty() {
                        let name = lgx(release, allele, false);
                        if !without_equivalent.contains(&name) {
                            without_equivalent.push(name.clone());
                        }
                        names.push(name);
                    } else {
                        names.extend(
                            allele
                                .serology_equivalents
                                .iter()
                                .map(|a| format!("{prefix}{a}")),
                        );
                    }
                }
                Reduction::Tce => names.push(match allele.tce {
                    Some(TceGroup::Group(g)) => format!("TCE{g}"),
                    Some(TceGroup::Null) => "TCE0".into(),
                    None => "TCE?".into(),
                }),
            }
        }
        if !without_equivalent.is_empty() {
            without_equivalent.sort_by_cached_key(|n| nomenclature_key(n));
            warnings.push(format!(
                "no serological equivalent: rel_dna_ser.txt of IMGT/HLA {} assigns none to {}; \
                 kept at two fields",
                release.version,
                without_equivalent.join(", ")
            ));
        }
        names.sort_unstable();
        names.dedup();
        names.sort_by_cached_key(|n| nomenclature_key(n));
        Ok(Reduced { names, warnings })
    }
}

/// The two-field name of the G group's first listed member (what py-ard's `lgx` gives); for
/// an allele in no G group, the two-field name of its P group (py-ard's default) unless
/// `own`, else its own two-field name with its expression suffix (`A*02:605Q`: the release
/// has no `A*02:605`). A null allele keeps its own two-field name and `N` (`A*01:01N`), as a
/// G group mixes nulls in.
fn lgx(release: &Release, allele: &Allele, own: bool) -> String {
    if allele.is_null() {
        return format!("{}N", allele.truncated(2));
    }
    if let Some(g) = allele.g_group {
        return match release.g_groups[g as usize].members.first() {
            Some(&m) => release.allele(m).truncated(2),
            None => allele.truncated(2),
        };
    }
    // A P group is a key ending in `P`; an ungrouped allele's key is its own name.
    let p_group = allele
        .p_key
        .map(|k| release.p_key_name(allele.locus, k))
        .and_then(|k| k.strip_suffix('P'));
    match p_group {
        Some(p) if !own => {
            let fields: Vec<&str> = p.split(':').take(2).collect();
            fields.join(":")
        }
        _ => format!(
            "{}{}",
            allele.truncated(2),
            allele.suffix.map(String::from).unwrap_or_default()
        ),
    }
}

/// G names for grouped alleles; an ungrouped allele of three or more fields is written as
/// its two-field name when every expressed allele of that name is in `kept` (the two-field
/// name then stands for nothing `kept` lacks), else in full. A two-field allele keeps its
/// own name and suffix.
fn compact_g(release: &Release, kept: &[AlleleId], names: &mut Vec<String>) {
    // Whether each two-field name is covered, asked once per name.
    let mut covered_names: FxHashMap<String, bool> = FxHashMap::default();
    for &id in kept {
        let allele = release.allele(id);
        if let Some(g) = allele.g_group {
            names.push(release.g_groups[g as usize].name.clone());
            continue;
        }
        let fields = allele.fields().split(':').count();
        if fields > 2 && !allele.is_null() {
            let two = allele.truncated(2);
            let covered = *covered_names.entry(two.clone()).or_insert_with(|| {
                release
                    .alleles_with_prefix(&two)
                    .iter()
                    .filter(|&&m| !release.allele(m).is_null())
                    .all(|m| kept.binary_search(m).is_ok())
            });
            if covered {
                names.push(two);
                continue;
            }
        }
        names.push(allele.name.clone());
    }
}

fn is_operator(c: char) -> bool {
    matches!(c, '^' | '|' | '+' | '~')
}

/// What one allele list reduced to: its names joined by `/`, and its warnings.
type Memoised = Result<(String, Vec<String>), TypingError>;

/// Reduces whole GL strings to one resolution, memoising each distinct allele list's text,
/// so a file of many genotypes reduces each list it repeats only once. One per thread.
pub struct Reducer<'e> {
    expander: &'e Expander,
    to: Reduction,
    memo: FxHashMap<Box<str>, Memoised>,
}

impl<'e> Reducer<'e> {
    pub fn new(expander: &'e Expander, to: Reduction) -> Self {
        Reducer {
            expander,
            to,
            memo: FxHashMap::default(),
        }
    }

    pub fn to(&self) -> Reduction {
        self.to
    }

    /// Reduce the GL string `text`, keeping its structure (`~ + | ^`), appending the result
    /// to `out` and its warnings to `warnings`.
    pub fn reduce_gl_into(
        &mut self,
        text: &str,
        out: &mut String,
        warnings: &mut Vec<String>,
    ) -> Result<(), TypingError> {
        for piece in self.reduce_gl(text, warnings)? {
            out.push_str(piece);
        }
        Ok(())
    }

    /// The pieces of the reduced GL string, in order (reduced lists and the operators
    /// between them), borrowed from the memo so a caller can write them without copying.
    /// The same checks as `Expander::parse_gl`: syntax, namespace, release version.
    pub fn reduce_gl<'s>(
        &'s mut self,
        text: &'s str,
        warnings: &mut Vec<String>,
    ) -> Result<impl Iterator<Item = &'s str> + 's, TypingError> {
        let (whole, version, body) = split_versioned(text)?;
        if let Some(version) = version {
            self.expander
                .release()
                .check_gl_version_text(version, whole)?;
        }
        for list in body.split(is_operator) {
            if list.is_empty() {
                return Err(TypingError::syntax(
                    whole,
                    "an operator (/ ~ + | ^) with nothing on one side",
                ));
            }
            let (_, list_warnings) = self.reduce_list_text(list)?;
            for w in list_warnings {
                if !warnings.contains(w) {
                    warnings.push(w.clone());
                }
            }
        }
        let memo = &self.memo;
        Ok(body.split_inclusive(is_operator).flat_map(move |chunk| {
            let (list, operator) = match chunk.char_indices().last() {
                Some((at, c)) if is_operator(c) => chunk.split_at(at),
                _ => (chunk, ""),
            };
            let names = match &memo[list] {
                Ok((names, _)) => names.as_str(),
                Err(_) => unreachable!("every list was reduced above"),
            };
            [names, operator]
        }))
    }

    fn reduce_list_text(&mut self, list: &str) -> Result<(&str, &[String]), TypingError> {
        if !self.memo.contains_key(list) {
            let reduced = AlleleList::parse(list, None)
                .and_then(|l| self.expander.reduce_list(&l, self.to))
                .map(|r| (r.names.join("/"), r.warnings));
            self.memo.insert(list.into(), reduced);
        }
        match &self.memo[list] {
            Ok((names, warnings)) => Ok((names, warnings)),
            Err(e) => Err(e.clone()),
        }
    }
}
