//! SAM in server-decoder mode (`--sam-decoder`): CVAT's generic interactor
//! reply `{mask, bounds, points}` from the fixture decoders, whose masks are
//! known exactly (disks of radius 40 around positive points, the inclusive
//! box, minus disks around negative points; see tests/fixtures/sam/README.md).
//! astronaut.png is 512x512, so the 1024/512 coordinate scale is exact.

mod common;

use std::{path::Path, time::Instant};

use base64::Engine;
use common::{post, Reply, Server};
use serde_json::{json, Value};

const R: f64 = 40.0;

fn fixture(file: &str) -> String {
    format!("{}/tests/fixtures/sam/{file}", env!("CARGO_MANIFEST_DIR"))
}

fn server(decoder: &str) -> Server {
    Server::start(&[
        "--sam-encoder",
        &fixture("encoder.onnx"),
        "--sam-decoder",
        &fixture(decoder),
        "--threads",
        "1",
    ])
}

fn body(image: &Path, pos: Value, neg: Value, bbox: Value) -> Vec<u8> {
    let bytes = std::fs::read(image).unwrap_or_else(|e| panic!("{}: {e}", image.display()));
    serde_json::to_vec(&json!({
        "image": base64::engine::general_purpose::STANDARD.encode(bytes),
        "pos_points": pos, "neg_points": neg, "obj_bbox": bbox,
    }))
    .expect("json")
}

struct MaskReply {
    bounds: [usize; 4],
    mask: Vec<Vec<u64>>,
    points: Vec<[f64; 2]>,
}

fn mask_reply(reply: &Reply) -> MaskReply {
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let json = reply.json();
    let nums = |v: &Value| -> Vec<f64> {
        v.as_array()
            .expect("array")
            .iter()
            .map(|n| n.as_f64().expect("number"))
            .collect()
    };
    let b = nums(&json["bounds"]);
    MaskReply {
        bounds: [b[0] as usize, b[1] as usize, b[2] as usize, b[3] as usize],
        mask: json["mask"]
            .as_array()
            .expect("mask")
            .iter()
            .map(|row| {
                row.as_array()
                    .expect("row")
                    .iter()
                    .map(|v| v.as_u64().expect("0|255"))
                    .collect()
            })
            .collect(),
        points: json["points"]
            .as_array()
            .expect("points")
            .iter()
            .map(|p| {
                let p = nums(p);
                [p[0], p[1]]
            })
            .collect(),
    }
}

/// Checks the reply against `expected(x, y)` on a `w × h` image: bounds are
/// the inclusive box of set pixels, every crop pixel is 255 exactly where expected.
fn check(reply: &MaskReply, w: usize, h: usize, expected: impl Fn(f64, f64) -> bool) {
    let set: Vec<(usize, usize)> = (0..h)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .filter(|&(x, y)| expected(x as f64, y as f64))
        .collect();
    let bounds = [
        set.iter().map(|p| p.0).min().expect("non-empty"),
        set.iter().map(|p| p.1).min().expect("non-empty"),
        set.iter().map(|p| p.0).max().expect("non-empty"),
        set.iter().map(|p| p.1).max().expect("non-empty"),
    ];
    assert_eq!(reply.bounds, bounds);
    let [x0, y0, x1, y1] = bounds;
    assert_eq!(reply.mask.len(), y1 - y0 + 1);
    for (dy, row) in reply.mask.iter().enumerate() {
        assert_eq!(row.len(), x1 - x0 + 1);
        for (dx, v) in row.iter().enumerate() {
            let want = if expected((x0 + dx) as f64, (y0 + dy) as f64) {
                255
            } else {
                0
            };
            assert_eq!(*v, want, "pixel ({}, {})", x0 + dx, y0 + dy);
        }
    }
}

fn dist(x: f64, y: f64, p: [f64; 2]) -> f64 {
    ((x - p[0]).powi(2) + (y - p[1]).powi(2)).sqrt()
}

