//! `POST /v1/typings/hml` over a real socket: a station's lab results for its own donors
//! reach the store and the served index at once; another station's donor is not found; the
//! report names each bad element; with `all_or_nothing` a bad element records nothing.

use serde_json::{Value, json};

use super::{TYPING, call, enrol, expect, hit_ids, patient, registries, start, tokens};

const NS: &str = "http://schemas.nmdp.org/spec/hml/1.0.1";

fn document(samples: &[(&str, &str)]) -> String {
    let samples: String = samples
        .iter()
        .map(|(id, gl)| {
            format!(
                "<sample id=\"{id}\"><typing gene-family=\"HLA\"><allele-assignment allele-db=\"IMGT/HLA\" allele-version=\"3.58.0\">\
                 <glstring>{gl}</glstring></allele-assignment><typing-method><sbt-ngs locus=\"HLA-A\" test-id=\"t\" test-id-source=\"s\"/></typing-method></typing></sample>"
            )
        })
        .collect();
    format!(
        "<hml xmlns=\"{NS}\" version=\"1.0.1\"><reporting-center reporting-center-id=\"567\"/>{samples}</hml>"
    )
}

async fn zero_mismatch_hits(addr: std::net::SocketAddr, token: &str, patient: i64) -> Vec<i64> {
    let criteria = json!({"patient_id": patient, "max_mismatches": 0}).to_string();
    let search = expect(addr, "POST", "/v1/searches", token, Some(&criteria), 201).await;
    hit_ids(&search)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hml_results_reach_the_store_and_every_search_at_once() {
    for (backend, reg, _dir) in registries("hml").await {
        let b = backend.as_str();
        let t = tokens(&reg).await;
        let (addr, _stop, _reg) = start(reg).await;
        let own = enrol(addr, &t.station, "H-1", "HN1", "BJ01").await;
        let other = enrol(addr, &t.other_station, "H-2", "HN2", "BJ02").await;
        let grid_of = |d: Value| d["grid"].as_str().unwrap().to_string();
        let own_grid = grid_of(
            expect(
                addr,
                "GET",
                &format!("/v1/donors/{own}"),
                &t.station,
                None,
                200,
            )
            .await,
        );
        let other_grid = grid_of(
            expect(
                addr,
                "GET",
                &format!("/v1/donors/{other}"),
                &t.other_station,
                None,
                200,
            )
            .await,
        );
        let (s, sample, _) = call(
            addr,
            "POST",
            &format!("/v1/donors/{own}/samples"),
            Some(&t.station),
            Some(r#"{"collected_on": "2026-11-20", "barcode": "LAB-7", "lab": "BJ-HLA"}"#),
        )
        .await;
        assert_eq!(s, 201, "{b}: {sample}");
        let patient = patient(addr, &t, "P-HML").await;
        assert_eq!(
            zero_mismatch_hits(addr, &t.coordinator, patient).await,
            [own, other],
            "{b}"
        );

        // The station's lab retypes its donor at A (by sample barcode): the donor no longer
        // matches the patient there; the other station's donor is not this station's to type.
        let retyped_a = "HLA-A*68:01+HLA-A*24:02";
        let doc = document(&[("LAB-7", retyped_a), (&other_grid, retyped_a)]);
        let (s, report, _) = call(
            addr,
            "POST",
            "/v1/typings/hml",
            Some(&t.station),
            Some(&doc),
        )
        .await;
        assert_eq!(s, 200, "{b}: {report}");
        assert_eq!(
            report["recorded"].as_array().unwrap().len(),
            1,
            "{b}: {report}"
        );
        assert_eq!(report["recorded"][0]["donor_id"], own, "{b}");
        assert_eq!(
            report["errors"][0]["path"], "/hml/sample[2]/@id",
            "{b}: {report}"
        );
        let typings = expect(
            addr,
            "GET",
            &format!("/v1/donors/{own}/typings"),
            &t.station,
            None,
            200,
        )
        .await;
        let current = &typings["typings"][0];
        assert_eq!(current["method"], "NGS", "{b}");
        assert_eq!(current["lab"], "567", "{b}");
        assert_eq!(current["sample_id"], sample["id"], "{b}");
        assert_eq!(
            current["gl"],
            TYPING.replace("A*02:01+A*24:02", "A*68:01+A*24:02"),
            "{b}: the loci not retyped are kept"
        );
        assert_eq!(
            zero_mismatch_hits(addr, &t.coordinator, patient).await,
            [other],
            "{b}"
        );

        // An admin may type any station's donor, by GRID; with all_or_nothing one bad
        // element records nothing, and the answer is 422 with the same report.
        let doc = document(&[
            (&other_grid, retyped_a),
            (&own_grid, "HLA-A*02:01+HLA-A*99:01"),
        ]);
        let (s, report, _) = call(
            addr,
            "POST",
            "/v1/typings/hml?all_or_nothing=true",
            Some(&t.admin),
            Some(&doc),
        )
        .await;
        assert_eq!(s, 422, "{b}: {report}");
        assert_eq!(
            report["errors"][0]["field"],
            "/hml/sample[2]/typing[1]/allele-assignment[1]/glstring[1]",
            "{b}: {report}"
        );
        assert_eq!(
            zero_mismatch_hits(addr, &t.coordinator, patient).await,
            [other],
            "{b}"
        );
        let doc = document(&[(&other_grid, retyped_a)]);
        let (s, report, _) =
            call(addr, "POST", "/v1/typings/hml", Some(&t.admin), Some(&doc)).await;
        assert_eq!(s, 200, "{b}: {report}");
        assert_eq!(
            zero_mismatch_hits(addr, &t.coordinator, patient).await,
            Vec::<i64>::new(),
            "{b}"
        );

        // A lab file is large (consensus sequences, passed over): past the API's usual
        // body limit, it is still read.
        let sequence = "ACGT".repeat(200_000);
        let big = document(&[(&other_grid, retyped_a)]).replace(
            "</typing></sample>",
            &format!("<consensus-sequence><sequence>{sequence}</sequence></consensus-sequence></typing></sample>"),
        );
        assert!(big.len() > api::BODY_LIMIT * 2);
        let (s, report, _) =
            call(addr, "POST", "/v1/typings/hml", Some(&t.admin), Some(&big)).await;
        assert_eq!(s, 200, "{b}: {report}");
        assert_eq!(report["recorded"][0]["unchanged"], true, "{b}: {report}");

        // Not the roles that type donors; not HML; not UTF-8 would be a 400.
        let (s, _, _) = call(
            addr,
            "POST",
            "/v1/typings/hml",
            Some(&t.coordinator),
            Some(&doc),
        )
        .await;
        assert_eq!(s, 403, "{b}");
        let (s, report, _) = call(
            addr,
            "POST",
            "/v1/typings/hml",
            Some(&t.station),
            Some("{\"gl\": 1}"),
        )
        .await;
        assert_eq!(s, 422, "{b}: {report}");
        assert!(
            report["errors"][0]["reason"]
                .as_str()
                .unwrap()
                .contains("not well-formed"),
            "{b}: {report}"
        );
    }
}

/// An Atlas export carries only the donors consenting to international sharing (unless
/// every listed donor is asked for); a consent withdrawn afterwards makes the donor a
/// deletion in the next differential export; every export is audited with its counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atlas_exports_follow_international_sharing_consent_and_are_audited() {
    for (backend, reg, _dir) in registries("atlas").await {
        let b = backend.as_str();
        let t = tokens(&reg).await;
        let (addr, _stop, reg) = start(reg).await;
        let mut donors = Vec::new();
        for n in 1..=3 {
            donors.push(
                enrol(
                    addr,
                    &t.station,
                    &format!("AT-{n}"),
                    &format!("ATN{n}"),
                    "BJ01",
                )
                .await,
            );
        }
        for d in &donors[..2] {
            let body = r#"{"scope": "international_sharing", "form_version": "CMDP-2024-1"}"#;
            expect(
                addr,
                "POST",
                &format!("/v1/donors/{d}/consents"),
                &t.station,
                Some(body),
                201,
            )
            .await;
        }
        let actor = registry::Actor::new("test", "admin");
        let export = |options: registry::atlas::AtlasExportOptions| {
            let reg = reg.clone();
            let actor = actor.clone();
            async move {
                let mut out = Vec::new();
                let summary = reg.export_atlas(&mut out, &options, &actor).await.unwrap();
                (summary, serde_json::from_slice::<Value>(&out).unwrap())
            }
        };
        let ids = |file: &Value| -> Vec<(String, String)> {
            file["donors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    (
                        d["recordId"].as_str().unwrap().to_string(),
                        d["changeType"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        };
        // The export reads a moment after the consents were recorded (`since` is inclusive:
        // a donor changed in the export's very instant would be sent again).
        super::set_clock(&reg, "2026-11-22T02:00:30Z");
        let (full, file) = export(Default::default()).await;
        assert_eq!(
            ids(&file),
            [("AT-1".into(), "N".into()), ("AT-2".into(), "N".into())],
            "{b}"
        );
        assert_eq!(file["donors"][0]["donPool"], "2197", "{b}");
        let (_, all) = export(registry::atlas::AtlasExportOptions {
            all_listed: true,
            ..Default::default()
        })
        .await;
        assert_eq!(all["donors"].as_array().unwrap().len(), 3, "{b}");

        // AT-2 withdraws consent to international sharing a minute later: a deletion since
        // the first export (AT-3, never shared, is not mentioned).
        super::set_clock(&reg, "2026-11-22T02:01:00Z");
        expect(
            addr,
            "POST",
            &format!(
                "/v1/donors/{}/consents/international_sharing/withdrawal",
                donors[1]
            ),
            &t.station,
            Some(r#"{"reason": "donor asked"}"#),
            200,
        )
        .await;
        let since = registry::atlas::AtlasExportOptions {
            since: Some(full.position.clone()),
            ..Default::default()
        };
        let (diff, file) = export(since).await;
        assert_eq!(file["updateMode"], "diff", "{b}");
        assert_eq!(ids(&file), [("AT-2".into(), "D".into())], "{b}");
        assert_eq!((diff.donors, diff.deleted), (0, 1), "{b}");

        // Every export audited with its counts.
        let entries = reg
            .audit_entries(Some("donors"), None, None, 10)
            .await
            .unwrap();
        let reasons: Vec<String> = entries
            .iter()
            .filter(|e| e.action == "export.atlas")
            .filter_map(|e| e.reason.clone())
            .collect();
        assert_eq!(reasons.len(), 3, "{b}: {reasons:?}");
        assert!(
            reasons
                .iter()
                .any(|r| r.contains("diff export: 0 donors, 1 deleted")),
            "{b}: {reasons:?}"
        );
        assert!(
            reasons.iter().any(|r| r.contains("full export: 2 donors")),
            "{b}: {reasons:?}"
        );

        // A position that is not one is refused by name.
        let bad = registry::atlas::AtlasExportOptions {
            since: Some("yesterday".into()),
            ..Default::default()
        };
        let err = reg
            .export_atlas(Vec::new(), &bad, &actor)
            .await
            .unwrap_err();
        assert!(err.to_string().starts_with("since:"), "{b}: {err}");
    }
}
