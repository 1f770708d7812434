//! Logs and metrics. Logs are structured (JSON lines with `--log-format
//! json`, which Nuclio's deploy log prettifies); metrics are Prometheus text
//! rendered on the metrics port.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::{fmt, EnvFilter};

use crate::config::LogFormat;

pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("NUCLIO_ORT_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,ort=warn"));
    // Colours only on a terminal: Nuclio shows the last log lines raw.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => builder.compact().try_init(),
    };
}

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the global recorder once and returns the handle that renders it.
pub fn metrics_handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            // Latency buckets from 0.5 ms (NMS, a cached SAM click) to 60 s (a 4K frame on a busy CPU).
            let seconds = [
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
                30.0, 60.0,
            ];
            let batch = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full("nuclio_ort_batch_size".into()), &batch)
                });
            let recorder = match builder {
                Ok(b) => b.build_recorder(),
                Err(_) => PrometheusBuilder::new().build_recorder(),
            };
            let handle = recorder.handle();
            let _ = metrics::set_global_recorder(recorder);
            describe();
            handle
        })
        .clone()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "nuclio_ort_requests_total",
        "Invocations by function and HTTP status."
    );
    describe_histogram!(
        "nuclio_ort_request_duration_seconds",
        Unit::Seconds,
        "End-to-end invocation latency by function and status."
    );
    describe_histogram!(
        "nuclio_ort_stage_seconds",
        Unit::Seconds,
        "Time per pipeline stage (decode, preprocess, queue, inference, postprocess)."
    );
    describe_histogram!(
        "nuclio_ort_inference_seconds",
        Unit::Seconds,
        "ONNX Runtime run time per batch, by model."
    );
    describe_histogram!(
        "nuclio_ort_batch_size",
        "Requests per inference batch, by model."
    );
    describe_counter!(
        "nuclio_ort_images_decoded_total",
        "Images decoded, by format."
    );
    describe_counter!("nuclio_ort_errors_total", "Error replies by kind.");
    describe_counter!(
        "nuclio_ort_rejected_total",
        "Requests refused by admission control, by reason."
    );
    describe_counter!(
        "nuclio_processor_handled_events_total",
        "Nuclio-compatible event counter (result=success|failure)."
    );
    describe_gauge!(
        "nuclio_ort_ready",
        "1 when every function is loaded and warmed up."
    );
}
