//! Integration tests of the nomenclature engine against the real IPD-IMGT/HLA 3.58.0 files.
//!
//! The reference answers here come from an independent, deliberately plain reading of the
//! release files (string prefixes over `Allelelist.txt`, the rows of `hla_nom_p.txt`), not
//! from the crate's own indexes.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use hla::input::SubjectReader;
use hla::{
    AlleleList, Expander, GlString, MacDictionary, PositionKind, Reduction, Release, TypingError,
    locus_typings,
};

fn shared(relative: &str) -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.join("../../../shared").join(relative)
}

fn hla_dir() -> PathBuf {
    std::env::var_os("BOAI_HLA_DIR").map_or_else(|| shared("imgt-hla"), PathBuf::from)
}

fn mac_file() -> PathBuf {
    std::env::var_os("BOAI_MAC_FILE")
        .map_or_else(|| shared("mac/alpha.v3.subset.txt"), PathBuf::from)
}

/// Loaded once per test binary. Missing reference data fails the tests: never a skip.
fn expander() -> &'static Expander {
    static EXPANDER: OnceLock<Expander> = OnceLock::new();
    EXPANDER.get_or_init(|| {
        let release = Release::load(hla_dir()).expect("IMGT/HLA release (set BOAI_HLA_DIR)");
        let macs = MacDictionary::load(mac_file()).expect("MAC dictionary (set BOAI_MAC_FILE)");
        Expander::new(Arc::new(release), Arc::new(macs))
    })
}

const LOCI: [&str; 6] = ["A", "B", "C", "DRB1", "DQB1", "DPB1"];

/// The plain reading of the release: every allele name, and each allele's P key.
struct Reference {
    /// locus → full allele names (with suffix)
    alleles: HashMap<String, Vec<String>>,
    /// full allele name → P key (None for nulls)
    p_key: HashMap<String, Option<String>>,
    /// every field-boundary prefix (suffix-free) → the names it stands for
    by_prefix: HashMap<String, Vec<String>>,
}

fn strip_header(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
}

fn reference() -> &'static Reference {
    static REF: OnceLock<Reference> = OnceLock::new();
    REF.get_or_init(|| {
        let dir = hla_dir();
        let mut alleles: HashMap<String, Vec<String>> = HashMap::new();
        for line in
            strip_header(&std::fs::read_to_string(dir.join("Allelelist.txt")).unwrap()).skip(1)
        {
            let name = line.split(',').nth(1).unwrap().to_string();
            let locus = name.split('*').next().unwrap().to_string();
            alleles.entry(locus).or_default().push(name);
        }
        let mut p_key: HashMap<String, Option<String>> = HashMap::new();
        for line in strip_header(&std::fs::read_to_string(dir.join("wmda/hla_nom_p.txt")).unwrap())
        {
            let cols: Vec<&str> = line.split(';').collect();
            let locus = cols[0].trim_end_matches('*');
            for m in cols[1].split('/') {
                let key = if cols[2].is_empty() {
                    format!("{locus}*{}", cols[1])
                } else {
                    format!("{locus}*{}", cols[2])
                };
                p_key.insert(format!("{locus}*{m}"), Some(key));
            }
        }
        for names in alleles.values() {
            for n in names {
                if n.ends_with('N') {
                    p_key.insert(n.clone(), None);
                } else {
                    p_key.entry(n.clone()).or_insert_with(|| {
                        let (l, f) = n.split_once('*').unwrap();
                        let two: Vec<&str> = f.split(':').take(2).collect();
                        Some(format!(
                            "{l}*{}",
                            two.join(":").trim_end_matches(char::is_alphabetic)
                        ))
                    });
                }
            }
        }
        let mut by_prefix: HashMap<String, Vec<String>> = HashMap::new();
        for names in alleles.values() {
            for n in names {
                let bare = n.trim_end_matches(char::is_alphabetic);
                let mut prefix = String::new();
                for (i, part) in bare.split(':').enumerate() {
                    if i > 0 {
                        prefix.push(':');
                    }
                    prefix.push_str(part);
                    by_prefix.entry(prefix.clone()).or_default().push(n.clone());
                }
            }
        }
        Reference {
            alleles,
            p_key,
            by_prefix,
        }
    })
}

