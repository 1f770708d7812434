//! Every setting of the server, as command-line flags that are also environment
//! variables (`NUCLIO_ORT_*`), so a Nuclio `function.yaml` can configure the
//! container through `spec.env` alone.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::engine::Device;

#[derive(Debug, Parser)]
#[command(
    name = "nuclio-ort",
    version,
    about = "ONNX Runtime inference server for CVAT AI tools (Nuclio function contract)",
    long_about = "Serves YOLO detectors, SAM interactors and trackers to CVAT through the \
                  Nuclio function contract: POST / with CVAT's JSON, readiness on \
                  :8080/__internal/health, liveness on :8082/live, Prometheus metrics on :8090/metrics.\n\n\
                  ONNX Runtime is loaded at run time from ORT_DYLIB_PATH, else next to the binary, \
                  else from the Python `onnxruntime`/`onnxruntime-gpu` package."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load the model(s) and serve the Nuclio function contract.
    Serve(Box<ServeArgs>),
    /// Probe the local readiness endpoint; exit 0 when ready, 1 otherwise (Docker HEALTHCHECK).
    Healthcheck(HealthcheckArgs),
    /// Load-test a function server with CVAT-format requests (works against any Nuclio function).
    Bench(crate::bench::BenchArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TrackerKind {
    /// Weight-free correlation-filter tracker, no model file needed.
    Builtin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// YOLO detect ONNX model (Ultralytics export, fp32 or fp16, static or dynamic batch).
    #[arg(long, env = "NUCLIO_ORT_MODEL", value_name = "PATH")]
    pub model: Option<PathBuf>,

    /// Nuclio function.yaml (or the mounted processor.yaml) to read the function name,
    /// annotations (label spec), description, maxRequestBodySize and eventTimeout from.
    /// Default: /etc/nuclio/config/processor/processor.yaml when it exists.
    #[arg(long, env = "NUCLIO_ORT_FUNCTION_CONFIG", value_name = "PATH")]
    pub function_config: Option<PathBuf>,

    /// SAM image encoder ONNX (interactor function). Without --sam-decoder the reply is the
    /// embedding for CVAT's in-browser decoder; the name then defaults to pth-facebookresearch-sam-vit-h.
    #[arg(long, env = "NUCLIO_ORT_SAM_ENCODER", value_name = "PATH")]
    pub sam_encoder: Option<PathBuf>,

    /// SAM prompt decoder ONNX: the server decodes masks and replies {mask, bounds, points}.
    #[arg(
        long,
        env = "NUCLIO_ORT_SAM_DECODER",
        value_name = "PATH",
        requires = "sam_encoder"
    )]
    pub sam_decoder: Option<PathBuf>,

    /// SAM embedding cache capacity in entries.
    #[arg(long, env = "NUCLIO_ORT_SAM_CACHE_ENTRIES", default_value_t = 32)]
    pub sam_cache_entries: usize,

    /// SAM embedding cache capacity in bytes.
    #[arg(long, env = "NUCLIO_ORT_SAM_CACHE_BYTES", default_value_t = 512 * 1024 * 1024)]
    pub sam_cache_bytes: usize,

    /// Serve a tracker function: `builtin` is the weight-free correlation-filter tracker.
    #[arg(long, env = "NUCLIO_ORT_TRACKER", value_name = "KIND")]
    pub tracker: Option<TrackerKind>,

    /// ONNX Siamese tracker for the model-driven tracker mode.
    #[arg(long, env = "NUCLIO_ORT_TRACKER_MODEL", value_name = "PATH")]
    pub tracker_model: Option<PathBuf>,

    /// Several functions in one process, described in a YAML file (see docs/cvat.md).
    #[arg(long, env = "NUCLIO_ORT_FUNCTIONS", value_name = "PATH")]
    pub functions: Option<PathBuf>,

    /// Function name (default: from the function config, else the model file name).
    #[arg(long, env = "NUCLIO_ORT_NAME")]
    pub name: Option<String>,

    /// Address of the function's HTTP trigger (invocations and readiness).
    #[arg(long, env = "NUCLIO_ORT_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// Address of the health server (GET /live, GET /ready).
    #[arg(long, env = "NUCLIO_ORT_HEALTH_LISTEN", default_value = "0.0.0.0:8082")]
    pub health_listen: SocketAddr,

    /// Address of the Prometheus metrics server (GET /metrics).
    #[arg(
        long,
        env = "NUCLIO_ORT_METRICS_LISTEN",
        default_value = "0.0.0.0:8090"
    )]
    pub metrics_listen: SocketAddr,

    /// Execution provider: cpu, cuda[:N] or tensorrt[:N]. A GPU device that cannot be
    /// initialised is a startup error, never a silent CPU fallback.
    #[arg(long, env = "NUCLIO_ORT_DEVICE", default_value = "cpu")]
    pub device: Device,

    /// ONNX Runtime intra-op threads per session (default: ONNX Runtime's choice, one per core).
    #[arg(long, env = "NUCLIO_ORT_THREADS")]
    pub threads: Option<usize>,

    /// Let ONNX Runtime's intra-op threads busy-wait between operators. Off by
    /// default: the same cores decode the next requests, and on a GPU node the
    /// pool is nearly idle. On a CPU-only node it buys a few percent of
    /// single-request latency at the cost of throughput under concurrency.
    #[arg(long, env = "NUCLIO_ORT_SPIN", default_value_t = false)]
    pub spin: bool,

    /// Default score threshold when the request carries none (CVAT omits it when unset).
    #[arg(long, env = "NUCLIO_ORT_THRESHOLD", default_value_t = 0.5)]
    pub threshold: f32,

    /// IoU threshold of the class-aware non-maximum suppression.
    #[arg(long, env = "NUCLIO_ORT_IOU", default_value_t = 0.7)]
    pub iou: f32,

    /// Maximum detections per image.
    #[arg(long, env = "NUCLIO_ORT_MAX_DET", default_value_t = 300)]
    pub max_det: usize,

    /// Largest accepted image, in pixels (width × height, after reading the header only).
    #[arg(long, env = "NUCLIO_ORT_MAX_IMAGE_PIXELS", default_value_t = 16384 * 16384)]
    pub max_image_pixels: u64,

    /// Largest accepted request body in bytes (default: the function config's
    /// maxRequestBodySize, else 32 MiB). Larger bodies get 413 before they are read.
    #[arg(long, env = "NUCLIO_ORT_MAX_BODY_SIZE")]
    pub max_body_size: Option<usize>,

    /// Per-request deadline, e.g. `30s` (default: the function config's eventTimeout, else none).
    #[arg(long, env = "NUCLIO_ORT_EVENT_TIMEOUT", value_parser = humantime::parse_duration)]
    pub event_timeout: Option<Duration>,

    /// Largest inference batch (default: the model's static batch, else 16).
    #[arg(long, env = "NUCLIO_ORT_MAX_BATCH")]
    pub max_batch: Option<usize>,

    /// How long a non-empty queue waits for more requests to fill a batch.
    #[arg(long, env = "NUCLIO_ORT_MAX_QUEUE_DELAY", default_value = "2ms", value_parser = humantime::parse_duration)]
    pub max_queue_delay: Duration,

    /// Requests allowed to wait for inference per model; beyond that, 503 with Retry-After.
    #[arg(long, env = "NUCLIO_ORT_MAX_QUEUE")]
    pub max_queue: Option<usize>,

    /// Longest time a request may wait in the inference queue before it is refused with 503.
    #[arg(long, env = "NUCLIO_ORT_MAX_QUEUE_WAIT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub max_queue_wait: Duration,

    /// Decode large JPEGs with libjpeg-turbo's DCT scaling (1/2, 1/4, 1/8) to the smallest
    /// scale not below the model input, then letterbox. Much faster on 4K frames; boxes
    /// differ slightly from Ultralytics' exact path, so it is off by default.
    #[arg(long, env = "NUCLIO_ORT_FAST_DECODE")]
    pub fast_decode: bool,

    /// Directory for TensorRT engine and timing caches (must be writable; an emptyDir in Kubernetes).
    #[arg(
        long,
        env = "NUCLIO_ORT_TRT_CACHE_DIR",
        default_value = "/tmp/nuclio-ort-trt"
    )]
    pub trt_cache_dir: PathBuf,

    /// Time allowed for in-flight requests after SIGTERM (keep below Kubernetes' 30 s grace period).
    #[arg(long, env = "NUCLIO_ORT_SHUTDOWN_TIMEOUT", default_value = "25s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,

    /// Log format: text for people, json for log collectors (Nuclio prettifies JSON lines).
    #[arg(
        long,
        env = "NUCLIO_ORT_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
}

