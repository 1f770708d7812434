//! The Nuclio function contract over real HTTP: probes, errors, limits,
//! metrics, timeouts, graceful stop and the `healthcheck` subcommand.

mod common;

use std::{
    io::{Read, Write},
    net::TcpStream,
    process::Command,
    time::{Duration, Instant},
};

use common::{agent, detector_body, get, post, post_with, Server};

fn model(shared: &std::path::Path) -> String {
    shared
        .join("models/yolo11n-coco-640.onnx")
        .to_string_lossy()
        .into_owned()
}

#[test]
fn liveness_answers_during_load_and_readiness_only_after_warm_up() {
    let Some(shared) = require_shared!() else {
        return;
    };
    let mut server = Server::spawn(&["--model", &model(&shared)]);
    // The first answer of the health port: live already, not yet ready.
    let deadline = Instant::now() + Duration::from_secs(30);
    let first_ready = loop {
        assert!(Instant::now() < deadline, "health port never answered");
        if let Ok(mut live) = agent().get(&server.health_url("/live")).call() {
            assert_eq!(live.status().as_u16(), 200);
            let _ = live.body_mut().read_to_string();
            break get(&server.health_url("/ready"));
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    assert_eq!(
        first_ready.status,
        503,
        "ready before the model was loaded: {}",
        first_ready.json()
    );
    assert_eq!(first_ready.json()["status"], "loading");
    assert_eq!(
        first_ready.header("retry-after"),
        None,
        "probes are not rate-limited"
    );
    let early = get(&server.url("/__internal/health"));
    assert!(early.status == 503 || early.status == 200);

    server.wait_ready(Duration::from_secs(60));
    let ready = get(&server.url("/__internal/health"));
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["functions"][0]["state"], "ready");
    assert_eq!(get(&server.health_url("/ready")).status, 200);
}

#[test]
fn client_errors_are_4xx_json_naming_the_problem() {
    let Some(shared) = require_shared!() else {
        return;
    };
    let server = Server::start(&["--model", &model(&shared)]);
    let url = server.url("/");
    for (body, status, kind, mention) in [
        (&b"{not json"[..], 400, "invalid_json", "JSON"),
        (&b""[..], 400, "empty_body", "empty"),
        (&br#"{"threshold": 0.3}"#[..], 400, "missing_field", "image"),
        (
            &br#"{"image": "@@@not base64@@@"}"#[..],
            400,
            "invalid_base64",
            "base64",
        ),
        (
            &br#"{"image": "aGVsbG8=", "threshold": 1.5}"#[..],
            400,
            "invalid_field",
            "threshold",
        ),
        (
            &br#"{"image": "aGVsbG8=", "threshold": "NaN"}"#[..],
            400,
            "invalid_field",
            "threshold",
        ),
        (
            &br#"{"image": "aGVsbG8=", "threshold": [1]}"#[..],
            400,
            "invalid_field",
            "threshold",
        ),
        (&br#"{"image": ""}"#[..], 400, "empty_image", "empty"),
    ] {
        let reply = post(&url, body);
        let json = reply.json();
        assert_eq!(
            reply.status,
            status,
            "{}: {json}",
            String::from_utf8_lossy(body)
        );
        assert_eq!(json["kind"], kind, "{json}");
        assert!(
            json["error"].as_str().unwrap_or("").contains(mention),
            "{json}"
        );
    }
    let get_root = get(&url);
    assert_eq!(get_root.status, 405);
    assert_eq!(get_root.json()["kind"], "method_not_allowed");
    let unknown = post(&server.url("/functions/nope"), b"{}");
    assert_eq!(unknown.status, 404);
    assert!(unknown.json()["error"]
        .as_str()
        .unwrap_or("")
        .contains("nope"));
    // Extra fields are ignored and the named route reaches the same function.
    let body = serde_json::json!({"image": base64_of(&shared.join("images/chelsea.jpg")), "threshold": 0.5, "job": 3, "frame": 7});
    let named = post(
        &server.url("/functions/yolo11n-coco-640"),
        body.to_string().as_bytes(),
    );
    assert_eq!(
        named.status,
        200,
        "{}",
        String::from_utf8_lossy(&named.body)
    );
    assert_eq!(named.json()[0]["label"], "cat");
}

fn base64_of(path: &std::path::Path) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(std::fs::read(path).expect("read"))
}

#[test]
fn default_threshold_applies_when_cvat_omits_it() {
    let Some(shared) = require_shared!() else {
        return;
    };
    let server = Server::start(&["--model", &model(&shared), "--threshold", "0.9"]);
    let image = shared.join("images/chelsea.jpg");
    // Cat scores ~0.85: dropped at the configured 0.9, kept when the request asks 0.5.
    assert_eq!(
        post(&server.url("/"), &detector_body(&image, None)).json(),
        serde_json::json!([])
    );
    assert_eq!(
        post(&server.url("/"), &detector_body(&image, Some(0.5))).json()[0]["label"],
        "cat"
    );
}

#[test]
fn oversize_bodies_get_413_before_being_read() {
    let Some(shared) = require_shared!() else {
        return;
    };
    let server = Server::start(&["--model", &model(&shared), "--max-body-size", "65536"]);
    // Headers only, announcing 100 MB: the 413 comes back without a byte of body sent.
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(stream, "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n").expect("write");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(
        response.contains("body_too_large") && response.contains("65536"),
        "{response}"
    );

    let big = detector_body(&shared.join("images/scene-1080p.jpg"), None);
    assert!(big.len() > 65536);
    // A chunked body declares no length: refused once it passes the limit.
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(stream, "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").expect("write");
    for chunk in big.chunks(16384) {
        if write!(stream, "{:x}\r\n", chunk.len())
            .and_then(|_| stream.write_all(chunk))
            .and_then(|_| stream.write_all(b"\r\n"))
            .is_err()
        {
            break; // the server may close as soon as it has refused
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(response.contains("body_too_large"), "{response}");

    // Just under the limit is fine.
    let small = detector_body(&shared.join("images/chelsea.jpg"), None);
    assert!(small.len() < 65536);
    assert_eq!(post(&server.url("/"), &small).status, 200);
}

#[test]
fn responses_are_never_compressed() {
    let Some(shared) = require_shared!() else {
        return;
    };
    let server = Server::start(&["--model", &model(&shared)]);
    let body = detector_body(&shared.join("images/coffee.jpg"), Some(0.25));
    let reply = post_with(
        &server.url("/"),
        &[
            ("Accept-Encoding", "gzip, deflate, br"),
            ("Content-Type", "application/json"),
        ],
        &body,
    );
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-encoding"), None);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert!(reply.json().as_array().is_some());
}

#[test]
fn metrics_split_requests_stages_images_and_errors() {
    let Some(shared) = require_shared!() else {
        return;
    };
    let server = Server::start(&["--model", &model(&shared)]);
    assert_eq!(
        post(
            &server.url("/"),
            &detector_body(&shared.join("images/chelsea.jpg"), None)
        )
        .status,
        200
    );
    assert_eq!(post(&server.url("/"), b"{oops").status, 400);
    let text = String::from_utf8(get(&server.metrics_url()).body).expect("utf8");
    for needle in [
        r#"nuclio_ort_requests_total{function="yolo11n-coco-640",status="200"} 1"#,
        r#"nuclio_ort_requests_total{function="yolo11n-coco-640",status="400"} 1"#,
        r#"nuclio_ort_request_duration_seconds_bucket{function="yolo11n-coco-640",status="200""#,
        r#"nuclio_ort_stage_seconds_count{function="yolo11n-coco-640",stage="decode"} 1"#,
        r#"nuclio_ort_stage_seconds_count{function="yolo11n-coco-640",stage="preprocess"} 1"#,
        r#"nuclio_ort_stage_seconds_count{function="yolo11n-coco-640",stage="inference"} 1"#,
        r#"nuclio_ort_stage_seconds_count{function="yolo11n-coco-640",stage="postprocess"} 1"#,
        r#"nuclio_ort_inference_seconds_count{model="yolo11n-coco-640"}"#,
        r#"nuclio_ort_images_decoded_total{format="jpg"}"#,
        r#"nuclio_ort_errors_total{kind="invalid_json"} 1"#,
        r#"nuclio_processor_handled_events_total{function="yolo11n-coco-640",result="success"} 1"#,
        "nuclio_ort_ready 1",
    ] {
        assert!(text.contains(needle), "metrics lack `{needle}`:\n{text}");
    }
}

#[test]
fn event_timeout_answers_504() {
    let Some(shared) = require_shared!() else {
        return;
    };
    let server = Server::start(&["--model", &model(&shared), "--event-timeout", "1ms"]);
    let reply = post(
        &server.url("/"),
        &detector_body(&shared.join("images/scene-4k.jpg"), None),
    );
    assert_eq!(reply.status, 504);
    assert_eq!(reply.json()["kind"], "timeout");
}

#[test]
fn sigterm_finishes_in_flight_requests_then_exits_zero() {
    let Some(shared) = require_shared!() else {
        return;
    };
    let mut server = Server::start(&[
        "--model",
        &model(&shared),
        "--threads",
        "1",
        "--shutdown-timeout",
        "20s",
    ]);
    let body = detector_body(&shared.join("images/scene-4k.jpg"), Some(0.25));
    let url = server.url("/");
    let inflight: Vec<_> = (0..4)
        .map(|_| {
            let (url, body) = (url.clone(), body.clone());
            std::thread::spawn(move || post(&url, &body))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(150));
    server.signal("TERM");
    // Not ready any more while draining (or already gone).
    std::thread::sleep(Duration::from_millis(50));
    if let Ok(r) = agent().get(&server.health_url("/ready")).call() {
        assert_eq!(r.status().as_u16(), 503);
    }
    for handle in inflight {
        let reply = handle.join().expect("request thread");
        assert_eq!(
            reply.status,
            200,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        assert!(!reply.json().as_array().expect("array").is_empty());
    }
    let deadline = Instant::now() + Duration::from_secs(25);
    let status = loop {
        if let Some(status) = server.child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "server did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status}");
}

#[test]
fn healthcheck_subcommand_reports_readiness() {
    let Some(shared) = require_shared!() else {
        return;
    };
    let server = Server::start(&["--model", &model(&shared)]);
    let run = |url: String| {
        Command::new(env!("CARGO_BIN_EXE_nuclio-ort"))
            .args(["healthcheck", "--url", &url])
            .output()
            .expect("run healthcheck")
    };
    assert!(run(server.health_url("/ready")).status.success());
    let closed = run(format!("http://127.0.0.1:{}/ready", common::free_port()));
    assert_eq!(closed.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&closed.stderr).contains("not ready"));
}

#[test]
fn startup_errors_are_one_clear_line() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_nuclio-ort"))
            .arg("serve")
            .args(args)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--health-listen",
                "127.0.0.1:0",
                "--metrics-listen",
                "127.0.0.1:0",
            ])
            .output()
            .expect("run")
    };
    let missing = run(&["--model", "/nonexistent/model.onnx"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("does not exist"));
    let nothing = run(&[]);
    assert!(!nothing.status.success());
    assert!(String::from_utf8_lossy(&nothing.stderr).contains("nothing to serve"));
    let no_ort = Command::new(env!("CARGO_BIN_EXE_nuclio-ort"))
        .args([
            "serve",
            "--model",
            "/nonexistent/model.onnx",
            "--listen",
            "127.0.0.1:0",
            "--health-listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&no_ort.stderr);
    assert!(!no_ort.status.success());
    assert!(
        stderr.contains("ONNX Runtime library not found")
            && stderr.contains("pip install onnxruntime"),
        "{stderr}"
    );
    let gpu = Command::new(env!("CARGO_BIN_EXE_nuclio-ort"))
        .args([
            "serve",
            "--device",
            "cuda:0",
            "--model",
            &format!(
                "{}/../shared/models/yolo11n-coco-320.onnx",
                env!("CARGO_MANIFEST_DIR")
            ),
        ])
        .args([
            "--listen",
            "127.0.0.1:0",
            "--health-listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&gpu.stderr);
    assert!(
        !gpu.status.success(),
        "a CUDA device on a CPU-only ONNX Runtime must not fall back silently"
    );
    assert!(stderr.contains("CUDA"), "{stderr}");
}