/// What a position should expand to, from a list of allele names: per the rules' section 3.
#[derive(Debug, PartialEq, Eq)]
enum Expected {
    Keys(BTreeSet<String>),
    Null,
}

fn expected_from(names: &[&String]) -> Expected {
    let r = reference();
    let expressed: Vec<&&String> = names.iter().filter(|n| !n.ends_with('N')).collect();
    if expressed.is_empty() {
        assert!(!names.is_empty());
        return Expected::Null;
    }
    Expected::Keys(
        expressed
            .iter()
            .map(|n| r.p_key[**n].clone().unwrap())
            .collect(),
    )
}

/// Reference names a (locus-qualified, suffix-free) prefix stands for, at field boundaries.
fn names_with_prefix(prefix: &str) -> Vec<&'static String> {
    reference()
        .by_prefix
        .get(prefix)
        .map_or(Vec::new(), |names| names.iter().collect())
}

fn actual(text: &str) -> Result<Expected, TypingError> {
    let e = expander();
    let set = e.expand_text(text, None)?;
    Ok(match &set.kind {
        PositionKind::Expressed(_) => Expected::Keys(
            set.p_key_names(e.release())
                .into_iter()
                .map(str::to_string)
                .collect(),
        ),
        PositionKind::Null => Expected::Null,
        PositionKind::New => panic!("{text} expanded to NEW"),
    })
}

#[test]
fn release_version_and_counts() {
    let e = expander();
    assert_eq!(e.release().version, "3.58.0");
    assert_eq!(e.release().alleles.len(), 41_433);
    assert_eq!(e.macs().len(), 12_520);
}

#[test]
fn every_allele_of_the_six_loci_expands_to_its_p_key() {
    let r = reference();
    let mut checked = 0;
    for locus in LOCI {
        for name in &r.alleles[locus] {
            let want = match &r.p_key[name] {
                Some(k) => Expected::Keys([k.clone()].into()),
                None => Expected::Null,
            };
            assert_eq!(actual(name).unwrap(), want, "{name}");
            checked += 1;
        }
    }
    assert!(checked > 20_000, "{checked}");
}

#[test]
fn every_shortened_name_stands_for_all_it_prefixes() {
    let r = reference();
    for locus in LOCI {
        let mut prefixes = BTreeSet::new();
        for name in &r.alleles[locus] {
            let (_, fields) = name.split_once('*').unwrap();
            let fields: Vec<&str> = fields
                .trim_end_matches(char::is_alphabetic)
                .split(':')
                .collect();
            for n in 1..fields.len() {
                prefixes.insert(format!("{locus}*{}", fields[..n].join(":")));
            }
        }
        for prefix in prefixes {
            let want = expected_from(&names_with_prefix(&prefix));
            assert_eq!(actual(&prefix).unwrap(), want, "{prefix}");
            let group = prefix.split(':').next().unwrap();
            if !prefix.contains(':') {
                assert_eq!(actual(&format!("{group}:XX")).unwrap(), want, "{group}:XX");
            }
        }
    }
    // Never across a field boundary: A*02:01 is not A*02:010…, and a suffix narrows.
    assert!(
        names_with_prefix("A*02:01")
            .iter()
            .all(|n| n.starts_with("A*02:01:") || n.as_str() == "A*02:01")
    );
    assert_eq!(actual("A*01:01N").unwrap(), Expected::Null);
    assert_eq!(actual("A*01:01:01:02N").unwrap(), Expected::Null);
}

/// The (locus, first field) pairs the 20k corpus uses with a MAC.
fn corpus_mac_groups() -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let text = std::fs::read_to_string(shared("corpora/atlas-donors/donors-20k.tsv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    for line in lines {
        for (i, cell) in line.split('\t').enumerate() {
            let Some((locus, _)) = header[i].rsplit_once('_') else {
                continue;
            };
            if let Some(rest) = cell.strip_prefix('*')
                && let Some((group, code)) = rest.split_once(':')
                && code.bytes().all(|b| b.is_ascii_uppercase())
                && code != "XX"
            {
                out.insert((locus.to_string(), group.to_string()));
            }
        }
    }
    out
}

