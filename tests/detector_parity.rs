//! Parity with Ultralytics' pipeline: the server's detections must match the
//! goldens produced by `reference/yolo_reference.py` (numpy + OpenCV +
//! onnxruntime) for every shared image, both models, thresholds 0.25 and 0.5:
//! same count, same labels, every box IoU ≥ 0.99, confidence within 0.01.

mod common;

use std::path::{Path, PathBuf};

use common::{detector_body, iou, post, Server};
use serde_json::Value;

fn goldens(model: &str) -> Vec<(PathBuf, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/yolo")
        .join(model);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 20,
        "expected goldens for every image and threshold in {}",
        dir.display()
    );
    files
        .into_iter()
        .map(|p| {
            let golden = serde_json::from_slice(&std::fs::read(&p).expect("read golden"))
                .expect("golden json");
            (p, golden)
        })
        .collect()
}

fn points(v: &Value) -> Vec<f64> {
    v["points"]
        .as_array()
        .expect("points")
        .iter()
        .map(|p| p.as_f64().expect("number"))
        .collect()
}

fn confidence(v: &Value) -> f64 {
    match &v["confidence"] {
        Value::String(s) => s.parse().expect("numeric confidence string"),
        other => other.as_f64().expect("confidence"),
    }
}

/// Compares one reply with its golden; returns a description of every mismatch.
fn compare(got: &[Value], want: &[Value]) -> Vec<String> {
    let mut problems = Vec::new();
    if got.len() != want.len() {
        problems.push(format!("count {} != golden {}", got.len(), want.len()));
    }
    let mut used = vec![false; got.len()];
    for w in want {
        let best = got
            .iter()
            .enumerate()
            .filter(|(i, g)| !used[*i] && g["label"] == w["label"])
            .map(|(i, g)| (i, iou(&points(g), &points(w))))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        match best {
            Some((i, overlap)) if overlap >= 0.99 => {
                used[i] = true;
                let dc = (confidence(&got[i]) - confidence(w)).abs();
                if dc > 0.01 {
                    problems.push(format!("{}: confidence differs by {dc:.4}", w["label"]));
                }
            }
            Some((_, overlap)) => {
                problems.push(format!("{}: best IoU {overlap:.4} < 0.99", w["label"]))
            }
            None => problems.push(format!("{}: missing", w["label"])),
        }
    }
    problems
}

fn check_model(model: &str) {
    let Some(shared) = require_shared!() else {
        return;
    };
    let server = Server::start(&[
        "--model",
        shared
            .join(format!("models/{model}.onnx"))
            .to_str()
            .expect("path"),
    ]);
    let mut failures = Vec::new();
    for (path, golden) in goldens(model) {
        let image = shared.join(golden["image"].as_str().expect("image"));
        let threshold = golden["threshold"].as_f64().expect("threshold") as f32;
        let reply = post(&server.url("/"), &detector_body(&image, Some(threshold)));
        assert_eq!(
            reply.status,
            200,
            "{}: {}",
            image.display(),
            String::from_utf8_lossy(&reply.body)
        );
        let got = reply.json();
        let got = got.as_array().expect("array reply");
        for shape in got {
            assert_eq!(shape["type"], "rectangle");
            assert!(
                shape["confidence"].is_string(),
                "confidence must be a string like CVAT's functions send"
            );
            assert_eq!(shape["attributes"], Value::Array(vec![]));
        }
        let problems = compare(got, golden["detections"].as_array().expect("detections"));
        if !problems.is_empty() {
            failures.push(format!(
                "{}: {}",
                path.file_name().unwrap_or_default().to_string_lossy(),
                problems.join("; ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "parity failures:\n{}",
        failures.join("\n")
    );
}

#[test]
fn yolo11n_640_matches_reference_goldens() {
    check_model("yolo11n-coco-640");
}

#[test]
fn yolo11n_320_matches_reference_goldens() {
    check_model("yolo11n-coco-320");
}

/// The classes the issue names, asserted directly (not only through goldens).
#[test]
fn expected_classes_on_the_shared_photos() {
    let Some(shared) = require_shared!() else {
        return;
    };
    let server = Server::start(&[
        "--model",
        shared
            .join("models/yolo11n-coco-640.onnx")
            .to_str()
            .expect("path"),
    ]);
    let labels = |image: &str| -> Vec<String> {
        let reply = post(
            &server.url("/"),
            &detector_body(&shared.join("images").join(image), Some(0.25)),
        );
        assert_eq!(reply.status, 200);
        let mut labels: Vec<String> = reply
            .json()
            .as_array()
            .expect("array")
            .iter()
            .map(|d| d["label"].as_str().expect("label").to_owned())
            .collect();
        labels.sort();
        labels.dedup();
        labels
    };
    assert!(labels("astronaut.png").contains(&"person".to_owned()));
    assert_eq!(labels("chelsea.png"), vec!["cat"]);
    let coffee = labels("coffee.png");
    assert!(
        coffee.contains(&"cup".to_owned()) && coffee.contains(&"dining table".to_owned()),
        "{coffee:?}"
    );
    assert!(labels("camera.png").contains(&"person".to_owned()));
    assert!(labels("rocket.jpg").is_empty());
}
