//! `boai export atlas` and `boai import atlas`: a registry's donors written in Atlas's
//! donor-import format (checked against the rules of Atlas's published schema,
//! `Schemas/DonorUpdateFileSchema.json`) and read into a fresh registry give the same donors
//! and the same search results; a differential export carries what changed since a
//! position; bad donors in a file are named by their position.

use serde_json::Value;

use super::{boai, registry_urls, registry_with_station, stats};

const CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/corpora/atlas-donors/donors-20k.tsv"
);

/// Donors whose typings take every shape Atlas's fields can hold: serology, one copy, allele
/// lists, G and P groups, XX codes, MACs, genotype lists, DPB1.
const SPECIAL: [&str; 7] = [
    "S1%A2+A24^B7+B8^DR4+DR15",
    "S2%A*01:01^B*08:01+B*07:02^DRB1*03:01+DRB1*15:01",
    "S3%A*01:01/A*01:02+A*02:01^B*08:XX+B*07:02^C*07:01:01G+C*07:02P^DRB1*03:01+DRB1*15:AB^DQB1*02:01+DQB1*06:02^DPB1*04:01+DPB1*04:02",
    "S4%A*02:01+A*24:02|A*02:02+A*24:03^B*35:01+B*40:01^DRB1*04:01+DRB1*15:01",
    "S5%A*11:01+A*24:02^B*40:01+B*46:01^Cw1+Cw3^DRB1*09:01+DRB1*12:02^DQ3+DQ6",
    "S6%A*02:01:01:01+A*68:01:02:01^B*44:02:01:01+B*51:01:01:01^DRB1*01:01:01:01+DRB1*13:01:01:01",
    "S7%A*03:01+A*03:01^B*07:02+B*07:02^DRB1*15:01+DRB1*15:01",
];

const PATIENTS: [&str; 4] = [
    "A*02:01+A*24:02^B*35:01+B*40:01^C*03:04+C*04:01^DRB1*04:01+DRB1*15:01^DQB1*03:02+DQB1*06:02",
    "A*01:01+A*02:01^B*08:01+B*07:02^C*07:01+C*07:02^DRB1*03:01+DRB1*15:01^DQB1*02:01+DQB1*06:02",
    "A*11:01+A*24:02^B*40:01+B*46:01^C*01:02+C*03:04^DRB1*09:01+DRB1*12:02",
    "A*03:01+A*02:01^B*07:02+B*44:02^DRB1*15:01+DRB1*01:01",
];

