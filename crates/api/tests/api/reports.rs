//! The yearly report over HTTP on both backends: a known activity set is made through the
//! API on a moving clock across a year boundary, every figure is counted again here from
//! the test's own record of what it did (never by the report's queries), and the report's
//! forms (CSV, Markdown, HTML with charts) and its summary agree with the JSON.

use super::*;

/// A donor as the test enrolled it: local dates of listing and withdrawal.
struct LedgerDonor {
    id: i64,
    station: &'static str,
    branch: &'static str,
    born: i32,
    listed_on: String,
    withdrawn_on: Option<String>,
}

/// (registered on, revoked on, station)
type Registration = (String, Option<String>, &'static str);

/// What the test did, to count figures independently.
#[derive(Default)]
struct Ledger {
    /// (local date, station, for a request)
    samples: Vec<(String, &'static str, bool)>,
    donors: Vec<LedgerDonor>,
    /// (local date, donor, kind)
    requests: Vec<(String, i64, &'static str)>,
    /// (local date, donor, branch)
    donations: Vec<(String, i64, &'static str)>,
    /// (local date, donor, reached)
    contacts: Vec<(String, i64, bool)>,
    registrations: Vec<Registration>,
    /// (completed on, kind, organs, corneas, recipients, station)
    cases: Vec<(String, &'static str, i64, i64, i64, &'static str)>,
    /// (date, kind, fen)
    care: Vec<(String, &'static str, i64)>,
}

fn in_year(day: &str, year: i32) -> bool {
    day.starts_with(&format!("{year:04}-"))
}

fn branch_of(station: &str) -> &'static str {
    if station.starts_with("SH") {
        "SH"
    } else {
        "BJ"
    }
}

/// Move the clock to 10:00 Beijing time on `day` (or `at`, an RFC 3339 instant).
fn local(reg: &Registry, day: &str) {
    set_clock(reg, &format!("{day}T10:00:00+08:00"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yearly_report_figures_agree_with_an_independent_count_on_both_backends() {
    for (backend, reg, _dir) in registries("yearly").await {
        let t = tokens(&reg).await;
        let admin_actor = Actor::new("test", "admin");
        reg.add_branch("SH", "Shanghai", "East", &admin_actor)
            .await
            .unwrap();
        reg.add_station("SH01", "SH", "Shanghai 1", "East", 50, &admin_actor)
            .await
            .unwrap();
        let sh = reg
            .create_token("station", Some("SH01"), "sh", &admin_actor)
            .await
            .unwrap()
            .1;
        let (addr, stop, reg) = start(reg).await;
        let b = backend.as_str();
        let mut l = Ledger::default();
        let station_token = |s: &str| {
            if s == "SH01" {
                sh.clone()
            } else if s == "BJ02" {
                t.other_station.clone()
            } else {
                t.station.clone()
            }
        };

        // 2025: a campaign, three donors, their samples.
        local(&reg, "2025-03-10");
        let campaign = expect(addr, "POST", "/v1/campaigns", &t.station,
            Some(r#"{"name": "Spring school drive", "kind": "school_drive", "held_on": "2025-03-10", "station": "BJ01", "place": "Tsinghua"}"#), 201).await["id"].as_i64().unwrap();
        // A station creates campaigns for itself only.
        expect(addr, "POST", "/v1/campaigns", &t.other_station,
            Some(r#"{"name": "x", "kind": "school_drive", "held_on": "2025-03-10", "station": "BJ01", "place": "x"}"#), 403).await;
        let donor = |ext: &str, station: &str, birth: &str, campaign: Option<i64>| {
            let mut v: Value =
                serde_json::from_str(&enrolment(ext, &format!("NID-{ext}"))).unwrap();
            v["station"] = json!(station);
            v["birth_date"] = json!(birth);
            if let Some(c) = campaign {
                v["campaign_id"] = json!(c);
            }
            v.to_string()
        };
        let enrol_at = async |ext: &'static str,
                              station: &'static str,
                              birth: &str,
                              campaign: Option<i64>,
                              day: &str,
                              l: &mut Ledger| {
            let id = expect(
                addr,
                "POST",
                "/v1/donors",
                &station_token(station),
                Some(&donor(ext, station, birth, campaign)),
                201,
            )
            .await["id"]
                .as_i64()
                .unwrap();
            l.donors.push(LedgerDonor {
                id,
                station,
                branch: branch_of(station),
                born: birth[..4].parse().unwrap(),
                listed_on: day.to_string(),
                withdrawn_on: None,
            });
            id
        };
        let d1 = enrol_at(
            "R1",
            "BJ01",
            "2000-05-01",
            Some(campaign),
            "2025-03-10",
            &mut l,
        )
        .await;
        let d2 = enrol_at("R2", "BJ01", "1990-01-01", None, "2025-03-10", &mut l).await;
        let d3 = enrol_at("R3", "BJ02", "1985-06-01", None, "2025-03-10", &mut l).await;
        let shown = expect(
            addr,
            "GET",
            &format!("/v1/donors/{d1}"),
            &t.station,
            None,
            200,
        )
        .await;
        assert_eq!(
            (
                shown["campaign_id"].as_i64(),
                shown["last_contact_on"].as_str()
            ),
            (Some(campaign), Some("2025-03-10")),
            "{b}: the campaign a donor came from, and enrolment as the first contact"
        );
        // A campaign of another station is refused, naming the field.
        let wrong = donor("R9", "BJ02", "1990-01-01", Some(campaign));
        let problem = expect(
            addr,
            "POST",
            "/v1/donors",
            &t.other_station,
            Some(&wrong),
            422,
        )
        .await;
        assert_eq!(
            problem["errors"][0]["field"], "campaign_id",
            "{b}: {problem}"
        );
        for (d, station, c) in [
            (d1, "BJ01", Some(campaign)),
            (d2, "BJ01", None),
            (d3, "BJ02", None),
        ] {
            let body =
                json!({"collected_on": "2025-03-10", "barcode": format!("B{d}"), "campaign_id": c})
                    .to_string();
            expect(
                addr,
                "POST",
                &format!("/v1/donors/{d}/samples"),
                &station_token(station),
                Some(&body),
                201,
            )
            .await;
            l.samples.push(("2025-03-10".into(), station, false));
        }
        let yielded = expect(
            addr,
            "GET",
            &format!("/v1/campaigns/{campaign}"),
            &t.station,
            None,
            200,
        )
        .await;
        assert_eq!(
            (yielded["enrolments"].as_i64(), yielded["samples"].as_i64()),
            (Some(1), Some(1)),
            "{b}: {yielded}"
        );

        // A patient; confirmatory typing, workup and donation for d2.
        local(&reg, "2025-06-01");
        let p1 = patient(addr, &t, "P-R1").await;
        let consent = |scope: &str| json!({"scope": scope, "form_version": "F1"}).to_string();
        for scope in ["confirmatory_typing", "workup", "follow_up_contact"] {
            expect(
                addr,
                "POST",
                &format!("/v1/donors/{d2}/consents"),
                &t.station,
                Some(&consent(scope)),
                201,
            )
            .await;
        }
        let request = |d: i64, p: i64, kind: &str| {
            json!({"patient_id": p, "donor_id": d, "kind": kind}).to_string()
        };
        let ct = expect(
            addr,
            "POST",
            "/v1/requests",
            &t.coordinator,
            Some(&request(d2, p1, "confirmatory_typing")),
            201,
        )
        .await["id"]
            .as_i64()
            .unwrap();
        l.requests
            .push(("2025-06-01".into(), d2, "confirmatory_typing"));
        expect(
            addr,
            "POST",
            &format!("/v1/requests/{ct}/close"),
            &t.coordinator,
            Some(r#"{"state": "done"}"#),
            200,
        )
        .await;
        local(&reg, "2025-07-01");
        let wu = expect(
            addr,
            "POST",
            "/v1/requests",
            &t.coordinator,
            Some(&request(d2, p1, "workup")),
            201,
        )
        .await["id"]
            .as_i64()
            .unwrap();
        l.requests.push(("2025-07-01".into(), d2, "workup"));
        local(&reg, "2025-08-01");
        let donation = json!({"donor_id": d2, "patient_id": p1, "product": "PBSC", "donated_on": "2025-08-01"}).to_string();
        expect(
            addr,
            "POST",
            "/v1/donations",
            &t.case_manager,
            Some(&donation),
            201,
        )
        .await;
        l.donations.push(("2025-08-01".into(), d2, "BJ"));
        expect(
            addr,
            "POST",
            &format!("/v1/requests/{wu}/close"),
            &t.coordinator,
            Some(r#"{"state": "done"}"#),
            200,
        )
        .await;
        // Follow-ups: 2 days done, 1 week missed, 1 month left overdue.
        local(&reg, "2025-09-01");
        let due =
            expect(addr, "GET", "/v1/followups/due", &t.case_manager, None, 200).await["followups"]
                .as_array()
                .cloned()
                .unwrap();
        let id_of = |label: &str| {
            due.iter().find(|f| f["label"] == label).unwrap()["id"]
                .as_i64()
                .unwrap()
        };
        expect(
            addr,
            "POST",
            &format!("/v1/followups/{}", id_of("2 days")),
            &t.case_manager,
            Some(r#"{"state": "done", "on": "2025-08-03", "outcome": "well"}"#),
            200,
        )
        .await;
        expect(
            addr,
            "POST",
            &format!("/v1/followups/{}", id_of("1 week")),
            &t.case_manager,
            Some(r#"{"state": "missed", "on": "2025-08-08"}"#),
            200,
        )
        .await;

        // Retention: d1 is not reached three times (TU/UC); d3 is reached.
        local(&reg, "2025-10-05");
        for day in ["2025-10-01", "2025-10-02", "2025-10-03"] {
            let c = expect(
                addr,
                "POST",
                &format!("/v1/donors/{d1}/contacts"),
                &t.station,
                Some(
                    &json!({"attempted_on": day, "channel": "phone", "outcome": "no_answer"})
                        .to_string(),
                ),
                201,
            )
            .await;
            l.contacts.push((day.into(), d1, false));
            if day == "2025-10-03" {
                assert_eq!(c["status_changed"], "TU/UC", "{b}: {c}");
            }
        }
        assert_eq!(
            reg.donor(d1).await.unwrap().status_reason.as_deref(),
            Some("UC")
        );
        expect(
            addr,
            "POST",
            &format!("/v1/donors/{d3}/contacts"),
            &t.other_station,
            Some(r#"{"attempted_on": "2025-10-05", "channel": "wechat", "outcome": "reached"}"#),
            201,
        )
        .await;
        l.contacts.push(("2025-10-05".into(), d3, true));
        // Another station records no contact with BJ01's donor; a bad channel is named.
        expect(
            addr,
            "POST",
            &format!("/v1/donors/{d1}/contacts"),
            &t.other_station,
            Some(r#"{"attempted_on": "2025-10-05", "channel": "phone", "outcome": "reached"}"#),
            403,
        )
        .await;
        let problem = expect(
            addr,
            "POST",
            &format!("/v1/donors/{d1}/contacts"),
            &t.station,
            Some(r#"{"attempted_on": "2025-10-05", "channel": "pigeon", "outcome": "reached"}"#),
            422,
        )
        .await;
        assert_eq!(problem["errors"][0]["field"], "channel", "{b}: {problem}");

        // Organ registrations: online, a CSV import (one bad line), revocation.
        local(&reg, "2025-04-01");
        let registration = |nid: &str| {
            json!({"family_name": "Zhao", "given_name": "Lei", "national_id": nid,
            "birth_date": "1970-02-02", "organs": ["kidney"], "ethnicity": "汉族"})
            .to_string()
        };
        let r1 = expect(
            addr,
            "POST",
            "/v1/organ-registrations",
            &t.station,
            Some(&registration("ORG-R1")),
            201,
        )
        .await["id"]
            .as_i64()
            .unwrap();
        l.registrations.push(("2025-04-01".into(), None, "BJ01"));
        local(&reg, "2025-05-06");
        let csv = "family_name,given_name,national_id,birth_date,organs,tissues,whole_body,registered_on\n\
                   Sun,Li,ORG-R2,1960-01-01,kidney;liver,cornea,no,2025-05-05\n\
                   Sun,Mei,ORG-R3,2015-01-01,kidney,,no,2025-05-05\n\
                   Wu,Gang,ORG-R4,1950-03-03,,,yes,2025-05-06\n";
        let imported = expect(
            addr,
            "POST",
            "/v1/organ-registrations/import",
            &t.other_station,
            Some(csv),
            200,
        )
        .await;
        assert_eq!(imported["created"], 2, "{b}: {imported}");
        assert_eq!(
            imported["errors"],
            json!([{"line": 3, "field": "birth_date", "reason": "registration is for adults (18+)"}]),
            "{b}: {imported}"
        );
        l.registrations.push(("2025-05-05".into(), None, "BJ02"));
        l.registrations.push(("2025-05-06".into(), None, "BJ02"));
        // A second file: a byte-order mark, columns in another order, an id already active,
        // one repeated within the file (however typed), a bad yes/no. Nothing is created.
        let again = "\u{feff}national_id,family_name,given_name,birth_date,whole_body\n\
                     ORG-R2,Sun,Li,1960-01-01,yes\n\
                     ORG-R5,Qian,Yi,1960-01-01,yes\n\
                     org-r5 ,Qian,Yi,1960-01-01,yes\n\
                     ORG-R6,Qian,Er,1960-01-01,maybe\n";
        let imported = expect(
            addr,
            "POST",
            "/v1/organ-registrations/import",
            &t.other_station,
            Some(again),
            200,
        )
        .await;
        let refused: Vec<(i64, &str)> = imported["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["line"].as_i64().unwrap(), e["field"].as_str().unwrap()))
            .collect();
        assert_eq!(
            refused,
            [(2, "national_id"), (4, "national_id"), (5, "whole_body")],
            "{b}: {imported}"
        );
        assert_eq!(imported["created"], 1, "{b}: ORG-R5 once");
        l.registrations.push(("2025-05-06".into(), None, "BJ02"));
        for (csv, status) in [("family_name,given_name,shoe_size\n", 422), ("", 422)] {
            let problem = expect(
                addr,
                "POST",
                "/v1/organ-registrations/import",
                &t.other_station,
                Some(csv),
                status,
            )
            .await;
            assert_eq!(problem["errors"][0]["field"], "header", "{b}: {problem}");
        }
        // Another station's forms are not this station's to import.
        expect(
            addr,
            "POST",
            "/v1/organ-registrations/import?station=BJ01",
            &t.other_station,
            Some(csv),
            403,
        )
        .await;
        local(&reg, "2025-11-01");
        expect(
            addr,
            "POST",
            &format!("/v1/organ-registrations/{r1}/revocation"),
            &t.station,
            None,
            200,
        )
        .await;
        l.registrations[0].1 = Some("2025-11-01".into());

        // Death-donation cases: an organ case completed on the last day of 2025, a body case.
        let case = |kind: &str, station: &str, died: &str, completion: Value| {
            json!({
            "kind": kind, "died_on": died, "station": station, "opo": "Provincial OPO",
            "family_consent": {"relations": ["spouse"], "in_writing": true, "consented_on": died},
            "witnesses": ["Red Cross officer Wang"], "completion": completion})
            .to_string()
        };
        local(&reg, "2025-12-31");
        let k1 = expect(addr, "POST", "/v1/organ-cases", &t.case_manager, Some(&case("organ", "BJ01", "2025-12-30",
            json!({"completed_on": "2025-12-31", "recovered": {"kidney": 2, "liver": 1, "cornea": 2}, "recipients_helped": 5}))), 201).await["id"].as_i64().unwrap();
        l.cases
            .push(("2025-12-31".into(), "organ", 3, 2, 5, "BJ01"));
        expect(
            addr,
            "POST",
            "/v1/organ-cases",
            &t.case_manager,
            Some(&case(
                "body",
                "BJ02",
                "2025-11-10",
                json!({"completed_on": "2025-11-11", "recovered": {}, "recipients_helped": 0}),
            )),
            201,
        )
        .await;
        l.cases.push(("2025-11-11".into(), "body", 0, 0, 0, "BJ02"));
        // Refused: no written consent; organs in a cornea case; a station's token.
        let mut unwritten: Value =
            serde_json::from_str(&case("organ", "BJ01", "2025-12-30", Value::Null)).unwrap();
        unwritten["family_consent"]["in_writing"] = json!(false);
        let problem = expect(
            addr,
            "POST",
            "/v1/organ-cases",
            &t.case_manager,
            Some(&unwritten.to_string()),
            422,
        )
        .await;
        assert_eq!(
            problem["errors"][0]["field"], "family_consent.in_writing",
            "{b}: {problem}"
        );
        let problem = expect(
            addr,
            "POST",
            "/v1/organ-cases",
            &t.case_manager,
            Some(&case(
                "cornea",
                "BJ01",
                "2025-12-30",
                json!({"completed_on": "2025-12-31", "recovered": {"kidney": 1}}),
            )),
            422,
        )
        .await;
        assert_eq!(problem["errors"][0]["field"], "recovered", "{b}: {problem}");
        expect(
            addr,
            "POST",
            "/v1/organ-cases",
            &t.station,
            Some(&case("body", "BJ01", "2025-12-30", Value::Null)),
            403,
        )
        .await;

        // Care.
        let care = |v: Value| v.to_string();
        expect(
            addr,
            "POST",
            "/v1/care",
            &t.case_manager,
            Some(&care(
                json!({"donor_id": d2, "kind": "visit", "on_date": "2025-08-10"}),
            )),
            201,
        )
        .await;
        l.care.push(("2025-08-10".into(), "visit", 0));
        expect(addr, "POST", "/v1/care", &t.case_manager, Some(&care(json!({"donor_id": d2, "kind": "honour", "on_date": "2025-12-01", "title": "Donor of the year", "awarding_body": "Red Cross Beijing"}))), 201).await;
        l.care.push(("2025-12-01".into(), "honour", 0));
        expect(addr, "POST", "/v1/care", &t.case_manager, Some(&care(json!({"organ_case_id": k1, "for_family": true, "kind": "aid", "on_date": "2025-12-31", "amount_fen": 300_000, "fund": "Humanitarian fund"}))), 201).await;
        l.care.push(("2025-12-31".into(), "aid", 300_000));
        let problem = expect(
            addr,
            "POST",
            "/v1/care",
            &t.case_manager,
            Some(&care(
                json!({"donor_id": d2, "kind": "aid", "on_date": "2025-12-31", "amount_fen": 100}),
            )),
            422,
        )
        .await;
        assert_eq!(problem["errors"][0]["field"], "fund", "{b}: {problem}");
        expect(
            addr,
            "POST",
            "/v1/care",
            &t.station,
            Some(&care(
                json!({"donor_id": d2, "kind": "visit", "on_date": "2025-08-10"}),
            )),
            403,
        )
        .await;

        // Half an hour into 2026 in Beijing (still 2025 in UTC): d4 enrols at SH01 and d3
        // withdraws. Both count in 2026.
        set_clock(&reg, "2026-01-01T00:30:00+08:00");
        let d4 = enrol_at("R4", "SH01", "1980-12-31", None, "2026-01-01", &mut l).await;
        expect(
            addr,
            "POST",
            &format!("/v1/donors/{d4}/samples"),
            &sh,
            Some(r#"{"collected_on": "2026-01-01", "barcode": "B-R4"}"#),
            201,
        )
        .await;
        l.samples.push(("2026-01-01".into(), "SH01", false));
        expect(
            addr,
            "POST",
            &format!("/v1/donors/{d3}/consents/recruitment/withdrawal"),
            &t.other_station,
            Some("{}"),
            200,
        )
        .await;
        l.donors
            .iter_mut()
            .find(|x| x.id == d3)
            .unwrap()
            .withdrawn_on = Some("2026-01-01".into());

        // 2026: d1 reached again (TU/UC cleared); d4 through to donation; d2 gives DLI.
        local(&reg, "2026-02-01");
        let c = expect(
            addr,
            "POST",
            &format!("/v1/donors/{d1}/contacts"),
            &t.station,
            Some(r#"{"attempted_on": "2026-02-01", "channel": "visit", "outcome": "reached"}"#),
            201,
        )
        .await;
        assert_eq!(c["status_changed"], "AV", "{b}: {c}");
        l.contacts.push(("2026-02-01".into(), d1, true));
        local(&reg, "2026-02-15");
        let dli =
            json!({"donor_id": d2, "patient_id": p1, "product": "DLI", "donated_on": "2026-02-15"})
                .to_string();
        expect(
            addr,
            "POST",
            "/v1/donations",
            &t.case_manager,
            Some(&dli),
            201,
        )
        .await;
        l.donations.push(("2026-02-15".into(), d2, "BJ"));
        local(&reg, "2026-03-01");
        let p2 = patient(addr, &t, "P-R2").await;
        for scope in ["confirmatory_typing", "workup"] {
            expect(
                addr,
                "POST",
                &format!("/v1/donors/{d4}/consents"),
                &sh,
                Some(&consent(scope)),
                201,
            )
            .await;
        }
        expect(
            addr,
            "POST",
            "/v1/requests",
            &t.coordinator,
            Some(&request(d4, p2, "confirmatory_typing")),
            201,
        )
        .await;
        l.requests
            .push(("2026-03-01".into(), d4, "confirmatory_typing"));
        expect(
            addr,
            "POST",
            "/v1/requests",
            &t.coordinator,
            Some(&request(d4, p2, "workup")),
            201,
        )
        .await;
        l.requests.push(("2026-03-01".into(), d4, "workup"));
        local(&reg, "2026-04-01");
        let donation = json!({"donor_id": d4, "patient_id": p2, "product": "PBSC", "donated_on": "2026-04-01"}).to_string();
        expect(
            addr,
            "POST",
            "/v1/donations",
            &t.case_manager,
            Some(&donation),
            201,
        )
        .await;
        l.donations.push(("2026-04-01".into(), d4, "SH"));
        local(&reg, "2026-04-04");
        expect(addr, "POST", "/v1/care", &t.case_manager, Some(&care(json!({"organ_case_id": k1, "for_family": true, "kind": "memorial", "on_date": "2026-04-04", "memorial_park": "Red Cross memorial park", "plot": "A-1", "commemoration": "清明"}))), 201).await;
        l.care.push(("2026-04-04".into(), "memorial", 0));
        expect(addr, "POST", "/v1/organ-cases", &t.case_manager, Some(&case("cornea", "SH01", "2026-04-03",
            json!({"completed_on": "2026-04-04", "recovered": {"cornea": 2}, "recipients_helped": 2}))), 201).await;
        l.cases
            .push(("2026-04-04".into(), "cornea", 0, 2, 2, "SH01"));

        // The report is read on 2026-11-22.
        local(&reg, "2026-11-22");
        for (year, branch, station) in [
            (2025, None, None),
            (2026, None, None),
            (2025, Some("BJ"), None),
            (2026, None, Some("SH01")),
            (2025, Some("BJ"), Some("BJ02")),
        ] {
            let mut path = format!("/v1/reports/yearly?year={year}");
            if let Some(br) = branch {
                path += &format!("&branch={br}");
            }
            if let Some(s) = station {
                path += &format!("&station={s}");
            }
            let r = expect(addr, "GET", &path, &t.auditor, None, 200).await;
            let covers =
                |s: &str| station.map_or(branch.is_none_or(|br| branch_of(s) == br), |x| x == s);
            let ctx = format!("{b} {path}");
            let n = |v: usize| json!(v);
            assert_eq!(
                r["samples_collected"],
                n(l.samples
                    .iter()
                    .filter(|s| in_year(&s.0, year) && covers(s.1) && !s.2)
                    .count()),
                "{ctx}"
            );
            // Listed at the end of the year: listed on or before 31 December and not withdrawn by then.
            let end = format!("{year}-12-31");
            let listed: Vec<_> = l
                .donors
                .iter()
                .filter(|d| {
                    covers(d.station)
                        && d.listed_on <= end
                        && d.withdrawn_on.as_ref().is_none_or(|w| *w > end)
                })
                .collect();
            assert_eq!(
                r["registry_size"],
                n(listed.len()),
                "{ctx}: {}",
                r["registry_size_by_age_band"]
            );
            for band in registry::report::AGE_BANDS {
                let expected = listed
                    .iter()
                    .filter(|d| registry::report::age_band(Some(year - d.born)) == band)
                    .count();
                assert_eq!(
                    r["registry_size_by_age_band"][band],
                    n(expected),
                    "{ctx} band {band}"
                );
            }
            for br in ["BJ", "SH"] {
                let expected = listed.iter().filter(|d| d.branch == br).count();
                let got = r["registry_size_by_branch"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|x| x["branch"] == br)
                    .map_or(0, |x| x["size"].as_u64().unwrap() as usize);
                assert_eq!(got, expected, "{ctx} branch {br}");
            }
            assert_eq!(
                r["donors_listed_new"],
                n(l.donors
                    .iter()
                    .filter(|d| covers(d.station) && in_year(&d.listed_on, year))
                    .count()),
                "{ctx}"
            );
            let station_of = |d: i64| l.donors.iter().find(|x| x.id == d).unwrap().station;
            let requests = |kind: &str| {
                l.requests
                    .iter()
                    .filter(|q| q.2 == kind && in_year(&q.0, year) && covers(station_of(q.1)))
                    .count()
            };
            assert_eq!(
                r["ct_requests"],
                n(requests("confirmatory_typing")),
                "{ctx}"
            );
            assert_eq!(r["workups"], n(requests("workup")), "{ctx}");
            let ct_donors: std::collections::BTreeSet<i64> = l
                .requests
                .iter()
                .filter(|q| {
                    q.2 == "confirmatory_typing" && in_year(&q.0, year) && covers(station_of(q.1))
                })
                .map(|q| q.1)
                .collect();
            assert_eq!(r["utilisation_donors"], n(ct_donors.len()), "{ctx}");
            let utilisation =
                (!listed.is_empty()).then(|| ct_donors.len() as f64 / listed.len() as f64);
            assert_eq!(r["utilisation"].as_f64(), utilisation, "{ctx}");
            assert_eq!(
                r["donations"],
                n(l.donations
                    .iter()
                    .filter(|d| in_year(&d.0, year) && covers(station_of(d.1)))
                    .count()),
                "{ctx}"
            );
            // Ordinals: the n-th donor of the branch ever to donate; a repeat keeps it.
            for o in r["donation_ordinals"].as_array().unwrap() {
                let donor = o["donor_id"].as_i64().unwrap();
                let on = o["donated_on"].as_str().unwrap();
                let branch = o["branch"].as_str().unwrap();
                let mut firsts: Vec<i64> = Vec::new();
                for d in l.donations.iter().filter(|d| d.2 == branch) {
                    if !firsts.contains(&d.1) {
                        firsts.push(d.1);
                    }
                }
                let expected = firsts.iter().position(|&x| x == donor).unwrap() + 1;
                let repeat = l
                    .donations
                    .iter()
                    .any(|d| d.1 == donor && d.0.as_str() < on);
                assert_eq!(
                    (
                        o["ordinal"].as_u64().unwrap() as usize,
                        o["repeat"].as_bool().unwrap()
                    ),
                    (expected, repeat),
                    "{ctx}: {o}"
                );
            }
            let contacted: std::collections::BTreeSet<i64> = l
                .contacts
                .iter()
                .filter(|c| in_year(&c.0, year) && covers(station_of(c.1)))
                .map(|c| c.1)
                .collect();
            let reached: std::collections::BTreeSet<i64> = l
                .contacts
                .iter()
                .filter(|c| in_year(&c.0, year) && c.2 && covers(station_of(c.1)))
                .map(|c| c.1)
                .collect();
            assert_eq!(
                (
                    r["reachability"]["donors_contacted"].clone(),
                    r["reachability"]["donors_reached"].clone()
                ),
                (n(contacted.len()), n(reached.len())),
                "{ctx}"
            );
            let regs = |f: &dyn Fn(&Registration) -> bool| {
                l.registrations
                    .iter()
                    .filter(|x| covers(x.2) && f(x))
                    .count()
            };
            assert_eq!(
                r["organ_registrations"]["new"],
                n(regs(&|x| in_year(&x.0, year))),
                "{ctx}"
            );
            assert_eq!(
                r["organ_registrations"]["in_force"],
                n(regs(
                    &|x| x.0 <= end && x.1.as_ref().is_none_or(|v| *v > end)
                )),
                "{ctx}"
            );
            let cases: Vec<_> = l
                .cases
                .iter()
                .filter(|c| in_year(&c.0, year) && covers(c.5))
                .collect();
            for kind in ["organ", "body", "cornea"] {
                assert_eq!(
                    r["completed_cases"][kind],
                    n(cases.iter().filter(|c| c.1 == kind).count()),
                    "{ctx} {kind}"
                );
            }
            assert_eq!(
                r["organs_recovered"],
                json!(cases.iter().map(|c| c.2).sum::<i64>()),
                "{ctx}"
            );
            assert_eq!(
                r["corneas_recovered"],
                json!(cases.iter().map(|c| c.3).sum::<i64>()),
                "{ctx}"
            );
            assert_eq!(
                r["recipients_helped"],
                json!(cases.iter().map(|c| c.4).sum::<i64>()),
                "{ctx}"
            );
            if station.is_none() && branch.is_none() {
                let care: Vec<_> = l.care.iter().filter(|c| in_year(&c.0, year)).collect();
                assert_eq!(
                    r["care"]["visits"],
                    n(care.iter().filter(|c| c.1 == "visit").count()),
                    "{ctx}"
                );
                assert_eq!(
                    r["care"]["honours"],
                    n(care.iter().filter(|c| c.1 == "honour").count()),
                    "{ctx}"
                );
                assert_eq!(
                    r["care"]["memorials"],
                    n(care.iter().filter(|c| c.1 == "memorial").count()),
                    "{ctx}"
                );
                assert_eq!(
                    r["care"]["aid"]["amount_fen"],
                    json!(care.iter().map(|c| c.2).sum::<i64>()),
                    "{ctx}"
                );
                assert_eq!(
                    r["campaigns"].as_array().unwrap().len(),
                    usize::from(year == 2025),
                    "{ctx}"
                );
            }
            // The summary states the JSON's figures.
            let zh = r["summary"]["zh"].as_str().unwrap();
            for phrase in [
                format!("采集造血干细胞血样{}份", r["samples_collected"]),
                format!("年末库容{}人", r["registry_size"]),
                format!("眼角膜捐献{}例", r["completed_cases"]["cornea"]),
                format!("{}名患者受益", r["recipients_helped"]),
            ] {
                assert!(zh.contains(&phrase), "{ctx}: `{phrase}` not in {zh}");
            }
            let en = r["summary"]["en"].as_str().unwrap();
            for phrase in [
                format!(
                    "collected {} stem-cell donor samples",
                    r["samples_collected"]
                ),
                format!("{} donors were on the registry", r["registry_size"]),
            ] {
                assert!(en.contains(&phrase), "{ctx}: `{phrase}` not in {en}");
            }
        }
        // The 2025 follow-ups: 2 days done, 1 week missed, 1 month overdue.
        let r = expect(
            addr,
            "GET",
            "/v1/reports/yearly?year=2025",
            &t.admin,
            None,
            200,
        )
        .await;
        assert_eq!(
            (
                r["follow_up"]["done"].as_i64(),
                r["follow_up"]["missed"].as_i64(),
                r["follow_up"]["overdue"].as_i64()
            ),
            (Some(1), Some(1), Some(1)),
            "{b}: {}",
            r["follow_up"]
        );
        assert_eq!(r["reachability"]["made_unreachable"], 1, "{b}");
        assert_eq!(
            r["registry_size_by_age_band"]["18-25"], 1,
            "{b}: d1 is 25 at the end of 2025"
        );
        let r26 = expect(
            addr,
            "GET",
            "/v1/reports/yearly?year=2026",
            &t.admin,
            None,
            200,
        )
        .await;
        assert_eq!(
            (
                r26["registry_size_by_age_band"]["26-35"].as_i64(),
                r26["registry_size_by_age_band"]["46-60"].as_i64()
            ),
            (Some(1), Some(1)),
            "{b}: d1 is 26 and d4 46 at the end of 2026: {}",
            r26["registry_size_by_age_band"]
        );

        // A station reads its own station's report only.
        let own = expect(
            addr,
            "GET",
            "/v1/reports/yearly?year=2025",
            &t.station,
            None,
            200,
        )
        .await;
        assert_eq!(own["scope"]["station"], "BJ01", "{b}");
        expect(
            addr,
            "GET",
            "/v1/reports/yearly?year=2025&station=BJ02",
            &t.station,
            None,
            403,
        )
        .await;
        expect(
            addr,
            "GET",
            "/v1/reports/yearly?year=2025&branch=BJ",
            &t.station,
            None,
            403,
        )
        .await;
        for (path, field) in [
            ("/v1/reports/yearly?year=2027", "year"),
            ("/v1/reports/yearly?year=2025&branch=XX", "branch"),
            (
                "/v1/reports/yearly?year=2025&branch=SH&station=BJ01",
                "station",
            ),
            ("/v1/reports/yearly?year=2025&format=pdf", "format"),
        ] {
            let problem = expect(addr, "GET", path, &t.admin, None, 422).await;
            assert_eq!(
                problem["errors"][0]["field"], field,
                "{b} {path}: {problem}"
            );
        }
        // The other forms carry the same figures.
        let (s, csv, ct) = call_text(
            addr,
            "GET",
            "/v1/reports/yearly?year=2025&format=csv",
            Some(&t.admin),
            None,
        )
        .await;
        assert_eq!((s, ct.as_str()), (200, "text/csv; charset=utf-8"), "{b}");
        assert!(
            csv.lines()
                .any(|l| l == format!("registry_size,{}", r["registry_size"])),
            "{b}: {csv}"
        );
        let (s, md, _) = call_text(
            addr,
            "GET",
            "/v1/reports/yearly?year=2025&format=md",
            Some(&t.admin),
            None,
        )
        .await;
        assert_eq!(s, 200, "{b}");
        assert!(md.contains(r["summary"]["zh"].as_str().unwrap()), "{b}");
        let (s, html, ct) = call_text(
            addr,
            "GET",
            "/v1/reports/yearly?year=2025&format=html",
            Some(&t.admin),
            None,
        )
        .await;
        assert_eq!((s, ct.as_str()), (200, "text/html; charset=utf-8"), "{b}");
        assert_eq!(html.matches("<svg").count(), 4, "{b}: four charts");
        for id in [
            "registry-size",
            "samples-target",
            "donations",
            "death-donation-cases",
        ] {
            assert!(
                html.contains(&format!("<figure id=\"{id}\">")),
                "{b}: chart {id}"
            );
        }
        assert!(
            html.contains(r["summary"]["zh"].as_str().unwrap()),
            "{b}: the summary in the page"
        );
        let _ = stop.send(());
    }
}
