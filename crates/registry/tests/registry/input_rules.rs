//! Input the store refuses or normalises, whoever calls: national ids, text limits, choice
//! lists, GL strings of another release, unknown references.

use super::*;

fn invalid_field(r: Result<impl std::fmt::Debug, RegistryError>) -> String {
    match r {
        Err(RegistryError::Invalid { field, .. }) => field,
        other => panic!("expected an invalid field, got {other:?}"),
    }
}

async fn audit_count(reg: &Registry) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM audit_log")
        .fetch_one(reg.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn national_ids_are_one_person_however_typed() {
    for (backend, reg, dir) in backends("nationalid").await {
        setup_station(&reg).await;
        // GB 11643's own example, typed with spaces and a lower-case check character.
        let d = reg
            .enrol(&donor("N1", " 110105 19491231 002x "), &clerk(), today())
            .await
            .unwrap();
        let identity = reg.read_identity(d.id, &clerk(), "check").await.unwrap();
        assert_eq!(
            identity.national_id.as_deref(),
            Some("11010519491231002X"),
            "{backend}"
        );
        // Full-width digits from a Chinese input method are the same person.
        let before = audit_count(&reg).await;
        let e = reg
            .enrol(
                &donor("N2", "１１０１０５１９４９１２３１００２Ｘ"),
                &clerk(),
                today(),
            )
            .await;
        assert!(
            matches!(e, Err(RegistryError::Conflict(_))),
            "{backend}: {e:?}"
        );
        // A resident id whose check character is wrong is refused, naming the field.
        assert_eq!(
            invalid_field(
                reg.enrol(&donor("N3", "110105194912310021"), &clerk(), today())
                    .await
            ),
            "identity.national_id",
            "{backend}"
        );
        assert_eq!(
            audit_count(&reg).await,
            before,
            "{backend}: refusals wrote nothing"
        );
        assert!(reg.donor_by_external_id("N3").await.unwrap().is_none());
        // Organ registrations: one active registration per person, however typed.
        let admin = Actor::new("admin", "admin");
        let register = |nid: &'static str| {
            let reg = &reg;
            let admin = &admin;
            async move {
                reg.register_organ_donation(
                    &registry::NewOrganRegistration {
                        station: Some("BJ01".into()),
                        ..organ_registration(
                            "Zhao",
                            "Lei",
                            nid,
                            "1970-02-02",
                            &["kidney"],
                            &[],
                            false,
                        )
                    },
                    admin,
                )
                .await
            }
        };
        register("11010519491231002X").await.unwrap();
        assert!(
            matches!(
                register("１１０１０５ 19491231002x").await,
                Err(RegistryError::Conflict(_))
            ),
            "{backend}"
        );
        assert_eq!(
            invalid_field(register("110105194912310021").await),
            "national_id"
        );
        // The import applies the same rule to each line.
        let tmp = dir.as_ref().map_or_else(
            || std::env::temp_dir().join(format!("boai-nid-{}", std::process::id())),
            |d| d.path().to_path_buf(),
        );
        std::fs::create_dir_all(&tmp).unwrap();
        let csv = tmp.join("nid.csv");
        std::fs::write(
            &csv,
            format!(
                "external_id,station,birth_date,sex,family_name,given_name,national_id,consent_form_version,gl\n\
                 I1,BJ01,1990-01-01,F,Wang,Fang,110105 19491231002x,CMDP-2024,{TYPING}\n\
                 I2,BJ01,1990-01-01,F,Wang,Fang,110105194912310021,CMDP-2024,{TYPING}\n\
                 I3,BJ01,1990-01-01,F,Wang,Fang,110101199001010015,CMDP-2024,{TYPING}\n\
                 I4,BJ01,1990-01-01,F,{long},Fang,ID4,CMDP-2024,{TYPING}\n",
                long = "W".repeat(101)
            ),
        )
        .unwrap();
        let s = reg
            .import_donors(
                &csv,
                &registry::import::ImportOptions::default(),
                &clerk(),
                today(),
                &|_| {},
            )
            .await
            .unwrap();
        let fields: Vec<(usize, String)> =
            s.errors.iter().map(|e| (e.line, e.field.clone())).collect();
        assert_eq!(
            fields,
            [
                (2, "national_id".into()),
                (3, "national_id".into()),
                (5, "family_name".into())
            ],
            "{backend}: {:?}",
            s.errors
        );
        assert_eq!(s.created, 1, "{backend}");
        reg.close().await;
    }
}