#[test]
fn every_mac_with_every_corpus_allele_group_agrees_with_the_files() {
    let macs_text = std::fs::read_to_string(mac_file()).unwrap();
    let mut codes: Vec<(bool, String, Vec<String>)> = Vec::new();
    for line in macs_text.lines().skip(2) {
        let cols: Vec<&str> = line.split('\t').collect();
        codes.push((
            cols[0] == "*",
            cols[1].to_string(),
            cols[2].split('/').map(str::to_string).collect(),
        ));
    }
    assert_eq!(codes.len(), 12_520);
    let groups = corpus_mac_groups();
    assert!(groups.len() > 50);
    let (mut expanded, mut empty) = (0usize, 0usize);
    for (locus, group) in &groups {
        for (specific, code, entries) in &codes {
            let typing = format!("{locus}*{group}:{code}");
            let mut names: Vec<&String> = Vec::new();
            for e in entries {
                let full = if *specific {
                    format!("{locus}*{e}")
                } else {
                    format!("{locus}*{group}:{e}")
                };
                let (bare, suffix) = match full.chars().last() {
                    Some(c) if c.is_ascii_alphabetic() => (&full[..full.len() - 1], Some(c)),
                    _ => (full.as_str(), None),
                };
                names.extend(
                    names_with_prefix(bare)
                        .into_iter()
                        .filter(|n| suffix.is_none_or(|s| n.ends_with(s))),
                );
            }
            match actual(&typing) {
                Ok(got) => {
                    assert_eq!(got, expected_from(&names), "{typing}");
                    expanded += 1;
                }
                Err(TypingError::EmptyMac { token, .. }) => {
                    assert!(
                        names.is_empty(),
                        "{typing} reported empty but names {names:?}"
                    );
                    assert_eq!(token, typing);
                    empty += 1;
                }
                Err(e) => panic!("{typing}: {e}"),
            }
        }
    }
    assert!(
        expanded > 10_000 && empty > 0,
        "{expanded} expanded, {empty} empty"
    );
    expander().clear_memo();
}

#[test]
fn broad_xx_codes_stand_for_their_splits() {
    let union = |a: &str, b: &str| match (actual(a).unwrap(), actual(b).unwrap()) {
        (Expected::Keys(x), Expected::Keys(y)) => Expected::Keys(x.union(&y).cloned().collect()),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        actual("DRB1*02:XX").unwrap(),
        union("DRB1*15:XX", "DRB1*16:XX")
    );
    assert_eq!(
        actual("DQB1*01:XX").unwrap(),
        union("DQB1*05:XX", "DQB1*06:XX")
    );
    assert_eq!(actual("B*16:XX").unwrap(), union("B*38:XX", "B*39:XX"));
    assert!(matches!(
        actual("A*99:XX"),
        Err(TypingError::UnknownGroup { .. })
    ));
}

