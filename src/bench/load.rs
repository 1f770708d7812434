//! The load itself: closed-loop workers, each with its own keep-alive
//! connection, sending the same prepared body until the request budget or
//! the time runs out.
//!
//! Workers never touch the progress bar: they bump atomics and keep private
//! histograms, so the measuring threads share no locks; the main thread
//! samples the counters for the bar and merges the histograms at the end.

use std::{
    collections::BTreeMap,
    io::ErrorKind,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Barrier,
    },
    thread,
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use serde::de::IgnoredAny;

use super::report::{ErrorSummary, LatencySummary, Summary};

/// Replies larger than this are an error: a detector answers a few KiB.
const MAX_REPLY_BYTES: u64 = 64 << 20;
/// Pause after a failed connection, so a benchmark against a dead server
/// reports errors instead of spinning a core on `connect()`.
const CONNECT_BACKOFF: Duration = Duration::from_millis(10);

#[derive(Debug, Clone)]
pub struct LoadPlan {
    pub url: String,
    pub body: Arc<[u8]>,
    pub concurrency: usize,
    /// Measured requests in total; `None` runs for `duration`.
    pub requests: Option<u64>,
    pub duration: Option<Duration>,
    pub warmup: u64,
    pub timeout: Duration,
    /// Draw a progress bar on stderr (only when it is a terminal).
    pub progress: bool,
    /// After a 503 with `Retry-After`, the worker waits that long (at most
    /// `MAX_RETRY_AFTER`) before its next request, as a polite client does.
    pub honor_retry_after: bool,
}

const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Counters {
    warmup_issued: AtomicU64,
    warmup_failed: AtomicU64,
    issued: AtomicU64,
    done: AtomicU64,
    failed: AtomicU64,
}

/// What one worker saw, merged into the summary at the end.
struct WorkerStats {
    ok: Histogram<u64>,
    all: Histogram<u64>,
    errors: BTreeMap<String, (Histogram<u64>, String)>,
    shapes: Option<usize>,
    finished: Instant,
}

/// Longest latency the histograms hold; slower replies are recorded as this.
const MAX_MICROS: u64 = 3_600_000_000;

/// Fixed bounds rather than auto-resizing: `saturating_record` on an
/// auto-resizing histogram clamps to its *current* (tiny) range instead of
/// growing, which silently recorded every 100 ms request as 2 µs.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3)
        .expect("1 µs .. 1 h at 3 significant figures is a valid histogram")
}

impl WorkerStats {
    fn new() -> Self {
        Self {
            ok: histogram(),
            all: histogram(),
            errors: BTreeMap::new(),
            shapes: None,
            finished: Instant::now(),
        }
    }

    fn record(&mut self, outcome: Outcome, micros: u64) {
        let micros = micros.max(1);
        self.all.saturating_record(micros);
        match outcome {
            Ok(shapes) => {
                self.ok.saturating_record(micros);
                self.shapes.get_or_insert(shapes);
            }
            Err(failure) => {
                let entry = self
                    .errors
                    .entry(failure.kind)
                    .or_insert_with(|| (histogram(), failure.message));
                entry.0.saturating_record(micros);
            }
        }
    }
}

#[derive(Debug)]
struct Failure {
    kind: String,
    message: String,
    /// The reply's `Retry-After`, in whole seconds as this server sends it.
    retry_after: Option<Duration>,
}

/// `Ok(number of shapes in the reply)` or why the request failed.
type Outcome = Result<usize, Failure>;

fn failure(kind: impl Into<String>, message: impl Into<String>) -> Failure {
    Failure {
        kind: kind.into(),
        message: message.into(),
        retry_after: None,
    }
}

/// Transport failures by what a user would do about them: `connect` (nothing
/// listens there), `timeout` (raise --timeout or lower the load), `io`
/// (the server dropped the connection), `protocol` (not an HTTP server).
fn classify(error: &ureq::Error) -> &'static str {
    use ureq::Error as E;
    match error {
        E::Io(e) => match e.kind() {
            ErrorKind::ConnectionRefused
            | ErrorKind::AddrNotAvailable
            | ErrorKind::HostUnreachable
            | ErrorKind::NetworkUnreachable => "connect",
            ErrorKind::TimedOut | ErrorKind::WouldBlock => "timeout",
            _ => "io",
        },
        E::ConnectionFailed | E::HostNotFound => "connect",
        E::Timeout(_) => "timeout",
        E::Protocol(_) | E::LargeResponseHeader(..) => "protocol",
        E::BodyExceedsLimit(_) => "reply_too_large",
        E::BadUri(_) | E::Http(_) => "request",
        _ => "other",
    }
}

