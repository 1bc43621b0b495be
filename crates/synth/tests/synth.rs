//! Synthetic populations: reproducible, valid against the release, with the intended mix.

use std::path::PathBuf;
use std::sync::Arc;

use hla::{Expander, MacDictionary, Release};
use matching::{DonorIndex, DonorInput, Locus};
use synth::{Synth, SynthError};

fn shared(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared")
        .join(relative)
}

fn expander() -> Arc<Expander> {
    let dir = std::env::var_os("BOAI_HLA_DIR").map_or_else(|| shared("imgt-hla"), PathBuf::from);
    let mac = std::env::var_os("BOAI_MAC_FILE")
        .map_or_else(|| shared("mac/alpha.v3.subset.txt"), PathBuf::from);
    Arc::new(Expander::new(
        Arc::new(Release::load(dir).unwrap()),
        Arc::new(MacDictionary::load(mac).unwrap()),
    ))
}

fn freqs() -> PathBuf {
    shared("frequencies/NMDP_2007_FiveLocus_Freqs.csv")
}

#[test]
fn populations_are_reproducible_valid_and_mixed_like_a_registry() {
    let e = expander();
    let synth = Synth::new(&e, &freqs(), "API").unwrap();
    assert!(synth.haplotype_count() > 1000);
    let a = synth.donors(20_000, 7);
    let b = synth.donors(20_000, 7);
    assert_eq!(a, b, "same seed, same population");
    let c = synth.donors(20_000, 8);
    assert_ne!(a, c);
    // Every generated typing is valid HLA the index accepts, and every GL string parses.
    let mut index = DonorIndex::new(e.clone());
    let (mut typed, mut cells, mut high, mut mac, mut xx, mut sero) = ([0usize; 6], 0, 0, 0, 0, 0);
    for p in &a {
        let mut input = DonorInput {
            key: p.key,
            attributes: synth.attributes(p),
            ..Default::default()
        };
        for l in Locus::ALL {
            let pair = p.cells[l.index()];
            input.hla[l.index()] = [
                pair[0].map(|c| synth.cell_text(l, c)),
                pair[1].map(|c| synth.cell_text(l, c)),
            ];
            for cell in pair.iter().flatten() {
                typed[l.index()] += 1;
                cells += 1;
                let t = synth.cell_text(l, *cell);
                match t.rsplit(':').next().unwrap() {
                    "XX" => xx += 1,
                    code if code.bytes().all(|b| b.is_ascii_uppercase()) => mac += 1,
                    _ if !t.starts_with('*') => sero += 1,
                    _ => high += 1,
                }
            }
        }
        index.upsert(&input).unwrap_or_else(|err| panic!("{err}"));
        hla::GlString::parse(&synth.gl_string(p)).unwrap();
    }
    assert_eq!(index.len(), 20_000);
    let share = |n: usize| n as f64 / cells as f64;
    assert!((0.25..0.45).contains(&share(high)), "high {}", share(high));
    assert!((0.20..0.45).contains(&share(mac)), "mac {}", share(mac));
    assert!(
        share(xx) > 0.08 && share(sero) > 0.03,
        "xx {} serology {}",
        share(xx),
        share(sero)
    );
    // A, B, DRB1 always typed; C, DQB1, DPB1 often untyped.
    let n = 2 * a.len();
    assert_eq!((typed[0], typed[1], typed[3]), (n, n, n));
    for (l, lo, hi) in [(2, 0.45, 0.80), (4, 0.30, 0.60), (5, 0.10, 0.50)] {
        let f = typed[l] as f64 / n as f64;
        assert!((lo..hi).contains(&f), "{:?} typed in {f}", Locus::ALL[l]);
    }
    // Patients are high resolution at all six loci.
    for p in synth.patients(200, 1) {
        for l in Locus::ALL {
            for cell in p.cells[l.index()] {
                let t = synth.cell_text(l, cell.expect("typed"));
                assert!(t.starts_with('*') && !t.ends_with("XX"), "{t}");
            }
        }
    }
    // The true alleles are consistent with what the degraded typing says.
    let mut builder = matching::SubjectBuilder::new(e.clone());
    for p in a.iter().take(500) {
        let typed = builder.from_gl(&synth.gl_string(p)).unwrap();
        let truth: Vec<String> = Locus::ALL
            .iter()
            .map(|l| {
                let t = p.truth[l.index()];
                format!(
                    "{0}{1}+{0}{2}",
                    l.name(),
                    synth.truth_text(*l, t[0]),
                    synth.truth_text(*l, t[1])
                )
            })
            .collect();
        let truth = builder.from_gl(&truth.join("^")).unwrap();
        let s = matching::PairScore::compute(&truth, &typed);
        assert_eq!(
            s.total(&Locus::ALL),
            0,
            "donor {}: {}",
            p.key,
            synth.gl_string(p)
        );
    }
}

#[test]
fn every_population_loads_and_unknown_ones_are_named() {
    let e = expander();
    for pop in ["API", "EUR", "AFA", "HIS"] {
        let s = Synth::new(&e, &freqs(), pop).unwrap();
        assert!(s.haplotype_count() > 1000, "{pop}");
    }
    match Synth::new(&e, &freqs(), "XYZ") {
        Err(SynthError::UnknownPopulation(name, known)) => {
            assert_eq!(name, "XYZ");
            assert!(known.contains("EUR"));
        }
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("XYZ accepted"),
    }
}
