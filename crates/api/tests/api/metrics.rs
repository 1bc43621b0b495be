//! `/metrics`: Prometheus text counting requests by route template (never by a path with
//! ids), their latencies, searches, the index, the change feed and the database pool.

use super::{call, call_text, enrol, patient, registries, start, tokens};

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