impl HealthcheckArgs {
    /// The URL to probe: `--url`, else `/ready` on the local health port
    /// (an unspecified listen address means "every interface", so loopback).
    pub fn probe_url(&self) -> String {
        if let Some(url) = &self.url {
            return url.clone();
        }
        let mut addr = self.health_listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr.ip() {
                std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        format!("http://{addr}/ready")
    }
}

impl ServeArgs {
    /// Default `maxRequestBodySize` of a Nuclio HTTP trigger in CVAT's function.yaml files.
    pub const DEFAULT_MAX_BODY: usize = 32 * 1024 * 1024;
}

#[derive(Debug, Clone, Args)]
pub struct HealthcheckArgs {
    /// Readiness URL to probe [default: `/ready` on the port of
    /// NUCLIO_ORT_HEALTH_LISTEN, so a moved health port needs no second
    /// setting, else http://127.0.0.1:8082/ready].
    #[arg(long, env = "NUCLIO_ORT_HEALTHCHECK_URL")]
    pub url: Option<String>,

    /// The server's health listen address, read to build the default URL.
    #[arg(long, env = "NUCLIO_ORT_HEALTH_LISTEN", default_value = "0.0.0.0:8082")]
    pub health_listen: SocketAddr,

    /// Give up after this long.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn healthcheck_probes_the_configured_health_port() {
        let parse = |args: &[&str]| match Cli::try_parse_from(args).expect("parses").command {
            Command::Healthcheck(h) => h.probe_url(),
            other => panic!("not a healthcheck: {other:?}"),
        };
        assert_eq!(
            parse(&["nuclio-ort", "healthcheck"]),
            "http://127.0.0.1:8082/ready"
        );
        assert_eq!(
            parse(&[
                "nuclio-ort",
                "healthcheck",
                "--health-listen",
                "0.0.0.0:9092"
            ]),
            "http://127.0.0.1:9092/ready"
        );
        assert_eq!(
            parse(&["nuclio-ort", "healthcheck", "--health-listen", "[::]:9092"]),
            "http://[::1]:9092/ready"
        );
        assert_eq!(
            parse(&[
                "nuclio-ort",
                "healthcheck",
                "--url",
                "http://10.0.0.1:1/ready"
            ]),
            "http://10.0.0.1:1/ready"
        );
    }

    #[test]
    fn every_serve_flag_has_an_env_var() {
        let cmd = Cli::command();
        let serve = cmd.find_subcommand("serve").expect("serve subcommand");
        for arg in serve.get_arguments() {
            if arg.get_id() == "help" || arg.get_id() == "version" {
                continue;
            }
            let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
            assert!(
                env.as_deref().is_some_and(|e| e.starts_with("NUCLIO_ORT_")),
                "flag --{} has no NUCLIO_ORT_ env var",
                arg.get_id()
            );
        }
    }
}