#[tokio::test]
async fn text_lists_and_references_are_bounded_and_checked() {
    for (backend, reg, _dir) in backends("bounded").await {
        setup_station(&reg).await;
        let d = reg
            .enrol(&donor("B1", "BN1"), &clerk(), today())
            .await
            .unwrap();
        let admin = Actor::new("admin", "admin");
        let patient = registry::NewPatient {
            external_id: "BP1".into(),
            gl: TYPING.into(),
            ..Default::default()
        };
        let p = reg
            .register_patient(&patient, &Actor::new("coord", "coordinator"))
            .await
            .unwrap();
        let before = audit_count(&reg).await;
        let long = "x".repeat(2001);
        let consent = ConsentInput {
            form_version: "CMDP-2024".into(),
            note: Some(long.clone()),
        };
        assert_eq!(
            invalid_field(
                reg.give_consent(d.id, "follow_up_contact", &consent, &clerk())
                    .await
            ),
            "note"
        );
        assert_eq!(
            invalid_field(
                reg.withdraw_consent(d.id, "recruitment", &clerk(), Some(&long))
                    .await
            ),
            "reason"
        );
        let sample = registry::samples::NewSample {
            station: "BJ01".into(),
            collected_on: "2027-01-01".into(),
            barcode: "B-1".into(),
            lab: Some("L".repeat(101)),
            ..Default::default()
        };
        assert_eq!(
            invalid_field(reg.record_sample(d.id, &sample, &clerk()).await),
            "lab"
        );
        assert_eq!(
            invalid_field(
                reg.add_holiday("2027-10-01", &"n".repeat(101), &admin)
                    .await
            ),
            "name"
        );
        // A NUL (which PostgreSQL cannot store) or another control character in any text.
        assert_eq!(
            invalid_field(
                reg.add_holiday("2027-10-01", "National\u{0}Day", &admin)
                    .await
            ),
            "name"
        );
        // A station and its new branch are created together or not at all.
        // (The station code is taken: refused after the branch was written in the same
        // transaction.)
        assert!(
            matches!(
                reg.add_station_and_branch("BJ01", "SH", "Shanghai 1", "East", 10, &admin)
                    .await,
                Err(RegistryError::Conflict(_))
            ),
            "{backend}"
        );
        let branches: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM branches WHERE code = 'SH'")
            .fetch_one(reg.pool())
            .await
            .unwrap();
        assert_eq!(branches, 0, "{backend}");
        let typing = TypingInput {
            gl: TYPING.into(),
            method: Some("m".repeat(65)),
            ..Default::default()
        };
        assert_eq!(
            invalid_field(reg.record_typing(d.id, &typing, &clerk(), today()).await),
            "typing.method"
        );
        // A choice is listed once: a list never outgrows its choices.
        let organs = vec!["kidney"; 10_000];
        assert_eq!(
            invalid_field(
                reg.register_organ_donation(
                    &organ_registration("Zhao", "Lei", "ON1", "1970-02-02", &organs, &[], false),
                    &admin
                )
                .await
            ),
            "organs"
        );
        // A client's request id is kept only within bounds, even by a caller other than
        // the API (which replaces a longer one with its own).
        let mut noisy = clerk();
        noisy.request_id = Some("r".repeat(201));
        let update = registry::DonorUpdate {
            phone: Some("+86 10 1111 1111".into()),
            ..Default::default()
        };
        assert_eq!(
            invalid_field(reg.update_donor(d.id, &update, &noisy).await),
            "request_id"
        );
        // Also on the paths that write the log without `audit`: a search, an import.
        let coord = Actor {
            request_id: noisy.request_id.clone(),
            ..Actor::new("coord", "coordinator")
        };
        assert_eq!(
            invalid_field(reg.open_search_with_run(p, "{}", "{}", &coord).await),
            "request_id"
        );
        let file = std::env::temp_dir().join(format!("boai-noisy-{}.txt", std::process::id()));
        std::fs::write(&file, format!("NZ1%{TYPING}\n")).unwrap();
        let options = registry::import::ImportOptions {
            station: Some("BJ01".into()),
            ..Default::default()
        };
        assert_eq!(
            invalid_field(
                reg.import_donors(&file, &options, &noisy, today(), &|_| {})
                    .await
            ),
            "request_id"
        );
        let _ = std::fs::remove_file(&file);
        // A donation names a station the registry has.
        let cm = Actor::new("cm", "case_manager");
        assert_eq!(
            invalid_field(
                reg.record_donation(d.id, None, "PBSC", "2027-01-01", Some("NOPE"), &cm)
                    .await
            ),
            "station",
            "{backend}"
        );
        assert_eq!(
            audit_count(&reg).await,
            before,
            "{backend}: refusals wrote nothing"
        );
        let identity = reg.read_identity(d.id, &clerk(), "check").await.unwrap();
        assert_eq!(
            identity.phone.as_deref(),
            Some("+86 10 0000 0000"),
            "{backend}"
        );
        reg.close().await;
    }
}

