//! Prometheus counters, written by hand in the text exposition format (version 0.0.4): request
//! counts by route and status, request latency, batch sizes and queue depth.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Appends one formatted line to a `String` (which cannot fail to grow).
macro_rules! put {
    ($out:expr, $($fmt:tt)*) => {{
        $out.push_str(&format!($($fmt)*));
        $out.push('\n');
    }};
}

/// A cumulative histogram with fixed upper bounds.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// One count per bound, then +Inf.
    counts: Vec<AtomicU64>,
    /// The sum in micro-units (µs for seconds, 1e-6 for counts), kept exact as an integer.
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, v: f64) {
        let i = self
            .bounds
            .iter()
            .position(|&b| v <= b)
            .unwrap_or(self.bounds.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((v.max(0.0) * 1e6).round() as u64, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    fn write(&self, out: &mut String, name: &str, help: &str) {
        put!(out, "# HELP {name} {help}");
        put!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            cumulative += c.load(Ordering::Relaxed);
            put!(out, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
        }
        cumulative += self.counts[self.bounds.len()].load(Ordering::Relaxed);
        put!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        put!(out, "{name}_sum {sum}");
        put!(out, "{name}_count {cumulative}");
    }
}

const LATENCY_BOUNDS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
const BATCH_BOUNDS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

/// Everything `/metrics` reports.
#[derive(Debug)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    pub latency: Histogram,
    pub batch_size: Histogram,
    /// Requests admitted and not yet answered by the model thread.
    pub queue_depth: AtomicUsize,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: Mutex::new(BTreeMap::new()),
            latency: Histogram::new(LATENCY_BOUNDS),
            batch_size: Histogram::new(BATCH_BOUNDS),
            queue_depth: AtomicUsize::new(0),
        }
    }
}

impl Metrics {
    /// One answered request. `route` is the route template (or `other`), never the raw path,
    /// so a scanner cannot grow the label set.
    pub fn record(&self, route: &'static str, status: u16, seconds: f64) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((route, status)).or_insert(0) += 1;
        }
        self.latency.observe(seconds);
    }

    /// Requests answered with `status` on `route` so far.
    pub fn requests(&self, route: &'static str, status: u16) -> u64 {
        self.requests
            .lock()
            .map(|m| m.get(&(route, status)).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// The text exposition format.
    pub fn render(&self, ready: bool) -> String {
        let mut out = String::new();
        put!(
            out,
            "# HELP resnext_requests_total Requests answered, by route and status."
        );
        put!(out, "# TYPE resnext_requests_total counter");
        if let Ok(m) = self.requests.lock() {
            for ((route, status), n) in m.iter() {
                put!(
                    out,
                    "resnext_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
        self.latency.write(
            &mut out,
            "resnext_request_duration_seconds",
            "Time from the request's arrival to its answer.",
        );
        self.batch_size.write(
            &mut out,
            "resnext_batch_size",
            "Images per forward pass of the model thread.",
        );
        put!(
            out,
            "# HELP resnext_queue_depth Requests admitted and not yet answered by the model."
        );
        put!(out, "# TYPE resnext_queue_depth gauge");
        put!(
            out,
            "resnext_queue_depth {}",
            self.queue_depth.load(Ordering::Relaxed)
        );
        put!(
            out,
            "# HELP resnext_model_ready 1 once the model is loaded."
        );
        put!(out, "# TYPE resnext_model_ready gauge");
        put!(out, "resnext_model_ready {}", u8::from(ready));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_with_sum_and_count() {
        let h = Histogram::new(&[1.0, 2.0]);
        for v in [0.5, 1.5, 1.5, 7.0] {
            h.observe(v);
        }
        let mut s = String::new();
        h.write(&mut s, "x", "help");
        assert!(s.contains("x_bucket{le=\"1\"} 1\n"), "{s}");
        assert!(s.contains("x_bucket{le=\"2\"} 3\n"), "{s}");
        assert!(s.contains("x_bucket{le=\"+Inf\"} 4\n"), "{s}");
        assert!(s.contains("x_sum 10.5\n"), "{s}");
        assert!(s.contains("x_count 4\n"), "{s}");
        assert_eq!(h.count(), 4);
    }

    #[test]
    fn requests_are_counted_by_route_and_status() {
        let m = Metrics::default();
        m.record("/v1/predict", 200, 0.01);
        m.record("/v1/predict", 200, 0.02);
        m.record("other", 404, 0.0);
        let s = m.render(true);
        assert!(s.contains("resnext_requests_total{route=\"/v1/predict\",status=\"200\"} 2"));
        assert!(s.contains("resnext_requests_total{route=\"other\",status=\"404\"} 1"));
        assert!(s.contains("resnext_model_ready 1"));
        assert_eq!(m.requests("/v1/predict", 200), 2);
    }
}
