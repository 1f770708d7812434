//! The hostile-input corpus (`images/bad/`): every file gets a clear answer.
//! Undecodable ones are refused with a 4xx JSON error naming the problem;
//! unusual but valid ones are accepted and give the detections a user expects.

mod common;

use common::{detector_body, post, Server};

fn server(shared: &std::path::Path) -> Server {
    Server::start(&[
        "--model",
        shared
            .join("models/yolo11n-coco-640.onnx")
            .to_str()
            .expect("path"),
    ])
}

#[test]
fn undecodable_files_are_refused_with_the_reason() {
    let Some(shared) = require_shared!() else {
        return;
    };
    let server = server(&shared);
    for (file, status, kind) in [
        ("truncated.jpg", 400, "corrupt_image"),
        ("empty.bin", 400, "empty_image"),
        ("random.bin", 415, "unsupported_image"),
        ("not-an-image.html", 415, "unsupported_image"),
        ("bomb-50000x50000.png", 413, "image_too_large"),
    ] {
        let reply = post(
            &server.url("/"),
            &detector_body(&shared.join("images/bad").join(file), None),
        );
        let json = reply.json();
        assert_eq!(reply.status, status, "{file}: {json}");
        assert_eq!(json["kind"], kind, "{file}: {json}");
        assert!(
            json["error"].as_str().is_some_and(|e| e.len() > 10),
            "{file}: {json}"
        );
    }
}

#[test]
fn decompression_bomb_is_refused_without_allocating_it() {
    let Some(shared) = require_shared!() else {
        return;
    };
    let server = server(&shared);
    // Warm the process up first so the peak below is the steady state.
    let ok = post(
        &server.url("/"),
        &detector_body(&shared.join("images/chelsea.png"), None),
    );
    assert_eq!(ok.status, 200);
    let before = server.peak_rss_kib();
    let body = detector_body(&shared.join("images/bad/bomb-50000x50000.png"), None);
    for _ in 0..3 {
        let reply = post(&server.url("/"), &body);
        assert_eq!(reply.status, 413);
        assert!(reply.json()["error"]
            .as_str()
            .unwrap_or("")
            .contains("50000x50000"));
    }
    let after = server.peak_rss_kib();
    // 50000² RGB would be 7.5 GB; the body itself is ~3 MB of base64 (and a
    // few copies of it while parsing). Anything near the image size would show.
    assert!(
        after.saturating_sub(before) < 64 * 1024,
        "peak RSS grew by {} KiB while refusing the bomb",
        after - before
    );
}

#[test]
fn unusual_but_valid_images_give_sensible_detections() {
    let Some(shared) = require_shared!() else {
        return;
    };
    let server = server(&shared);
    let labels = |file: &str| -> Vec<String> {
        let reply = post(
            &server.url("/"),
            &detector_body(&shared.join("images/bad").join(file), Some(0.25)),
        );
        assert_eq!(
            reply.status,
            200,
            "{file}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        reply
            .json()
            .as_array()
            .expect("array")
            .iter()
            .map(|d| d["label"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    // Every chelsea variant (formats, colour models, bit depths) still shows the cat.
    for file in [
        "chelsea.webp",
        "chelsea.bmp",
        "chelsea.tiff",
        "chelsea.gif",
        "cmyk.jpg",
        "rgba.png",
        "gray.jpg",
        "gray16.png",
        "exif-orientation-6.jpg",
    ] {
        assert!(
            labels(file).contains(&"cat".to_owned()),
            "{file}: {:?}",
            labels(file)
        );
    }
    // Degenerate shapes are valid images with nothing to find.
    assert!(labels("one-pixel.png").is_empty());
    assert!(labels("wide-12000x8.png").is_empty());
}

#[test]
fn exif_orientation_gives_boxes_in_the_upright_frame() {
    let Some(shared) = require_shared!() else {
        return;
    };
    let server = server(&shared);
    // Stored 300x451 (portrait) with orientation 6: displayed 451x300 like chelsea.jpg.
    let reply = post(
        &server.url("/"),
        &detector_body(
            &shared.join("images/bad/exif-orientation-6.jpg"),
            Some(0.25),
        ),
    );
    let upright = post(
        &server.url("/"),
        &detector_body(&shared.join("images/chelsea.jpg"), Some(0.25)),
    );
    let cat = |r: &common::Reply| -> Vec<f64> {
        let json = r.json();
        let det = json
            .as_array()
            .expect("array")
            .iter()
            .find(|d| d["label"] == "cat")
            .cloned()
            .expect("a cat");
        det["points"]
            .as_array()
            .expect("points")
            .iter()
            .map(|v| v.as_f64().expect("number"))
            .collect()
    };
    let (rotated, reference) = (cat(&reply), cat(&upright));
    assert!(
        rotated[2] > 400.0 && rotated[3] < 300.0,
        "box not in the 451x300 upright frame: {rotated:?}"
    );
    assert!(
        common::iou(&rotated, &reference) > 0.95,
        "{rotated:?} vs {reference:?}"
    );
}