/// Serology from an independent reading of rel_dna_ser.txt and rel_ser_ser.txt.
#[test]
fn serology_expands_to_the_antigen_family() {
    let dir = hla_dir();
    let ser_label = |l: &str| match l {
        "A" => "A",
        "B" => "B",
        "C" => "Cw",
        "DRB1" => "DR",
        "DQB1" => "DQ",
        _ => "",
    };
    // rel_ser_ser: parent → children (splits and associated)
    let mut children: HashMap<(String, String), Vec<String>> = HashMap::new();
    let mut parents: HashMap<(String, String), Vec<String>> = HashMap::new();
    for line in strip_header(&std::fs::read_to_string(dir.join("wmda/rel_ser_ser.txt")).unwrap()) {
        let c: Vec<&str> = line.split(';').collect();
        for child in c[2]
            .split('/')
            .chain(c[3].split('/'))
            .filter(|x| !x.is_empty())
        {
            children
                .entry((c[0].into(), c[1].into()))
                .or_default()
                .push(child.into());
            parents
                .entry((c[0].into(), child.into()))
                .or_default()
                .push(c[1].into());
        }
    }
    let mut assigned: HashMap<(String, String), Vec<String>> = HashMap::new();
    for line in strip_header(&std::fs::read_to_string(dir.join("wmda/rel_dna_ser.txt")).unwrap()) {
        let c: Vec<&str> = line.split(';').collect();
        let locus = c[0].trim_end_matches('*');
        if !LOCI.contains(&locus) || locus == "DPB1" {
            continue;
        }
        let mut seen = HashSet::new();
        for a in c[2..6].iter().flat_map(|x| x.split('/')) {
            if !a.is_empty() && a != "0" && a != "?" && seen.insert(a) {
                assigned
                    .entry((ser_label(locus).into(), a.into()))
                    .or_default()
                    .push(format!("{locus}*{}", c[1]));
            }
        }
    }
    let family = |label: &str, antigen: &str| {
        let mut fam: BTreeSet<String> = [antigen.to_string()].into();
        let mut stack = vec![antigen.to_string()];
        while let Some(a) = stack.pop() {
            for c in children.get(&(label.into(), a)).into_iter().flatten() {
                if fam.insert(c.clone()) {
                    stack.push(c.clone());
                }
            }
        }
        let mut stack = vec![antigen.to_string()];
        while let Some(a) = stack.pop() {
            for p in parents.get(&(label.into(), a)).into_iter().flatten() {
                if fam.insert(p.clone()) {
                    stack.push(p.clone());
                }
            }
        }
        fam
    };
    let mut checked = 0;
    for (label, antigen) in assigned.keys() {
        // DR51/52/53 are the DRB5/3/4 antigens, outside these loci.
        if label == "DR" && ["51", "52", "53"].contains(&antigen.as_str()) {
            continue;
        }
        let fam = family(label, antigen);
        let names: Vec<&String> = fam
            .iter()
            .flat_map(|a| {
                assigned
                    .get(&(label.clone(), a.clone()))
                    .into_iter()
                    .flatten()
            })
            .collect();
        let typing = format!("{label}{antigen}");
        assert_eq!(actual(&typing).unwrap(), expected_from(&names), "{typing}");
        checked += 1;
    }
    assert!(checked > 100, "{checked}");
    // Siblings meet only through alleles known just as their broad.
    let (Expected::Keys(b38), Expected::Keys(b39), Expected::Keys(b16)) = (
        actual("B38").unwrap(),
        actual("B39").unwrap(),
        actual("B16").unwrap(),
    ) else {
        panic!()
    };
    let shared: BTreeSet<_> = b38.intersection(&b39).collect();
    assert!(shared.iter().all(|k| b16.contains(*k)));
    assert!(b38.contains("B*38:01P") && !b38.contains("B*39:01P"));
    // Broad B5 covers its splits B51 and B52 and B51's associated antigens.
    let Expected::Keys(b5) = actual("B5").unwrap() else {
        panic!()
    };
    assert!(b5.contains("B*51:01P") && b5.contains("B*52:01P"));
    // Lab spellings.
    assert_eq!(actual("Cw3").unwrap(), actual("C3").unwrap());
    assert_eq!(actual("HLA-A2").unwrap(), actual("A2").unwrap());
    assert!(matches!(
        actual("A99"),
        Err(TypingError::UnknownAntigen { .. })
    ));
    assert!(actual("Bw4").is_err());
    // DR52 is a DRB3 antigen.
    assert_eq!(
        expander().expand_text("DR52", None).unwrap().locus,
        expander().release().locus_id("DRB3").unwrap()
    );
}

