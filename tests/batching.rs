//! Dynamic batching and admission control: concurrent single-image requests
//! are batched without changing any answer, static-batch models still work,
//! and an overloaded server answers every request (503 + Retry-After when full).

mod common;

use std::{sync::Arc, thread};

use common::{detector_body, get, post, Server};
use serde_json::Value;

const IMAGES: [&str; 6] = [
    "astronaut.jpg",
    "chelsea.jpg",
    "coffee.jpg",
    "camera.png",
    "rocket.jpg",
    "scene-1080p.jpg",
];

fn close(a: &Value, b: &Value) -> bool {
    let (a, b) = (a.as_array().expect("array"), b.as_array().expect("array"));
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            let pts = |v: &Value| -> Vec<f64> {
                v["points"]
                    .as_array()
                    .expect("points")
                    .iter()
                    .map(|p| p.as_f64().expect("f64"))
                    .collect()
            };
            let conf = |v: &Value| -> f64 {
                v["confidence"]
                    .as_str()
                    .expect("string")
                    .parse()
                    .expect("number")
            };
            x["label"] == y["label"]
                && pts(x).iter().zip(pts(y)).all(|(p, q)| (p - q).abs() < 0.01)
                && (conf(x) - conf(y)).abs() < 1e-4
        })
}

#[test]
fn batched_answers_equal_single_answers() {
    let Some(shared) = require_shared!() else {
        return;
    };
    let model = shared.join("models/yolo11n-coco-320.onnx");
    let server = Server::start(&[
        "--model",
        model.to_str().expect("path"),
        "--max-batch",
        "8",
        "--max-queue-delay",
        "30ms",
        "--max-queue",
        "64",
    ]);
    let bodies: Vec<Vec<u8>> = IMAGES
        .iter()
        .map(|i| detector_body(&shared.join("images").join(i), Some(0.25)))
        .collect();
    // Alone, one after the other: batch size 1.
    let alone: Vec<Value> = bodies
        .iter()
        .map(|b| post(&server.url("/"), b).json())
        .collect();
    // 24 concurrent requests over the same images in shuffled order.
    let url = Arc::new(server.url("/"));
    let bodies = Arc::new(bodies);
    let handles: Vec<_> = (0..24)
        .map(|k| {
            let (url, bodies) = (url.clone(), bodies.clone());
            thread::spawn(move || {
                let i = (k * 5) % bodies.len();
                let reply = post(&url, &bodies[i]);
                assert_eq!(
                    reply.status,
                    200,
                    "{}",
                    String::from_utf8_lossy(&reply.body)
                );
                (i, reply.json())
            })
        })
        .collect();
    for handle in handles {
        let (i, got) = handle.join().expect("thread");
        assert!(
            close(&got, &alone[i]),
            "{}: batched {got} != alone {}",
            IMAGES[i],
            alone[i]
        );
    }
    // Batching really happened: more requests than batches.
    let metrics = String::from_utf8(get(&server.metrics_url()).body).expect("utf8");
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing:\n{metrics}"))
    };
    let (requests, batches) = (
        value("nuclio_ort_batch_size_sum"),
        value("nuclio_ort_batch_size_count"),
    );
    assert!(requests >= 30.0, "{requests}");
    assert!(
        batches < requests,
        "no batch larger than 1 formed: {batches} batches for {requests} requests"
    );
}

#[test]
fn static_batch_models_run_batch_one_under_concurrency() {
    let Some(shared) = require_shared!() else {
        return;
    };
    // The published int8 model has a static batch axis of 1.
    let model = shared.join("models/yolo11n-coco-320-int8.onnx");
    let server = Server::start(&[
        "--model",
        model.to_str().expect("path"),
        "--max-batch",
        "16",
    ]);
    let body = Arc::new(detector_body(
        &shared.join("images/chelsea.jpg"),
        Some(0.25),
    ));
    let url = Arc::new(server.url("/"));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (url, body) = (url.clone(), body.clone());
            thread::spawn(move || post(&url, &body))
        })
        .collect();
    for handle in handles {
        let reply = handle.join().expect("thread");
        assert_eq!(
            reply.status,
            200,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        assert_eq!(reply.json()[0]["label"], "cat");
    }
}

#[test]
fn overload_answers_every_request_and_refuses_with_503() {
    let Some(shared) = require_shared!() else {
        return;
    };
    let model = shared.join("models/yolo11n-coco-640.onnx");
    let server = Server::start(&[
        "--model",
        model.to_str().expect("path"),
        "--max-queue",
        "1",
        "--max-batch",
        "1",
        "--threads",
        "1",
    ]);
    let body = Arc::new(detector_body(&shared.join("images/scene-4k.jpg"), None));
    let url = Arc::new(server.url("/"));
    let handles: Vec<_> = (0..24)
        .map(|_| {
            let (url, body) = (url.clone(), body.clone());
            thread::spawn(move || post(&url, &body))
        })
        .collect();
    let (mut ok, mut refused) = (0, 0);
    for handle in handles {
        let reply = handle.join().expect("every request is answered");
        match reply.status {
            200 => ok += 1,
            503 => {
                refused += 1;
                assert_eq!(reply.json()["kind"], "overloaded");
                assert!(
                    reply.header("retry-after").is_some(),
                    "503 without Retry-After"
                );
            }
            other => panic!(
                "unexpected status {other}: {}",
                String::from_utf8_lossy(&reply.body)
            ),
        }
    }
    assert!(ok >= 1 && refused >= 1, "ok {ok}, refused {refused}");
    assert_eq!(ok + refused, 24);
}

#[test]
fn fast_decode_keeps_boxes_close_to_the_exact_path() {
    let Some(shared) = require_shared!() else {
        return;
    };
    let model = shared.join("models/yolo11n-coco-640.onnx");
    let exact = Server::start(&["--model", model.to_str().expect("path")]);
    let fast = Server::start(&["--model", model.to_str().expect("path"), "--fast-decode"]);
    for image in ["scene-4k.jpg", "scene-1080p.jpg"] {
        let body = detector_body(&shared.join("images").join(image), Some(0.5));
        let (a, b) = (
            post(&exact.url("/"), &body).json(),
            post(&fast.url("/"), &body).json(),
        );
        let (a, b) = (a.as_array().expect("array"), b.as_array().expect("array"));
        assert_eq!(a.len(), b.len(), "{image}: {a:?} vs {b:?}");
        for x in a {
            let pts = |v: &Value| -> Vec<f64> {
                v["points"]
                    .as_array()
                    .expect("points")
                    .iter()
                    .map(|p| p.as_f64().expect("f64"))
                    .collect()
            };
            let best = b
                .iter()
                .filter(|y| y["label"] == x["label"])
                .map(|y| common::iou(&pts(x), &pts(y)))
                .fold(0.0, f64::max);
            assert!(best > 0.9, "{image} {}: IoU {best}", x["label"]);
        }
    }
}
