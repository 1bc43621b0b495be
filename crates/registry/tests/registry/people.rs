//! People's accounts held by the store: validation, argon2id hashes, lock-out after
//! repeated failures (the right password included, until it passes), sessions that end
//! with sign-out, expiry or a disabled account, and the audit of each step.

use super::*;

#[tokio::test]
async fn accounts_sessions_and_lock_out_are_the_stores_rules() {
    for (backend, reg, _dir) in backends("people").await {
        let b = backend.as_str();
        setup_station(&reg).await;
        let admin = Actor::new("admin", "admin");
        // Validation names the field; nothing is stored.
        for (name, role, station, password, field) in [
            ("", "coordinator", None, "long enough pw", "name"),
            ("has space", "coordinator", None, "long enough pw", "name"),
            ("x", "boss", None, "long enough pw", "role"),
            ("x", "station", None, "long enough pw", "station"),
            ("x", "station", Some("ZZ99"), "long enough pw", "station"),
            (
                "x",
                "coordinator",
                Some("BJ01"),
                "long enough pw",
                "station",
            ),
            ("x", "coordinator", None, "short", "password"),
        ] {
            match reg
                .create_person(name, role, station, password, &admin)
                .await
            {
                Err(registry::RegistryError::Invalid { field: f, .. }) => {
                    assert_eq!(f, field, "{b}: {name:?} {role}")
                }
                other => panic!("{b}: {name:?} {role}: {other:?}"),
            }
        }
        assert!(reg.people().await.unwrap().is_empty(), "{b}");
        let clerk = reg
            .create_person(
                "wang.li",
                "station",
                Some("BJ01"),
                "correct horse 1",
                &admin,
            )
            .await
            .unwrap();
        assert_eq!(clerk.station.as_deref(), Some("BJ01"));
        assert!(matches!(
            reg.create_person("wang.li", "auditor", None, "another pw 12", &admin)
                .await,
            Err(registry::RegistryError::Conflict(_))
        ));
        // The right password opens a session; the cookie's secret finds it.
        let (secret, session) = reg
            .sign_in("wang.li", "correct horse 1", Some("rid-1"))
            .await
            .unwrap()
            .unwrap();
        let found = reg
            .web_session(&secret)
            .await
            .unwrap()
            .expect("live session");
        assert_eq!(found.person.id, clerk.id);
        assert_eq!(found.csrf_token, session.csrf_token);
        assert!(reg.web_session("boai_s_forged").await.unwrap().is_none());
        // An unknown name and a wrong password get the same answer.
        let wrong = registry::people::SignInRefused::WrongNameOrPassword;
        assert_eq!(
            reg.sign_in("nobody", "correct horse 1", None)
                .await
                .unwrap()
                .unwrap_err(),
            wrong
        );
        // Names no account could have, and an over-long password: the same answer, no error.
        for (name, password) in [
            ("wang\0li".to_string(), "correct horse 1".to_string()),
            ("x".repeat(65), "correct horse 1".to_string()),
            ("wang.li".to_string(), "p".repeat(10_000)),
        ] {
            let refusal = reg
                .sign_in(&name, &password, None)
                .await
                .unwrap()
                .unwrap_err();
            assert_eq!(refusal, wrong, "{b}");
        }
        // Four failures, then the right one: it passes and the count starts again.
        for _ in 0..4 {
            assert_eq!(
                reg.sign_in("wang.li", "wrong", None)
                    .await
                    .unwrap()
                    .unwrap_err(),
                wrong
            );
        }
        assert!(
            reg.sign_in("wang.li", "correct horse 1", None)
                .await
                .unwrap()
                .is_ok(),
            "{b}"
        );
        // Five in a row lock the account: the right password is refused too, until later.
        for i in 0..5 {
            let refusal = reg
                .sign_in("wang.li", "wrong", None)
                .await
                .unwrap()
                .unwrap_err();
            assert_eq!(refusal == wrong, i < 4, "{b}: failure {i}: {refusal:?}");
        }
        assert!(matches!(
            reg.sign_in("wang.li", "correct horse 1", None)
                .await
                .unwrap(),
            Err(registry::people::SignInRefused::Locked { .. })
        ));
        let at = reg.config.clock.now();
        reg.config
            .clock
            .set(at + registry::people::LOCK_FOR + jiff::SignedDuration::from_secs(1));
        let (second, _) = reg
            .sign_in("wang.li", "correct horse 1", None)
            .await
            .unwrap()
            .expect("unlocked after the lock's time");
        // Sign-out ends that session only; expiry ends the rest.
        let live = reg.web_session(&second).await.unwrap().unwrap();
        reg.sign_out(&live, None).await.unwrap();
        assert!(reg.web_session(&second).await.unwrap().is_none(), "{b}");
        assert!(reg.web_session(&secret).await.unwrap().is_some(), "{b}");
        let now = reg.config.clock.now();
        reg.config.clock.set(now + registry::people::SESSION_LENGTH);
        assert!(
            reg.web_session(&secret).await.unwrap().is_none(),
            "{b}: expired"
        );
        // Disabling ends sessions and refuses sign-in; enabling restores it.
        let (third, _) = reg
            .sign_in("wang.li", "correct horse 1", None)
            .await
            .unwrap()
            .unwrap();
        reg.set_person_disabled(clerk.id, true, &admin)
            .await
            .unwrap();
        assert!(reg.web_session(&third).await.unwrap().is_none(), "{b}");
        assert_eq!(
            reg.sign_in("wang.li", "correct horse 1", None)
                .await
                .unwrap()
                .unwrap_err(),
            wrong
        );
        reg.set_person_disabled(clerk.id, false, &admin)
            .await
            .unwrap();
        assert!(
            reg.sign_in("wang.li", "correct horse 1", None)
                .await
                .unwrap()
                .is_ok(),
            "{b}"
        );
        // A reset password ends the sessions, clears a lock, and only the new one opens.
        let (fourth, _) = reg
            .sign_in("wang.li", "correct horse 1", None)
            .await
            .unwrap()
            .unwrap();
        for _ in 0..5 {
            let _ = reg.sign_in("wang.li", "wrong", None).await.unwrap();
        }
        assert!(matches!(
            reg.sign_in("wang.li", "correct horse 1", None)
                .await
                .unwrap(),
            Err(registry::people::SignInRefused::Locked { .. })
        ));
        assert!(matches!(
            reg.set_person_password(clerk.id, "short", &admin).await,
            Err(registry::RegistryError::Invalid { .. })
        ));
        reg.set_person_password(clerk.id, "battery staple 2", &admin)
            .await
            .unwrap();
        assert!(reg.web_session(&fourth).await.unwrap().is_none(), "{b}");
        assert_eq!(
            reg.sign_in("wang.li", "correct horse 1", None)
                .await
                .unwrap()
                .unwrap_err(),
            wrong
        );
        assert!(
            reg.sign_in("wang.li", "battery staple 2", None)
                .await
                .unwrap()
                .is_ok(),
            "{b}"
        );
        // Every step is in the audit log, under the account's id, never its password.
        let entries = reg
            .audit_entries(Some("person"), None, None, 100)
            .await
            .unwrap();
        let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
        for action in [
            "person.create",
            "person.sign_in_failed",
            "person.lock",
            "person.sign_in_locked",
            "person.disable",
            "person.enable",
        ] {
            assert!(
                actions.contains(&action),
                "{b}: {action} missing from {actions:?}"
            );
        }
        let sessions = reg
            .audit_entries(Some("web_session"), None, None, 100)
            .await
            .unwrap();
        assert!(
            sessions.iter().any(|e| e.action == "person.sign_in"
                && e.actor == format!("person:{}", clerk.id)
                && e.request_id.as_deref() == Some("rid-1")),
            "{b}"
        );
        assert!(
            sessions.iter().any(|e| e.action == "person.sign_out"),
            "{b}"
        );
    }
}
