//! Prometheus metrics in the text exposition format (version 0.0.4), hand-rolled: two metric
//! families and a process gauge do not need a metrics framework.
//!
//! * `airisk_http_requests_total{method,route,status}`: counter;
//! * `airisk_http_request_duration_seconds{method,route}`: histogram;
//! * `airisk_http_requests_in_flight`: gauge;
//! * `process_resident_memory_bytes`: gauge (Linux, from `/proc/self/statm`).
//!
//! No client-controlled value becomes a label: routes are the matched route templates
//! (`/v1/models/{name}/versions/{version}`) or the one label [`crate::UNMATCHED_ROUTE`], never raw
//! paths, and methods outside the standard set (RFC 9110 plus `PATCH`) are the one label
//! [`OTHER_METHOD`]. So the number of series is bounded by routes × methods × statuses whatever
//! clients send.
//!
//! * `airisk_http_requests_admitted`, `airisk_http_requests_waiting`: gauges of the admission
//!   control (requests holding a slot, and authenticated requests waiting for one).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// The label of every method outside the standard set.
pub const OTHER_METHOD: &str = "OTHER";

/// The metrics label of an HTTP method: the method itself if it is one of the standard methods
/// (`GET`, `HEAD`, `POST`, `PUT`, `DELETE`, `CONNECT`, `OPTIONS`, `TRACE`, `PATCH`), else
/// [`OTHER_METHOD`]. A client may send any token as a method; none of them becomes a label.
pub fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "CONNECT" => "CONNECT",
        "OPTIONS" => "OPTIONS",
        "TRACE" => "TRACE",
        "PATCH" => "PATCH",
        _ => OTHER_METHOD,
    }
}

/// Upper bounds of the latency histogram's buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Count per bucket (not cumulative; summed on render).
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Debug, Default)]
struct Families {
    requests: BTreeMap<(&'static str, String, u16), u64>,
    durations: BTreeMap<(&'static str, String), Histogram>,
}

/// The service's metrics. Cheap to update: one short critical section per request.
#[derive(Debug, Default)]
pub struct Metrics {
    families: Mutex<Families>,
    in_flight: AtomicI64,
    admitted: AtomicI64,
    waiting: AtomicI64,
}

impl Metrics {
    /// Empty metrics.
    pub fn new() -> Self {
        Metrics::default()
    }

    /// Records one finished request. `method` is reduced to its [`method_label`]; `route` must be
    /// a route template or [`crate::UNMATCHED_ROUTE`] (never a raw path).
    pub fn observe(&self, method: &str, route: &str, status: u16, latency: Duration) {
        let seconds = latency.as_secs_f64();
        let method = method_label(method);
        let Ok(mut f) = self.families.lock() else {
            return;
        };
        *f.requests
            .entry((method, route.to_owned(), status))
            .or_insert(0) += 1;
        let h = f.durations.entry((method, route.to_owned())).or_default();
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b)
            && let Some(slot) = h.buckets.get_mut(i)
        {
            *slot += 1;
        }
        h.count += 1;
        h.sum += seconds;
    }

    /// A request started (`+1`) or finished (`-1`).
    pub fn in_flight(&self, delta: i64) {
        self.in_flight.fetch_add(delta, Ordering::Relaxed);
    }

    /// A request was admitted (`+1`) or released its slot (`-1`).
    pub fn admitted(&self, delta: i64) {
        self.admitted.fetch_add(delta, Ordering::Relaxed);
    }

    /// An authenticated request started (`+1`) or stopped (`-1`) waiting for a slot.
    pub fn waiting(&self, delta: i64) {
        self.waiting.fetch_add(delta, Ordering::Relaxed);
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let (requests, durations) = match self.families.lock() {
            Ok(f) => (f.requests.clone(), f.durations.clone()),
            Err(_) => Default::default(),
        };
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP airisk_http_requests_total HTTP requests served, by method, route template and status.\n");
        out.push_str("# TYPE airisk_http_requests_total counter\n");
        for ((method, route, status), n) in &requests {
            let _ = writeln!(
                out,
                "airisk_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {n}",
                escape(method),
                escape(route)
            );
        }
        out.push_str("# HELP airisk_http_request_duration_seconds Time from request to response head, by method and route template.\n");
        out.push_str("# TYPE airisk_http_request_duration_seconds histogram\n");
        for ((method, route), h) in &durations {
            let labels = format!("method=\"{}\",route=\"{}\"", escape(method), escape(route));
            let mut cumulative = 0u64;
            for (bound, n) in BUCKETS.iter().zip(h.buckets.iter()) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "airisk_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "airisk_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "airisk_http_request_duration_seconds_sum{{{labels}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "airisk_http_request_duration_seconds_count{{{labels}}} {}",
                h.count
            );
        }
        out.push_str("# HELP airisk_http_requests_in_flight Requests being served now.\n");
        out.push_str("# TYPE airisk_http_requests_in_flight gauge\n");
        let _ = writeln!(
            out,
            "airisk_http_requests_in_flight {}",
            self.in_flight.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP airisk_http_requests_admitted API requests holding an admission slot.\n",
        );
        out.push_str("# TYPE airisk_http_requests_admitted gauge\n");
        let _ = writeln!(
            out,
            "airisk_http_requests_admitted {}",
            self.admitted.load(Ordering::Relaxed)
        );
        out.push_str("# HELP airisk_http_requests_waiting Authenticated API requests waiting for an admission slot.\n");
        out.push_str("# TYPE airisk_http_requests_waiting gauge\n");
        let _ = writeln!(
            out,
            "airisk_http_requests_waiting {}",
            self.waiting.load(Ordering::Relaxed)
        );
        if let Some(rss) = resident_memory_bytes() {
            out.push_str("# HELP process_resident_memory_bytes Resident memory size in bytes.\n");
            out.push_str("# TYPE process_resident_memory_bytes gauge\n");
            let _ = writeln!(out, "process_resident_memory_bytes {rss}");
        }
        out
    }
}

