//! SAM in browser-decoder mode (`--sam-encoder` only): the `{"blob"}` reply
//! CVAT's SAM plugin decodes, the embedding cache and its single-flight, and
//! the hostile-image corpus.

mod common;

use std::path::Path;

use base64::Engine;
use common::{post, Server};
use nuclio_ort::{
    imaging::{decode_image, DecodeLimits},
    models::sam::preprocess::preprocess,
};

const NAME: &str = "pth-facebookresearch-sam-vit-h";
const BLOB_BYTES: usize = 256 * 64 * 64 * 4;

fn fixture(file: &str) -> String {
    format!("{}/tests/fixtures/sam/{file}", env!("CARGO_MANIFEST_DIR"))
}

fn server() -> Server {
    Server::start(&["--sam-encoder", &fixture("encoder.onnx"), "--threads", "1"])
}

fn body(image: &Path) -> Vec<u8> {
    let bytes = std::fs::read(image).unwrap_or_else(|e| panic!("{}: {e}", image.display()));
    serde_json::to_vec(&serde_json::json!({
        "image": base64::engine::general_purpose::STANDARD.encode(bytes),
        "pos_points": [], "neg_points": [], "obj_bbox": null,
    }))
    .expect("json")
}

fn blob(reply: &common::Reply) -> Vec<f32> {
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let json = reply.json();
    let text = json["blob"].as_str().expect("blob");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("base64");
    assert_eq!(raw.len(), BLOB_BYTES);
    raw.chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// `name{labels…} value` lines of the metrics page whose labels contain all of `labels`.
fn metric(server: &Server, name: &str, labels: &[&str]) -> f64 {
    let page = common::get(&server.metrics_url());
    let text = String::from_utf8_lossy(&page.body).into_owned();
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn blob_is_the_encoder_output_on_sam_preprocessed_pixels() {
    let Some(shared) = require_shared!() else {
        return;
    };
    let server = server();
    let image = shared.join("images/chelsea.png");
    let got = blob(&post(&server.url("/"), &body(&image)));

    // encoder.onnx: emb[c, i, j] = mean(x[c % 3] over the 16x16 cell (i, j)) * (1 + c/256).
    let decoded = decode_image(
        &std::fs::read(&image).expect("read"),
        DecodeLimits::default(),
    )
    .expect("decode");
    let tensor = preprocess(&decoded.rgb);
    let mut worst = 0f64;
    for c in 0..256 {
        for i in 0..64 {
            for j in 0..64 {
                let cell = tensor.slice(ndarray::s![
                    0,
                    c % 3,
                    16 * i..16 * i + 16,
                    16 * j..16 * j + 16
                ]);
                let mean = (cell.iter().map(|v| f64::from(*v)).sum::<f64>() / 256.0) as f32;
                let want = mean * (1.0 + c as f32 / 256.0);
                let have = got[(c * 64 + i) * 64 + j];
                let err = f64::from((have - want).abs());
                assert!(
                    err <= 1e-5 + 1e-5 * f64::from(want.abs()),
                    "emb[{c},{i},{j}] = {have}, want {want}"
                );
                worst = worst.max(err);
            }
        }
    }
    // chelsea is 451x300 → 1024x681: rows 43.. of the 64x64 grid are pure padding.
    assert!(got[(5 * 64 + 43) * 64..(5 * 64 + 64) * 64]
        .iter()
        .all(|v| *v == 0.0));
    assert!(got[(5 * 64 + 42) * 64..(5 * 64 + 43) * 64]
        .iter()
        .any(|v| *v != 0.0));

    // And the Python reference's own samples of the same embedding.
    let path = format!(
        "{}/tests/golden/sam/chelsea.png.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("golden")).expect("json");
    for row in golden["fixture_embedding"]["rows"]
        .as_array()
        .expect("rows")
    {
        let [c, i, j] = [0, 1, 2].map(|k| row[k].as_u64().expect("index") as usize);
        let want = row[3].as_f64().expect("value");
        let have = f64::from(got[(c * 64 + i) * 64 + j]);
        assert!(
            (have - want).abs() <= 1e-5 + 1e-5 * want.abs(),
            "emb[{c},{i},{j}] {have} vs {want}"
        );
    }
}

#[test]
fn second_request_for_a_frame_hits_the_cache() {
    let Some(shared) = require_shared!() else {
        return;
    };
    let server = server();
    let request = body(&shared.join("images/coffee.png"));
    let first = blob(&post(&server.url("/"), &request));
    let second = blob(&post(&server.url("/"), &request));
    assert_eq!(first, second);
    let other = blob(&post(
        &server.url("/"),
        &body(&shared.join("images/astronaut.png")),
    ));
    assert_ne!(first, other);
    let result = |r: &str| {
        metric(
            &server,
            "nuclio_ort_sam_cache_total",
            &[&format!("function=\"{NAME}\""), &format!("result=\"{r}\"")],
        )
    };
    assert_eq!(result("miss"), 2.0);
    assert_eq!(result("hit"), 1.0);
    // Warm-up plus one run per distinct frame.
    let runs = metric(
        &server,
        "nuclio_ort_inference_seconds_count",
        &[&format!("model=\"{NAME}/encoder\"")],
    );
    assert_eq!(runs, 3.0);
}

#[test]
fn concurrent_first_requests_run_the_encoder_once() {
    let Some(shared) = require_shared!() else {
        return;
    };
    let server = server();
    // A 4K frame, so the first decode is slow enough for the others to pile up.
    let request = body(&shared.join("images/scene-4k.jpg"));
    let url = server.url("/");
    let replies: Vec<Vec<f32>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| blob(&post(&url, &request))))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client thread"))
            .collect()
    });
    assert!(replies.windows(2).all(|w| w[0] == w[1]));
    let runs = metric(
        &server,
        "nuclio_ort_inference_seconds_count",
        &[&format!("model=\"{NAME}/encoder\"")],
    );
    assert_eq!(
        runs,
        2.0,
        "encoder ran {} times for one new frame (plus warm-up)",
        runs - 1.0
    );
    let result = |r: &str| {
        metric(
            &server,
            "nuclio_ort_sam_cache_total",
            &[&format!("result=\"{r}\"")],
        )
    };
    assert_eq!(result("miss"), 1.0);
    assert_eq!(result("hit") + result("coalesced"), 7.0);
    assert_eq!(
        metric(
            &server,
            "nuclio_ort_stage_seconds_count",
            &[&format!("function=\"{NAME}\""), "stage=\"decode\""]
        ),
        1.0
    );
}

