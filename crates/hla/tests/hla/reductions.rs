//! Reductions: each rule with examples from the release files, and general checks over
//! every allele of the release against a plain reading of those files.

use std::collections::{HashMap, HashSet};

use hla::{AlleleList, Expander, Reducer, Reduction};

use super::{LOCI, expander, hla_dir, strip_header};

fn reduce(t: &str, to: Reduction) -> Vec<String> {
    reduced(t, to).0
}

fn reduced(t: &str, to: Reduction) -> (Vec<String>, Vec<String>) {
    let r = expander()
        .reduce_list(&AlleleList::parse(t, None).unwrap(), to)
        .unwrap();
    (r.names, r.warnings)
}

#[test]
fn each_rule_with_the_release_examples() {
    let e = expander();
    assert_eq!(reduce("A*01:01:01:01", Reduction::G), ["A*01:01:01G"]);
    assert_eq!(reduce("A*01:01:02", Reduction::G), ["A*01:01:02"]);
    assert_eq!(reduce("A*01:01:01:01", Reduction::P), ["A*01:01P"]);
    assert_eq!(reduce("A*02:AB", Reduction::P), ["A*02:01P", "A*02:02P"]);
    assert_eq!(reduce("A*01:01:01:05", Reduction::Lgx), ["A*01:01"]);
    assert_eq!(reduce("A*01:06", Reduction::Lgx), ["A*01:06"]);
    // An allele in no G group keeps its expression suffix: the release has no `A*02:605`.
    assert_eq!(reduce("A*02:605Q", Reduction::Lgx), ["A*02:605Q"]);
    assert_eq!(reduce("A*02:605Q", Reduction::LgxOwn), ["A*02:605Q"]);
    // In no G group but in a P group: py-ard's default is the P group's two-field name;
    // `lgx-own` keeps the allele's own.
    assert_eq!(reduce("A*11:107", Reduction::Lgx), ["A*11:01"]);
    assert_eq!(reduce("A*11:107", Reduction::LgxOwn), ["A*11:107"]);
    // A null alternative written as such is reduced on its own, never dropped…
    assert_eq!(
        reduce("A*01:01/A*01:16N", Reduction::Lgx),
        ["A*01:01", "A*01:16N"]
    );
    assert_eq!(
        reduce("A*01:01/A*01:16N", Reduction::P),
        ["A*01:01P", "A*01:16N"]
    );
    // …while a name standing for several alleles does not pick up its null members.
    assert_eq!(reduce("A*01:01", Reduction::Lgx), ["A*01:01"]);
    // A null allele in a G group stays null at two fields (documented), and in its G group.
    assert_eq!(reduce("A*01:328N", Reduction::Lgx), ["A*01:328N"]);
    assert_eq!(reduce("A*01:328N", Reduction::G), ["A*01:01:01G"]);
    // A deleted name is read as its successor, with a warning; its reduction is the
    // successor's.
    let (names, warnings) = reduced("A*02:01:08", Reduction::Lgx);
    assert_eq!(names, reduce("A*02:1040", Reduction::Lgx));
    assert!(warnings[0].contains("A*02:1040"), "{warnings:?}");
    assert_eq!(reduce("A*02:01:01:01", Reduction::Serology), ["A2"]);
    assert_eq!(reduce("C*03:04:01:01", Reduction::Serology), ["Cw10"]);
    assert_eq!(reduce("DPB1*01:01:01:01", Reduction::Tce), ["TCE3"]);
    // V2 (the newest column) wins over V1, markers stripped: 06:01 moved from 3 to 2a.
    assert_eq!(reduce("DPB1*06:01:01:01", Reduction::Tce), ["TCE2"]);
    assert!(
        e.reduce_list(&AlleleList::parse("A*01:01", None).unwrap(), Reduction::Tce)
            .is_err()
    );
    // lgx of every G group member is the two-field name of the group's first member.
    let release = e.release();
    let g = release.g_group("DRB1*14:01:01G").unwrap();
    let first = release.allele(g.members[0]).truncated(2);
    for &m in &g.members {
        let name = &release.allele(m).name;
        if !release.allele(m).is_null() {
            assert_eq!(
                reduce(name, Reduction::Lgx),
                std::slice::from_ref(&first),
                "{name}"
            );
        }
    }
}

