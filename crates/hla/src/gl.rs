//! GL String (Milius et al. 2013): `/` allele list, `~` phased haplotype, `+` genotype,
//! `|` genotype list, `^` loci; optional `HLA-` prefixes; the versioned form
//! `hla#3.58.0#…`. Equality is structural: `/ + | ^` are unordered, `~` is ordered.

use std::fmt;

use crate::error::TypingError;
use crate::token::Token;

/// `/`: any one of these.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AlleleList(pub Vec<Token>);

/// `~`: allele lists on one chromosome, in order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Haplotype(pub Vec<AlleleList>);

/// `+`: the copies a person carries.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Genotype(pub Vec<Haplotype>);

/// `|`: alternative genotypes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GenotypeList(pub Vec<Genotype>);

/// A whole GL string: `^`-joined genotype lists, with the optional namespace and version.
#[derive(Debug, Clone)]
pub struct GlString {
    pub version: Option<String>,
    pub loci: Vec<GenotypeList>,
}

impl AlleleList {
    /// The locus all elements share (the parser guarantees they share one).
    pub fn locus(&self) -> &str {
        self.0[0].locus()
    }

    fn canonical(&self) -> AlleleList {
        let mut v = self.0.clone();
        v.sort();
        v.dedup();
        AlleleList(v)
    }

    /// Parse one allele list, e.g. `A*01:01/A*01:02`, `*01:01/02` with `locus` = `A`.
    pub fn parse(text: &str, locus: Option<&str>) -> Result<AlleleList, TypingError> {
        if text.is_empty() {
            return Err(TypingError::syntax(text, "empty allele list"));
        }
        let tokens = Token::parse_list(text, locus)?;
        let first = tokens[0].locus().to_string();
        if let Some(locus) = locus
            && first != locus
        {
            return Err(TypingError::WrongLocus {
                token: tokens[0].to_string(),
                expected: locus.to_string(),
                found: first,
            });
        }
        for t in &tokens[1..] {
            if t.locus() != first {
                return Err(TypingError::WrongLocus {
                    token: t.to_string(),
                    expected: first,
                    found: t.locus().to_string(),
                });
            }
        }
        Ok(AlleleList(tokens))
    }
}

impl GlString {
    /// Parse a GL string. Whitespace around the whole string is ignored; inside it is an error.
    pub fn parse(text: &str) -> Result<GlString, TypingError> {
        let (text, version, body) = split_versioned(text)?;
        let version = version.map(str::to_string);
        let mut loci = Vec::new();
        for locus_text in body.split('^') {
            let mut genotypes = Vec::new();
            for genotype_text in locus_text.split('|') {
                let mut haplotypes = Vec::new();
                for haplotype_text in genotype_text.split('+') {
                    let mut lists = Vec::new();
                    for list_text in haplotype_text.split('~') {
                        if list_text.is_empty() {
                            return Err(TypingError::syntax(
                                text,
                                "an operator (/ ~ + | ^) with nothing on one side",
                            ));
                        }
                        lists.push(AlleleList::parse(list_text, None)?);
                    }
                    haplotypes.push(Haplotype(lists));
                }
                genotypes.push(Genotype(haplotypes));
            }
            loci.push(GenotypeList(genotypes));
        }
        Ok(GlString { version, loci })
    }

    /// The structural normal form: unordered operators sorted, duplicates kept only where
    /// they mean something (`+` keeps both copies of a homozygous genotype).
    pub fn canonical(&self) -> GlString {
        let mut loci: Vec<GenotypeList> = self
            .loci
            .iter()
            .map(|gl| {
                let mut genotypes: Vec<Genotype> = gl
                    .0
                    .iter()
                    .map(|g| {
                        let mut haps: Vec<Haplotype> =
                            g.0.iter()
                                .map(|h| Haplotype(h.0.iter().map(AlleleList::canonical).collect()))
                                .collect();
                        haps.sort();
                        Genotype(haps)
                    })
                    .collect();
                genotypes.sort();
                genotypes.dedup();
                GenotypeList(genotypes)
            })
            .collect();
        loci.sort();
        loci.dedup();
        GlString {
            version: self.version.clone(),
            loci,
        }
    }

    /// Print with every allele list replaced by `f`'s text, keeping the operators.
    pub fn map_lists<E>(
        &self,
        mut f: impl FnMut(&AlleleList) -> Result<String, E>,
    ) -> Result<String, E> {
        let mut out = String::new();
        for (i, gl) in self.loci.iter().enumerate() {
            if i > 0 {
                out.push('^');
            }
            for (j, g) in gl.0.iter().enumerate() {
                if j > 0 {
                    out.push('|');
                }
                for (k, h) in g.0.iter().enumerate() {
                    if k > 0 {
                        out.push('+');
                    }
                    for (m, list) in h.0.iter().enumerate() {
                        if m > 0 {
                            out.push('~');
                        }
                        out.push_str(&f(list)?);
                    }
                }
            }
        }
        Ok(out)
    }

    /// True when the string is one allele list (no `~ + | ^`).
    pub fn is_single_list(&self) -> bool {
        self.loci.len() == 1
            && self.loci[0].0.len() == 1
            && self.loci[0].0[0].0.len() == 1
            && self.loci[0].0[0].0[0].0.len() == 1
    }
}

impl PartialEq for GlString {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.canonical(), other.canonical());
        a.version == b.version && a.loci == b.loci
    }
}
impl Eq for GlString {}

impl fmt::Display for AlleleList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("/")?;
            }
            write!(f, "{t}")?;
        }
        Ok(())
    }
}

impl fmt::Display for GlString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(v) = &self.version {
            write!(f, "hla#{v}#")?;
        }
        let body = self.map_lists(|l| Ok::<_, fmt::Error>(l.to_string()))?;
        f.write_str(&body)
    }
}

/// Split a GL string's text into its trimmed whole, its version (`hla#3.58.0#…`) and its
/// body, refusing whitespace inside and a namespace other than `hla`.
pub(crate) fn split_versioned(text: &str) -> Result<(&str, Option<&str>, &str), TypingError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(TypingError::syntax(text, "empty GL string"));
    }
    if let Some(c) = text.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(TypingError::syntax(
            text,
            format!("unexpected character {c:?} inside a GL string"),
        ));
    }
    let (version, body) = match text.split_once('#') {
        None => (None, text),
        Some((namespace, rest)) => {
            let (version, body) = rest.split_once('#').ok_or_else(|| {
                TypingError::syntax(text, "a versioned GL string is NAMESPACE#VERSION#GLSTRING")
            })?;
            if !namespace.eq_ignore_ascii_case("hla") {
                return Err(TypingError::syntax(
                    text,
                    format!("unknown GL namespace `{namespace}` (expected hla)"),
                ));
            }
            let parts: Vec<&str> = version.split('.').collect();
            if parts.len() < 2
                || parts
                    .iter()
                    .any(|p| !p.bytes().all(|b| b.is_ascii_digit()) || p.is_empty())
            {
                return Err(TypingError::syntax(
                    text,
                    format!("`{version}` is not an IMGT/HLA release version like 3.58.0"),
                ));
            }
            if body.contains('#') {
                return Err(TypingError::syntax(
                    text,
                    "more than two `#` in a versioned GL string",
                ));
            }
            (Some(version), body)
        }
    };
    Ok((text, version, body))
}
