//! `boai import hml`: lab results in HML 1.0.1 (in the HML namespace, under a prefix, or in
//! none) record typings that search exactly as the same typings given as GL strings; a
//! document with bad elements names each by its path and records only the good samples (or
//! none with `--all-or-nothing`); a document that is not HML records nothing.

use super::{boai, import_donor_lines, registry_urls, registry_with_station, stats};

const NS: &str = "http://schemas.nmdp.org/spec/hml/1.0.1";

/// What the donors are enrolled with (low resolution; DPB1 the lab will not retype).
const ENROLLED: [&str; 4] = [
    "A1+A2^B8+B7^DR3+DR15^DPB1*04:01+DPB1*04:02",
    "A*02:XX+A*24:XX^B*35:XX+B*40:XX^DRB1*04:XX+DRB1*15:XX^DPB1*02:01+DPB1*04:01",
    "A*01:XX+A*03:XX^B*07:XX+B*08:XX^DRB1*03:XX+DRB1*04:XX",
    "A*11:XX+A*24:XX^B*40:XX+B*46:XX^DRB1*09:XX+DRB1*12:XX",
];

/// What each donor's typing is once the lab's results are in (the lab's loci replace those
/// enrolled; DPB1 kept), given directly as GL strings to the second registry.
const TYPED: [&str; 4] = [
    "A*01:01:01:01+A*02:01:01:01^B*08:01:01:01+B*07:02:01:01^C*07:01:01:01+C*07:02:01:01^DRB1*03:01:01:01+DRB1*15:01:01:01^DQB1*02:01:01:01+DQB1*06:02:01:01^DPB1*04:01+DPB1*04:02",
    "A*02:01+A*24:02^B*35:01+B*40:01^C*03:04+C*04:01^DRB1*04:01+DRB1*15:01^DQB1*03:02+DQB1*06:02^DPB1*02:01+DPB1*04:01",
    "A*01:01+A*03:01^B*07:02+B*08:01^DRB1*03:01/DRB1*03:02+DRB1*04:01",
    "A*11:01+A*24:02^B*40:01+B*46:01^DRB1*09:01+DRB1*12:02",
];

fn grid(donor: u32) -> String {
    registry::make_grid(2197, &donor.to_string()).unwrap()
}

/// Three documents in the three namespace forms, giving the lab's results for donors 1–4.
fn lab_documents() -> Vec<String> {
    let g = |d| grid(d);
    // Donor 2's GRID written with spaces, as on a form.
    let spaced: String = {
        let g2 = g(2);
        format!("{} {} {}", &g2[..4], &g2[4..17], &g2[17..])
    };
    vec![
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<hml xmlns="{NS}" version="1.0.1" project-name="LAB">
  <hmlid root="2.16.840.1.113883.3.1470" extension="run-1"/>
  <reporting-center reporting-center-id="567"/>
  <sample id="{d1}" center-code="LAB1">
    <typing gene-family="HLA" date="2026-11-30">
      <allele-assignment date="2026-11-30" allele-db="IMGT/HLA" allele-version="3.58.0">
        <glstring>
          HLA-A*01:01:01:01+HLA-A*02:01:01:01^HLA-B*08:01:01:01+HLA-B*07:02:01:01^HLA-C*07:01:01:01+HLA-C*07:02:01:01
        </glstring>
      </allele-assignment>
      <typing-method><sbt-ngs locus="HLA-A" test-id="t1" test-id-source="s"/></typing-method>
    </typing>
    <typing gene-family="HLA" date="2026-11-30">
      <allele-assignment allele-db="IMGT/HLA" allele-version="3.58">
        <glstring><![CDATA[HLA-DRB1*03:01:01:01+HLA-DRB1*15:01:01:01^HLA-DQB1*02:01:01:01+HLA-DQB1*06:02:01:01]]></glstring>
      </allele-assignment>
      <typing-method><sso locus="HLA-DRB1" test-id="t2" test-id-source="s"/></typing-method>
    </typing>
    <typing gene-family="KIR"><allele-assignment allele-db="IPD-KIR"><glstring>KIR2DL1*001+KIR2DL1*002</glstring></allele-assignment></typing>
  </sample>
  <sample id="{spaced}" center-code="LAB1">
    <typing gene-family="HLA" date="2026-12-01">
      <allele-assignment allele-db="IMGT/HLA" allele-version="3.58.0">
        <haploid locus="HLA-A" method="DNA" type="02:01"/><haploid locus="HLA-A" method="DNA" type="24:02"/>
        <haploid locus="HLA-B" method="DNA" type="35:01"/><haploid locus="HLA-B" method="DNA" type="40:01"/>
        <haploid locus="HLA-C" method="DNA" type="03:04"/><haploid locus="HLA-C" method="DNA" type="04:01"/>
        <haploid locus="HLA-DRB1" method="DNA" type="04:01"/><haploid locus="HLA-DRB1" method="DNA" type="15:01"/>
        <haploid locus="HLA-DQB1" method="DNA" type="03:02"/><haploid locus="HLA-DQB1" method="DNA" type="06:02"/>
      </allele-assignment>
      <typing-method><ssp locus="HLA-A" test-id="t3" test-id-source="s"/></typing-method>
    </typing>
  </sample>
</hml>"#,
            d1 = g(1)
        ),
        format!(
            r#"<h:hml xmlns:h="{NS}" xmlns:x="urn:example:other" version="1.0.1">
  <h:sample id="{d3}">
    <x:sample id="not-a-sample"><x:typing/></x:sample>
    <h:typing gene-family="HLA">
      <h:allele-assignment allele-db="IMGT/HLA" allele-version="3.58.0" date="2026-11-02">
        <h:glstring>hla#3.58.0#HLA-A*01:01+HLA-A*03:01^HLA-B*07:02+HLA-B*08:01^HLA-DRB1*03:01/HLA-DRB1*03:02+HLA-DRB1*04:01</h:glstring>
      </h:allele-assignment>
      <h:typing-method><h:sbt-sanger locus="HLA-A" test-id="t" test-id-source="s"/></h:typing-method>
    </h:typing>
  </h:sample>
</h:hml>"#,
            d3 = g(3)
        ),
        format!(
            r#"<hml version="1.0.1"><sample id="{d4}"><typing gene-family="HLA">
  <allele-assignment allele-version="3.40.0"><glstring>HLA-A*11:01+HLA-A*24:02</glstring></allele-assignment>
  <allele-assignment><glstring>HLA-A*11:01+HLA-A*24:02^HLA-B*40:01+HLA-B*46:01^HLA-DRB1*09:01+HLA-DRB1*12:02</glstring></allele-assignment>
</typing></sample></hml>"#,
            d4 = g(4)
        ),
    ]
}