#[test]
fn g_and_p_group_names() {
    let release = expander().release();
    let r = reference();
    for g in &release.g_groups {
        let locus = g.name.split('*').next().unwrap();
        if !LOCI.contains(&locus) {
            continue;
        }
        let names: Vec<&String> = g
            .members
            .iter()
            .map(|&m| {
                r.alleles[locus]
                    .iter()
                    .find(|n| **n == release.allele(m).name)
                    .unwrap()
            })
            .collect();
        assert_eq!(
            actual(&g.name).unwrap(),
            expected_from(&names),
            "{}",
            g.name
        );
    }
    let p_text = std::fs::read_to_string(hla_dir().join("wmda/hla_nom_p.txt")).unwrap();
    for line in strip_header(&p_text) {
        let c: Vec<&str> = line.split(';').collect();
        let locus = c[0].trim_end_matches('*');
        if !c[2].is_empty() && LOCI.contains(&locus) {
            let name = format!("{locus}*{}", c[2]);
            assert_eq!(
                actual(&name).unwrap(),
                Expected::Keys([name.clone()].into()),
                "{name}"
            );
        }
    }
    assert!(matches!(
        actual("A*01:01:99G"),
        Err(TypingError::UnknownGroup { kind: "G", .. })
    ));
    assert!(matches!(
        actual("A*01:99P"),
        Err(TypingError::UnknownGroup { kind: "P", .. })
    ));
}

#[test]
fn deleted_names_resolve_to_their_successor_with_a_warning() {
    let e = expander();
    let set = e.expand_text("DQB1*02:01:10", None).unwrap();
    let successor = e.expand_text("DQB1*02:02:15", None).unwrap();
    assert_eq!(set.kind, successor.kind);
    assert_eq!(set.warnings.len(), 1);
    assert!(
        set.warnings[0].contains("DQB1*02:01:10") && set.warnings[0].contains("DQB1*02:02:15"),
        "{:?}",
        set.warnings
    );
    // Old-style four-digit name recorded in hla_nom.txt.
    let old = e.expand_text("A*0105N", None).unwrap();
    assert!(old.is_null() && !old.warnings.is_empty());
}

#[test]
fn null_rules() {
    let e = expander();
    // Null alternatives are dropped unless all are null.
    assert_eq!(
        actual("A*01:01:01:02N/A*01:01:01:01").unwrap(),
        actual("A*01:01:01:01").unwrap()
    );
    assert_eq!(actual("A*01:11N/A*01:01:01:02N").unwrap(), Expected::Null);
    let gl = GlString::parse("A*03:01+A*01:11N").unwrap();
    let loci = e.expand_gl(&gl).unwrap();
    assert!(!loci[0].positions[0].is_null() && loci[0].positions[1].is_null());
    assert!(matches!(
        e.expand_text("A*NEW", None).unwrap().kind,
        PositionKind::New
    ));
}

#[test]
fn errors_name_the_token_and_the_reason() {
    let e = expander();
    let cases: &[(&str, &str)] = &[
        ("A*99:01", "A*99:01"),
        ("A*02:ZZZZ", "ZZZZ"),
        ("A*99:AB", "A*99:AB"),
        ("A*01:01/B*08:01", "B*08:01"),
        ("A*01:01^^B*08:01", "operator"),
        ("A*01:01+", "operator"),
        ("Q*01:01", "Q"),
        ("A*01:01:01:01:01", "four fields"),
        ("A*0x:01", "0x"),
        ("A*01:01Z", "suffix"),
        ("hla#x#A*01:01", "release version"),
        ("foo#3.58.0#A*01:01", "namespace"),
        ("01:01", "locus"),
        ("A*01:01 B*08:01", "unexpected character"),
    ];
    for (typing, needle) in cases {
        let err = GlString::parse(typing)
            .and_then(|gl| e.expand_gl(&gl).map(|_| ()))
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(needle), "{typing}: `{msg}` lacks `{needle}`");
    }
    assert!(matches!(
        e.expand_text("A*99:AB", None),
        Err(TypingError::EmptyMac { .. })
    ));
}

