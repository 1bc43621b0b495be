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
    /// The two-field name of the G group's first listed member (what py-ard's `lgx` gives).
    Lgx,
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
            "serology" | "ser" => Reduction::Serology,
            "tce" => Reduction::Tce,
            other => {
                return Err(format!(
                    "unknown reduction `{other}` (g, p, lgx, serology, tce)"
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
    /// Reduce one position. The null rule of section 3 applies first: null alternatives are
    /// dropped unless every alternative is null.
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
        let (kept, _) = alternatives.expressed_or_all_null(release);
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
                // A null allele (kept only when the whole position is null) keeps its own
                // two-field name and suffix (`A*01:01N`), as a G group mixes nulls in.
                Reduction::Lgx if allele.is_null() => format!("{}N", allele.truncated(2)),
                Reduction::Lgx => allele
                    .g_group
                    .and_then(|g| release.g_groups[g as usize].members.first().copied())
                    .map_or(allele, |m| release.allele(m))
                    .truncated(2),
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
