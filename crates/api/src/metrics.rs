//! `/metrics` in Prometheus's text format: requests and their latencies by route (the route's
//! template, never a path with ids), searches, the change feed's follower, the database
//! pool, the index. Counted in memory per server; a scraper sums the servers.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;

/// Latency bucket bounds, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Debug, Default, Clone)]
struct RouteFigures {
    /// By status class (`2xx`, `4xx`, `5xx`…).
    by_class: BTreeMap<&'static str, u64>,
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum_seconds: f64,
}

/// The server's request counts.
#[derive(Debug, Default)]
pub struct Metrics {
    routes: Mutex<BTreeMap<(String, String), RouteFigures>>,
}

impl Metrics {
    fn record(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let class = match status {
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        let f = routes
            .entry((method.to_string(), route.to_string()))
            .or_default();
        *f.by_class.entry(class).or_default() += 1;
        f.count += 1;
        f.sum_seconds += seconds;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                f.buckets[i] += 1;
            }
        }
    }
}

/// The layer that counts every request by its route template.
pub async fn count(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let response = next.run(req).await;
    state.metrics.record(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// Prometheus text format (version 0.0.4).
pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut out = String::new();
    let routes = state
        .metrics
        .routes
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    out.push_str("# HELP boai_http_requests_total Requests answered, by route and status class.\n# TYPE boai_http_requests_total counter\n");
    for ((method, route), f) in &routes {
        for (class, n) in &f.by_class {
            let _ = writeln!(
                out,
                "boai_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{class}\"}} {n}"
            );
        }
    }
    out.push_str("# HELP boai_http_request_duration_seconds Time to answer, by route.\n# TYPE boai_http_request_duration_seconds histogram\n");
    for ((method, route), f) in &routes {
        for (i, bound) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "boai_http_request_duration_seconds_bucket{{method=\"{method}\",route=\"{route}\",le=\"{bound}\"}} {}",
                f.buckets[i]
            );
        }
        let _ = writeln!(
            out,
            "boai_http_request_duration_seconds_bucket{{method=\"{method}\",route=\"{route}\",le=\"+Inf\"}} {}\n\
             boai_http_request_duration_seconds_sum{{method=\"{method}\",route=\"{route}\"}} {}\n\
             boai_http_request_duration_seconds_count{{method=\"{method}\",route=\"{route}\"}} {}",
            f.count, f.sum_seconds, f.count
        );
    }
    let searches: u64 = routes
        .iter()
        .filter(|((m, r), _)| m == "POST" && (r == "/v1/searches" || r == "/v1/searches/{id}/runs"))
        .map(|(_, f)| f.by_class.get("2xx").copied().unwrap_or(0))
        .sum();
    let feed = state.feed.status();
    let (pool_size, pool_idle) = state.registry.pool_use();
    let indexed = state.index.read().map(|i| i.len()).unwrap_or(0);
    let _ = write!(
        out,
        "# HELP boai_searches_total Searches run (new and re-run).\n# TYPE boai_searches_total counter\nboai_searches_total {searches}\n\
         # HELP boai_index_donors Donors in this server's matching index.\n# TYPE boai_index_donors gauge\nboai_index_donors {indexed}\n\
         # HELP boai_feed_cycles_total Change-feed cycles completed.\n# TYPE boai_feed_cycles_total counter\nboai_feed_cycles_total {}\n\
         # HELP boai_feed_changes_applied_total Changes read from the feed and applied to the index.\n# TYPE boai_feed_changes_applied_total counter\nboai_feed_changes_applied_total {}\n\
         # HELP boai_feed_lag_changes Changes the last feed cycle applied.\n# TYPE boai_feed_lag_changes gauge\nboai_feed_lag_changes {}\n\
         # HELP boai_feed_lag_seconds Time since the last feed cycle completed.\n# TYPE boai_feed_lag_seconds gauge\nboai_feed_lag_seconds {}\n\
         # HELP boai_feed_failing Whether feed cycles are failing (the database unreachable).\n# TYPE boai_feed_failing gauge\nboai_feed_failing {}\n\
         # HELP boai_feed_donors_left_out_total Changed donors whose stored typing the index could not read (taken out of searches).\n# TYPE boai_feed_donors_left_out_total counter\nboai_feed_donors_left_out_total {}\n\
         # HELP boai_db_pool_connections Database pool connections open.\n# TYPE boai_db_pool_connections gauge\nboai_db_pool_connections {pool_size}\n\
         # HELP boai_db_pool_idle Database pool connections idle.\n# TYPE boai_db_pool_idle gauge\nboai_db_pool_idle {pool_idle}\n",
        feed.cycles,
        feed.changes_applied,
        feed.last_cycle_changes,
        feed.last_cycle_ms_ago
            .map_or(f64::NAN, |ms| ms as f64 / 1000.0),
        u8::from(feed.error.is_some()),
        feed.donors_left_out,
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