#[test]
fn gl_strings_round_trip_with_structural_equality() {
    let cases = [
        "A*01:01+A*02:01^B*08:01+B*44:02",
        "HLA-A*01:01/HLA-A*01:02+HLA-A*24:02",
        "A*01:01~B*08:01+A*02:01~B*44:02",
        "A*01:01+A*02:01|A*01:02+A*03:01",
        "hla#3.58.0#A*01:01+A*02:01^B*08:01+B*44:02",
        "A*02:AB+A*03:XX^B*35:BRKR+B7^DRB1*01:01:01G+DRB1*04:01P^C*NEW",
        "A*01:01:01:02N+A*01:01",
    ];
    for text in cases {
        let gl = GlString::parse(text).unwrap();
        let printed = gl.to_string();
        let again = GlString::parse(&printed).unwrap();
        assert_eq!(gl, again, "{text} → {printed}");
        assert_eq!(printed, again.to_string());
    }
    let eq = |a: &str, b: &str| GlString::parse(a).unwrap() == GlString::parse(b).unwrap();
    assert!(eq("A*01:01/A*01:02+A*02:01", "A*02:01+A*01:02/A*01:01"));
    assert!(eq(
        "A*01:01+A*02:01^B*08:01+B*44:02",
        "B*44:02+B*08:01^A*02:01+A*01:01"
    ));
    assert!(eq(
        "A*01:01+A*02:01|A*01:02+A*03:01",
        "A*03:01+A*01:02|A*02:01+A*01:01"
    ));
    assert!(eq("HLA-A*01:01", "A*01:01"));
    assert!(eq("A*01:01/02", "A*01:01/A*01:02"));
    assert!(!eq("A*01:01~B*08:01", "B*08:01~A*01:01"), "~ is ordered");
    assert!(!eq("A*01:01+A*01:01", "A*01:01"), "+ keeps both copies");
    assert!(!eq("hla#3.58.0#A*01:01", "A*01:01"));
    // Atlas short list form in a per-locus column.
    let list = AlleleList::parse("*01:01/02", Some("A")).unwrap();
    assert_eq!(list.to_string(), "A*01:01/A*01:02");
    assert_eq!(
        AlleleList::parse("24", Some("A")).unwrap().to_string(),
        "A24"
    );
    assert_eq!(
        AlleleList::parse("3", Some("C")).unwrap().to_string(),
        "Cw3"
    );
}

#[test]
fn locus_positions_from_gl_strings() {
    let gl = GlString::parse("A*01:01~B*08:01+A*02:01~B*44:02^DRB1*01:01").unwrap();
    let t = locus_typings(&gl).unwrap();
    assert_eq!(
        t.iter().map(|t| t.locus.as_str()).collect::<Vec<_>>(),
        ["A", "B", "DRB1"]
    );
    assert_eq!(t[1].positions[1].to_string(), "B*44:02");
    assert!(t[2].single_copy && t[2].positions[0] == t[2].positions[1]);
    let merged =
        locus_typings(&GlString::parse("A*01:01+A*02:01|A*01:02+A*03:01").unwrap()).unwrap();
    assert_eq!(merged[0].positions[0].to_string(), "A*01:01/A*01:02");
    assert!(locus_typings(&GlString::parse("A*01:01+A*02:01+A*03:01").unwrap()).is_err());
    assert!(locus_typings(&GlString::parse("A*01:01^A*02:01").unwrap()).is_err());
}

/// Two copies joined by `+` type one gene: copies of different loci are refused with the
/// token named, not read as two homozygous loci; one copy alone is still homozygous.
#[test]
fn copies_of_different_loci_are_refused_naming_the_token() {
    for (text, token) in [
        ("A*01:01+B*08:01", "A*01:01"),
        ("A*02:01+A*03:01^B*07:02+DRB1*15:01", "B*07:02"),
        ("A*01:01~B*08:01+A*02:01", "B*08:01"),
        ("A*01:01+A*02:01|B*08:01+C*07:01", "B*08:01"),
    ] {
        let e = locus_typings(&GlString::parse(text).unwrap()).unwrap_err();
        assert!(
            matches!(&e, TypingError::Syntax { token: t, reason } if t == token && reason.contains("different loci")),
            "{text}: {e}"
        );
    }
    let one = locus_typings(&GlString::parse("A*01:01^B*08:01+B*44:02").unwrap()).unwrap();
    assert!(one[0].single_copy && one[0].positions[0] == one[0].positions[1]);
}