fn setup(url: &str, typings: &[&str], dir: &std::path::Path, name: &str) {
    registry_with_station(url);
    let file = dir.join(format!("{name}.txt"));
    let lines: Vec<String> = typings
        .iter()
        .enumerate()
        .map(|(i, t)| format!("D{}%{t}", i + 1))
        .collect();
    import_donor_lines(url, &file, &lines);
}

fn search(url: &str, patient: &str) -> String {
    let o = boai(&[
        "search",
        "--db",
        url,
        "--patient",
        patient,
        "--max-mismatches",
        "3",
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn hml_typings_search_as_the_same_gl_strings_and_bad_elements_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let by_hml = registry_urls(dir.path(), "hml_lab");
    let by_gl = registry_urls(dir.path(), "hml_gl");
    for (hml_url, gl_url) in by_hml.iter().zip(&by_gl) {
        setup(hml_url, &ENROLLED, dir.path(), "enrolled");
        setup(gl_url, &TYPED, dir.path(), "typed");
        for (i, doc) in lab_documents().iter().enumerate() {
            let file = dir.path().join(format!("lab{i}.xml"));
            std::fs::write(&file, doc).unwrap();
            let o = boai(&["import", "hml", file.to_str().unwrap(), "--db", hml_url]);
            let out = String::from_utf8_lossy(&o.stdout);
            assert!(
                o.status.success(),
                "{out}{}",
                String::from_utf8_lossy(&o.stderr)
            );
            assert!(!out.contains("already"), "{out}");
        }
        // The same patients find the same donors, ranked and graded the same.
        for patient in [
            TYPED[0],
            TYPED[1],
            TYPED[2],
            TYPED[3],
            "A*02:01+A*24:02^B*40:01+B*08:01^DRB1*15:01+DRB1*04:01",
        ] {
            assert_eq!(
                search(hml_url, patient),
                search(gl_url, patient),
                "{patient}"
            );
        }
        // Sent again, the same results are recognised and not recorded twice.
        let typings = stats(hml_url)["typings"].as_u64().unwrap();
        let file = dir.path().join("lab0.xml");
        let o = boai(&["import", "hml", file.to_str().unwrap(), "--db", hml_url]);
        assert!(o.status.success());
        assert_eq!(
            String::from_utf8_lossy(&o.stdout)
                .matches("already recorded")
                .count(),
            2
        );
        assert_eq!(stats(hml_url)["typings"].as_u64().unwrap(), typings);

        // Every bad element named; the one good sample recorded.
        let bad = bad_document();
        let file = dir.path().join("bad.xml");
        std::fs::write(&file, &bad).unwrap();
        let o = boai(&[
            "import",
            "hml",
            file.to_str().unwrap(),
            "--all-or-nothing",
            "--db",
            hml_url,
        ]);
        assert_eq!(o.status.code(), Some(1));
        assert_eq!(
            stats(hml_url)["typings"].as_u64().unwrap(),
            typings,
            "--all-or-nothing recorded something"
        );
        let o = boai(&["import", "hml", file.to_str().unwrap(), "--db", hml_url]);
        assert_eq!(o.status.code(), Some(1));
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        for (path, reason) in [
            (
                "/hml/sample[1]/typing[1]/allele-assignment[1]/glstring[1]",
                "A*99:99",
            ),
            (
                "/hml/sample[2]/typing[1]/allele-assignment[1]/@allele-version",
                "3.40.0",
            ),
            ("/hml/sample[3]/@id", "a sample needs its id"),
            (
                "/hml/sample[4]/@id",
                "neither a sample barcode nor the GRID",
            ),
            (
                "/hml/sample[5]/typing[1]/allele-assignment[1]/haploid[1]",
                "give both copies",
            ),
            (
                "/hml/sample[6]/typing[1]/allele-assignment[1]/glstring[1]",
                "by reference",
            ),
            ("/hml/sample[7]/typing[1]/@date", "not a date"),
            (
                "/hml/sample[8]/typing[1]/allele-assignment[1]/@date",
                "has not happened yet",
            ),
            (
                "/hml/sample[9]/typing[2]/allele-assignment[1]/glstring[1]",
                "typed twice",
            ),
            ("/hml/sample[10]", "no HLA typing"),
            (
                "/hml/sample[11]/typing[1]/allele-assignment[1]/haploid[1]/@method",
                "DNA or SER",
            ),
            ("/hml/sample[12]/typing[1]", "no allele-assignment"),
        ] {
            let line = out
                .lines()
                .find(|l| l.contains(&format!(":{path}: ")))
                .unwrap_or_else(|| panic!("{path} not named in\n{out}"));
            assert!(line.contains(reason), "{line}: expected {reason}");
        }
        assert_eq!(out.lines().count(), 13, "{out}");
        assert!(out.contains("/hml/sample[13]: sample"), "{out}");
        assert_eq!(stats(hml_url)["typings"].as_u64().unwrap(), typings + 1);

        // Not HML: nothing recorded, the reason said.
        for (doc, reason) in [
            (
                format!("<hml xmlns=\"{NS}\"><sample id=\"{}\">", grid(1)),
                "not well-formed",
            ),
            (
                "<hml xmlns=\"http://schemas.nmdp.org/spec/hml/1.0\"/>".to_string(),
                "not HML 1.0.1",
            ),
            ("<hml version=\"1.0\"/>".to_string(), "HML version 1.0"),
            ("<donors/>".to_string(), "not <hml>"),
        ] {
            std::fs::write(&file, &doc).unwrap();
            let o = boai(&["import", "hml", file.to_str().unwrap(), "--db", hml_url]);
            assert_eq!(o.status.code(), Some(1));
            let out = String::from_utf8_lossy(&o.stdout);
            assert!(out.contains(reason), "{doc}: {out}");
        }
        assert_eq!(stats(hml_url)["typings"].as_u64().unwrap(), typings + 1);
    }
}

/// Twelve samples with one problem each, then a good one (donor 2, retyped at DQB1).
fn bad_document() -> String {
    let g1 = grid(1);
    let sample = |body: &str| format!("<sample id=\"{g1}\">{body}</sample>");
    let gl = |text: &str| {
        format!(
            "<typing gene-family=\"HLA\"><allele-assignment><glstring>{text}</glstring></allele-assignment></typing>"
        )
    };
    let full = "HLA-A*01:01+HLA-A*02:01^HLA-B*08:01+HLA-B*07:02^HLA-DRB1*03:01+HLA-DRB1*15:01";
    let samples = [
        sample(&gl("HLA-A*01:01+HLA-A*99:99")),
        sample(
            "<typing gene-family=\"HLA\"><allele-assignment allele-version=\"3.40.0\"><glstring>HLA-A*01:01+HLA-A*02:01</glstring></allele-assignment></typing>",
        ),
        format!("<sample>{}</sample>", gl(full)),
        format!("<sample id=\"NOT-OURS-7\">{}</sample>", gl(full)),
        sample(
            "<typing gene-family=\"HLA\"><allele-assignment><haploid locus=\"HLA-A\" method=\"DNA\" type=\"01:01\"/></allele-assignment></typing>",
        ),
        sample(
            "<typing gene-family=\"HLA\"><allele-assignment><glstring uri=\"https://gl.example/gl/1\"/></allele-assignment></typing>",
        ),
        sample(&format!(
            "<typing gene-family=\"HLA\" date=\"30/11/2026\"><allele-assignment><glstring>{full}</glstring></allele-assignment></typing>"
        )),
        sample(&format!(
            "<typing gene-family=\"HLA\"><allele-assignment date=\"2070-01-01\"><glstring>{full}</glstring></allele-assignment></typing>"
        )),
        sample(&format!("{}{}", gl(full), gl("HLA-A*01:01+HLA-A*03:01"))),
        sample(
            "<typing gene-family=\"KIR\"><allele-assignment><glstring>KIR2DL1*001</glstring></allele-assignment></typing>",
        ),
        sample(
            "<typing gene-family=\"HLA\"><allele-assignment><haploid locus=\"HLA-A\" method=\"PCR\" type=\"01:01\"/><haploid locus=\"HLA-A\" type=\"02:01\"/></allele-assignment></typing>",
        ),
        sample("<typing gene-family=\"HLA\"/>"),
        format!(
            "<sample id=\"{}\">{}</sample>",
            grid(2),
            gl("HLA-DQB1*03:02+HLA-DQB1*06:02:01")
        ),
    ];
    format!(
        "<hml xmlns=\"{NS}\" version=\"1.0.1\">{}</hml>",
        samples.concat()
    )
}
