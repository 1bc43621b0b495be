//! Registry tests. Every test runs on a real SQLite file and on a real PostgreSQL server
//! (`BOAI_TEST_PG_URL`, a server URL; each test gets its own database). With `CI=true` a
//! missing PostgreSQL fails the test instead of skipping that backend.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use hla::{Expander, MacDictionary, Release};
use matching::model::days_from_civil;
use matching::{DonorIndex, DonorType, SearchRequest, Status, SubjectBuilder};
use registry::{
    Actor, ConsentInput, Identity, NewDonor, Registry, RegistryConfig, RegistryError, StatusChange,
    TypingInput,
};
use sqlx::Connection;

fn shared(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared")
        .join(relative)
}

fn expander() -> Arc<Expander> {
    static E: OnceLock<Arc<Expander>> = OnceLock::new();
    E.get_or_init(|| {
        let dir =
            std::env::var_os("BOAI_HLA_DIR").map_or_else(|| shared("imgt-hla"), PathBuf::from);
        let mac = std::env::var_os("BOAI_MAC_FILE")
            .map_or_else(|| shared("mac/alpha.v3.subset.txt"), PathBuf::from);
        Arc::new(Expander::new(
            Arc::new(Release::load(dir).unwrap()),
            Arc::new(MacDictionary::load(mac).unwrap()),
        ))
    })
    .clone()
}

/// The registry's rules, its clock standing on 2028-01-01 in Beijing: after every event
/// these tests record (an event may not be after today). `today()` is the enrolment day.
fn config() -> RegistryConfig {
    RegistryConfig {
        clock: registry::Clock::manual(
            registry::DEFAULT_TIME_ZONE,
            "2028-01-01T02:00:00Z".parse().unwrap(),
        )
        .unwrap(),
        ..RegistryConfig::default()
    }
}

/// A fresh registry per backend: a new SQLite file, and a new PostgreSQL database.
pub async fn backends(name: &str) -> Vec<(String, Registry, Option<tempfile::TempDir>)> {
    let mut out = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("boai.db").display());
    let reg = Registry::connect(&url, expander(), config()).await.unwrap();
    reg.migrate().await.unwrap();
    out.push(("sqlite".to_string(), reg, Some(dir)));
    match std::env::var("BOAI_TEST_PG_URL") {
        Ok(server) => {
            let db = format!("boai_{}_{}", name, std::process::id());
            let mut admin = sqlx::PgConnection::connect(&server)
                .await
                .expect("connect to PostgreSQL");
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {db}")))
                .execute(&mut admin)
                .await
                .unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
                .execute(&mut admin)
                .await
                .unwrap();
            let url = format!("{}/{db}", server.rsplit_once('/').unwrap().0);
            let reg = Registry::connect(&url, expander(), config()).await.unwrap();
            reg.migrate().await.unwrap();
            out.push(("postgres".to_string(), reg, None));
        }
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but BOAI_TEST_PG_URL is not set: PostgreSQL tests must run");
        }
        Err(_) => eprintln!(
            "BOAI_TEST_PG_URL not set: PostgreSQL part of `{name}` skipped (set it, or run .ci/run)"
        ),
    }
    out
}

fn today() -> i64 {
    days_from_civil(2026, 11, 22)
}

fn clerk() -> Actor {
    Actor::new("clerk-bj01", "station").at_station("BJ01")
}

const TYPING: &str =
    "A*02:01+A*24:02^B*40:01+B*46:01^C*01:02+C*03:04^DRB1*09:01+DRB1*15:01^DQB1*03:03+DQB1*06:02";

async fn setup_station(reg: &Registry) {
    reg.add_branch("BJ", "Beijing", "North", &Actor::new("admin", "admin"))
        .await
        .unwrap();
    reg.add_station(
        "BJ01",
        "BJ",
        "Beijing station 1",
        "North",
        3000,
        &Actor::new("admin", "admin"),
    )
    .await
    .unwrap();
}

/// An online registration of intent (the actor's station takes it).
fn organ_registration(
    family_name: &str,
    given_name: &str,
    national_id: &str,
    birth_date: &str,
    organs: &[&str],
    tissues: &[&str],
    whole_body: bool,
) -> registry::NewOrganRegistration {
    registry::NewOrganRegistration {
        family_name: family_name.into(),
        given_name: given_name.into(),
        national_id: national_id.into(),
        birth_date: birth_date.into(),
        organs: organs.iter().map(|s| s.to_string()).collect(),
        tissues: tissues.iter().map(|s| s.to_string()).collect(),
        whole_body,
        channel: "online".into(),
        ..Default::default()
    }
}