#[tokio::test]
async fn a_gl_string_of_another_release_is_refused_on_every_path() {
    for (backend, reg, dir) in backends("glrelease").await {
        setup_station(&reg).await;
        let mut old = donor("G1", "GN1");
        old.typing.as_mut().unwrap().gl = format!("hla#3.1.0#{TYPING}");
        let e = reg.enrol(&old, &clerk(), today()).await.unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("3.1.0") && text.contains("3.58.0"),
            "{backend}: {text}"
        );
        // The loaded release, with or without its patch field, is read.
        for version in ["3.58.0", "3.58"] {
            let mut same = donor(&format!("G-{version}"), &format!("GN-{version}"));
            same.typing.as_mut().unwrap().gl = format!("hla#{version}#{TYPING}");
            reg.enrol(&same, &clerk(), today()).await.unwrap();
        }
        // A search subject and an imported line obey the same rule.
        let index = DonorIndex::new(expander());
        assert!(
            index
                .subject_from_gl(&format!("hla#3.1.0#{TYPING}"))
                .is_err()
        );
        assert!(
            SubjectBuilder::new(expander())
                .from_gl(&format!("HLA#3.57.0#{TYPING}"))
                .is_err()
        );
        let tmp = dir.as_ref().map_or_else(
            || std::env::temp_dir().join(format!("boai-glr-{}", std::process::id())),
            |d| d.path().to_path_buf(),
        );
        std::fs::create_dir_all(&tmp).unwrap();
        let file = tmp.join("versions.txt");
        std::fs::write(
            &file,
            format!("V1%hla#3.1.0#{TYPING}\nV2%hla#3.58.0#{TYPING}\n"),
        )
        .unwrap();
        let options = registry::import::ImportOptions {
            station: Some("BJ01".into()),
            ..Default::default()
        };
        let s = reg
            .import_donors(&file, &options, &clerk(), today(), &|_| {})
            .await
            .unwrap();
        assert_eq!((s.created, s.rejected), (1, 1), "{backend}: {:?}", s.errors);
        assert!(s.errors[0].reason.contains("3.1.0"), "{backend}");
        reg.close().await;
    }
}

#[tokio::test]
async fn sqlite_acknowledges_a_commit_only_once_it_is_on_disk_unless_told_otherwise() {
    for (sync, expected) in [
        (None, 2_i64),
        (Some(registry::SqliteSync::Full), 2),
        (Some(registry::SqliteSync::Normal), 1),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("boai.db").display());
        let mut cfg = config();
        if let Some(s) = sync {
            cfg.sqlite_sync = s;
        }
        let reg = Registry::connect(&url, expander(), cfg).await.unwrap();
        reg.migrate().await.unwrap();
        // Every pooled connection has the setting, not only the first.
        let mut conns = Vec::new();
        for _ in 0..3 {
            let mut c = reg.pool().acquire().await.unwrap();
            let level: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(&mut *c)
                .await
                .unwrap();
            assert_eq!(level, expected, "{sync:?}");
            conns.push(c);
        }
        drop(conns);
        reg.close().await;
    }
}
