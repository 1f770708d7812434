//! The benchmark summary: what people read and what scripts parse.
//!
//! Latencies are kept per outcome (successes, and each error kind apart),
//! because a server that sheds load answers 503 in microseconds: mixed into
//! one histogram those replies would make an overloaded server look fast.

use std::{collections::BTreeMap, fmt::Write as _};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl LatencySummary {
    /// From a histogram of microseconds.
    pub fn from_micros(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: h.len(),
            min: ms(h.min()),
            mean: h.mean() / 1000.0,
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
        }
    }
}

/// Failed requests of one kind: an HTTP status (`"503"`) or a transport
/// failure (`"connect"`, `"timeout"`, `"io"`, `"protocol"`, `"bad_reply"`, ...).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ErrorSummary {
    pub count: u64,
    pub latency_ms: LatencySummary,
    /// One example message, so a user sees *why* without rerunning.
    pub example: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub url: String,
    pub image: String,
    pub image_bytes: usize,
    pub body_bytes: usize,
    pub threshold: Option<f32>,
    pub concurrency: usize,
    pub warmup: u64,
    pub warmup_errors: u64,
    /// Measured requests that completed (successes and errors).
    pub requests: u64,
    pub ok: u64,
    pub duration_s: f64,
    /// Completed requests per second, errors included.
    pub requests_per_s: f64,
    /// Successful requests per second: the throughput to compare.
    pub ok_per_s: f64,
    /// Latency of successful requests.
    pub latency_ms: LatencySummary,
    /// Latency of every completed request, errors included.
    pub all_latency_ms: LatencySummary,
    pub errors: BTreeMap<String, ErrorSummary>,
    /// Shapes in the first successful reply: a cheap sanity check that two
    /// servers under comparison did the same work.
    pub shapes: Option<usize>,
}

impl Summary {
    pub fn errors_total(&self) -> u64 {
        self.errors.values().map(|e| e.count).sum()
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let l = &self.latency_ms;
        let _ = writeln!(out, "target       {}", self.url);
        let _ = writeln!(
            out,
            "image        {} ({} bytes, request body {} bytes)",
            self.image, self.image_bytes, self.body_bytes
        );
        let _ = writeln!(
            out,
            "load         concurrency {}, warm-up {}{}",
            self.concurrency,
            self.warmup,
            if self.warmup_errors > 0 {
                format!(" ({} failed)", self.warmup_errors)
            } else {
                String::new()
            }
        );
        let _ = writeln!(
            out,
            "requests     {} in {:.2} s: {} ok, {} failed",
            self.requests,
            self.duration_s,
            self.ok,
            self.errors_total()
        );
        let _ = writeln!(
            out,
            "throughput   {:.2} req/s ({:.2} ok/s)",
            self.requests_per_s, self.ok_per_s
        );
        if l.count > 0 {
            let _ = writeln!(
                out,
                "latency ms   p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}  (min {:.2}, mean {:.2}; successes)",
                l.p50, l.p90, l.p99, l.max, l.min, l.mean
            );
        }
        if let Some(shapes) = self.shapes {
            let _ = writeln!(out, "reply        {shapes} shapes");
        }
        for (kind, e) in &self.errors {
            let _ = writeln!(
                out,
                "error {kind:<6} {} (p50 {:.2} ms, max {:.2} ms): {}",
                e.count, e.latency_ms.p50, e.latency_ms.max, e.example
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_in_milliseconds() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        for us in 1..=1000u64 {
            h.record(us * 1000).unwrap();
        }
        let s = LatencySummary::from_micros(&h);
        assert_eq!(s.count, 1000);
        assert!((s.p50 - 500.0).abs() < 1.0, "{s:?}");
        assert!((s.p99 - 990.0).abs() < 2.0, "{s:?}");
        assert!((s.max - 1000.0).abs() < 1.0, "{s:?}");
        assert_eq!(
            LatencySummary::from_micros(&Histogram::new(3).unwrap()),
            LatencySummary::default()
        );
    }

    #[test]
    fn text_lists_errors_by_kind() {
        let mut s = Summary {
            requests: 3,
            ok: 1,
            ..Default::default()
        };
        s.errors.insert(
            "503".into(),
            ErrorSummary {
                count: 2,
                example: "overloaded".into(),
                ..Default::default()
            },
        );
        assert_eq!(s.errors_total(), 2);
        let text = s.to_text();
        assert!(text.contains("1 ok, 2 failed"), "{text}");
        assert!(text.contains("error 503"), "{text}");
    }
}