fn send(agent: &ureq::Agent, url: &str, body: &[u8]) -> Outcome {
    let mut response = agent
        .post(url)
        .header("Content-Type", "application/json")
        .send(body)
        .map_err(|e| failure(classify(&e), e.to_string()))?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    // Read the whole reply even on errors: it keeps the connection reusable.
    let reply = response
        .body_mut()
        .with_config()
        .limit(MAX_REPLY_BYTES)
        .read_to_vec()
        .map_err(|e| failure(classify(&e), e.to_string()))?;
    if !status.is_success() {
        let text = String::from_utf8_lossy(&reply[..reply.len().min(200)]).into_owned();
        let mut failed = failure(status.as_str(), text);
        failed.retry_after = retry_after;
        return Err(failed);
    }
    serde_json::from_slice::<Vec<IgnoredAny>>(&reply)
        .map(|shapes| shapes.len())
        .map_err(|e| {
            let start = String::from_utf8_lossy(&reply[..reply.len().min(80)]).into_owned();
            failure(
                "bad_reply",
                format!("{status} reply is not a JSON array ({e}): {start}"),
            )
        })
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .user_agent("nuclio-ort-bench")
        .build()
        .into()
}

fn worker(plan: &LoadPlan, counters: &Counters, barrier: &Barrier) -> WorkerStats {
    let agent = agent(plan.timeout);
    let is_connect = |o: &Outcome| matches!(o, Err(f) if f.kind == "connect");
    while counters.warmup_issued.fetch_add(1, Ordering::Relaxed) < plan.warmup {
        let outcome = send(&agent, &plan.url, &plan.body);
        if outcome.is_err() {
            counters.warmup_failed.fetch_add(1, Ordering::Relaxed);
        }
        if is_connect(&outcome) {
            thread::sleep(CONNECT_BACKOFF);
        }
    }
    let mut stats = WorkerStats::new();
    barrier.wait();
    let deadline = plan.duration.map(|d| Instant::now() + d);
    loop {
        match (plan.requests, deadline) {
            (Some(n), _) if counters.issued.fetch_add(1, Ordering::Relaxed) >= n => break,
            (_, Some(deadline)) if Instant::now() >= deadline => break,
            _ => {}
        }
        let started = Instant::now();
        let outcome = send(&agent, &plan.url, &plan.body);
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let connect_failed = is_connect(&outcome);
        let pause = match &outcome {
            Err(f) if plan.honor_retry_after => f.retry_after.map(|d| d.min(MAX_RETRY_AFTER)),
            _ => None,
        };
        if outcome.is_err() {
            counters.failed.fetch_add(1, Ordering::Relaxed);
        }
        stats.record(outcome, micros);
        stats.finished = Instant::now();
        counters.done.fetch_add(1, Ordering::Relaxed);
        if connect_failed {
            thread::sleep(CONNECT_BACKOFF);
        }
        if let Some(pause) = pause {
            // Never past the end of a timed run.
            let left = deadline.map_or(pause, |d| d.saturating_duration_since(Instant::now()));
            thread::sleep(pause.min(left));
        }
    }
    stats
}

fn progress_bar(plan: &LoadPlan) -> ProgressBar {
    if !plan.progress {
        return ProgressBar::hidden();
    }
    let (len, template) = match (plan.requests, plan.duration) {
        (Some(n), _) => (
            n,
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} {msg}",
        ),
        (None, Some(d)) => (
            u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
            "{spinner} [{elapsed_precise}] {bar:40} {msg}",
        ),
        (None, None) => (0, "{spinner} [{elapsed_precise}] {msg}"),
    };
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

