//! `nuclio-ort bench`: a load generator for any CVAT detector function.
//!
//! It speaks only the public Nuclio/CVAT contract (POST the detector JSON,
//! read a JSON array back), so the same command measures nuclio-ort, the
//! Python peer in `bench/python_peer.py` or a function deployed by Nuclio, and
//! results from one run compare side by side. Blocking workers on std threads
//! (one keep-alive `ureq` agent each) are enough here: the load generator
//! must stay out of the way, and one thread per connection is the simplest
//! thing whose latencies are easy to trust.
//!
//! Exit status: 0 when every measured request got a 2xx reply with a JSON
//! array, 1 when any failed (the summary is still printed, errors counted by
//! status code or by `connect`/`timeout`/`io`/...), 2 when the benchmark could
//! not start (bad arguments, unreadable image).

mod load;
mod report;

use std::{path::PathBuf, process::ExitCode, time::Duration};

use base64::Engine;
use clap::Args;

pub use self::{
    load::{run_load, LoadPlan},
    report::{LatencySummary, Summary},
};

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Function URL, e.g. http://127.0.0.1:8080/
    #[arg(long)]
    pub url: String,

    /// Image file sent in every request (read once, base64-encoded once).
    #[arg(long, value_name = "FILE")]
    pub image: PathBuf,

    /// Requests in flight at once: one worker thread and one keep-alive connection each.
    #[arg(long, short = 'c', default_value_t = 1)]
    pub concurrency: usize,

    /// Measured requests in total (default 100 unless --duration is given).
    #[arg(long, short = 'n', conflicts_with = "duration")]
    pub requests: Option<u64>,

    /// Run for this long instead of a request count, e.g. `30s`.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,

    /// `threshold` field of the request (omitted by default, as CVAT does when unset).
    #[arg(long)]
    pub threshold: Option<f32>,

    /// Unmeasured requests before the clock starts (spread over the workers), so
    /// connection setup and lazy initialisation on the server do not count.
    #[arg(long, default_value_t = 0)]
    pub warmup: u64,

    /// Longest time one request may take before it counts as a `timeout` error.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,

    /// After a 503 carrying `Retry-After`, a worker waits that long before its
    /// next request, as a well-behaved client would. Off by default: an
    /// impolite closed loop that retries at once is the harsher test.
    #[arg(long)]
    pub honor_retry_after: bool,

    /// Print the summary as one JSON object (for scripts such as bench/compare.py).
    #[arg(long)]
    pub json: bool,
}

impl BenchArgs {
    const DEFAULT_REQUESTS: u64 = 100;

    fn validate(&self) -> Result<(), String> {
        if self.concurrency == 0 {
            return Err("--concurrency must be at least 1".into());
        }
        if self.requests == Some(0) {
            return Err("--requests must be at least 1".into());
        }
        if self.duration.is_some_and(|d| d.is_zero()) {
            return Err("--duration must be positive".into());
        }
        if let Some(t) = self.threshold {
            if !(0.0..=1.0).contains(&t) {
                return Err("--threshold must be within [0, 1]".into());
            }
        }
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(format!(
                "--url must start with http:// (got `{}`)",
                self.url
            ));
        }
        Ok(())
    }
}

/// The CVAT detector request body for `image`: `{"image": base64, "threshold"?}`.
pub fn detector_body(image: &[u8], threshold: Option<f32>) -> Vec<u8> {
    let mut body = serde_json::Map::new();
    body.insert(
        "image".into(),
        base64::engine::general_purpose::STANDARD
            .encode(image)
            .into(),
    );
    if let Some(t) = threshold {
        body.insert("threshold".into(), serde_json::json!(t));
    }
    serde_json::to_vec(&serde_json::Value::Object(body)).unwrap_or_default()
}

pub fn run(args: &BenchArgs) -> ExitCode {
    if let Err(message) = args.validate() {
        eprintln!("nuclio-ort bench: {message}");
        return ExitCode::from(2);
    }
    let image = match std::fs::read(&args.image) {
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!(
                "nuclio-ort bench: cannot read {}: {e}",
                args.image.display()
            );
            return ExitCode::from(2);
        }
    };
    let body = detector_body(&image, args.threshold);
    let plan = LoadPlan {
        url: args.url.clone(),
        body: body.into(),
        concurrency: args.concurrency,
        requests: match args.duration {
            Some(_) => None,
            None => Some(args.requests.unwrap_or(BenchArgs::DEFAULT_REQUESTS)),
        },
        duration: args.duration,
        warmup: args.warmup,
        timeout: args.timeout,
        progress: true,
        honor_retry_after: args.honor_retry_after,
    };
    let mut summary = run_load(&plan);
    summary.image = args.image.display().to_string();
    summary.image_bytes = image.len();
    summary.threshold = args.threshold;
    if args.json {
        match serde_json::to_string(&summary) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("nuclio-ort bench: cannot serialise the summary: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        print!("{}", summary.to_text());
    }
    if summary.errors_total() == 0 && summary.requests > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn parse(args: &[&str]) -> Result<BenchArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied())).map(|c| c.bench)
    }

    #[test]
    fn requests_and_duration_exclude_each_other() {
        let base = ["--url", "http://127.0.0.1:1/", "--image", "x.jpg"];
        let a = parse(&base).unwrap();
        assert_eq!((a.requests, a.duration, a.concurrency), (None, None, 1));
        let a = parse(&[&base[..], &["--duration", "2s", "-c", "4"]].concat()).unwrap();
        assert_eq!(a.duration, Some(Duration::from_secs(2)));
        assert!(parse(&[&base[..], &["--duration", "2s", "-n", "4"]].concat()).is_err());
    }

    #[test]
    fn validation_names_the_bad_flag() {
        let mut a = parse(&["--url", "http://x/", "--image", "x.jpg"]).unwrap();
        assert!(a.validate().is_ok());
        a.concurrency = 0;
        assert!(a.validate().unwrap_err().contains("--concurrency"));
        a.concurrency = 1;
        a.threshold = Some(1.5);
        assert!(a.validate().unwrap_err().contains("--threshold"));
        a.threshold = None;
        a.url = "localhost:8080".into();
        assert!(a.validate().unwrap_err().contains("--url"));
    }

    #[test]
    fn body_is_cvat_detector_json() {
        let body: serde_json::Value =
            serde_json::from_slice(&detector_body(b"hello", Some(0.25))).unwrap();
        assert_eq!(body["image"], "aGVsbG8=");
        assert_eq!(body["threshold"], 0.25);
        let body: serde_json::Value =
            serde_json::from_slice(&detector_body(b"hello", None)).unwrap();
        assert!(body.get("threshold").is_none());
    }
}
