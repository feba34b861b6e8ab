//! Prometheus metrics with the Python runner's names, types and labels
//! (runner-internals.md §12). One registry per runner instance (Python has a
//! process-global one; per instance keeps parallel in-process runners apart).

use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts,
    Registry, TextEncoder,
};

/// prometheus_client's default buckets.
const PY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Label value for a missing worker/route, as Python renders `None`.
pub const NONE_LABEL: &str = "None";

/// Label value past `--metric-label-max-values` distinct ones.
pub const OTHER_LABEL: &str = "other";

/// Bounds a label whose values come from requests (worker names, result
/// codes, hosts): each value is cut to `max_length` bytes, and once
/// `max_values` distinct values were seen, new ones read `other`. A value
/// keeps its label for the life of the process (the set only grows), so a
/// gauge's increments and decrements always meet.
pub struct BoundedLabel {
    max_length: usize,
    max_values: usize,
    seen: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl BoundedLabel {
    pub fn new(max_length: usize, max_values: usize) -> Self {
        BoundedLabel {
            max_length,
            max_values,
            seen: Default::default(),
        }
    }

    /// The label for `value`.
    pub fn of<'a>(&self, value: &'a str) -> std::borrow::Cow<'a, str> {
        let cut = crate::validate::prefix_within(value, self.max_length);
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.contains(cut) {
            return cut.into();
        }
        if seen.len() >= self.max_values {
            return OTHER_LABEL.into();
        }
        seen.insert(cut.to_string());
        cut.into()
    }
}

pub struct Metrics {
    pub registry: Registry,
    /// Bounds of the request-fed labels.
    pub worker_label: BoundedLabel,
    pub result_code_label: BoundedLabel,
    pub host_label: BoundedLabel,
    pub run_count: IntCounter,
    pub job_last_success: Gauge,
    pub build_duration: HistogramVec,
    pub result: IntCounterVec,
    pub active_runs: GaugeVec,
    pub assignments: IntCounterVec,
    pub rate_limited_host: IntCounterVec,
    pub artifact_upload_failed: IntCounter,
    pub queue_empty: IntCounter,
    pub primary_logfile_upload_failed: IntCounter,
    pub logfile_uploads: IntCounter,
    pub postgres_insufficient_resources: IntCounter,
    pub requests: IntCounterVec,
    pub request_latency: HistogramVec,
    pub requests_in_progress: GaugeVec,
    pub request_exceptions: IntCounterVec,
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("metric");
    r.register(Box::new(c.clone())).expect("register");
    c
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("metric");
    r.register(Box::new(c.clone())).expect("register");
    c
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    let g = GaugeVec::new(Opts::new(name, help), labels).expect("metric");
    r.register(Box::new(g.clone())).expect("register");
    g
}

fn histogram_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(PY_BUCKETS.to_vec()),
        labels,
    )
    .expect("metric");
    r.register(Box::new(h.clone())).expect("register");
    h
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        Self::with_label_bounds(
            crate::settings::DEFAULT_METRIC_LABEL_MAX_LENGTH,
            crate::settings::DEFAULT_METRIC_LABEL_MAX_VALUES,
        )
    }

    /// Metrics whose request-fed labels are bounded as [`BoundedLabel`].
    pub fn with_label_bounds(max_length: usize, max_values: usize) -> Metrics {
        let r = Registry::new();
        let job_last_success = Gauge::new(
            "job_last_success_unixtime",
            "Last time a batch job successfully finished",
        )
        .expect("metric");
        r.register(Box::new(job_last_success.clone()))
            .expect("register");
        Metrics {
            worker_label: BoundedLabel::new(max_length, max_values),
            result_code_label: BoundedLabel::new(max_length, max_values),
            host_label: BoundedLabel::new(max_length, max_values),
            run_count: counter(&r, "run_count_total", "Number of runs handled."),
            job_last_success,
            build_duration: histogram_vec(&r, "build_duration", "Build duration", &["campaign"]),
            result: counter_vec(
                &r,
                "result_total",
                "General result",
                &["campaign", "result_code"],
            ),
            active_runs: gauge_vec(&r, "active_runs", "Number of active runs", &["worker"]),
            assignments: counter_vec(
                &r,
                "assignments_total",
                "Number of assignments handed out",
                &["worker"],
            ),
            rate_limited_host: counter_vec(
                &r,
                "rate_limited_host_total",
                "Rate limiting per host",
                &["host"],
            ),
            artifact_upload_failed: counter(
                &r,
                "artifact_upload_failed_total",
                "Number of failed artifact uploads",
            ),
            queue_empty: counter(&r, "queue_empty_total", "Queue was empty."),
            primary_logfile_upload_failed: counter(
                &r,
                "primary_logfile_upload_failed_total",
                "Number of failed logs to primary logfile target",
            ),
            logfile_uploads: counter(&r, "logfile_uploads_total", "Number of uploaded log files"),
            postgres_insufficient_resources: counter(
                &r,
                "postgres_insufficient_resources_total",
                "Number of times PostgreSQL reported insufficient resources",
            ),
            requests: counter_vec(
                &r,
                "requests_total",
                "Total request count",
                &["method", "route", "status"],
            ),
            request_latency: histogram_vec(
                &r,
                "request_latency_seconds",
                "Request latency",
                &["route"],
            ),
            requests_in_progress: gauge_vec(
                &r,
                "requests_in_progress_total",
                "Requests currently in progress",
                &["method", "route"],
            ),
            request_exceptions: counter_vec(
                &r,
                "request_exceptions_total",
                "Total request exceptions",
                &["method", "route"],
            ),
            registry: r,
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_metric_names_are_exposed() {
        let m = Metrics::new();
        m.assignments.with_label_values(&[NONE_LABEL]).inc();
        m.run_count.inc();
        m.build_duration.with_label_values(&["c"]).observe(1.0);
        let text = String::from_utf8(m.render()).unwrap();
        assert!(
            text.contains("assignments_total{worker=\"None\"} 1"),
            "{text}"
        );
        assert!(text.contains("run_count_total 1"));
        assert!(text.contains("build_duration_bucket{campaign=\"c\",le=\"0.075\"} 0"));
        assert!(text.contains("# TYPE job_last_success_unixtime gauge"));
    }

    #[test]
    fn request_fed_labels_are_cut_and_counted() {
        let l = BoundedLabel::new(4, 2);
        assert_eq!(l.of("abcdef"), "abcd");
        // Cut on a character boundary: "é" is two bytes.
        assert_eq!(l.of("abcé"), "abc");
        // Two distinct values seen: a third is `other`, the first two stay.
        assert_eq!(l.of("zzz"), OTHER_LABEL);
        assert_eq!(l.of("abcdxx"), "abcd");
        assert_eq!(l.of("abc"), "abc");
    }

    #[test]
    fn many_long_worker_names_keep_the_exposition_small() {
        let m = Metrics::with_label_bounds(16, 10);
        for i in 0..300 {
            let name = format!("{i}-{}", "w".repeat(100_000));
            m.assignments
                .with_label_values(&[&m.worker_label.of(&name)])
                .inc();
        }
        let text = String::from_utf8(m.render()).unwrap();
        assert!(text.len() < 4096, "{} bytes", text.len());
        assert!(
            text.contains("assignments_total{worker=\"other\"} 290"),
            "{text}"
        );
    }
}