/// Serology: what `rel_dna_ser.txt` assigns, all of it, and nothing it does not.
#[test]
fn serology_keeps_every_assigned_antigen_and_invents_none() {
    // Possible `2/19`: both antigens, in number order.
    assert_eq!(reduce("A*02:65", Reduction::Serology), ["A2", "A19"]);
    // A split is not widened to its broad (`A23`, not `A9/A23`).
    assert_eq!(reduce("A*23:01", Reduction::Serology), ["A23"]);
    // The expert-assigned exception (28) is a search determinant, not an equivalent.
    assert_eq!(reduce("A*02:55", Reduction::Serology), ["A2"]);
    // `?`: no equivalent, kept at two fields and said so, never `Cw12`.
    for (typing, kept) in [
        ("C*12:02", "C*12:02"),
        ("C*12:02:01", "C*12:02"),
        ("DPB1*04:01:01:01", "DPB1*04:01"),
    ] {
        let (names, warnings) = reduced(typing, Reduction::Serology);
        assert_eq!(names, [kept], "{typing}");
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("no serological equivalent") && w.contains(kept)),
            "{typing}: {warnings:?}"
        );
    }
    // An assigned antigen and an unassigned protein in one list: both, each for itself.
    assert_eq!(
        reduce("C*03:04/C*12:02", Reduction::Serology),
        ["C*12:02", "Cw10"]
    );
    // A null allele has no antigen: it stays null.
    assert_eq!(
        reduce("A*01:01/A*01:16N", Reduction::Serology),
        ["A1", "A*01:16N"]
    );
    // A serological typing stays as written: reduction does not widen it to its family.
    assert_eq!(reduce("A203", Reduction::Serology), ["A203"]);
    assert_eq!(reduce("Cw10/Cw3", Reduction::Serology), ["Cw3", "Cw10"]);
    // The same protein shares its assignment: the file leaves B*44:02:01:02S unassigned.
    assert_eq!(reduce("B*44:02:01:02S", Reduction::Serology), ["B44"]);

    // Every expressed allele of the serological loci against a plain reading of the file:
    // its unambiguous, possible and assumed antigens, or (none assigned to its protein) its
    // own two-field name.
    let mut assigned: HashMap<String, Vec<String>> = HashMap::new();
    let text = std::fs::read_to_string(hla_dir().join("wmda/rel_dna_ser.txt")).unwrap();
    for line in strip_header(&text) {
        let c: Vec<&str> = line.split(';').collect();
        let locus = c[0].trim_end_matches('*');
        if !LOCI.contains(&locus) {
            continue;
        }
        let label = if locus == "C" {
            "Cw"
        } else {
            &locus[..locus.len().min(2)]
        };
        let mut antigens: Vec<String> = Vec::new();
        for a in c[2..5].iter().flat_map(|x| x.split('/')) {
            let antigen = format!("{label}{a}");
            if !["", "0", "?"].contains(&a) && !antigens.contains(&antigen) {
                antigens.push(antigen);
            }
        }
        assigned.insert(format!("{locus}*{}", c[1]), antigens);
    }
    let mut protein: HashMap<String, HashSet<String>> = HashMap::new();
    for (name, antigens) in &assigned {
        if !name.ends_with('N') {
            protein
                .entry(two_fields(name))
                .or_default()
                .extend(antigens.iter().cloned());
        }
    }
    let release = expander().release();
    let mut checked = 0;
    for allele in release.alleles.iter().filter(|a| !a.is_null()) {
        let Some(antigens) = assigned.get(&allele.name) else {
            continue;
        };
        let mut expected: Vec<String> = if antigens.is_empty() {
            protein[&two_fields(&allele.name)].iter().cloned().collect()
        } else {
            antigens.clone()
        };
        let names = reduce(&allele.name, Reduction::Serology);
        if expected.is_empty() {
            assert_eq!(names.len(), 1, "{}", allele.name);
            assert!(names[0].contains('*'), "{}: {names:?}", allele.name);
        } else {
            expected.sort();
            let mut names = names.clone();
            names.sort();
            assert_eq!(names, expected, "{}", allele.name);
        }
        checked += 1;
    }
    assert!(checked > 20_000, "{checked}");
}