fn donor(external: &str, national_id: &str) -> NewDonor {
    NewDonor {
        external_id: external.into(),
        station: "BJ01".into(),
        birth_date: Some("1995-04-10".into()),
        sex: matching::Sex::Female,
        identity: Some(Identity {
            family_name: "Li".into(),
            given_name: "Na".into(),
            national_id: Some(national_id.into()),
            phone: Some("+86 10 0000 0000".into()),
            ..Default::default()
        }),
        recruitment_consent: Some(ConsentInput {
            form_version: "CMDP-2024-1".into(),
            note: None,
        }),
        typing: Some(TypingInput {
            gl: TYPING.into(),
            lab: Some("BJ-HLA".into()),
            method: Some("NGS".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn search_keys(index: &DonorIndex) -> Vec<u32> {
    let patient = SubjectBuilder::new(expander()).from_gl(TYPING).unwrap();
    let mut req = SearchRequest::new(patient, 2);
    req.today = today();
    let mut keys: Vec<u32> = index
        .search(&req)
        .unwrap()
        .hits
        .iter()
        .map(|h| h.key)
        .collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn enrolment_rules_and_grids() {
    for (backend, reg, _dir) in backends("enrol").await {
        setup_station(&reg).await;
        let d = reg
            .enrol(&donor("E1", "110101199504100004"), &clerk(), today())
            .await
            .unwrap();
        registry::validate_grid(&d.grid).unwrap();
        assert!(d.grid.starts_with("2197"), "{backend}");
        assert!(
            d.listed && d.status == Status::Available && d.current_typing.is_some(),
            "{backend}"
        );
        // Duplicate national id.
        let err = reg
            .enrol(&donor("E2", "110101199504100004"), &clerk(), today())
            .await
            .unwrap_err();
        assert!(
            matches!(err, RegistryError::Conflict(_)),
            "{backend}: {err}"
        );
        assert!(
            reg.donor_by_external_id("E2").await.unwrap().is_none(),
            "{backend}: nothing half-stored"
        );
        // Duplicate external id.
        assert!(matches!(
            reg.enrol(&donor("E1", "X2"), &clerk(), today()).await,
            Err(RegistryError::Conflict(_))
        ));
        // Age limits.
        let mut young = donor("E3", "X3");
        young.birth_date = Some("2010-01-01".into());
        let err = reg
            .enrol(&young, &clerk(), today())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("birth_date") && err.contains("18"),
            "{backend}: {err}"
        );
        let mut old = donor("E4", "X4");
        old.birth_date = Some("1970-01-01".into());
        assert!(reg.enrol(&old, &clerk(), today()).await.is_err());
        // Invalid HLA names the token; nothing stored.
        let mut bad = donor("E5", "X5");
        bad.typing.as_mut().unwrap().gl = TYPING.replace("A*24:02", "A*24:9999");
        let err = reg
            .enrol(&bad, &clerk(), today())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("A*24:9999"), "{backend}: {err}");
        assert!(reg.donor_by_external_id("E5").await.unwrap().is_none());
        // No listing without recruitment consent.
        let mut unconsented = donor("E6", "X6");
        unconsented.recruitment_consent = None;
        let d6 = reg.enrol(&unconsented, &clerk(), today()).await.unwrap();
        assert!(!d6.listed, "{backend}");
        assert!(!reg.is_indexable(&d6, today()));
        // Unknown station.
        let mut nowhere = donor("E7", "X7");
        nowhere.station = "ZZ99".into();
        assert!(
            reg.enrol(&nowhere, &clerk(), today())
                .await
                .unwrap_err()
                .to_string()
                .contains("ZZ99")
        );
        // Cord units have no enrolment age.
        let mut cord = donor("C1", "X8");
        cord.donor_type = DonorType::Cord;
        cord.birth_date = Some("2026-01-02".into());
        cord.identity = None;
        reg.enrol(&cord, &clerk(), today()).await.unwrap();
    }
}

#[tokio::test]
async fn withdrawn_donors_leave_search_at_once_and_stay_out() {
    for (backend, reg, _dir) in backends("withdraw").await {
        setup_station(&reg).await;
        let a = reg
            .enrol(&donor("W1", "N1"), &clerk(), today())
            .await
            .unwrap();
        let b = reg
            .enrol(&donor("W2", "N2"), &clerk(), today())
            .await
            .unwrap();
        let mut index = DonorIndex::new(expander());
        assert_eq!(reg.load_index(&mut index, today()).await.unwrap(), 2);
        // The load builds posting lists; searches here always prune by them, so the
        // withdrawal below (a write after the snapshot) is checked on that path.
        assert!(index.has_postings(), "{backend}");
        index.set_candidate_share(1.0);
        assert_eq!(
            search_keys(&index).await,
            [a.id as u32, b.id as u32],
            "{backend}"
        );
        // The write returns what the index needs; applying it is all a server does.
        let withdrawn = reg
            .withdraw_consent(a.id, "recruitment", &clerk(), Some("moved away"))
            .await
            .unwrap();
        assert!(withdrawn.value.is_empty());
        withdrawn.index.apply(&mut index, today()).unwrap();
        assert_eq!(search_keys(&index).await, [b.id as u32], "{backend}");
        // A fresh load from the database agrees.
        let mut fresh = DonorIndex::new(expander());
        reg.load_index(&mut fresh, today()).await.unwrap();
        assert_eq!(search_keys(&fresh).await, [b.id as u32], "{backend}");
        // Withdrawing twice is an error, consent can be given again.
        assert!(matches!(
            reg.withdraw_consent(a.id, "recruitment", &clerk(), None)
                .await,
            Err(RegistryError::NotFound(_))
        ));
        reg.give_consent(
            a.id,
            "recruitment",
            &ConsentInput {
                form_version: "CMDP-2024-1".into(),
                note: None,
            },
            &clerk(),
        )
        .await
        .unwrap()
        .index
        .apply(&mut index, today())
        .unwrap();
        assert_eq!(search_keys(&index).await.len(), 2);
    }
}

/// What a write returns for the index is what the index would hold after a fresh load:
/// the donor with its new typing, taken out on withdrawal, and out past the age-out birthday
/// whenever the update is applied on or after it.
#[tokio::test]
async fn a_writes_index_update_matches_a_fresh_load() {
    for (backend, reg, _dir) in backends("indexed").await {
        setup_station(&reg).await;
        let d = reg
            .enrol(&donor("I1", "NI1"), &clerk(), today())
            .await
            .unwrap();
        let mut index = DonorIndex::new(expander());
        let other = "A*02:01+A*03:01^B*08:01+B*44:02^DRB1*01:01+DRB1*04:01";
        let typed = reg
            .record_typing(
                d.id,
                &TypingInput {
                    gl: other.into(),
                    ..Default::default()
                },
                &clerk(),
                today(),
            )
            .await
            .unwrap();
        assert!(
            typed.index.clone().apply(&mut index, today()).unwrap(),
            "{backend}"
        );
        let mut fresh = DonorIndex::new(expander());
        reg.load_index(&mut fresh, today()).await.unwrap();
        let key = d.id as u32;
        let row = |i: &DonorIndex| i.row(key).map(|r| (i.subject(r), i.attributes(r)));
        assert_eq!(
            format!("{:?}", row(&index)),
            format!("{:?}", row(&fresh)),
            "{backend}"
        );
        // Born 1995: the same update applied past the 61st birthday takes the donor out.
        let later = matching::model::days_from_civil(2056, 4, 10);
        assert!(!typed.index.apply(&mut index, later).unwrap(), "{backend}");
        assert!(!index.contains(key), "{backend}");
        reg.close().await;
    }
}

#[tokio::test]
async fn status_transitions_expiry_and_age_out() {
    for (backend, reg, _dir) in backends("status").await {
        setup_station(&reg).await;
        let d = reg
            .enrol(&donor("S1", "M1"), &clerk(), today())
            .await
            .unwrap();
        let cm = Actor::new("cm-1", "case_manager");
        let tu = StatusChange {
            status: Status::TemporarilyUnavailable,
            reason: None,
            until: Some("2026-12-01".into()),
            patient_id: None,
        };
        assert!(
            reg.change_status(d.id, &tu, &cm)
                .await
                .unwrap_err()
                .to_string()
                .contains("reason"),
            "{backend}"
        );
        let tu = StatusChange {
            reason: Some("MR".into()),
            ..tu
        };
        let _ = reg.change_status(d.id, &tu, &cm).await.unwrap();
        assert_eq!(
            reg.donor(d.id).await.unwrap().status,
            Status::TemporarilyUnavailable
        );
        // The daily job: not yet expired, then expired.
        assert!(
            reg.run_daily(days_from_civil(2026, 11, 30), &Actor::system())
                .await
                .unwrap()
                .donors()
                .next()
                .is_none()
        );
        assert_eq!(
            reg.run_daily(days_from_civil(2026, 12, 2), &Actor::system())
                .await
                .unwrap()
                .donors()
                .collect::<Vec<_>>(),
            [d.id]
        );
        assert_eq!(reg.donor(d.id).await.unwrap().status, Status::Available);
        // RS needs a patient; DE is final.
        let rs = StatusChange {
            status: Status::Reserved,
            reason: None,
            until: None,
            patient_id: None,
        };
        assert!(reg.change_status(d.id, &rs, &cm).await.is_err());
        let de = StatusChange {
            status: Status::Deferred,
            reason: Some("PR".into()),
            until: None,
            patient_id: None,
        };
        let _ = reg.change_status(d.id, &de, &cm).await.unwrap();
        let av = StatusChange {
            status: Status::Available,
            reason: None,
            until: None,
            patient_id: None,
        };
        assert!(
            matches!(
                reg.change_status(d.id, &av, &cm).await,
                Err(RegistryError::Conflict(_))
            ),
            "{backend}"
        );
        // Age-out at the configured birthday (61): born 1995-04-10 → out on 2056-04-10.
        let e = reg
            .enrol(&donor("S2", "M2"), &clerk(), today())
            .await
            .unwrap();
        assert!(
            reg.run_daily(days_from_civil(2056, 4, 9), &Actor::system())
                .await
                .unwrap()
                .donors()
                .next()
                .is_none()
        );
        assert_eq!(
            reg.run_daily(days_from_civil(2056, 4, 10), &Actor::system())
                .await
                .unwrap()
                .donors()
                .collect::<Vec<_>>(),
            [e.id]
        );
        let aged = reg.donor(e.id).await.unwrap();
        assert_eq!(
            (aged.status, aged.status_reason.as_deref()),
            (Status::Deferred, Some("DO"))
        );
    }
}

#[tokio::test]
async fn typings_history_identity_audit() {
    for (backend, reg, _dir) in backends("typings").await {
        setup_station(&reg).await;
        let d = reg
            .enrol(&donor("T1", "K1"), &clerk(), today())
            .await
            .unwrap();
        let newer = TYPING.replace("A*02:01", "A*02:07");
        let _ = reg
            .record_typing(
                d.id,
                &TypingInput {
                    gl: newer.clone(),
                    ..Default::default()
                },
                &clerk(),
                today(),
            )
            .await
            .unwrap();
        assert_eq!(
            reg.donor(d.id).await.unwrap().current_typing.as_deref(),
            Some(newer.as_str()),
            "{backend}"
        );
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM typings WHERE donor_id = $1")
            .bind(d.id)
            .fetch_one(reg.pool())
            .await
            .unwrap();
        assert_eq!(count, 2);
        let err = reg
            .record_typing(
                d.id,
                &TypingInput {
                    gl: "A*02:01+A*99:01^B*08:01+B*08:01^DRB1*01:01+DRB1*01:01".into(),
                    ..Default::default()
                },
                &clerk(),
                today(),
            )
            .await;
        assert!(err.unwrap_err().to_string().contains("A*99:01"));
        assert_eq!(
            reg.donor(d.id).await.unwrap().current_typing.as_deref(),
            Some(newer.as_str()),
            "invalid typing never current"
        );
        // Identity reads are audited; the audit log is append-only.
        let id = reg
            .read_identity(d.id, &Actor::new("cm-2", "case_manager"), "workup call")
            .await
            .unwrap();
        assert_eq!(id.family_name, "Li");
        let reads: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'identity.read' AND actor = 'cm-2'",
        )
        .fetch_one(reg.pool())
        .await
        .unwrap();
        assert_eq!(reads, 1, "{backend}");
        assert!(
            sqlx::query("UPDATE audit_log SET actor = 'x'")
                .execute(reg.pool())
                .await
                .is_err(),
            "{backend}: audit UPDATE refused"
        );
        assert!(
            sqlx::query("DELETE FROM audit_log")
                .execute(reg.pool())
                .await
                .is_err(),
            "{backend}: audit DELETE refused"
        );
        // References hold on both backends (PostgreSQL checks them per statement): no
        // typing or consent for a donor that does not exist, and donors are never deleted.
        assert!(
            sqlx::query("INSERT INTO typings (donor_id, gl, release, typed_on, is_current, recorded_at) VALUES (987654, 'A*01:01', '3.58.0', '2026-11-22', FALSE, 'now')")
                .execute(reg.pool())
                .await
                .is_err(),
            "{backend}: typing of a missing donor refused"
        );
        assert!(
            sqlx::query("INSERT INTO consents (donor_id, scope, form_version, given_at, recorded_by) VALUES (987654, 'research', 'v1', 'now', 'x')")
                .execute(reg.pool())
                .await
                .is_err(),
            "{backend}: consent of a missing donor refused"
        );
        assert!(
            sqlx::query("UPDATE donors SET station_code = 'NOPE' WHERE id = $1")
                .bind(d.id)
                .execute(reg.pool())
                .await
                .is_err(),
            "{backend}: donor at a missing station refused"
        );
        let err = sqlx::query("DELETE FROM donors WHERE id = $1")
            .bind(d.id)
            .execute(reg.pool())
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("never deleted"),
            "{backend}: {err}"
        );
        let stats = reg.stats(today()).await.unwrap();
        assert_eq!(stats["donors"], 1);
        assert_eq!(stats["typings"], 2);
    }
}

#[tokio::test]
async fn concurrent_writers_lose_no_update() {
    for (backend, reg, _dir) in backends("concurrent").await {
        setup_station(&reg).await;
        let d = reg
            .enrol(&donor("C1", "Q1"), &clerk(), today())
            .await
            .unwrap();
        let reg = Arc::new(reg);
        let mut tasks = Vec::new();
        for i in 0..16 {
            let reg = reg.clone();
            tasks.push(tokio::spawn(async move {
                let scope = if i % 2 == 0 {
                    "research"
                } else {
                    "follow_up_contact"
                };
                let _ = reg
                    .give_consent(
                        d.id,
                        scope,
                        &ConsentInput {
                            form_version: format!("v{i}"),
                            note: None,
                        },
                        &Actor::new(&format!("w{i}"), "station").at_station("BJ01"),
                    )
                    .await
                    .unwrap();
                let gl = if i % 2 == 0 {
                    TYPING.to_string()
                } else {
                    TYPING.replace("C*01:02", "C*01:03")
                };
                let _ = reg
                    .record_typing(
                        d.id,
                        &TypingInput {
                            gl,
                            ..Default::default()
                        },
                        &Actor::new(&format!("w{i}"), "station").at_station("BJ01"),
                        today(),
                    )
                    .await
                    .unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let consents: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM consents WHERE donor_id = $1")
            .bind(d.id)
            .fetch_one(reg.pool())
            .await
            .unwrap();
        assert_eq!(consents, 17, "{backend}");
        let typings: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM typings WHERE donor_id = $1")
            .bind(d.id)
            .fetch_one(reg.pool())
            .await
            .unwrap();
        assert_eq!(typings, 17, "{backend}");
        let current: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM typings WHERE donor_id = $1 AND is_current")
                .bind(d.id)
                .fetch_one(reg.pool())
                .await
                .unwrap();
        assert_eq!(current, 1, "{backend}");
        let version: i64 = sqlx::query_scalar("SELECT row_version FROM donors WHERE id = $1")
            .bind(d.id)
            .fetch_one(reg.pool())
            .await
            .unwrap();
        assert_eq!(version, 1 + 32, "{backend}: every write counted");
    }
}

mod import {
    use super::*;
    use registry::import::ImportOptions;

    fn corpus() -> PathBuf {
        shared("corpora/atlas-donors/donors-20k.tsv")
    }

    fn opts(all_or_nothing: bool) -> ImportOptions {
        ImportOptions {
            station: Some("BJ01".into()),
            all_or_nothing,
            batch_size: 3000,
        }
    }

    #[tokio::test]
    async fn the_20k_corpus_imports_idempotently_and_searches_like_the_file() {
        for (backend, reg, _dir) in backends("import20k").await {
            setup_station(&reg).await;
            let s = reg
                .import_donors(&corpus(), &opts(false), &clerk(), today(), &|_| {})
                .await
                .unwrap();
            assert_eq!(
                (s.read, s.created, s.rejected),
                (20_000, 20_000, 0),
                "{backend}: {:?}",
                s.errors.first()
            );
            let again = reg
                .import_donors(&corpus(), &opts(false), &clerk(), today(), &|_| {})
                .await
                .unwrap();
            assert_eq!(
                (again.created, again.updated, again.unchanged),
                (0, 0, 20_000),
                "{backend}"
            );
            let stats = reg.stats(today()).await.unwrap();
            assert_eq!(
                (
                    stats["donors"].as_i64(),
                    stats["typings"].as_i64(),
                    stats["consents"].as_i64()
                ),
                (Some(20_000), Some(20_000), Some(20_000))
            );
            // Every imported donor: a valid GRID, one current typing, a legacy recruitment consent.
            let bad: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM donors d WHERE (SELECT COUNT(*) FROM typings t WHERE t.donor_id = d.id AND t.is_current) <> 1 OR NOT EXISTS (SELECT 1 FROM consents c WHERE c.donor_id = d.id AND c.scope = 'recruitment' AND c.note LIKE 'legacy import of donors-20k.tsv')")
                .fetch_one(reg.pool())
                .await
                .unwrap();
            assert_eq!(bad, 0, "{backend}");
            // One audit entry per stored batch (3,000 rows each), named by every donor it
            // created, with the file and the lines.
            let entries: Vec<String> = sqlx::query_scalar(
                "SELECT reason FROM audit_log WHERE action = 'import.create' ORDER BY id",
            )
            .fetch_all(reg.pool())
            .await
            .unwrap();
            assert_eq!(entries.len(), 7, "{backend}");
            assert!(
                entries[0]
                    .starts_with("3000 donors created by importing donors-20k.tsv (lines 2–3001"),
                "{backend}: {}",
                entries[0]
            );
            let unattributed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM donors d WHERE NOT EXISTS (SELECT 1 FROM audit_log a WHERE a.id = d.created_by_audit AND a.action = 'import.create')")
                .fetch_one(reg.pool())
                .await
                .unwrap();
            assert_eq!(unattributed, 0, "{backend}");
            let grid: String =
                sqlx::query_scalar("SELECT grid FROM donors ORDER BY id DESC LIMIT 1")
                    .fetch_one(reg.pool())
                    .await
                    .unwrap();
            registry::validate_grid(&grid).unwrap();

            // The registry-backed search returns what a search over the file returns.
            let mut from_db = DonorIndex::new(expander());
            assert_eq!(reg.load_index(&mut from_db, today()).await.unwrap(), 20_000);
            let mut from_file = DonorIndex::new(expander());
            let mut file_ids = std::collections::HashMap::new();
            for (i, record) in hla::input::SubjectReader::open(corpus())
                .unwrap()
                .enumerate()
            {
                let record = record.unwrap();
                let key = i as u32 + 1;
                file_ids.insert(key, record.id.clone());
                let typings = record.locus_typings(expander().release()).unwrap();
                let texts: Vec<(matching::Locus, [String; 2])> = typings
                    .iter()
                    .filter_map(|t| {
                        matching::Locus::from_name(&t.locus)
                            .map(|l| (l, [t.positions[0].to_string(), t.positions[1].to_string()]))
                    })
                    .collect();
                let mut input = matching::DonorInput {
                    key,
                    attributes: matching::DonorAttributes {
                        donor_type: if record.donor_type.as_deref() == Some("2") {
                            DonorType::Cord
                        } else {
                            DonorType::Adult
                        },
                        ..Default::default()
                    },
                    ..Default::default()
                };
                for (l, pair) in &texts {
                    input.hla[l.index()] = [Some(pair[0].as_str()), Some(pair[1].as_str())];
                }
                from_file.upsert(&input).unwrap();
            }
            let mut ext = std::collections::HashMap::new();
            for row in sqlx::query("SELECT id, external_id FROM donors")
                .fetch_all(reg.pool())
                .await
                .unwrap()
            {
                use sqlx::Row;
                ext.insert(
                    row.get::<i64, _>("id") as u32,
                    row.get::<String, _>("external_id"),
                );
            }
            for patient in [
                TYPING,
                "A*01:01+A*02:01^B*08:01+B*44:02^DRB1*03:01+DRB1*04:01",
                "A*24:02+A*11:01^B*35:01+B*51:01^DRB1*14:01+DRB1*11:01",
            ] {
                let subject = SubjectBuilder::new(expander()).from_gl(patient).unwrap();
                let mut req = SearchRequest::new(subject, 3);
                req.limit = usize::MAX;
                let mut a: Vec<String> = from_db
                    .search(&req)
                    .unwrap()
                    .hits
                    .iter()
                    .map(|h| ext[&h.key].clone())
                    .collect();
                let mut b: Vec<String> = from_file
                    .search(&req)
                    .unwrap()
                    .hits
                    .iter()
                    .map(|h| file_ids[&h.key].clone())
                    .collect();
                a.sort();
                b.sort();
                assert!(!a.is_empty(), "{backend}: {patient}");
                assert_eq!(a, b, "{backend}: {patient}");
            }
        }
    }

    /// A re-import whose typing changed replaces the current typing (the old one kept as
    /// history), moves the donor's version on and audits it, the same on both backends.
    #[tokio::test]
    async fn a_changed_typing_on_reimport_replaces_the_current_one() {
        for (backend, reg, dir) in backends("importchanged").await {
            setup_station(&reg).await;
            let tmp = dir.as_ref().map_or_else(
                || std::env::temp_dir().join(format!("boai-changed-{}", std::process::id())),
                |d| d.path().to_path_buf(),
            );
            std::fs::create_dir_all(&tmp).unwrap();
            let file = tmp.join("changed.txt");
            let other = "A*02:01+A*03:01^B*08:01+B*44:02^DRB1*01:01+DRB1*04:01";
            std::fs::write(&file, format!("C1%{TYPING}\nC2%{TYPING}\n")).unwrap();
            let s = reg
                .import_donors(&file, &opts(false), &clerk(), today(), &|_| {})
                .await
                .unwrap();
            assert_eq!((s.created, s.rejected), (2, 0), "{backend}: {:?}", s.errors);
            std::fs::write(&file, format!("C1%{other}\nC2%{TYPING}\n")).unwrap();
            let s = reg
                .import_donors(&file, &opts(false), &clerk(), today(), &|_| {})
                .await
                .unwrap();
            assert_eq!(
                (s.created, s.updated, s.unchanged, s.rejected),
                (0, 1, 1, 0),
                "{backend}: {:?}",
                s.errors
            );
            let d = reg.donor_by_external_id("C1").await.unwrap().unwrap();
            let typings = reg.typings(d.id).await.unwrap();
            assert_eq!(
                typings.len(),
                2,
                "{backend}: the old typing stays as history"
            );
            let current: Vec<_> = typings.iter().filter(|t| t.current).collect();
            assert_eq!(current.len(), 1, "{backend}");
            assert_eq!(Some(current[0].gl.as_str()), d.current_typing.as_deref());
            assert_ne!(d.current_typing.as_deref(), Some(TYPING), "{backend}");
            let (version, audited): (i64, i64) = (
                sqlx::query_scalar("SELECT row_version FROM donors WHERE id = $1")
                    .bind(d.id)
                    .fetch_one(reg.pool())
                    .await
                    .unwrap(),
                sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'import.update' AND entity_id = $1 AND reason = 'typing replaced'")
                    .bind(d.id.to_string())
                    .fetch_one(reg.pool())
                    .await
                    .unwrap(),
            );
            assert_eq!((version, audited), (2, 1), "{backend}");
            // A donor in confirmatory typing without that consent keeps its typing: the
            // import refuses the row as the API refuses the result.
            let c2 = reg.donor_by_external_id("C2").await.unwrap().unwrap();
            let coordinator = Actor::new("coord", "coordinator");
            let patient = reg
                .register_patient(
                    &registry::NewPatient {
                        external_id: "CP-1".into(),
                        gl: TYPING.into(),
                        ..Default::default()
                    },
                    &coordinator,
                )
                .await
                .unwrap();
            let _ = reg
                .open_request(patient, c2.id, "confirmatory_typing", &coordinator, today())
                .await
                .unwrap();
            std::fs::write(&file, format!("C2%{other}\n")).unwrap();
            let s = reg
                .import_donors(&file, &opts(false), &clerk(), today(), &|_| {})
                .await
                .unwrap();
            assert_eq!(
                (s.updated, s.errors.first().map(|e| e.field.as_str())),
                (0, Some("consent")),
                "{backend}: {:?}",
                s.errors
            );
            assert_eq!(
                reg.donor(c2.id).await.unwrap().current_typing.as_deref(),
                Some(TYPING),
                "{backend}: unchanged"
            );
            let _ = reg
                .give_consent(
                    c2.id,
                    "confirmatory_typing",
                    &ConsentInput {
                        form_version: "CT-1".into(),
                        note: None,
                    },
                    &clerk(),
                )
                .await
                .unwrap();
            let s = reg
                .import_donors(&file, &opts(false), &clerk(), today(), &|_| {})
                .await
                .unwrap();
            assert_eq!(
                (s.updated, s.errors.len()),
                (1, 0),
                "{backend}: {:?}",
                s.errors
            );
            reg.close().await;
        }
    }

    #[tokio::test]
    async fn bad_rows_name_line_and_field_and_all_or_nothing_loads_none() {
        for (backend, reg, dir) in backends("importbad").await {
            setup_station(&reg).await;
            let tmp = dir.as_ref().map_or_else(
                || std::env::temp_dir().join(format!("boai-bad-{}", std::process::id())),
                |d| d.path().to_path_buf(),
            );
            std::fs::create_dir_all(&tmp).unwrap();
            let file = tmp.join("mixed.txt");
            std::fs::write(&file, format!("D1%{TYPING}\nD2%A*02:01+A*99:99^B*08:01+B*08:01^DRB1*01:01+DRB1*01:01\nno separator\nD4%{TYPING}\nD1%{TYPING}\nD6%A*02:01+A*02:01^B*08:01+B*08:01\n")).unwrap();
            let s = reg
                .import_donors(&file, &opts(true), &clerk(), today(), &|_| {})
                .await
                .unwrap();
            assert_eq!(
                (s.read, s.created, s.rejected),
                (6, 0, 4),
                "{backend}: {:?}",
                s.errors
            );
            let lines: Vec<usize> = s.errors.iter().map(|e| e.line).collect();
            assert_eq!(lines, [2, 3, 5, 6], "{backend}");
            assert!(s.errors[0].to_string().contains("A*99:99"));
            assert_eq!(s.errors[2].field, "external_id");
            assert!(
                s.errors[3].reason.contains("DRB1") || s.errors[3].reason.contains("A, B and DRB1"),
                "{}",
                s.errors[3]
            );
            assert_eq!(
                reg.stats(today()).await.unwrap()["donors"],
                0,
                "{backend}: all-or-nothing loaded nothing"
            );
            let s = reg
                .import_donors(&file, &opts(false), &clerk(), today(), &|_| {})
                .await
                .unwrap();
            assert_eq!((s.created, s.rejected), (2, 4), "{backend}");
            // Copies of two loci joined by `+` are refused on their line, the token named.
            let crossed = tmp.join("crossed.txt");
            std::fs::write(
                &crossed,
                "X1%A*01:01+B*08:01^B*07:02+B*07:02^DRB1*01:01+DRB1*01:01\n",
            )
            .unwrap();
            let s = reg
                .import_donors(&crossed, &opts(false), &clerk(), today(), &|_| {})
                .await
                .unwrap();
            assert_eq!((s.created, s.rejected), (0, 1), "{backend}");
            assert!(
                s.errors[0].reason.contains("A*01:01")
                    && s.errors[0].reason.contains("different loci"),
                "{backend}: {}",
                s.errors[0]
            );
            // The enrolment CSV: age, consent and duplicate national ids are checked per row.
            let csv = tmp.join("enrol.csv");
            std::fs::write(
                &csv,
                format!(
                    "external_id,station,birth_date,sex,abo,rh,cmv,family_name,given_name,national_id,consent_form_version,gl\n\
                     E1,BJ01,1990-01-01,F,A,+,neg,Wang,Fang,ID1,CMDP-2024,{TYPING}\n\
                     E2,BJ01,2012-01-01,M,O,+,neg,Zhao,Lei,ID2,CMDP-2024,{TYPING}\n\
                     E3,BJ01,1991-01-01,M,O,+,neg,Sun,Wei,ID1,CMDP-2024,{TYPING}\n\
                     E4,BJ01,1992-01-01,M,O,+,neg,Zhou,Jie,ID4,,{TYPING}\n\
                     E5,BJ01,1993-13-01,M,O,+,neg,Wu,Min,ID5,CMDP-2024,{TYPING}\n\
                     E6,BJ01,1993-02-01,X,O,+,neg,Wu,Min,ID6,CMDP-2024,{TYPING}\n"
                ),
            )
            .unwrap();
            let s = reg
                .import_donors(&csv, &ImportOptions::default(), &clerk(), today(), &|_| {})
                .await
                .unwrap();
            let fields: Vec<(usize, String)> =
                s.errors.iter().map(|e| (e.line, e.field.clone())).collect();
            assert_eq!(
                fields,
                [
                    (3, "birth_date".into()),
                    (4, "national_id".into()),
                    (5, "consent_form_version".into()),
                    (6, "birth_date".into()),
                    (7, "sex".into())
                ],
                "{backend}"
            );
            assert_eq!(s.created, 1);
            let d = reg.donor_by_external_id("E1").await.unwrap().unwrap();
            assert!(d.listed && d.birth_date.as_deref() == Some("1990-01-01"));
            assert_eq!(
                reg.read_identity(d.id, &clerk(), "test")
                    .await
                    .unwrap()
                    .national_id
                    .as_deref(),
                Some("ID1")
            );
        }
    }
}

#[tokio::test]
async fn patient_to_donation_to_follow_up_and_organ_registrations() {
    for (backend, reg, _dir) in backends("cases").await {
        setup_station(&reg).await;
        let d = reg
            .enrol(&donor("P1", "Z1"), &clerk(), today())
            .await
            .unwrap();
        let coord = Actor::new("coord-1", "coordinator");
        let cm = Actor::new("cm-1", "case_manager");
        let mut p = registry::NewPatient {
            external_id: "PAT-1".into(),
            gl: TYPING.into(),
            weight_kg: Some(60.0),
            ..Default::default()
        };
        let patient = reg.register_patient(&p, &coord).await.unwrap();
        p.external_id = "PAT-2".into();
        p.gl = TYPING.replace("B*40:01", "B*40:9999");
        assert!(
            reg.register_patient(&p, &coord)
                .await
                .unwrap_err()
                .to_string()
                .contains("B*40:9999"),
            "{backend}"
        );
        p.gl = TYPING.into();
        let other = reg.register_patient(&p, &coord).await.unwrap();
        assert!(matches!(
            reg.register_patient(&p, &coord).await,
            Err(RegistryError::Conflict(_))
        ));
        // Search lifecycle.
        let s = reg
            .open_search(
                patient,
                r#"{"loci":["A","B","C","DRB1","DQB1"],"max_mismatches":1}"#,
                &coord,
            )
            .await
            .unwrap();
        reg.set_search_state(s, "ACT", None, &coord).await.unwrap();
        assert!(
            matches!(
                reg.set_search_state(s, "NEW", None, &coord).await,
                Err(RegistryError::Conflict(_))
            ),
            "{backend}"
        );
        reg.set_search_state(s, "SUS", None, &coord).await.unwrap();
        assert!(
            reg.set_search_state(s, "STP", None, &coord).await.is_err(),
            "STP needs a reason"
        );
        reg.set_search_state(s, "STP", Some("transplanted"), &coord)
            .await
            .unwrap();
        assert!(reg.open_search(999_999, "{}", &coord).await.is_err());
        // A stored run (tens of kilobytes under load) reads back as written; PostgreSQL
        // keeps it uncompressed (migration 0004).
        let run = format!(
            "{{\"format\":2,\"hits\":[{}]}}",
            "[1,2,\"A\"],".repeat(3000)
        );
        let traced = Actor {
            request_id: Some("req-7".into()),
            ..coord.clone()
        };
        let with_run = reg
            .open_search_with_run(patient, "{}", &run, &traced)
            .await
            .unwrap();
        // Opened and run: two audit entries, in that order, naming the caller and request.
        let entries = reg
            .audit_entries(Some("search"), Some(&with_run.to_string()), None, 10)
            .await
            .unwrap();
        let seen: Vec<(&str, &str, &str, Option<&str>)> = entries
            .iter()
            .rev()
            .map(|e| {
                (
                    e.action.as_str(),
                    e.actor.as_str(),
                    e.role.as_str(),
                    e.request_id.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("search.open", "coord-1", "coordinator", Some("req-7")),
                ("search.run", "coord-1", "coordinator", Some("req-7")),
            ],
            "{backend}"
        );
        assert!(
            matches!(
                reg.open_search_with_run(999_999, "{}", &run, &coord).await,
                Err(RegistryError::NotFound(_))
            ),
            "{backend}: a search for a missing patient is not found"
        );
        assert!(
            matches!(
                reg.open_search_with_run(patient, "not json", &run, &coord)
                    .await,
                Err(RegistryError::Invalid { .. })
            ),
            "{backend}"
        );
        assert_eq!(
            reg.search_record(with_run)
                .await
                .unwrap()
                .last_result
                .as_deref(),
            Some(run.as_str()),
            "{backend}"
        );
        if backend == "postgres" {
            let storage: String = sqlx::query_scalar(
                "SELECT attstorage::text FROM pg_attribute WHERE attrelid = 'searches'::regclass AND attname = 'last_result'",
            )
            .fetch_one(reg.pool())
            .await
            .unwrap();
            assert_eq!(
                storage, "e",
                "last_result is stored out of line, uncompressed"
            );
        }
        // One open request of a kind per pair.
        let ct = reg
            .open_request(patient, d.id, "confirmatory_typing", &coord, today())
            .await
            .unwrap()
            .value;
        assert!(
            matches!(
                reg.open_request(patient, d.id, "confirmatory_typing", &coord, today())
                    .await,
                Err(RegistryError::Conflict(_))
            ),
            "{backend}"
        );
        let _ = reg.close_request(ct, "done", &coord).await.unwrap();
        assert!(reg.close_request(ct, "done", &coord).await.is_err());
        // Reservation: RS for this patient only; expires.
        let res = reg
            .open_request(patient, d.id, "reservation", &coord, today())
            .await
            .unwrap()
            .value;
        let reserved = reg.donor(d.id).await.unwrap();
        assert_eq!(
            (reserved.status, reserved.reserved_for),
            (Status::Reserved, Some(patient)),
            "{backend}"
        );
        assert!(matches!(
            reg.open_request(other, d.id, "extended_typing", &coord, today())
                .await,
            Err(RegistryError::Conflict(_))
        ));
        // Only AV donors are search results, and RS donors for their own patient.
        let mut index = DonorIndex::new(expander());
        reg.load_index(&mut index, today()).await.unwrap();
        let keys_for = |also: Vec<i64>| {
            let patient = SubjectBuilder::new(expander()).from_gl(TYPING).unwrap();
            let mut req = SearchRequest::new(patient, 2);
            req.today = today();
            req.also_offered = also.into_iter().map(|k| k as u32).collect();
            index
                .search(&req)
                .unwrap()
                .hits
                .iter()
                .map(|h| h.key)
                .collect::<Vec<u32>>()
        };
        let own = reg.donors_reserved_for(patient).await.unwrap();
        assert_eq!(own, [d.id], "{backend}");
        // The search's one-query read agrees: the patient, with and without reservations.
        let (p, with) = reg.patient_with_reserved(patient).await.unwrap();
        assert_eq!(
            (p.id, &p.gl, with),
            (
                patient,
                &reg.patient(patient).await.unwrap().gl,
                own.clone()
            ),
            "{backend}"
        );
        let (p, without) = reg.patient_with_reserved(other).await.unwrap();
        assert_eq!((p.id, without), (other, vec![]), "{backend}");
        assert!(
            matches!(
                reg.patient_with_reserved(999_999).await,
                Err(RegistryError::NotFound(_))
            ),
            "{backend}"
        );
        assert!(
            keys_for(own).contains(&(d.id as u32)),
            "{backend}: own patient sees RS donor"
        );
        let theirs = reg.donors_reserved_for(other).await.unwrap();
        assert!(
            !keys_for(theirs).contains(&(d.id as u32)),
            "{backend}: other patient does not"
        );
        // Workup with milestones.
        let w = reg
            .open_request(patient, d.id, "workup", &cm, today())
            .await
            .unwrap()
            .value;
        // Without workup consent the workup stops at the information session (where it
        // is taken): later milestones and the donation are refused, nothing recorded.
        reg.record_milestone(w, "information_session", "2026-11-30", None, &cm)
            .await
            .unwrap();
        let refused = reg
            .record_milestone(w, "medical_exam", "2026-12-01", Some(true), &cm)
            .await;
        assert!(
            matches!(&refused, Err(RegistryError::ConsentRequired { scope, .. }) if scope == "workup"),
            "{backend}: {refused:?}"
        );
        assert!(
            matches!(
                reg.record_donation(d.id, Some(patient), "PBSC", "2026-12-10", Some("BJ01"), &cm)
                    .await,
                Err(RegistryError::ConsentRequired { .. })
            ),
            "{backend}"
        );
        let milestones: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM workup_milestones WHERE request_id = $1")
                .bind(w)
                .fetch_one(reg.pool())
                .await
                .unwrap();
        let donations: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM donations WHERE donor_id = $1")
                .bind(d.id)
                .fetch_one(reg.pool())
                .await
                .unwrap();
        assert_eq!((milestones, donations), (1, 0), "{backend}");
        // The case manager takes it: the donor is in their open case.
        let workup_form = ConsentInput {
            form_version: "W1".into(),
            note: None,
        };
        let _ = reg
            .give_consent(d.id, "workup", &workup_form, &cm)
            .await
            .unwrap();
        // A case manager records only the case scopes.
        assert!(
            matches!(
                reg.give_consent(d.id, "research", &workup_form, &cm).await,
                Err(RegistryError::Forbidden(_))
            ),
            "{backend}"
        );
        reg.record_milestone(w, "medical_exam", "2026-12-01", Some(true), &cm)
            .await
            .unwrap();
        let detail = reg.request_detail(w).await.unwrap();
        assert_eq!(
            detail
                .milestones
                .iter()
                .map(|m| (m.milestone.as_str(), m.ok))
                .collect::<Vec<_>>(),
            [("information_session", None), ("medical_exam", Some(true))],
            "{backend}"
        );
        assert_eq!(
            (detail.request.kind.as_str(), detail.request.state.as_str()),
            ("workup", "open")
        );
        assert!(matches!(
            reg.record_milestone(w, "medical_exam", "2026-12-02", Some(true), &cm)
                .await,
            Err(RegistryError::Conflict(_))
        ));
        assert!(
            reg.record_milestone(res, "clearance", "2026-12-02", None, &cm)
                .await
                .is_err(),
            "milestones belong to workups"
        );
        // Withdrawal during a workup warns loudly, never blocks.
        let warnings = reg.withdraw_consent(d.id, "research", &clerk(), None).await;
        assert!(warnings.is_err(), "no research consent was given");
        // Donation: follow-up schedule, TU/TX, interval and limit.
        let donation = reg
            .record_donation(d.id, Some(patient), "PBSC", "2026-12-10", Some("BJ01"), &cm)
            .await
            .unwrap()
            .value;
        let after = reg.donor(d.id).await.unwrap();
        assert_eq!(
            (after.status, after.status_reason.as_deref()),
            (Status::TemporarilyUnavailable, Some("TX")),
            "{backend}"
        );
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM followups WHERE donation_id = $1")
            .bind(donation)
            .fetch_one(reg.pool())
            .await
            .unwrap();
        assert_eq!(n, 14);
        let ten: String = sqlx::query_scalar(
            "SELECT due_on FROM followups WHERE donation_id = $1 AND label = '10 years'",
        )
        .bind(donation)
        .fetch_one(reg.pool())
        .await
        .unwrap();
        assert_eq!(ten, "2036-12-10");
        assert!(
            matches!(
                reg.record_donation(d.id, Some(patient), "PBSC", "2027-01-10", None, &cm)
                    .await,
                Err(RegistryError::Conflict(_))
            ),
            "{backend}: 3-month interval"
        );
        let _ = reg
            .record_donation(d.id, Some(patient), "PBSC", "2027-03-20", None, &cm)
            .await
            .unwrap();
        assert!(
            reg.record_donation(d.id, Some(patient), "PBSC", "2027-09-20", None, &cm)
                .await
                .unwrap_err()
                .to_string()
                .contains("limit")
        );
        assert!(
            reg.record_donation(d.id, None, "XYZ", "2027-09-20", None, &cm)
                .await
                .is_err()
        );
        // Follow-ups: due and overdue lists; done needs an outcome.
        let due = reg
            .followups_due(days_from_civil(2026, 12, 13), true)
            .await
            .unwrap();
        assert_eq!(
            due.iter().map(|f| f.2.as_str()).collect::<Vec<_>>(),
            ["2 days"],
            "{backend}"
        );
        assert!(
            reg.record_followup(due[0].0, "done", "2026-12-13", None, None, &cm)
                .await
                .is_err()
        );
        // A follow-up contact needs follow-up contact consent.
        assert!(
            matches!(
                reg.record_followup(due[0].0, "done", "2026-12-13", Some("well"), None, &cm)
                    .await,
                Err(RegistryError::ConsentRequired { scope, .. }) if scope == "follow_up_contact"
            ),
            "{backend}"
        );
        let _ = reg
            .give_consent(
                d.id,
                "follow_up_contact",
                &ConsentInput {
                    form_version: "F1".into(),
                    note: None,
                },
                &cm,
            )
            .await
            .unwrap();
        reg.record_followup(due[0].0, "done", "2026-12-13", Some("well"), None, &cm)
            .await
            .unwrap();
        assert!(
            reg.followups_due(days_from_civil(2026, 12, 13), true)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            reg.followups_due(days_from_civil(2026, 12, 17), false)
                .await
                .unwrap()
                .len(),
            1
        );
        // A donor who withdrew follow-up contact is not listed.
        let _ = reg
            .give_consent(
                d.id,
                "follow_up_contact",
                &ConsentInput {
                    form_version: "F1".into(),
                    note: None,
                },
                &cm,
            )
            .await
            .unwrap();
        let _ = reg
            .withdraw_consent(d.id, "follow_up_contact", &cm, None)
            .await
            .unwrap();
        assert!(
            reg.followups_due(days_from_civil(2027, 12, 31), false)
                .await
                .unwrap()
                .is_empty(),
            "{backend}"
        );
        // Reservation expiry through the daily job (a second donor).
        let e = reg
            .enrol(&donor("P2", "Z2"), &clerk(), today())
            .await
            .unwrap();
        let _ = reg
            .open_request(other, e.id, "reservation", &coord, today())
            .await
            .unwrap();
        // 53 working days, not calendar days: still held after 54 days.
        let held = reg.run_daily(today() + 54, &Actor::system()).await.unwrap();
        assert!(held.reservations_released.is_empty(), "{backend}: {held:?}");
        let released = reg.run_daily(today() + 80, &Actor::system()).await.unwrap();
        assert!(
            released.reservations_released.contains(&e.id),
            "{backend}: {released:?}"
        );
        assert_eq!(reg.donor(e.id).await.unwrap().status, Status::Available);
        // Withdrawal with an open workup warns.
        let w2 = reg
            .open_request(other, e.id, "workup", &cm, today())
            .await
            .unwrap()
            .value;
        let warnings = reg
            .withdraw_consent(e.id, "recruitment", &clerk(), None)
            .await
            .unwrap()
            .value;
        assert!(
            warnings.iter().any(|w| w.contains("conditioning")),
            "{backend}: {warnings:?}"
        );
        let _ = reg.close_request(w2, "cancelled", &cm).await.unwrap();

        // Organ, tissue and body donation registrations.
        let staff = Actor::new("rc-1", "station").at_station("BJ01");
        assert!(
            reg.register_organ_donation(
                &organ_registration("Chen", "Yu", "ORG1", "2015-01-01", &["kidney"], &[], false),
                &staff
            )
            .await
            .is_err(),
            "adults only"
        );
        assert!(
            reg.register_organ_donation(
                &organ_registration("Chen", "Yu", "ORG1", "1980-01-01", &["brain"], &[], false),
                &staff
            )
            .await
            .is_err()
        );
        assert!(
            reg.register_organ_donation(
                &organ_registration("Chen", "Yu", "ORG1", "1980-01-01", &[], &[], false),
                &staff
            )
            .await
            .is_err()
        );
        let r = reg
            .register_organ_donation(
                &organ_registration(
                    "Chen",
                    "Yu",
                    "ORG1",
                    "1980-01-01",
                    &["kidney", "liver"],
                    &["cornea"],
                    false,
                ),
                &staff,
            )
            .await
            .unwrap();
        assert!(matches!(
            reg.register_organ_donation(
                &organ_registration("Chen", "Yu", "ORG1", "1980-01-01", &["heart"], &[], false),
                &staff
            )
            .await,
            Err(RegistryError::Conflict(_))
        ));
        // Only the station that took a registration, or an admin, changes or revokes it.
        let admin = Actor::new("admin", "admin");
        reg.add_station("BJ02", "BJ", "Beijing station 2", "North", 0, &admin)
            .await
            .unwrap();
        let elsewhere = Actor::new("rc-2", "station").at_station("BJ02");
        assert!(
            matches!(
                reg.change_organ_donation(r, &["heart"], &[], false, &elsewhere)
                    .await,
                Err(RegistryError::Forbidden(_))
            ),
            "{backend}"
        );
        assert!(
            matches!(
                reg.revoke_organ_donation(r, &elsewhere).await,
                Err(RegistryError::Forbidden(_))
            ),
            "{backend}"
        );
        assert!(matches!(
            reg.revoke_organ_donation(999_999, &staff).await,
            Err(RegistryError::NotFound(_))
        ));
        let (organs, owner): (String, Option<String>) = (
            sqlx::query_scalar("SELECT organs FROM organ_registrations WHERE id = $1")
                .bind(r)
                .fetch_one(reg.pool())
                .await
                .unwrap(),
            sqlx::query_scalar("SELECT station_code FROM organ_registrations WHERE id = $1")
                .bind(r)
                .fetch_one(reg.pool())
                .await
                .unwrap(),
        );
        assert_eq!(
            (organs.as_str(), owner.as_deref()),
            ("kidney,liver", Some("BJ01")),
            "{backend}: unchanged, owned by the station that took it"
        );
        reg.change_organ_donation(r, &["kidney", "liver"], &["cornea"], false, &admin)
            .await
            .unwrap();
        reg.change_organ_donation(r, &["kidney"], &[], true, &staff)
            .await
            .unwrap();
        reg.revoke_organ_donation(r, &staff).await.unwrap();
        assert!(
            reg.revoke_organ_donation(r, &staff).await.is_err(),
            "revocation is final"
        );
        assert!(
            reg.change_organ_donation(r, &["heart"], &[], false, &staff)
                .await
                .is_err()
        );
        let r2 = reg
            .register_organ_donation(
                &organ_registration("Chen", "Yu", "ORG1", "1980-01-01", &["heart"], &[], false),
                &staff,
            )
            .await
            .unwrap();
        // A death-donation case: recorded by a case manager, with the family's written
        // consent and a witness; the store refuses it otherwise, whoever calls.
        let case = |witnesses: Vec<String>, in_writing: bool| registry::NewOrganCase {
            registration_id: Some(r2),
            kind: "organ".into(),
            died_on: "2027-06-01".into(),
            family_consent: registry::FamilyConsent {
                relations: vec!["spouse".into(), "parents".into()],
                in_writing,
                consented_on: "2027-06-01".into(),
                note: None,
            },
            witnesses,
            opo: "Provincial OPO".into(),
            ..Default::default()
        };
        let cm = Actor::new("cm", "case_manager");
        assert!(matches!(
            reg.record_organ_case(&case(vec!["Liu".into()], true), &staff)
                .await,
            Err(RegistryError::Forbidden(_))
        ));
        assert!(matches!(
            reg.record_organ_case(&case(vec![], true), &cm).await,
            Err(RegistryError::Invalid { field, .. }) if field == "witnesses"
        ));
        assert!(matches!(
            reg.record_organ_case(&case(vec!["Liu".into()], false), &cm).await,
            Err(RegistryError::Invalid { field, .. }) if field == "family_consent.in_writing"
        ));
        let c = reg
            .record_organ_case(
                &case(vec!["Red Cross officer Liu".into(), "Zhang".into()], true),
                &cm,
            )
            .await
            .unwrap();
        let recorded = reg.organ_case(c).await.unwrap();
        assert_eq!(
            recorded.station.as_deref(),
            Some("BJ01"),
            "{backend}: the registration's station"
        );
        assert_eq!(recorded.witnesses, ["Red Cross officer Liu", "Zhang"]);
        assert_eq!(
            reg.stats(today()).await.unwrap()["organ_registrations"],
            1,
            "{backend}"
        );
    }
}

/// The import's cached canonicalisation of GL typings gives exactly what parsing the whole
/// record gives, or stands aside.
#[test]
fn gl_canonicaliser_agrees_with_the_full_parser() {
    use std::io::BufRead;
    let expander = expander();
    let canonicaliser = registry::import::GlCanonicaliser::new(expander.clone());
    let full = |text: &str| -> Option<String> {
        let gl = hla::gl::GlString::parse(text).ok()?;
        let loci = hla::locus_typings(&gl).ok()?;
        for t in &loci {
            for p in &t.positions {
                expander.expand_list(p).ok()?;
            }
        }
        for required in ["A", "B", "DRB1"] {
            if !loci.iter().any(|t| t.locus == required) {
                return None;
            }
        }
        Some(
            loci.iter()
                .map(|t| format!("{}+{}", t.positions[0], t.positions[1]))
                .collect::<Vec<_>>()
                .join("^"),
        )
    };
    let file = std::fs::File::open(shared("corpora/wmda-mvt3/don.gl.txt.gz")).unwrap();
    let mut texts: Vec<String> = std::io::BufReader::new(flate2::read::GzDecoder::new(file))
        .lines()
        .map(|l| l.unwrap().split_once('%').unwrap().1.to_string())
        .collect();
    texts.extend(
        [
            "A*01:01^B*08:01+B*07:02^DRB1*03:01+DRB1*15:01",
            "HLA-A*01:01+HLA-A*02:01^B*08:01+B*07:02^DRB1*03:01+DRB1*15:01",
            "A*01:01/A*01:02+A*02:AB^B8+B*07:XX^DRB1*03:01+DRB1*15:01",
            "A*01:01+B*08:01^B*07:02+B*08:01^DRB1*03:01+DRB1*15:01",
            "A*01:01+A*02:01^A*03:01+A*03:01^B*08:01+B*07:02^DRB1*03:01+DRB1*15:01",
            "A*01:01+A*02:01+A*03:01^B*08:01+B*07:02^DRB1*03:01+DRB1*15:01",
            "A*01:01+A*99:99^B*08:01+B*07:02^DRB1*03:01+DRB1*15:01",
            "A*01:01+A*02:01^B*08:01+B*07:02",
            "A*01:01+^B*08:01+B*07:02^DRB1*03:01+DRB1*15:01",
            "A*01:01+A*02:01^^B*08:01+B*07:02^DRB1*03:01+DRB1*15:01",
            "hla#3.58.0#A*01:01+A*02:01^B*08:01+B*07:02^DRB1*03:01+DRB1*15:01",
            "A*01:01+A*02:01|A*01:02+A*02:02^B*08:01+B*07:02^DRB1*03:01+DRB1*15:01",
            "A*01:01~B*08:01+A*02:01~B*07:02^DRB1*03:01+DRB1*15:01",
        ]
        .map(String::from),
    );
    let mut fast = 0;
    for text in &texts {
        if let Some(got) = canonicaliser.canonical(text) {
            fast += 1;
            assert_eq!(Some(got), full(text), "{text}");
        }
    }
    // MVT3 donors of the common shape with A, B and DRB1 (1,005 have no DRB1).
    assert!(
        fast >= 8_990,
        "the common shape takes the cached path ({fast})"
    );
}

#[tokio::test]
async fn samples_move_forward_and_typings_name_their_own_donors_sample() {
    use registry::samples::NewSample;
    for (backend, reg, _dir) in backends("samples").await {
        setup_station(&reg).await;
        let d = reg
            .enrol(&donor("S1", "SN1"), &clerk(), today())
            .await
            .unwrap();
        let e = reg
            .enrol(&donor("S2", "SN2"), &clerk(), today())
            .await
            .unwrap();
        let new = NewSample {
            campaign_id: None,
            station: "BJ01".into(),
            collected_on: "2026-11-20".into(),
            volume_ml: Some(4.5),
            barcode: "BC-0001".into(),
            lab: Some("BJ-HLA".into()),
            request_id: None,
        };
        let s = reg.record_sample(d.id, &new, &clerk()).await.unwrap();
        assert_eq!(
            (s.state.as_str(), s.volume_ml),
            ("collected", Some(4.5)),
            "{backend}"
        );
        assert!(
            matches!(
                reg.record_sample(e.id, &new, &clerk()).await,
                Err(RegistryError::Conflict(_))
            ),
            "{backend}: barcodes are unique"
        );
        for (field, bad) in [
            (
                "barcode",
                NewSample {
                    barcode: " ".into(),
                    ..new.clone()
                },
            ),
            (
                "collected_on",
                NewSample {
                    barcode: "BC-2".into(),
                    collected_on: "2026-13-01".into(),
                    ..new.clone()
                },
            ),
            (
                "volume_ml",
                NewSample {
                    barcode: "BC-3".into(),
                    volume_ml: Some(-1.0),
                    ..new.clone()
                },
            ),
            (
                "station",
                NewSample {
                    barcode: "BC-4".into(),
                    station: "XX99".into(),
                    ..new.clone()
                },
            ),
        ] {
            match reg.record_sample(d.id, &bad, &clerk()).await {
                Err(RegistryError::Invalid { field: f, .. }) => assert_eq!(f, field, "{backend}"),
                other => panic!("{backend}: {field}: {other:?}"),
            }
        }
        assert!(matches!(
            reg.record_sample(
                987_654,
                &NewSample {
                    barcode: "BC-5".into(),
                    ..new.clone()
                },
                &clerk()
            )
            .await,
            Err(RegistryError::NotFound(_))
        ));
        // Forward only; a typed sample cannot go back to the lab.
        for state in ["shipped", "received", "typed"] {
            assert_eq!(
                reg.set_sample_state(s.id, state, &clerk())
                    .await
                    .unwrap()
                    .state,
                state
            );
        }
        assert!(matches!(
            reg.set_sample_state(s.id, "shipped", &clerk()).await,
            Err(RegistryError::Conflict(_))
        ));
        assert!(reg.set_sample_state(s.id, "lost", &clerk()).await.is_err());
        // A typing names the sample it came from, which must be this donor's.
        let typing = |sample_id| TypingInput {
            gl: TYPING.into(),
            sample_id: Some(sample_id),
            ..Default::default()
        };
        let _ = reg
            .record_typing(d.id, &typing(s.id), &clerk(), today())
            .await
            .unwrap();
        match reg
            .record_typing(e.id, &typing(s.id), &clerk(), today())
            .await
        {
            Err(RegistryError::Invalid { field, .. }) => assert_eq!(field, "sample_id"),
            other => panic!("{backend}: {other:?}"),
        }
        assert_eq!(
            reg.samples(d.id).await.unwrap(),
            [reg.sample(s.id).await.unwrap()]
        );
        assert!(reg.samples(e.id).await.unwrap().is_empty());
        let audited: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE entity = 'sample'")
                .fetch_one(reg.pool())
                .await
                .unwrap();
        assert_eq!(audited, 4, "{backend}: recorded and three state changes");
    }
}

/// The case process's rules, whoever calls: one workup at a time, milestones in order and
/// dated in order, RS only from a reservation, no release by hand while a reservation is
/// open, donations only of products the registry collects, from a donor who may donate,
/// with intervals across products; events not in the future; unknown patients are 404.
#[tokio::test]
async fn case_process_rules_hold_whoever_calls() {
    for (backend, reg, _dir) in backends("caserules").await {
        setup_station(&reg).await;
        let coord = Actor::new("coord-1", "coordinator");
        let cm = Actor::new("cm-1", "case_manager");
        let d = reg
            .enrol(&donor("K1", "KN1"), &clerk(), today())
            .await
            .unwrap();
        let e = reg
            .enrol(&donor("K2", "KN2"), &clerk(), today())
            .await
            .unwrap();
        let patient = |external: &str| registry::NewPatient {
            external_id: external.into(),
            gl: TYPING.into(),
            ..Default::default()
        };
        let p1 = reg.register_patient(&patient("KP1"), &coord).await.unwrap();
        let p2 = reg.register_patient(&patient("KP2"), &coord).await.unwrap();
        let form = |v: &str| ConsentInput {
            form_version: v.into(),
            note: None,
        };
        // An unknown patient is a 404, not a database error.
        assert!(
            matches!(
                reg.open_request(999_999, d.id, "workup", &cm, today())
                    .await,
                Err(RegistryError::NotFound(_))
            ),
            "{backend}"
        );
        // One workup at a time.
        let w = reg
            .open_request(p1, d.id, "workup", &cm, today())
            .await
            .unwrap()
            .value;
        assert!(
            matches!(
                reg.open_request(p2, d.id, "workup", &cm, today()).await,
                Err(RegistryError::Conflict(_))
            ),
            "{backend}: a second workup"
        );
        let _ = reg
            .give_consent(d.id, "workup", &form("W"), &clerk())
            .await
            .unwrap();
        // Milestones in order, dated in order, within two years.
        assert!(
            matches!(
                reg.record_milestone(w, "medical_exam", "2026-12-01", Some(true), &cm)
                    .await,
                Err(RegistryError::Conflict(_))
            ),
            "{backend}: before the information session"
        );
        reg.record_milestone(w, "information_session", "2026-11-30", None, &cm)
            .await
            .unwrap();
        let early = reg
            .record_milestone(w, "medical_exam", "2026-11-29", Some(true), &cm)
            .await;
        assert!(
            matches!(&early, Err(RegistryError::Invalid { field, .. }) if field == "on"),
            "{backend}: {early:?}"
        );
        assert!(
            reg.record_milestone(w, "medical_exam", "2031-01-01", Some(true), &cm)
                .await
                .is_err(),
            "{backend}: too far ahead"
        );
        reg.record_milestone(w, "medical_exam", "2026-12-01", Some(true), &cm)
            .await
            .unwrap();
        assert!(
            matches!(
                reg.record_milestone(w, "gcsf_start", "2026-12-05", None, &cm)
                    .await,
                Err(RegistryError::Conflict(_))
            ),
            "{backend}: G-CSF before the markers and clearance"
        );
        let milestones = reg.request_detail(w).await.unwrap().milestones;
        assert_eq!(milestones.len(), 2, "{backend}: refused ones not recorded");
        // RS only from a reservation; no release by hand while it is open.
        let rs = StatusChange {
            status: Status::Reserved,
            reason: None,
            until: None,
            patient_id: Some(p1),
        };
        assert!(
            matches!(
                reg.change_status(e.id, &rs, &cm).await,
                Err(RegistryError::Conflict(_))
            ),
            "{backend}"
        );
        let _ = reg
            .open_request(p2, e.id, "reservation", &coord, today())
            .await
            .unwrap();
        let av = StatusChange {
            status: Status::Available,
            reason: None,
            until: None,
            patient_id: None,
        };
        assert!(
            matches!(
                reg.change_status(e.id, &av, &cm).await,
                Err(RegistryError::Conflict(_))
            ),
            "{backend}: the reservation is open"
        );
        assert_eq!(reg.donor(e.id).await.unwrap().status, Status::Reserved);
        // Donations: the products collected, by a donor who may donate.
        let _ = reg
            .give_consent(e.id, "workup", &form("W"), &clerk())
            .await
            .unwrap();
        let bm = reg
            .record_donation(e.id, Some(p2), "BM", "2027-01-10", None, &cm)
            .await;
        assert!(
            matches!(&bm, Err(RegistryError::Invalid { field, reason }) if field == "product" && reason.contains("PBSC")),
            "{backend}: {bm:?}"
        );
        assert!(
            matches!(
                reg.record_donation(e.id, Some(p2), "DLI", "2027-01-10", None, &cm)
                    .await,
                Err(RegistryError::Conflict(_))
            ),
            "{backend}: DLI before any stem cells"
        );
        assert!(
            matches!(
                reg.record_donation(e.id, Some(p1), "PBSC", "2027-01-10", None, &cm)
                    .await,
                Err(RegistryError::Conflict(_))
            ),
            "{backend}: reserved for another patient"
        );
        assert!(
            matches!(
                reg.record_donation(e.id, Some(999_999), "PBSC", "2027-01-10", None, &cm)
                    .await,
                Err(RegistryError::NotFound(_))
            ),
            "{backend}"
        );
        let future = reg
            .record_donation(e.id, Some(p2), "PBSC", "2078-01-10", None, &cm)
            .await;
        assert!(
            matches!(&future, Err(RegistryError::Invalid { field, .. }) if field == "donated_on"),
            "{backend}: {future:?}"
        );
        let tu = StatusChange {
            status: Status::TemporarilyUnavailable,
            reason: Some("MR".into()),
            until: Some("2027-06-01".into()),
            patient_id: None,
        };
        let _ = reg.change_status(e.id, &tu, &cm).await.unwrap();
        assert!(
            matches!(
                reg.record_donation(e.id, Some(p2), "PBSC", "2027-01-10", None, &cm)
                    .await,
                Err(RegistryError::Conflict(_))
            ),
            "{backend}: TU for a medical reason"
        );
        // Released by hand only once the reservation is closed.
        let reservation = reg
            .list_requests(
                &registry::RequestFilter {
                    donor_id: Some(e.id),
                    kind: Some("reservation".into()),
                    ..Default::default()
                },
                &Default::default(),
            )
            .await
            .unwrap()
            .items[0]
            .id;
        assert!(
            reg.change_status(e.id, &av, &cm).await.is_err(),
            "{backend}"
        );
        let _ = reg
            .close_request(reservation, "cancelled", &coord)
            .await
            .unwrap();
        let _ = reg.change_status(e.id, &av, &cm).await.unwrap();
        assert_eq!(
            reg.donor(e.id).await.unwrap().status,
            Status::Available,
            "{backend}"
        );
        let _ = reg
            .record_donation(e.id, Some(p2), "PBSC", "2027-01-10", None, &cm)
            .await
            .unwrap();
        assert!(
            matches!(
                reg.record_donation(e.id, Some(p2), "DLI", "2027-01-20", None, &cm)
                    .await,
                Err(RegistryError::Conflict(_))
            ),
            "{backend}: DLI within a month of the stem cells"
        );
        let _ = reg
            .record_donation(e.id, Some(p2), "DLI", "2027-02-15", None, &cm)
            .await
            .unwrap();
        // Follow-ups of a donation stay in range (no wrap past 2079).
        let last_due: String =
            sqlx::query_scalar("SELECT MAX(due_on) FROM followups WHERE donor_id = $1")
                .bind(e.id)
                .fetch_one(reg.pool())
                .await
                .unwrap();
        assert_eq!(last_due, "2037-02-15", "{backend}");
        // Identity reads follow the stages that need contact: not an extended typing alone.
        let f = reg
            .enrol(&donor("K3", "KN3"), &clerk(), today())
            .await
            .unwrap();
        let _ = reg
            .open_request(p1, f.id, "extended_typing", &coord, today())
            .await
            .unwrap();
        assert!(!reg.donor_in_open_case(f.id).await.unwrap(), "{backend}");
        let _ = reg
            .open_request(p1, f.id, "confirmatory_typing", &coord, today())
            .await
            .unwrap();
        assert!(reg.donor_in_open_case(f.id).await.unwrap(), "{backend}");
        // Dates: ISO only, events not after today.
        for bad in ["1995-3-5", "+1995-03-15", " 1995-03-15 ", "2029-01-01"] {
            let mut young = donor("K9", "KN9");
            young.birth_date = Some(bad.into());
            assert!(
                matches!(reg.enrol(&young, &clerk(), today()).await, Err(RegistryError::Invalid { field, .. }) if field == "birth_date"),
                "{backend}: {bad}"
            );
        }
        let sample = registry::samples::NewSample {
            station: "BJ01".into(),
            collected_on: "2029-01-01".into(),
            barcode: "K-1".into(),
            ..Default::default()
        };
        assert!(
            reg.record_sample(d.id, &sample, &clerk()).await.is_err(),
            "{backend}"
        );
        reg.close().await;
    }
}

#[path = "registry/input_rules.rs"]
mod input_rules;

#[path = "registry/retention.rs"]
mod retention;

#[path = "registry/people.rs"]
mod people;

#[path = "registry/feed.rs"]
mod feed;