/// Escapes a label value (backslash, double quote, newline).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Resident set size from `/proc/self/statm` (pages × 4096), where it exists.
fn resident_memory_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_is_prometheus_text_with_cumulative_buckets() {
        let m = Metrics::new();
        m.observe("GET", "/v1/models/{name}", 200, Duration::from_micros(700));
        m.observe("GET", "/v1/models/{name}", 404, Duration::from_millis(30));
        let text = m.render();
        assert!(text.contains(
            "airisk_http_requests_total{method=\"GET\",route=\"/v1/models/{name}\",status=\"200\"} 1"
        ));
        assert!(text.contains("le=\"0.001\"} 1"));
        assert!(text.contains("le=\"0.05\"} 2"));
        assert!(text.contains("le=\"+Inf\"} 2"));
        assert!(text.contains("_count{method=\"GET\",route=\"/v1/models/{name}\"} 2"));
    }

    #[test]
    fn methods_outside_the_standard_set_share_one_label() {
        let m = Metrics::new();
        for junk in ["FOO", "get", "PROPFIND", &"X".repeat(10_000)] {
            m.observe(junk, crate::UNMATCHED_ROUTE, 404, Duration::from_millis(1));
        }
        m.observe(
            "PATCH",
            crate::UNMATCHED_ROUTE,
            404,
            Duration::from_millis(1),
        );
        let text = m.render();
        assert!(text.contains(
            "airisk_http_requests_total{method=\"OTHER\",route=\"<unmatched>\",status=\"404\"} 4"
        ), "{text}");
        assert!(text.contains("method=\"PATCH\""));
        assert!(!text.contains("FOO") && !text.contains("PROPFIND") && !text.contains("XXX"));
        assert_eq!(method_label("get"), OTHER_METHOD);
    }
}
