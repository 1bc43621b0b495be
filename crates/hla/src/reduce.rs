//! Reductions a coordinator asks for: to G group, to P group, to two-field ARD (`lgx`), to
//! serology, and the DPB1 T-cell-epitope group.

use std::fmt;
use std::str::FromStr;

use crate::error::TypingError;
use crate::expand::Expander;
use crate::gl::AlleleList;
use crate::release::{TceGroup, nomenclature_key};
use crate::token::SerologyLocus;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduction {
    /// The G group (`A*01:01:01G`), or the allele's own name when it is in none.
    G,
    /// The P-group key (`A*01:01P`, or the two-field name of an ungrouped allele).
    P,
    /// The two-field name of the G group's first listed member (what py-ard's `lgx` gives);
    /// for an allele in no G group, the two-field name of its P group (py-ard's default),
    /// else its own two-field name with its expression suffix (`A*02:605Q`).
    Lgx,
    /// As `Lgx`, but an allele in no G group keeps its own two-field name (and suffix) even
    /// when it is in a P group (`A*11:107` stays `A*11:107`; `Lgx` gives `A*11:01`).
    LgxOwn,
    /// The serological antigen (`A2`); an allele without serology is read as its first
    /// field's antigen (rules, section 4).
    Serology,
    /// DPB1 T-cell-epitope group (`TCE1`…`TCE3`, `TCE0` null, `TCE?` unknown).
    Tce,
}

impl FromStr for Reduction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "g" => Reduction::G,
            "p" => Reduction::P,
            "lgx" => Reduction::Lgx,
            "lgx-own" => Reduction::LgxOwn,
            "serology" | "ser" => Reduction::Serology,
            "tce" => Reduction::Tce,
            other => {
                return Err(format!(
                    "unknown reduction `{other}` (g, p, lgx, lgx-own, serology, tce)"
                ));
            }
        })
    }
}

impl fmt::Display for Reduction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reduction::G => "g",
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
        let alternatives = self.alternatives(list)?;
        if alternatives.new {
            return Ok(Reduced {
                names: vec![format!("{}*NEW", list.locus())],
                warnings: alternatives.warnings,
            });
        }
        if to == Reduction::Tce && list.locus() != "DPB1" {
            return Err(TypingError::WrongLocus {
                token: list.to_string(),
                expected: "DPB1".into(),
                found: list.locus().into(),
            });
        }
        let mut kept: Vec<crate::release::AlleleId> = Vec::new();
        if list.0.len() == 1 {
            kept = alternatives.expressed_or_all_null(release).0;
        } else {
            for token in &list.0 {
                let one = self.alternatives(&AlleleList(vec![token.clone()]))?;
                kept.extend(one.expressed_or_all_null(release).0);
            }
            kept.sort_unstable();
            kept.dedup();
        }
        let mut names: Vec<String> = Vec::new();
        for id in kept {
            let allele = release.allele(id);
            let name = match to {
                Reduction::G => match allele.g_group {
                    Some(g) => release.g_groups[g as usize].name.clone(),
                    None => allele.name.clone(),
                },
                Reduction::P => match allele.p_key {
                    Some(k) => release.p_key_name(allele.locus, k).to_string(),
                    None => allele.name.clone(), // a null allele: it has no P key
                },
                // A null allele keeps its own two-field name and suffix (`A*01:01N`), as a
                // G group mixes nulls in.
                Reduction::Lgx | Reduction::LgxOwn if allele.is_null() => {
                    format!("{}N", allele.truncated(2))
                }
                Reduction::Lgx | Reduction::LgxOwn => match allele.g_group {
                    Some(g) => match release.g_groups[g as usize].members.first() {
                        Some(&m) => release.allele(m).truncated(2),
                        None => allele.truncated(2),
                    },
                    None => {
                        // py-ard's default: the P group's two-field name, when the allele
                        // is in a P group (a key ending in `P`).
                        let p_group = allele
                            .p_key
                            .map(|k| release.p_key_name(allele.locus, k))
                            .and_then(|k| k.strip_suffix('P'));
                        match p_group {
                            Some(p) if to == Reduction::Lgx => {
                                let fields: Vec<&str> = p.split(':').take(2).collect();
                                fields.join(":")
                            }
                            // Its own name keeps the expression suffix (`A*02:605Q`): the
                            // release has no `A*02:605`.
                            _ => format!(
                                "{}{}",
                                allele.truncated(2),
                                allele.suffix.map(String::from).unwrap_or_default()
                            ),
                        }
                    }
                },
                Reduction::Serology => {
                    let locus = &release.locus(allele.locus).name;
                    match SerologyLocus::of_molecular(locus) {
                        Some(ser) => {
                            if allele.is_null() {
                                format!("{}*{}N", locus, allele.fields())
                            } else {
                                let antigen =
                                    allele.primary_serology.clone().unwrap_or_else(|| {
                                        allele.first_field().trim_start_matches('0').to_string()
                                    });
                                format!("{}{}", ser.prefix(), antigen)
                            }
                        }
                        None => {
                            return Err(TypingError::syntax(
                                list.to_string(),
                                format!("locus {locus} has no serological antigens"),
                            ));
                        }
                    }
                }
                Reduction::Tce => match allele.tce {
                    Some(TceGroup::Group(g)) => format!("TCE{g}"),
                    Some(TceGroup::Null) => "TCE0".into(),
                    None => "TCE?".into(),
                },
            };
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names.sort_by_cached_key(|n| nomenclature_key(n));
        Ok(Reduced {
            names,
            warnings: alternatives.warnings,
        })
    }
}