fn ok(args: &[&str]) -> String {
    let o = boai(args);
    assert!(
        o.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn searches(url: &str) -> Vec<String> {
    PATIENTS
        .iter()
        .map(|p| {
            let o = boai(&[
                "search",
                "--db",
                url,
                "--patient",
                p,
                "--max-mismatches",
                "3",
                "--format",
                "json",
                "--limit",
                "500",
            ]);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            String::from_utf8(o.stdout).unwrap()
        })
        .collect()
}

/// The position an export printed.
fn position(stderr: &str) -> String {
    stderr
        .split("position ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no position in {stderr}"))
        .to_string()
}

#[test]
fn an_atlas_export_read_into_a_fresh_registry_searches_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let corpus: String = std::fs::read_to_string(CORPUS)
        .unwrap()
        .lines()
        .take(3001)
        .collect::<Vec<_>>()
        .join("\n");
    let corpus_file = dir.path().join("corpus.tsv");
    std::fs::write(&corpus_file, corpus + "\n").unwrap();
    let special_file = dir.path().join("special.txt");
    std::fs::write(&special_file, SPECIAL.join("\n") + "\n").unwrap();
    let export = dir.path().join("export.json");
    let export = export.to_str().unwrap();
    for (from, to) in registry_urls(dir.path(), "atlas_from")
        .iter()
        .zip(&registry_urls(dir.path(), "atlas_to"))
    {
        let _ = std::fs::remove_file(export);
        registry_with_station(from);
        registry_with_station(to);
        for file in [&corpus_file, &special_file] {
            ok(&[
                "import",
                "donors",
                file.to_str().unwrap(),
                "--station",
                "BJ01",
                "--db",
                from,
            ]);
        }
        // Without consent to international sharing there is nothing to send.
        let o = boai(&["export", "atlas", "--db", from, "--out", export]);
        assert_eq!(o.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&o.stderr).contains("international_sharing"));
        assert!(!std::path::Path::new(export).exists());

        let printed = ok(&[
            "export",
            "atlas",
            "--db",
            from,
            "--out",
            export,
            "--all-listed",
        ]);
        let file: Value = serde_json::from_str(&std::fs::read_to_string(export).unwrap()).unwrap();
        check_atlas_schema(&file);
        assert_eq!(file["updateMode"], "full");
        let listed = stats(from)["donors_listed"].as_u64().unwrap();
        assert_eq!(
            file["donors"].as_array().unwrap().len() as u64,
            listed,
            "{printed}"
        );
        let s3 = file["donors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["recordId"] == "S3")
            .unwrap();
        assert_eq!(s3["hla"]["a"]["dna"]["field1"], "*01:01/01:02");
        assert_eq!(s3["hla"]["c"]["dna"]["field1"], "*07:01:01G");
        let s1 = file["donors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["recordId"] == "S1")
            .unwrap();
        assert_eq!(s1["hla"]["drb1"]["ser"]["field2"], "15");
        assert_eq!(s1["hla"]["a"]["dna"]["field1"], Value::Null);

        ok(&["import", "atlas", export, "--station", "BJ01", "--db", to]);
        assert_eq!(stats(to)["donors_listed"], stats(from)["donors_listed"]);
        assert_eq!(
            searches(to),
            searches(from),
            "searches differ after the round trip"
        );

        // A change, then a differential export since the first one's position.
        let since = position(&printed);
        let retyped = dir.path().join("retyped.txt");
        std::fs::write(
            &retyped,
            "S7%A*03:01+A*02:01^B*07:02+B*44:02^DRB1*15:01+DRB1*01:01\n",
        )
        .unwrap();
        ok(&[
            "import",
            "donors",
            retyped.to_str().unwrap(),
            "--station",
            "BJ01",
            "--db",
            from,
        ]);
        ok(&[
            "export",
            "atlas",
            "--db",
            from,
            "--out",
            export,
            "--all-listed",
            "--since",
            &since,
        ]);
        let diff: Value = serde_json::from_str(&std::fs::read_to_string(export).unwrap()).unwrap();
        check_atlas_schema(&diff);
        assert_eq!(diff["updateMode"], "diff");
        let records = diff["donors"].as_array().unwrap();
        assert_eq!(records.len(), 1, "{diff}");
        assert_eq!(
            (&records[0]["recordId"], &records[0]["changeType"]),
            (&"S7".into(), &"NU".into())
        );
        assert_ne!(searches(to), searches(from));
        ok(&["import", "atlas", export, "--station", "BJ01", "--db", to]);
        assert_eq!(
            searches(to),
            searches(from),
            "searches differ after the differential file"
        );

        // Bad donors are named by their position; the good one is imported.
        let bad = serde_json::json!({"updateMode": "diff", "donors": [
            {"recordId": "S7", "changeType": "N", "donorType": "D", "donPool": null, "ethn": null, "hla": s1["hla"]},
            {"recordId": "X1", "changeType": "U", "donorType": "D", "donPool": null, "ethn": null, "hla": s1["hla"]},
            {"recordId": "S2", "changeType": "D", "donorType": "D", "donPool": null, "ethn": null, "hla": s1["hla"]},
            {"recordId": "X2", "changeType": "N", "donorType": "B", "donPool": null, "ethn": null, "hla": s1["hla"]},
            {"recordId": "X3", "changeType": "N", "donorType": "D", "donPool": null, "ethn": null, "hla": s1["hla"], "extra": 1},
            {"recordId": "X4", "changeType": "N", "donorType": "D", "donPool": null, "ethn": null,
             "hla": {"a": {"dna": {"field1": "*01:01", "field2": "*99:99"}, "ser": {"field1": null}},
                     "b": {"dna": {"field1": "*08:01"}, "ser": {"field1": null}}, "drb1": {"dna": {"field1": "*03:01"}}}},
            {"recordId": "X5", "changeType": "N", "donorType": "C", "donPool": "2197", "ethn": "ASNE", "hla": s3["hla"]}
        ]});
        let donors_before = stats(to)["donors"].as_u64().unwrap();
        let bad_file = dir.path().join("bad.json");
        std::fs::write(&bad_file, bad.to_string()).unwrap();
        let o = boai(&[
            "import",
            "atlas",
            bad_file.to_str().unwrap(),
            "--station",
            "BJ01",
            "--db",
            to,
        ]);
        assert_eq!(o.status.code(), Some(1));
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        for (n, what) in [
            (1, "already in the registry"),
            (2, "no donor X1"),
            (3, "D (delete) is not applied"),
            (4, "B (banked)"),
            (5, "unknown field `extra`"),
            (6, "A*99:99"),
        ] {
            let line = out
                .lines()
                .find(|l| l.contains(&format!(": donor {n}: ")))
                .unwrap_or_else(|| panic!("donor {n} not named in\n{out}"));
            assert!(line.contains(what), "{line}: expected {what}");
        }
        assert_eq!(out.lines().count(), 6, "{out}");
        // Only the cord unit X5 came in.
        assert_eq!(stats(to)["donors"].as_u64().unwrap(), donors_before + 1);
    }
}

/// The rules of Atlas's `Schemas/DonorUpdateFileSchema.json` (draft-07), checked one by one.
fn check_atlas_schema(file: &Value) {
    let object = |v: &Value, at: &str| -> serde_json::Map<String, Value> {
        v.as_object()
            .unwrap_or_else(|| panic!("{at}: not an object"))
            .clone()
    };
    let only = |o: &serde_json::Map<String, Value>, allowed: &[&str], at: &str| {
        for k in o.keys() {
            assert!(allowed.contains(&k.as_str()), "{at}: `{k}` is not allowed");
        }
    };
    let required = |o: &serde_json::Map<String, Value>, keys: &[&str], at: &str| {
        for k in keys {
            assert!(o.contains_key(*k), "{at}: `{k}` is required");
        }
    };
    let top = object(file, "file");
    only(&top, &["updateMode", "donors"], "file");
    required(&top, &["updateMode", "donors"], "file");
    assert!(["diff", "full"].contains(&top["updateMode"].as_str().unwrap()));
    let donors = top["donors"].as_array().expect("donors is an array");
    assert!(!donors.is_empty(), "donors: minItems 1");
    for (i, d) in donors.iter().enumerate() {
        let at = format!("donors[{i}]");
        let d = object(d, &at);
        only(
            &d,
            &[
                "recordId",
                "changeType",
                "donorType",
                "donPool",
                "ethn",
                "hla",
            ],
            &at,
        );
        required(
            &d,
            &[
                "recordId",
                "changeType",
                "donorType",
                "donPool",
                "ethn",
                "hla",
            ],
            &at,
        );
        assert!(d["recordId"].is_string(), "{at}.recordId");
        assert!(
            ["D", "U", "N", "NU"].contains(&d["changeType"].as_str().unwrap()),
            "{at}"
        );
        assert!(
            ["D", "C", "B"].contains(&d["donorType"].as_str().unwrap()),
            "{at}"
        );
        for k in ["donPool", "ethn"] {
            assert!(d[k].is_string() || d[k].is_null(), "{at}.{k}");
        }
        let hla = object(&d["hla"], &format!("{at}.hla"));
        required(&hla, &["a", "b", "drb1"], &format!("{at}.hla"));
        for (locus, value) in &hla {
            let at = format!("{at}.hla.{locus}");
            let kinds: &[&str] = match locus.as_str() {
                "a" | "b" | "c" | "dqb1" | "drb1" => &["dna", "ser"],
                "dpb1" => &["dna"],
                other => panic!("{at}: locus `{other}` is not in the schema"),
            };
            let l = object(value, &at);
            only(&l, kinds, &at);
            if locus == "a" || locus == "b" {
                required(&l, &["dna", "ser"], &at);
            }
            for (kind, fields) in &l {
                let at = format!("{at}.{kind}");
                let f = object(fields, &at);
                only(&f, &["field1", "field2"], &at);
                required(&f, &["field1"], &at);
                for v in f.values() {
                    assert!(v.is_string() || v.is_null(), "{at}: {v}");
                }
            }
        }
    }
}