#[test]
fn mac_dictionary_reads_both_nmdp_layouts() {
    let alpha = MacDictionary::load(mac_file()).unwrap();
    // numer.v3.txt: three header lines, no `*` column.
    let mut numer = String::from("LAST UPDATED: 07/11/20\n\nCODE\tSUBTYPE\n");
    for (code, mac) in alpha.codes() {
        numer.push_str(&format!("{code}\t{}\n", mac.entries.join("/")));
    }
    let dir = tempdir();
    let path = dir.join("numer.v3.txt");
    std::fs::write(&path, numer).unwrap();
    let numer = MacDictionary::load(&path).unwrap();
    assert_eq!(numer.len(), alpha.len());
    for (code, mac) in alpha.codes() {
        assert_eq!(numer.get(code), Some(mac), "{code}");
    }
    std::fs::write(
        &path,
        "LAST UPDATED: x\n*\tCODE\tSUBTYPE\n\tAB\t01/02\n\tab\t01\n",
    )
    .unwrap();
    let err = MacDictionary::load(&path).unwrap_err().to_string();
    assert!(err.contains(":4:") && err.contains("ab"), "{err}");
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "boai-hla-test-{}-{}",
        std::process::id(),
        std::thread::current()
            .name()
            .unwrap_or("t")
            .replace("::", "-")
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_20k_corpus_expands_without_error() {
    let e = expander();
    let mut cells = 0;
    for record in SubjectReader::open(shared("corpora/atlas-donors/donors-20k.tsv")).unwrap() {
        let record = record.unwrap();
        let hla::input::SubjectTyping::Cells(loci) = &record.typing else {
            panic!()
        };
        for (locus, pair) in loci {
            for cell in pair.iter().flatten() {
                if let Err(err) = e.expand_text(cell, Some(locus)) {
                    panic!("line {} {locus} `{cell}`: {err}", record.line);
                }
                cells += 1;
            }
        }
        record.locus_typings(e.release()).unwrap();
    }
    assert_eq!(cells, 177_646);
}

#[test]
fn the_wmda_mvt3_corpus_expands_without_error() {
    let e = expander();
    for (file, count) in [("don.gl.txt.gz", 10_000), ("pat.gl.txt.gz", 1_000)] {
        let mut n = 0;
        for record in SubjectReader::open(shared("corpora/wmda-mvt3").join(file)).unwrap() {
            let record = record.unwrap();
            let typings = record
                .locus_typings(e.release())
                .unwrap_or_else(|err| panic!("{file}: {err}"));
            e.expand_typings(typings)
                .unwrap_or_else(|err| panic!("{file} line {}: {err}", record.line));
            n += 1;
        }
        assert_eq!(n, count, "{file}");
    }
}

#[test]
fn memoised_expansion_is_shared() {
    let e = expander();
    let a = e.expand_text("B*35:BRKR", None).unwrap();
    let b = e.expand_text("B*35:BRKR", None).unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    let list = AlleleList::parse("B*35:BRKR", None).unwrap();
    assert_eq!(
        *e.expand_list(&list).unwrap(),
        e.expand_list_uncached(&list).unwrap()
    );
}

#[test]
fn shared_p_groups_are_a_word_wise_and() {
    let e = expander();
    let a = e.expand_text("A*02:AB", None).unwrap();
    let b = e.expand_text("A*02:01:01:01", None).unwrap();
    let c = e.expand_text("A*03:01", None).unwrap();
    let (PositionKind::Expressed(a), PositionKind::Expressed(b), PositionKind::Expressed(c)) =
        (&a.kind, &b.kind, &c.kind)
    else {
        panic!()
    };
    assert!(a.intersects(b) && b.intersects(a));
    assert!(!a.intersects(c));
}

#[path = "hla/reductions.rs"]
mod reductions;

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Real tokens per locus: an allele list never mixes loci.
    const TOKENS: &[&[&str]] = &[
        &[
            "A*01:01",
            "A*02:AB",
            "A*02:XX",
            "A*01:01:01G",
            "A*01:01P",
            "A2",
            "A*01:11N",
            "HLA-A*24:02",
            "A*01:01:01:02N",
        ],
        &["B*08:01", "B*35:BRKR", "B5", "B*NEW"],
        &["Cw3", "C*NEW", "C*07:01"],
        &["DRB1*02:XX", "DRB1*04:01", "DR4"],
        &["DQB1*02:01:10", "DQB1*03:01"],
        &["DPB1*04:01", "DPB1*02:01:02"],
    ];

    fn allele_list() -> impl Strategy<Value = String> {
        prop::sample::select(TOKENS)
            .prop_flat_map(|pool| prop::collection::vec(prop::sample::select(pool), 1..4))
            .prop_map(|v| v.join("/"))
    }

    fn gl() -> impl Strategy<Value = String> {
        let haplotype = prop::collection::vec(allele_list(), 1..3).prop_map(|v| v.join("~"));
        let genotype = prop::collection::vec(haplotype, 1..3).prop_map(|v| v.join("+"));
        let glist = prop::collection::vec(genotype, 1..3).prop_map(|v| v.join("|"));
        (
            prop::collection::vec(glist, 1..4).prop_map(|v| v.join("^")),
            any::<bool>(),
        )
            .prop_map(|(s, versioned)| {
                if versioned {
                    format!("hla#3.58.0#{s}")
                } else {
                    s
                }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

        /// Arbitrary text over the GL alphabet never panics the parser or the expander.
        #[test]
        fn no_panic_on_arbitrary_text(text in "[A-Za-z0-9*:/~+|^#.\\- ]{0,40}") {
            if let Ok(gl) = GlString::parse(&text) {
                let _ = expander().expand_gl(&gl);
                let again = GlString::parse(&gl.to_string()).expect("printed GL parses");
                prop_assert_eq!(gl, again);
            }
            let _ = expander().expand_text(&text, None);
            let _ = expander().expand_text(&text, Some("A"));
            let _ = AlleleList::parse(&text, Some("DRB1"));
        }

        /// Arbitrary real-looking names never panic either.
        #[test]
        fn no_panic_on_name_like_text(text in "(HLA-)?[A-Z]{1,4}[0-9]?\\*[0-9]{1,3}(:[0-9A-Z]{1,4}){0,4}[NLSQGPXZ]?") {
            let _ = expander().expand_text(&text, None);
            for to in [Reduction::G, Reduction::P, Reduction::Lgx, Reduction::Serology, Reduction::Tce] {
                if let Ok(list) = AlleleList::parse(&text, None) {
                    let _ = expander().reduce_list(&list, to);
                }
            }
        }

        /// parse → print → parse is the identity on structured GL strings.
        #[test]
        fn round_trip(text in gl()) {
            let gl = GlString::parse(&text).unwrap();
            let printed = gl.to_string();
            prop_assert_eq!(&GlString::parse(&printed).unwrap(), &gl);
            let _ = expander().expand_gl(&gl);
        }
    }
}

#[test]
fn a_versioned_gl_string_must_name_the_loaded_release() {
    let e = expander();
    for same in [
        "hla#3.58.0#A*01:01+A*02:01",
        "HLA#3.58#A*01:01+A*02:01",
        "A*01:01+A*02:01",
    ] {
        e.parse_gl(same)
            .unwrap_or_else(|err| panic!("{same}: {err}"));
    }
    for other in [
        "hla#3.1.0#A*01:01+A*02:01",
        "hla#3.58.1#A*01:01+A*02:01",
        "hla#3.580#A*01:01",
    ] {
        let err = e.parse_gl(other).unwrap_err();
        assert!(
            matches!(&err, TypingError::OtherRelease { release, .. } if release == "3.58.0"),
            "{other}: {err}"
        );
    }
    // A file's versioned line is refused on its line, the same way.
    let record = hla::input::SubjectRecord {
        line: 7,
        id: "D7".into(),
        typing: hla::input::SubjectTyping::Gl("hla#3.1.0#A*01:01+A*02:01".into()),
        donor_type: None,
        external_code: None,
    };
    let err = record.locus_typings(e.release()).unwrap_err();
    assert_eq!((err.line, err.field.as_str()), (7, "GLSTRING"));
}
