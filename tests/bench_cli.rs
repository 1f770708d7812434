//! `nuclio-ort bench` end to end: against a real server, and against a port
//! where nothing listens.
//!
//! Contract checked here: the JSON summary always prints; the exit status is
//! 0 only when every measured request succeeded, 1 when any failed (connection
//! failures are counted under `connect`, never a panic).

mod common;

use std::process::{Command, Output};

use common::{free_port, Server};

fn bench(args: &[&str]) -> (Output, serde_json::Value) {
    let output = Command::new(env!("CARGO_BIN_EXE_nuclio-ort"))
        .arg("bench")
        .args(args)
        .arg("--json")
        .output()
        .expect("run nuclio-ort bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "bench did not print a JSON summary ({e}); stdout: {stdout}; stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output, summary)
}

#[test]
fn bench_counts_requests_against_a_real_server() {
    let Some(shared) = require_shared!() else {
        return;
    };
    let model = shared.join("models/yolo11n-coco-320.onnx");
    let image = shared.join("images/chelsea.jpg");
    let server = Server::start(&["--model", model.to_str().expect("utf-8 path")]);
    let (output, s) = bench(&[
        "--url",
        &server.url("/"),
        "--image",
        image.to_str().expect("utf-8 path"),
        "--concurrency",
        "2",
        "--requests",
        "7",
        "--warmup",
        "2",
        "--threshold",
        "0.25",
    ]);
    assert!(output.status.success(), "exit {:?}: {s}", output.status);
    assert_eq!(s["requests"], 7, "{s}");
    assert_eq!(s["ok"], 7, "{s}");
    assert_eq!(s["latency_ms"]["count"], 7, "{s}");
    assert_eq!(s["errors"], serde_json::json!({}), "{s}");
    assert_eq!(s["warmup_errors"], 0, "{s}");
    assert!(s["requests_per_s"].as_f64().unwrap_or(0.0) > 0.0, "{s}");
    let p50 = s["latency_ms"]["p50"].as_f64().unwrap_or(0.0);
    let max = s["latency_ms"]["max"].as_f64().unwrap_or(0.0);
    assert!(p50 > 0.0 && p50 <= max, "{s}");
    // Closed loop: the workers were busy with requests nearly all the time,
    // so the latencies must add up to about concurrency × duration (catches
    // latencies that are recorded wrongly while the counts look right).
    let busy = s["latency_ms"]["mean"].as_f64().unwrap_or(0.0) * 7.0 / 1000.0;
    let wall = 2.0 * s["duration_s"].as_f64().unwrap_or(0.0);
    assert!(
        busy > 0.5 * wall && busy < 1.05 * wall,
        "busy {busy} s, wall {wall} s: {s}"
    );
    // The cat is found: the reply was a real detector answer, not just a 200.
    assert!(s["shapes"].as_u64().unwrap_or(0) >= 1, "{s}");
}

#[test]
fn bench_reports_connection_failures_and_exits_nonzero() {
    let Some(shared) = require_shared!() else {
        return;
    };
    let image = shared.join("images/chelsea.jpg");
    let url = format!("http://127.0.0.1:{}/", free_port());
    let (output, s) = bench(&[
        "--url",
        &url,
        "--image",
        image.to_str().expect("utf-8 path"),
        "--concurrency",
        "2",
        "--requests",
        "5",
    ]);
    assert_eq!(output.status.code(), Some(1), "{s}");
    assert_eq!(s["requests"], 5, "{s}");
    assert_eq!(s["ok"], 0, "{s}");
    assert_eq!(s["errors"]["connect"]["count"], 5, "{s}");
}
