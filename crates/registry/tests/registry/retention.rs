//! Retention held by the store: contact attempts, the TU/UC rule and its clearing (also for
//! an attempt recorded late), the reconfirmation list, and who may record what.

use super::*;

fn contact(on: &str, outcome: &str) -> registry::NewContact {
    registry::NewContact {
        attempted_on: on.into(),
        channel: "phone".into(),
        outcome: outcome.into(),
        note: None,
    }
}

#[tokio::test]
async fn failed_contacts_make_a_donor_unreachable_and_a_contact_clears_it() {
    for (backend, reg, _dir) in backends("retention").await {
        setup_station(&reg).await;
        let d = reg
            .enrol(&donor("RT1", "RT-N1"), &clerk(), today())
            .await
            .unwrap()
            .id;
        let quiet = reg
            .enrol(&donor("RT2", "RT-N2"), &clerk(), today())
            .await
            .unwrap()
            .id;
        reg.config
            .clock
            .set("2030-06-01T02:00:00Z".parse().unwrap());
        let status = async |d: i64| {
            let donor = reg.donor(d).await.unwrap();
            format!(
                "{}{}",
                donor.status.code(),
                donor
                    .status_reason
                    .map(|r| format!("/{r}"))
                    .unwrap_or_default()
            )
        };
        let record = async |on: &str, outcome: &str| {
            reg.record_contact(d, &contact(on, outcome), &clerk())
                .await
                .unwrap()
                .value
        };
        // Two failures, then a contact: the streak starts again.
        record("2030-05-01", "no_answer").await;
        assert_eq!(
            record("2030-05-02", "wrong_number").await.failed_contacts,
            2,
            "{backend}"
        );
        let made = record("2030-05-03", "reached").await;
        assert_eq!(
            (made.failed_contacts, made.last_contact_on.as_str()),
            (0, "2030-05-03"),
            "{backend}"
        );
        assert_eq!(status(d).await, "AV");
        // Three failures in a row: TU/UC, with its history.
        record("2030-05-10", "no_answer").await;
        record("2030-05-11", "no_answer").await;
        let third = record("2030-05-12", "no_answer").await;
        assert_eq!(third.status_changed.as_deref(), Some("TU/UC"), "{backend}");
        assert_eq!(status(d).await, "TU/UC", "{backend}");
        // A contact recorded late (dated between the failures) leaves one failure since: AV.
        let late = record("2030-05-11", "reached").await;
        assert_eq!(
            (late.failed_contacts, late.status_changed.as_deref()),
            (1, Some("AV")),
            "{backend}"
        );
        assert_eq!(late.last_contact_on, "2030-05-11");
        // Unreachable again, then reached but declining: TU/PR, not AV.
        for day in ["2030-05-20", "2030-05-21", "2030-05-22"] {
            record(day, "no_answer").await;
        }
        assert_eq!(status(d).await, "TU/UC", "{backend}");
        assert_eq!(
            record("2030-05-23", "declined")
                .await
                .status_changed
                .as_deref(),
            Some("TU/PR")
        );
        // Another reason for TU is never overwritten by failures.
        for day in ["2030-05-24", "2030-05-25", "2030-05-26"] {
            assert_eq!(
                record(day, "no_answer").await.status_changed,
                None,
                "{backend}"
            );
        }
        assert_eq!(status(d).await, "TU/PR", "{backend}");
        let history = reg.contact_history(d, &clerk()).await.unwrap();
        assert_eq!(
            (history.attempts.len(), history.failed_contacts),
            (14, 3),
            "{backend}"
        );
        assert_eq!(
            history.attempts[0].attempted_on, "2030-05-26",
            "newest first"
        );

        // Refused, naming the field, and nothing written.
        let before = history.attempts.len();
        for (c, field) in [
            (contact("2030-06-02", "reached"), "attempted_on"),
            (contact("2020-01-01", "reached"), "attempted_on"),
            (contact("2030-05-01", "maybe"), "outcome"),
            (
                registry::NewContact {
                    channel: "fax".into(),
                    ..contact("2030-05-01", "reached")
                },
                "channel",
            ),
        ] {
            match reg.record_contact(d, &c, &clerk()).await {
                Err(RegistryError::Invalid { field: f, .. }) => assert_eq!(f, field, "{backend}"),
                other => panic!("{backend}: {other:?}"),
            }
        }
        let elsewhere = Actor::new("bj02", "station").at_station("BJ02");
        for who in [
            elsewhere.clone(),
            Actor::new("c", "coordinator"),
            Actor::new("a", "admin"),
        ] {
            assert!(
                matches!(
                    reg.record_contact(d, &contact("2030-05-27", "reached"), &who)
                        .await,
                    Err(RegistryError::Forbidden(_))
                ),
                "{backend} {}",
                who.role
            );
        }
        assert_eq!(
            reg.contact_history(d, &clerk())
                .await
                .unwrap()
                .attempts
                .len(),
            before
        );

        // The reconfirmation list: listed donors not reached for N years.
        let page = |years: Option<u32>, actor: Actor| {
            let reg = &reg;
            async move {
                reg.reconfirmation_list(&actor, None, years, &registry::PageRequest::default())
                    .await
            }
        };
        let due: Vec<i64> = page(None, clerk())
            .await
            .unwrap()
            .items
            .iter()
            .map(|i| i.donor_id)
            .collect();
        assert_eq!(
            due,
            [quiet],
            "{backend}: enrolled on 2028-01-01, never reached since"
        );
        assert!(
            page(Some(3), clerk()).await.unwrap().items.is_empty(),
            "{backend}"
        );
        assert!(
            page(None, elsewhere).await.unwrap().items.is_empty(),
            "{backend}: another station's list"
        );
        assert!(matches!(
            page(Some(0), clerk()).await,
            Err(RegistryError::Invalid { .. })
        ));
        assert!(matches!(
            page(None, Actor::new("c", "coordinator")).await,
            Err(RegistryError::Forbidden(_))
        ));
        let audited: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'contact.record'")
                .fetch_one(reg.pool())
                .await
                .unwrap();
        assert_eq!(audited, 14, "{backend}: every attempt audited");
    }
}