fn area(points: &[[f64; 2]]) -> f64 {
    let n = points.len();
    (0..n)
        .map(|i| {
            let (a, b) = (points[i], points[(i + 1) % n]);
            a[0] * b[1] - b[0] * a[1]
        })
        .sum::<f64>()
        .abs()
        / 2.0
}

#[test]
fn positive_point_gives_the_disk_and_its_outline() {
    let Some(shared) = require_shared!() else {
        return;
    };
    let image = shared.join("images/astronaut.png");
    for decoder in ["decoder.onnx", "decoder-multimask.onnx"] {
        let server = server(decoder);
        let reply = mask_reply(&post(
            &server.url("/"),
            &body(&image, json!([[100, 50]]), json!([]), Value::Null),
        ));
        // decoder-multimask returns radii 20/40/60 with IoU 0.5/0.9/0.7: the r=40 mask must win.
        check(&reply, 512, 512, |x, y| dist(x, y, [100.0, 50.0]) < R);
        assert!(reply.points.len() >= 8, "{decoder}: {:?}", reply.points);
        for p in &reply.points {
            let d = dist(p[0], p[1], [100.0, 50.0]);
            assert!(
                (R - 2.0..R).contains(&d),
                "{decoder}: polygon point {p:?} at distance {d}"
            );
        }
        let a = area(&reply.points);
        assert!(
            (a - std::f64::consts::PI * 39.5 * 39.5).abs() < 0.05 * a,
            "{decoder}: polygon area {a}"
        );
    }
}

#[test]
fn box_negative_points_and_components() {
    let Some(shared) = require_shared!() else {
        return;
    };
    let image = shared.join("images/astronaut.png");
    let server = server("decoder.onnx");
    let url = server.url("/");

    // Box only: the inclusive rectangle, outlined by its four corners.
    let reply = mask_reply(&post(
        &url,
        &body(&image, json!([]), json!([]), json!([[50, 60], [120, 90]])),
    ));
    check(&reply, 512, 512, |x, y| {
        (50.0..=120.0).contains(&x) && (60.0..=90.0).contains(&y)
    });
    let mut corners = reply.points.clone();
    corners.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    assert_eq!(
        corners,
        vec![[50.0, 60.0], [50.0, 90.0], [120.0, 60.0], [120.0, 90.0]]
    );

    // A negative point bites a closed disk out of the positive one.
    let (pos, neg) = ([100.0, 50.0], [130.0, 50.0]);
    let reply = mask_reply(&post(
        &url,
        &body(&image, json!([pos]), json!([neg]), Value::Null),
    ));
    check(&reply, 512, 512, |x, y| {
        dist(x, y, pos) < R && dist(x, y, neg) > R
    });

    // Box plus a positive point outside it: both in the mask, the polygon
    // follows the larger part (the box, 71x31 = 2201 px < the disk's 5013).
    let reply = mask_reply(&post(
        &url,
        &body(
            &image,
            json!([[300, 300]]),
            json!([]),
            json!([[50, 60], [120, 90]]),
        ),
    ));
    check(&reply, 512, 512, |x, y| {
        dist(x, y, [300.0, 300.0]) < R
            || ((50.0..=120.0).contains(&x) && (60.0..=90.0).contains(&y))
    });
    assert!(
        reply
            .points
            .iter()
            .all(|p| dist(p[0], p[1], [300.0, 300.0]) < R),
        "{:?}",
        reply.points
    );
}

