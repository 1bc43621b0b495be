//! From a GL string to the two positions of each locus, the unit matching compares.

use crate::error::TypingError;
use crate::gl::{AlleleList, GlString};

/// The two positions (gene copies) of one locus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocusTyping {
    pub locus: String,
    pub positions: [AlleleList; 2],
    /// The GL string gave one copy only; it is read as homozygous.
    pub single_copy: bool,
}

fn union(into: &mut AlleleList, from: &AlleleList) {
    for t in &from.0 {
        if !into.0.contains(t) {
            into.0.push(t.clone());
        }
    }
}

/// Split a GL string into per-locus positions, in the order loci first appear.
///
/// Choices (documented in ARCHITECTURE.md): a locus given as one copy (`A*01:01`) is read as
/// homozygous, as registries record a homozygous locus once; alternative genotypes (`|`)
/// are merged position by position (copy 1 with copy 1), which can only widen a position,
/// never hide a possible match.
pub fn locus_typings(gl: &GlString) -> Result<Vec<LocusTyping>, TypingError> {
    let mut out: Vec<LocusTyping> = Vec::new();
    for genotype_list in &gl.loci {
        // Loci typed in this `^` block (a phased block may carry several).
        let mut block: Vec<LocusTyping> = Vec::new();
        for genotype in &genotype_list.0 {
            if genotype.0.len() > 2 {
                return Err(TypingError::syntax(
                    gl.to_string(),
                    format!(
                        "{} copies joined by `+`; a person has two",
                        genotype.0.len()
                    ),
                ));
            }
            // locus → lists of copy 1 and copy 2 in this genotype
            let mut copies: Vec<(String, Vec<Option<AlleleList>>)> = Vec::new();
            for (copy, haplotype) in genotype.0.iter().enumerate() {
                for list in &haplotype.0 {
                    let locus = list.locus().to_string();
                    let entry = match copies.iter_mut().find(|(l, _)| *l == locus) {
                        Some(e) => e,
                        None => {
                            copies.push((locus.clone(), vec![None, None]));
                            copies.last_mut().expect("just pushed")
                        }
                    };
                    if entry.1[copy].is_some() {
                        return Err(TypingError::syntax(
                            list.to_string(),
                            format!("locus {locus} appears twice on one haplotype"),
                        ));
                    }
                    entry.1[copy] = Some(list.clone());
                }
            }
            // Two copies must type the same loci: `A*01:01+B*08:01` is not two homozygous loci
            // but a malformed genotype (a person's two copies of one gene joined by `+`).
            if genotype.0.len() == 2
                && let Some((locus, lists)) = copies
                    .iter()
                    .find(|(_, lists)| lists[0].is_none() || lists[1].is_none())
            {
                let (given, other_copy) = match &lists[0] {
                    Some(list) => (list, 1),
                    None => (lists[1].as_ref().expect("one copy is given"), 0),
                };
                let other: Vec<String> = genotype.0[other_copy]
                    .0
                    .iter()
                    .map(|l| l.to_string())
                    .collect();
                return Err(TypingError::syntax(
                    given.to_string(),
                    format!(
                        "the two copies joined by `+` type different loci: {locus} on one, `{}` on the other",
                        other.join("~")
                    ),
                ));
            }
            for (locus, lists) in copies {
                let (p1, p2, single) = match (lists[0].clone(), lists[1].clone()) {
                    (Some(a), Some(b)) => (a, b, false),
                    (Some(a), None) | (None, Some(a)) => (a.clone(), a, true),
                    (None, None) => continue,
                };
                match block.iter_mut().find(|t| t.locus == locus) {
                    Some(t) => {
                        union(&mut t.positions[0], &p1);
                        union(&mut t.positions[1], &p2);
                        t.single_copy &= single;
                    }
                    None => block.push(LocusTyping {
                        locus,
                        positions: [p1, p2],
                        single_copy: single,
                    }),
                }
            }
        }
        for t in block {
            if out.iter().any(|o| o.locus == t.locus) {
                return Err(TypingError::syntax(
                    gl.to_string(),
                    format!("locus {} is typed in two `^` blocks", t.locus),
                ));
            }
            out.push(t);
        }
    }
    Ok(out)
}

/// A locus's two positions, expanded.
#[derive(Debug, Clone)]
pub struct LocusExpansion {
    pub typing: LocusTyping,
    pub positions: [std::sync::Arc<crate::expand::PositionSet>; 2],
}

impl crate::expand::Expander {
    /// Expand every locus position of a GL string (memoised per position).
    pub fn expand_gl(&self, gl: &GlString) -> Result<Vec<LocusExpansion>, TypingError> {
        self.expand_typings(locus_typings(gl)?)
    }

    /// Expand already split locus typings (memoised per position).
    pub fn expand_typings(
        &self,
        typings: Vec<LocusTyping>,
    ) -> Result<Vec<LocusExpansion>, TypingError> {
        typings
            .into_iter()
            .map(|typing| {
                let p1 = self.expand_list(&typing.positions[0])?;
                let p2 = if typing.positions[1] == typing.positions[0] {
                    p1.clone()
                } else {
                    self.expand_list(&typing.positions[1])?
                };
                Ok(LocusExpansion {
                    typing,
                    positions: [p1, p2],
                })
            })
            .collect()
    }
}