/// Runs the plan and summarises it. Never panics on network failures: they
/// are counted as errors.
pub fn run_load(plan: &LoadPlan) -> Summary {
    let counters = Counters::default();
    let barrier = Barrier::new(plan.concurrency + 1);
    let bar = progress_bar(plan);
    if plan.warmup > 0 {
        bar.set_message(format!("warming up ({} requests)", plan.warmup));
    }
    bar.enable_steady_tick(Duration::from_millis(200));

    let (started, stats) = thread::scope(|scope| {
        let handles: Vec<_> = (0..plan.concurrency)
            .map(|i| {
                let (counters, barrier) = (&counters, &barrier);
                thread::Builder::new()
                    .name(format!("bench-{i}"))
                    .spawn_scoped(scope, move || worker(plan, counters, barrier))
                    .expect("cannot start a benchmark worker thread")
            })
            .collect();
        barrier.wait();
        let started = Instant::now();
        while !handles.iter().all(|h| h.is_finished()) {
            let (done, failed) = (
                counters.done.load(Ordering::Relaxed),
                counters.failed.load(Ordering::Relaxed),
            );
            let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-3);
            match plan.requests {
                Some(_) => bar.set_position(done),
                None => bar
                    .set_position(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)),
            }
            bar.set_message(format!("{done} done, {failed} failed, {rate:.1} req/s"));
            thread::sleep(Duration::from_millis(50));
        }
        let stats: Vec<WorkerStats> = handles
            .into_iter()
            .filter_map(|h| match h.join() {
                Ok(stats) => Some(stats),
                Err(_) => {
                    eprintln!("nuclio-ort bench: a worker thread panicked; its requests are missing from the summary");
                    None
                }
            })
            .collect();
        (started, stats)
    });
    bar.finish_and_clear();
    summarise(plan, &counters, started, stats)
}

fn summarise(
    plan: &LoadPlan,
    counters: &Counters,
    started: Instant,
    stats: Vec<WorkerStats>,
) -> Summary {
    let (mut ok, mut all) = (histogram(), histogram());
    let mut errors: BTreeMap<String, (Histogram<u64>, String)> = BTreeMap::new();
    let mut shapes = None;
    let mut finished = started;
    for s in stats {
        // Same precision everywhere, so adding cannot fail; ignore defensively.
        let _ = ok.add(&s.ok);
        let _ = all.add(&s.all);
        for (kind, (h, example)) in s.errors {
            let entry = errors.entry(kind).or_insert_with(|| (histogram(), example));
            let _ = entry.0.add(&h);
        }
        shapes = shapes.or(s.shapes);
        finished = finished.max(s.finished);
    }
    let duration_s = (finished - started).as_secs_f64();
    let per_s = |n: u64| {
        if duration_s > 0.0 {
            n as f64 / duration_s
        } else {
            0.0
        }
    };
    Summary {
        url: plan.url.clone(),
        body_bytes: plan.body.len(),
        concurrency: plan.concurrency,
        warmup: plan.warmup,
        warmup_errors: counters.warmup_failed.load(Ordering::Relaxed),
        requests: all.len(),
        ok: ok.len(),
        duration_s,
        requests_per_s: per_s(all.len()),
        ok_per_s: per_s(ok.len()),
        latency_ms: LatencySummary::from_micros(&ok),
        all_latency_ms: LatencySummary::from_micros(&all),
        errors: errors
            .into_iter()
            .map(|(kind, (h, example))| {
                (
                    kind,
                    ErrorSummary {
                        count: h.len(),
                        latency_ms: LatencySummary::from_micros(&h),
                        example,
                    },
                )
            })
            .collect(),
        shapes,
        ..Summary::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_replies_keep_their_latency() {
        let mut stats = WorkerStats::new();
        stats.record(Ok(3), 100_000);
        stats.record(Err(failure("503", "overloaded")), 2_500);
        stats.record(Ok(3), 7_200_000_000);
        let ok = LatencySummary::from_micros(&stats.ok);
        assert!((ok.min - 100.0).abs() < 0.1, "{ok:?}");
        assert!(
            (ok.max - MAX_MICROS as f64 / 1000.0).abs() < 0.01 * ok.max,
            "{ok:?}"
        );
        let (rejected, example) = &stats.errors["503"];
        assert_eq!(example, "overloaded");
        assert!((LatencySummary::from_micros(rejected).p50 - 2.5).abs() < 0.01);
        assert_eq!(stats.all.len(), 3);
        assert_eq!(stats.shapes, Some(3));
    }
}