fn two_fields(name: &str) -> String {
    let (locus, fields) = name.split_once('*').unwrap();
    let fields = fields.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let two: Vec<&str> = fields.split(':').take(2).collect();
    format!("{locus}*{}", two.join(":"))
}

/// The compact G output stands for exactly the alleles the full one does.
#[test]
fn compact_g_names_the_same_alleles_as_the_full_g() {
    let e = expander();
    let alleles = |names: &[String]| -> HashSet<u32> {
        let list = AlleleList::parse(&names.join("/"), None).unwrap();
        let mut set = HashSet::new();
        for token in &list.0 {
            let one = e.alternatives(&AlleleList(vec![token.clone()])).unwrap();
            set.extend(one.expressed_or_all_null(e.release()).0);
        }
        set
    };
    let mut shorter = 0;
    for typing in [
        "A*02:01",
        "C*12:02",
        "DPB1*04:01",
        "A*01:01/A*01:16N",
        "B*15:XX",
        "A*02:AB",
    ] {
        let full = reduce(typing, Reduction::G);
        let compact = reduce(typing, Reduction::GCompact);
        assert_eq!(alleles(&compact), alleles(&full), "{typing}");
        if compact.len() < full.len() {
            shorter += 1;
        }
        // G group names stay as they are.
        for g in full.iter().filter(|n| n.ends_with('G')) {
            assert!(compact.contains(g), "{typing}: {g}");
        }
    }
    assert!(shorter >= 4, "{shorter}");
    assert_eq!(
        reduce("A*02:01", Reduction::GCompact),
        ["A*02:01", "A*02:01:01G", "A*02:01:02G"]
    );
    // One ungrouped three-field allele alone is not folded: `A*01:01` would stand for more.
    assert_eq!(reduce("A*01:01:02", Reduction::GCompact), ["A*01:01:02"]);
}

/// The memoising GL reducer gives what reducing each list does, keeps the GL structure,
/// and refuses what `parse_gl` refuses.
#[test]
fn the_gl_reducer_agrees_with_list_reduction() {
    let e: &Expander = expander();
    for to in [
        Reduction::G,
        Reduction::GCompact,
        Reduction::P,
        Reduction::Lgx,
        Reduction::Serology,
    ] {
        let mut reducer = Reducer::new(e, to);
        for _ in 0..2 {
            for gl in [
                "A*01:01:01:01+A*02:01^B*08:01~C*07:01+B*44:02~C*05:01",
                "HLA-A*02:AB+A*24:02|A*02:01+A*24:03",
                "hla#3.58.0#C*12:02+C*03:04",
            ] {
                let parsed = e.parse_gl(gl).unwrap();
                let mut warnings = Vec::new();
                let expected = parsed
                    .map_lists(|list| {
                        let r = e.reduce_list(list, to)?;
                        warnings.extend(r.warnings);
                        Ok::<_, hla::TypingError>(r.names.join("/"))
                    })
                    .unwrap();
                let (mut out, mut got_warnings) = (String::new(), Vec::new());
                reducer
                    .reduce_gl_into(gl, &mut out, &mut got_warnings)
                    .unwrap();
                assert_eq!(out.trim_start_matches("hla#3.58.0#"), expected, "{to} {gl}");
                warnings.dedup();
                assert_eq!(got_warnings, warnings, "{to} {gl}");
            }
        }
        for bad in [
            "",
            "A*01:01++A*02:01",
            "A*01:01^",
            "hla#3.1.0#A*01:01",
            "A*99:99",
            "A*01:01 +A*02:01",
        ] {
            let (mut out, mut warnings) = (String::new(), Vec::new());
            let err = reducer.reduce_gl_into(bad, &mut out, &mut warnings);
            let parsed = e
                .parse_gl(bad)
                .and_then(|gl| gl.map_lists(|l| e.reduce_list(l, to).map(|r| r.names.join("/"))));
            assert!(err.is_err() && parsed.is_err(), "{to} `{bad}`");
        }
    }
}