#[test]
fn hostile_images_get_clear_answers() {
    let Some(shared) = require_shared!() else {
        return;
    };
    let server = server();
    let bad = shared.join("images/bad");
    for (file, status, kind) in [
        ("truncated.jpg", 400, "corrupt_image"),
        ("empty.bin", 400, "empty_image"),
        ("random.bin", 415, "unsupported_image"),
        ("not-an-image.html", 415, "unsupported_image"),
        ("bomb-50000x50000.png", 413, "image_too_large"),
    ] {
        let reply = post(&server.url("/"), &body(&bad.join(file)));
        let json = reply.json();
        assert_eq!(reply.status, status, "{file}: {json}");
        assert_eq!(json["kind"], kind, "{file}: {json}");
    }
    for file in [
        "chelsea.webp",
        "chelsea.bmp",
        "chelsea.tiff",
        "chelsea.gif",
        "cmyk.jpg",
        "rgba.png",
        "gray.jpg",
        "gray16.png",
        "one-pixel.png",
        "wide-12000x8.png",
        "exif-orientation-6.jpg",
    ] {
        let values = blob(&post(&server.url("/"), &body(&bad.join(file))));
        assert!(values.iter().all(|v| v.is_finite()), "{file}");
        assert!(
            values.iter().any(|v| *v != 0.0),
            "{file}: all-zero embedding"
        );
    }
    // Missing image and non-JSON bodies are client errors too.
    for request in [&br#"{"pos_points": []}"#[..], b"not json", b""] {
        let reply = post(&server.url("/"), request);
        assert_eq!(
            reply.status,
            400,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
    }
}
