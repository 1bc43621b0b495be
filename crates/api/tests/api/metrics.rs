//! `/metrics`: Prometheus text counting requests by route template (never by a path with
//! ids), their latencies, searches, the index, the change feed and the database pool.

use sqlx::Connection;

use super::{TYPING, call, call_text, enrol, patient, registries, start, tokens};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_by_route_and_show_the_feed() {
    for (backend, reg, _dir) in registries("metrics").await {
        let b = backend.as_str();
        let t = tokens(&reg).await;
        let (addr, _stop, _reg) = start(reg).await;
        let donor = enrol(addr, &t.station, "M-1", "MN1", "BJ01").await;
        let patient = patient(addr, &t, "P-M").await;
        let body = format!(r#"{{"patient_id": {patient}, "max_mismatches": 0}}"#);
        for _ in 0..3 {
            let (s, _, _) = call(
                addr,
                "POST",
                "/v1/searches",
                Some(&t.coordinator),
                Some(&body),
            )
            .await;
            assert_eq!(s, 201, "{b}");
        }
        let (s, _, _) = call(
            addr,
            "GET",
            &format!("/v1/donors/{donor}"),
            Some(&t.coordinator),
            None,
        )
        .await;
        assert_eq!(s, 200, "{b}");
        let (s, _, _) = call(addr, "GET", "/v1/donors/999999", Some(&t.coordinator), None).await;
        assert_eq!(s, 404, "{b}");
        let (s, text, content_type) = call_text(addr, "GET", "/metrics", None, None).await;
        assert_eq!(s, 200, "{b}");
        assert!(
            content_type.starts_with("text/plain"),
            "{b}: {content_type}"
        );
        for line in [
            "boai_http_requests_total{method=\"POST\",route=\"/v1/searches\",status=\"2xx\"} 3",
            "boai_http_requests_total{method=\"GET\",route=\"/v1/donors/{id}\",status=\"2xx\"} 1",
            "boai_http_requests_total{method=\"GET\",route=\"/v1/donors/{id}\",status=\"4xx\"} 1",
            "boai_http_request_duration_seconds_count{method=\"POST\",route=\"/v1/searches\"} 3",
            "boai_searches_total 3",
            "boai_index_donors 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{b}: `{line}` not in\n{text}"
            );
        }
        for name in [
            "boai_feed_cycles_total ",
            "boai_feed_lag_seconds ",
            "boai_db_pool_connections ",
        ] {
            assert!(
                text.lines().any(|l| l.starts_with(name)),
                "{b}: {name} missing"
            );
        }
        assert!(
            !text.contains(&format!("/v1/donors/{donor}\"")),
            "{b}: a path with an id"
        );
    }
}

/// One statement on the registry's database, behind the registry's back (damage no write
/// path lets in).
async fn execute(url: &str, sql: &str) {
    match url.strip_prefix("sqlite://") {
        Some(path) => {
            rusqlite::Connection::open(path)
                .unwrap()
                .execute_batch(sql)
                .unwrap();
        }
        None => {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }
}

/// A changed donor whose stored typing the index cannot read (an allele the release lacks,
/// a GL string that does not split: damage, since every write checks typings first) leaves
/// the searches, counted on `/readyz` and `/metrics`; the feed goes on, and searches answer
/// rather than wait behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_donor_the_index_cannot_read_leaves_the_searches_without_stalling_the_feed() {
    for (backend, reg, _dir) in registries("unreadable").await {
        let b = backend.as_str();
        let url = reg.url.clone();
        let t = tokens(&reg).await;
        let (addr, _stop, _reg) = start(reg).await;
        let patient = patient(addr, &t, "P-U").await;
        let mut donors = Vec::new();
        for n in 0..3 {
            donors.push(
                enrol(
                    addr,
                    &t.station,
                    &format!("U-{n}"),
                    &format!("UN{n}"),
                    "BJ01",
                )
                .await,
            );
        }
        // Ids need not rise with time on PostgreSQL (each connection takes its own block of
        // the identity sequence): the searches' ids are compared sorted.
        donors.sort();
        let body = format!(r#"{{"patient_id": {patient}, "max_mismatches": 0}}"#);
        let found = || async {
            let (s, result, _) = call(
                addr,
                "POST",
                "/v1/searches",
                Some(&t.coordinator),
                Some(&body),
            )
            .await;
            assert_eq!(s, 201, "{b}: {result}");
            let mut ids: Vec<i64> = result["hits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["donor_id"].as_i64().unwrap())
                .collect();
            ids.sort();
            ids
        };
        assert_eq!(found().await, donors, "{b}");
        let unknown_allele = TYPING.replace("A*02:01", "A*02:9999");
        execute(
            &url,
            &format!(
                "UPDATE typings SET gl = '{unknown_allele}' WHERE donor_id = {} AND is_current; \
                 UPDATE typings SET gl = 'not a typing' WHERE donor_id = {} AND is_current; \
                 INSERT INTO index_changes (donor_id, at) VALUES ({}, 'x'), ({}, 'x')",
                donors[0], donors[1], donors[0], donors[1]
            ),
        )
        .await;
        assert_eq!(found().await, donors[2..], "{b}");
        // And the feed still applies what follows.
        let later = enrol(addr, &t.station, "U-later", "UNL", "BJ01").await;
        let mut expected = vec![donors[2], later];
        expected.sort();
        assert_eq!(found().await, expected, "{b}");
        let (s, ready, _) = call(addr, "GET", "/readyz", None, None).await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(ready["feed"]["donors_left_out"], 2, "{b}: {ready}");
        assert!(ready["feed"]["error"].is_null(), "{b}: {ready}");
        let (_, text, _) = call_text(addr, "GET", "/metrics", None, None).await;
        assert!(
            text.lines()
                .any(|l| l == "boai_feed_donors_left_out_total 2"),
            "{b}: {text}"
        );
    }
}