#[test]
fn prompts_that_cannot_work_get_clear_400s() {
    let Some(shared) = require_shared!() else {
        return;
    };
    let image = shared.join("images/astronaut.png");
    let server = server("decoder.onnx");
    let url = server.url("/");
    let error = |pos: Value, neg: Value, bbox: Value| {
        let reply = post(&url, &body(&image, pos, neg, bbox));
        let json = reply.json();
        assert_eq!(reply.status, 400, "{json}");
        json["error"].as_str().expect("error").to_owned()
    };
    let e = error(json!([[100, 50], [600, 10]]), json!([]), Value::Null);
    assert!(
        e.contains("pos_points") && e.contains("point 1 [600, 10]") && e.contains("512x512"),
        "{e}"
    );
    let e = error(json!([[100, 50]]), json!([[-3, 10]]), Value::Null);
    assert!(e.contains("neg_points") && e.contains("point 0"), "{e}");
    let e = error(json!([]), json!([]), json!([[10, 10], [513, 20]]));
    assert!(e.contains("obj_bbox"), "{e}");
    let e = error(json!([]), json!([]), Value::Null);
    assert!(e.contains("positive point"), "{e}");
    let e = error(json!([]), json!([[100, 50]]), Value::Null);
    assert!(e.contains("positive point"), "{e}");
    // The negative disk covers the positive one: nothing left to return.
    let e = error(json!([[100, 50]]), json!([[100, 50]]), Value::Null);
    assert!(e.contains("empty"), "{e}");
    let e = error(json!([[100]]), json!([]), Value::Null);
    assert!(e.contains("pos_points") && e.contains("[x, y]"), "{e}");
}

#[test]
fn clicks_are_in_the_exif_upright_frame() {
    let Some(shared) = require_shared!() else {
        return;
    };
    let server = server("decoder.onnx");
    // Stored 300x451 with orientation 6: displayed 451x300. x = 440 exists only upright.
    let image = shared.join("images/bad/exif-orientation-6.jpg");
    let reply = mask_reply(&post(
        &server.url("/"),
        &body(&image, json!([[440.5, 100.5]]), json!([]), Value::Null),
    ));
    assert_eq!(reply.bounds, [401, 61, 450, 140]);
}

/// Latency of the first click on a new frame against a click on a cached
/// frame, and reply sizes (docs/sam.md). Prints; asserts only that the cache
/// saves time. `cargo test --test sam_server first_click -- --nocapture`.
#[test]
fn first_click_versus_cached_click() {
    let Some(shared) = require_shared!() else {
        return;
    };
    let image = shared.join("images/scene-1080p.jpg");
    let median = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
        v[v.len() / 2]
    };
    for decoder in [None, Some("decoder.onnx")] {
        let mut args = vec![
            "--sam-encoder".to_owned(),
            fixture("encoder.onnx"),
            "--sam-cache-entries".into(),
            "0".into(),
        ];
        if let Some(d) = decoder {
            args.extend(["--sam-decoder".into(), fixture(d)]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let uncached = Server::start(&args);
        let cached = Server::start(
            &args[..2]
                .iter()
                .chain(&args[4..])
                .copied()
                .collect::<Vec<_>>(),
        );
        let request = body(
            &image,
            json!([[960, 540], [300, 200]]),
            json!([[1000, 560]]),
            Value::Null,
        );
        let time = |server: &Server| {
            let started = Instant::now();
            let reply = post(&server.url("/"), &request);
            assert_eq!(
                reply.status,
                200,
                "{}",
                String::from_utf8_lossy(&reply.body)
            );
            (started.elapsed().as_secs_f64() * 1000.0, reply.body.len())
        };
        time(&cached);
        let first: Vec<f64> = (0..7).map(|_| time(&uncached).0).collect();
        let again: Vec<(f64, usize)> = (0..7).map(|_| time(&cached)).collect();
        let size = again[0].1;
        let (first, again) = (
            median(first),
            median(again.into_iter().map(|t| t.0).collect()),
        );
        println!(
            "{}: first click {first:.1} ms, cached click {again:.1} ms, ratio {:.2}, reply {size} bytes",
            if decoder.is_some() { "server decoder" } else { "browser decoder" },
            first / again
        );
        assert!(
            again < first,
            "a cached click ({again:.1} ms) is not faster than a first click ({first:.1} ms)"
        );
    }
}
