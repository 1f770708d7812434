//! The tracker function through the real server and CVAT's contract: states go
//! out and come back as JSON text on every frame, exactly as CVAT holds them.
//! Accuracy on the synthetic sequences, continuation on a fresh process (no
//! server memory), several objects per request, and every bad input a client
//! can send answered with a 4xx JSON error naming the problem.

mod common;

use std::path::Path;

use base64::Engine as _;
use common::{post, Server};
use image::{codecs::png, ImageEncoder, RgbImage};
use nuclio_ort::models::tracker::{synthetic, MAX_STATE_JSON_BYTES};
use serde_json::{json, Value};

fn tracker_server() -> Server {
    Server::start(&["--tracker", "builtin"])
}

/// A frame as CVAT sends video frames: PNG, base64.
fn png_b64(frame: &RgbImage) -> String {
    let mut bytes = Vec::new();
    png::PngEncoder::new_with_quality(&mut bytes, png::CompressionType::Fast, png::FilterType::Sub)
        .write_image(
            frame.as_raw(),
            frame.width(),
            frame.height(),
            image::ExtendedColorType::Rgb8,
        )
        .expect("png");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn file_b64(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn boxes(values: &Value) -> Vec<[f64; 4]> {
    values
        .as_array()
        .expect("shapes array")
        .iter()
        .map(|s| {
            let v: Vec<f64> = s
                .as_array()
                .expect("shape array")
                .iter()
                .map(|n| n.as_f64().expect("number"))
                .collect();
            v.try_into().expect("4 numbers")
        })
        .collect()
}

/// One tracker call. The states in the reply are re-serialised compactly and
/// parsed again, as CVAT's `json.dumps(state, separators=(",", ":"))` /
/// `json.loads` do around its signature.
fn call(
    server: &Server,
    image: &str,
    shapes: &[[f64; 4]],
    states: &[Value],
) -> (Vec<[f64; 4]>, Vec<Value>) {
    let body = json!({ "image": image, "shapes": shapes, "states": states });
    let reply = post(&server.url("/"), body.to_string().as_bytes());
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let json = reply.json();
    let shapes_out = boxes(&json["shapes"]);
    let states_out: Vec<Value> = json["states"]
        .as_array()
        .expect("states array")
        .iter()
        .map(|s| {
            let text = serde_json::to_string(s).expect("state text");
            assert!(
                text.len() <= MAX_STATE_JSON_BYTES,
                "state of {} bytes",
                text.len()
            );
            serde_json::from_str(&text).expect("state parses back")
        })
        .collect();
    assert_eq!(shapes_out.len(), shapes.len(), "one shape per input shape");
    assert_eq!(states_out.len(), shapes.len(), "one state per input shape");
    (shapes_out, states_out)
}

fn iou(a: [f64; 4], b: [f32; 4]) -> f64 {
    common::iou(&a, &b.map(f64::from))
}

struct SequenceRun {
    name: String,
    ious: Vec<f64>,
    max_state_bytes: usize,
}

/// Tracks a synthetic sequence frame by frame the way CVAT's UI does: the
/// returned shape and state of frame i are the input of frame i + 1.
fn run_sequence(server: &Server, seq: &synthetic::Sequence) -> SequenceRun {
    let first = seq.truth[0].map(f64::from);
    let (shapes, states) = call(server, &png_b64(&seq.frame(0)), &[first], &[]);
    assert_eq!(
        shapes[0], first,
        "{}: initial shape not returned unchanged",
        seq.name
    );
    let (mut shape, mut state) = (shapes[0], states[0].clone());
    let mut ious = vec![iou(shape, seq.truth[0])];
    let mut max_state_bytes = state.to_string().len();
    for i in 1..seq.len() {
        let (shapes, states) = call(server, &png_b64(&seq.frame(i)), &[shape], &[state]);
        (shape, state) = (shapes[0], states[0].clone());
        max_state_bytes = max_state_bytes.max(state.to_string().len());
        ious.push(iou(shape, seq.truth[i]));
    }
    SequenceRun {
        name: seq.name.clone(),
        ious,
        max_state_bytes,
    }
}

#[test]
fn synthetic_sequences_through_http_are_tracked_accurately() {
    let Some(shared) = require_shared!() else {
        return;
    };
    let sequences = synthetic::sequences(&shared.join("images")).expect("synthetic sequences");
    assert_eq!(sequences.len(), 3);
    let server = tracker_server();
    let runs: Vec<SequenceRun> = std::thread::scope(|scope| {
        let handles: Vec<_> = sequences
            .iter()
            .map(|seq| scope.spawn(|| run_sequence(&server, seq)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("sequence thread"))
            .collect()
    });
    println!(
        "{:<18} {:>7} {:>8} {:>10} {:>7} {:>11}",
        "sequence", "frames", "meanIoU", "IoU>=0.3", "minIoU", "stateBytes"
    );
    let mut failures = Vec::new();
    for run in &runs {
        let n = run.ious.len() as f64;
        let mean = run.ious.iter().sum::<f64>() / n;
        let hit = run.ious.iter().filter(|&&v| v >= 0.3).count() as f64 / n;
        let min = run.ious.iter().copied().fold(f64::INFINITY, f64::min);
        println!(
            "{:<18} {:>7} {:>8.3} {:>9.1}% {:>7.3} {:>11}",
            run.name,
            run.ious.len(),
            mean,
            hit * 100.0,
            min,
            run.max_state_bytes
        );
        if mean < 0.75 || hit < 0.95 {
            failures.push(format!(
                "{}: mean IoU {mean:.3}, {:.1}% of frames with IoU >= 0.3",
                run.name,
                hit * 100.0
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
}

#[test]
fn a_fresh_process_continues_from_the_returned_states() {
    let Some(shared) = require_shared!() else {
        return;
    };
    let sequences = synthetic::sequences(&shared.join("images")).expect("synthetic sequences");
    let seq = &sequences[0];
    let frames: Vec<String> = (0..12).map(|i| png_b64(&seq.frame(i))).collect();
    let first = seq.truth[0].map(f64::from);

    // Initialise on one process, then kill it: nothing of it survives but the state.
    let (init_shapes, init_states) = {
        let server = tracker_server();
        call(&server, &frames[0], &[first], &[])
    };
    let fresh = tracker_server();
    let mut continued = Vec::new();
    let (mut shape, mut state) = (init_shapes[0], init_states[0].clone());
    for (i, frame) in frames.iter().enumerate().skip(1) {
        let (s, st) = call(&fresh, frame, &[shape], &[state]);
        (shape, state) = (s[0], st[0].clone());
        let overlap = iou(shape, seq.truth[i]);
        assert!(
            overlap >= 0.75,
            "frame {i}: IoU {overlap:.3} after the restart"
        );
        continued.push(shape);
    }

    // The same track on one long-lived process gives the very same boxes: the
    // state alone determines the result.
    let steady = tracker_server();
    let (s, st) = call(&steady, &frames[0], &[first], &[]);
    let (mut shape, mut state) = (s[0], st[0].clone());
    assert_eq!(state, init_states[0], "initialisation is deterministic");
    for (i, frame) in frames.iter().enumerate().skip(1) {
        let (s, st) = call(&steady, frame, &[shape], &[state]);
        (shape, state) = (s[0], st[0].clone());
        assert_eq!(shape, continued[i - 1], "frame {i}");
    }
}

#[test]
fn many_objects_in_one_request_keep_their_order_and_results() {
    let Some(shared) = require_shared!() else {
        return;
    };
    let sequences = synthetic::sequences(&shared.join("images")).expect("synthetic sequences");
    let seq = &sequences[0];
    let t = seq.truth[0].map(f64::from);
    let (w, h) = (t[2] - t[0], t[3] - t[1]);
    // The cat's face, its left half, its top half, and two background patches.
    let objects = [
        t,
        [t[0], t[1], t[0] + w / 2.0, t[3]],
        [t[0], t[1], t[2], t[1] + h / 2.0],
        [10.0, 10.0, 110.0, 90.0],
        [1100.0, 600.0, 1270.0, 710.0],
    ];
    let frames: Vec<String> = (0..6).map(|i| png_b64(&seq.frame(i))).collect();
    let server = tracker_server();

    let track = |objects: &[[f64; 4]]| -> Vec<Vec<[f64; 4]>> {
        let (mut shapes, mut states) = call(&server, &frames[0], objects, &[]);
        assert_eq!(shapes, objects, "initial shapes returned unchanged");
        let mut history = vec![shapes.clone()];
        for frame in &frames[1..] {
            (shapes, states) = call(&server, frame, &shapes, &states);
            history.push(shapes.clone());
        }
        history
    };
    let together = track(&objects);
    for (k, object) in objects.iter().enumerate() {
        let alone = track(std::slice::from_ref(object));
        for (frame, (all, one)) in together.iter().zip(&alone).enumerate() {
            assert_eq!(
                all[k], one[0],
                "object {k}, frame {frame}: differs when tracked with others"
            );
        }
    }
    let mut reversed = objects;
    reversed.reverse();
    let backwards = track(&reversed);
    for (all, rev) in together.iter().zip(&backwards) {
        let mut rev = rev.clone();
        rev.reverse();
        assert_eq!(*all, rev, "order of objects changes the results");
    }
    let last = together.last().expect("frames");
    assert!(
        iou(last[0], seq.truth[frames.len() - 1]) >= 0.75,
        "{:?}",
        last[0]
    );

    // A mix of new and continuing objects: null and missing states initialise.
    let (shapes, states) = call(&server, &frames[0], &objects[..2], &[]);
    let (mixed, mixed_states) = call(
        &server,
        &frames[1],
        &[shapes[0], objects[3], objects[4]],
        &[states[0].clone(), Value::Null],
    );
    assert_eq!(mixed[1..], objects[3..], "new objects come back unchanged");
    assert_eq!(mixed_states[1]["frames"], 0);
    assert_eq!(mixed_states[0]["frames"], 1);
}

#[test]
fn initial_shapes_come_back_exactly_as_sent() {
    let Some(shared) = require_shared!() else {
        return;
    };
    let server = tracker_server();
    let image = file_b64(&shared.join("images/chelsea.png"));
    // Full-precision doubles (as a browser sends them; about one in nine such
    // numbers comes back 1 ulp off without exact float parsing) and boxes
    // sticking out of the 451x300 frame: returned as sent, not rounded, not clipped.
    let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
    let mut random = |scale: f64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 11) as f64 / (1u64 << 53) as f64 * scale
    };
    let mut shapes: Vec<[f64; 4]> = (0..24)
        .map(|_| {
            let (x, y) = (random(400.0), random(250.0));
            [x, y, x + 1.0 + random(50.0), y + 1.0 + random(50.0)]
        })
        .collect();
    shapes.push([-20.5, -7.25, 120.75, 80.125]);
    shapes.push([400.0, 250.0, 999.5, 301.0]);
    let body = json!({ "image": image, "shapes": shapes });
    let reply = post(&server.url("/"), body.to_string().as_bytes());
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let returned = boxes(&reply.json()["shapes"]);
    for (sent, got) in shapes.iter().zip(&returned) {
        assert_eq!(
            sent.map(f64::to_bits),
            got.map(f64::to_bits),
            "{sent:?} came back as {got:?}"
        );
    }
    let text = String::from_utf8(reply.body.clone()).expect("utf-8");
    let sent_text = serde_json::to_string(&shapes).expect("shapes text");
    assert!(
        text.starts_with(&format!("{{\"shapes\":{sent_text},")),
        "{}",
        &text[..200]
    );
    // The tracked boxes of the next frame are inside the frame.
    let states = reply.json()["states"].as_array().expect("states").clone();
    let (next, _) = call(&server, &image, &shapes, &states);
    for b in next {
        assert!(
            b[0] >= 0.0
                && b[1] >= 0.0
                && b[2] <= 451.0
                && b[3] <= 300.0
                && b[2] > b[0]
                && b[3] > b[1],
            "{b:?}"
        );
    }
}

/// A 4xx JSON answer whose message contains every needle.
fn assert_refused(server: &Server, body: &[u8], status: u16, needles: &[&str]) {
    let reply = post(&server.url("/"), body);
    let json = reply.json();
    assert_eq!(reply.status, status, "{json}");
    let error = json["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message: {json}"));
    assert!(json["kind"].is_string(), "{json}");
    for needle in needles {
        assert!(error.contains(needle), "`{needle}` not in: {error}");
    }
}

#[test]
fn bad_requests_are_answered_with_4xx_naming_the_problem() {
    let Some(shared) = require_shared!() else {
        return;
    };
    let server = tracker_server();
    let image = file_b64(&shared.join("images/chelsea.png"));
    let cat = [95.0, 30.0, 375.0, 290.0];
    let (_, states) = call(&server, &image, &[cat], &[]);
    let good = states[0].clone();
    let body = |shapes: Value, states: Value| {
        json!({ "image": image, "shapes": shapes, "states": states })
            .to_string()
            .into_bytes()
    };

    assert_refused(&server, b"", 400, &["empty"]);
    assert_refused(&server, b"{\"image\": ", 400, &["not valid JSON"]);
    assert_refused(
        &server,
        json!({ "shapes": [cat] }).to_string().as_bytes(),
        400,
        &["`image` is missing"],
    );
    assert_refused(
        &server,
        json!({ "image": image }).to_string().as_bytes(),
        400,
        &["`shapes` is missing"],
    );
    assert_refused(
        &server,
        json!({ "image": "@@@", "shapes": [cat] })
            .to_string()
            .as_bytes(),
        400,
        &["base64"],
    );

    // Boxes: outside the frame, no area, NaN spelled every way JSON allows, wrong arity.
    let cases: &[(Value, &[&str])] = &[
        (
            json!([[500, 10, 600, 100]]),
            &["shapes[0]", "outside the 451x300 frame"],
        ),
        (
            json!([cat, [-200, -200, -10, -10]]),
            &["shapes[1]", "outside"],
        ),
        (
            json!([[10, 10, 10, 50]]),
            &["shapes[0]", "zero or negative area"],
        ),
        (
            json!([[50, 50, 10, 10]]),
            &["shapes[0]", "zero or negative area"],
        ),
        (
            json!([[null, 10, 50, 50]]),
            &["shapes[0]", "xtl must be a finite number, got null"],
        ),
        (
            json!([[10, "NaN", 50, 50]]),
            &["shapes[0]", "ytl", "\"NaN\""],
        ),
        (json!([[10, 10, "Infinity", 50]]), &["xbr", "finite number"]),
        (json!([[10, 10, 50, {}]]), &["ybr", "finite number"]),
        (json!([[10, 10, 50]]), &["shapes[0] has 3 numbers"]),
        (
            json!([cat, [1, 2, 3, 4, 5, 6, 7, 8]]),
            &["shapes[1] has 8 numbers"],
        ),
        (json!([]), &[]),
        (json!("95,30,375,290"), &["`shapes`", "got a string"]),
    ];
    for (shapes, needles) in cases {
        if needles.is_empty() {
            // No objects is a valid, empty request.
            let reply = post(&server.url("/"), &body(shapes.clone(), json!([])));
            assert_eq!(reply.status, 200);
            assert_eq!(reply.json(), json!({ "shapes": [], "states": [] }));
            continue;
        }
        assert_refused(&server, &body(shapes.clone(), json!([])), 400, needles);
    }

    // States: more than shapes, corrupt in every layer, from another version.
    let mut wrong_version = good.clone();
    wrong_version["v"] = json!(99);
    let mut no_version = good.clone();
    no_version.as_object_mut().expect("object").remove("v");
    let mut bad_model = good.clone();
    bad_model["model"]["x"] = json!("!!corrupt!!");
    let mut cut_model = good.clone();
    let alphaf = good["model"]["alphaf"].as_str().expect("alphaf").to_owned();
    cut_model["model"]["alphaf"] = json!(alphaf[..alphaf.len() / 2 / 4 * 4]);
    let mut nan_state = good.clone();
    nan_state["center"] = json!([null, 10.0]);
    let mut bad_grid = good.clone();
    bad_grid["model"]["grid"] = json!([7, 1000]);
    let cases: &[(Value, Value, &[&str])] = &[
        (
            json!([cat]),
            json!([good.clone(), good.clone()]),
            &["`states`", "2 entries", "`shapes` has 1"],
        ),
        (
            json!([cat]),
            json!([wrong_version]),
            &["states[0]", "unsupported state version 99", "re-initialise"],
        ),
        (
            json!([cat, cat]),
            json!([null, no_version]),
            &["states[1]", "missing format version"],
        ),
        (
            json!([cat]),
            json!([bad_model]),
            &["states[0]", "model.x is not valid base64"],
        ),
        (
            json!([cat]),
            json!([cut_model]),
            &["states[0]", "model.alphaf has"],
        ),
        (
            json!([cat]),
            json!([nan_state]),
            &["states[0]", "malformed"],
        ),
        (json!([cat]), json!([bad_grid]), &["states[0]", "grid"]),
        (
            json!([cat]),
            json!(["c2lnbmVkLXN0YXRl"]),
            &["states[0]", "expected a JSON object, got a string"],
        ),
        (json!([cat]), json!([42]), &["states[0]", "got a number"]),
        (
            json!([cat]),
            json!({ "0": good.clone() }),
            &["`states`", "expected an array"],
        ),
    ];
    for (shapes, states, needles) in cases {
        assert_refused(&server, &body(shapes.clone(), states.clone()), 400, needles);
    }

    // The server is still fine afterwards.
    let (shapes, _) = call(&server, &image, &[cat], &[good]);
    assert!(
        iou(shapes[0], [95.0, 30.0, 375.0, 290.0]) > 0.9,
        "{:?}",
        shapes[0]
    );
}

#[test]
fn every_hostile_image_gets_a_clear_answer() {
    let Some(shared) = require_shared!() else {
        return;
    };
    let server = tracker_server();
    let bad = shared.join("images/bad");
    let undecodable = [
        ("truncated.jpg", 400, "corrupt_image"),
        ("empty.bin", 400, "empty_image"),
        ("random.bin", 415, "unsupported_image"),
        ("not-an-image.html", 415, "unsupported_image"),
        ("bomb-50000x50000.png", 413, "image_too_large"),
    ];
    let cat = [95.0, 30.0, 375.0, 290.0];
    let decodable: [(&str, [f64; 4]); 11] = [
        ("chelsea.webp", cat),
        ("chelsea.bmp", cat),
        ("chelsea.tiff", cat),
        ("chelsea.gif", cat),
        ("cmyk.jpg", cat),
        ("rgba.png", cat),
        ("gray.jpg", cat),
        ("gray16.png", cat),
        ("exif-orientation-6.jpg", cat),
        ("one-pixel.png", [0.0, 0.0, 1.0, 1.0]),
        ("wide-12000x8.png", [5000.0, 0.0, 5120.0, 8.0]),
    ];
    let mut seen: Vec<&str> = undecodable
        .iter()
        .map(|u| u.0)
        .chain(decodable.iter().map(|d| d.0))
        .collect();
    seen.sort_unstable();
    let mut files: Vec<String> = std::fs::read_dir(&bad)
        .expect("images/bad")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort_unstable();
    assert_eq!(files, seen, "every file of images/bad is covered");

    for (file, status, kind) in undecodable {
        let body = json!({ "image": file_b64(&bad.join(file)), "shapes": [[0, 0, 10, 10]] });
        let reply = post(&server.url("/"), body.to_string().as_bytes());
        let json = reply.json();
        assert_eq!(reply.status, status, "{file}: {json}");
        assert_eq!(json["kind"], kind, "{file}: {json}");
        assert!(
            json["error"].as_str().is_some_and(|e| e.len() > 10),
            "{file}: {json}"
        );
    }
    for (file, rect) in decodable {
        // Initialise and track on the same frame: the box must stay put.
        let image = file_b64(&bad.join(file));
        let (shapes, states) = call(&server, &image, &[rect], &[]);
        assert_eq!(shapes[0], rect, "{file}");
        let (shapes, _) = call(&server, &image, &[rect], &states);
        let overlap = common::iou(&shapes[0], &rect);
        assert!(
            overlap > 0.8,
            "{file}: {:?} drifted from {rect:?} (IoU {overlap:.3})",
            shapes[0]
        );
    }

    // The EXIF-rotated copy is tracked in the upright frame: a cat initialised on
    // the upright JPEG is found at the same place in the rotated file.
    let (_, states) = call(
        &server,
        &file_b64(&shared.join("images/chelsea.jpg")),
        &[cat],
        &[],
    );
    let (shapes, _) = call(
        &server,
        &file_b64(&bad.join("exif-orientation-6.jpg")),
        &[cat],
        &states,
    );
    assert!(common::iou(&shapes[0], &cat) > 0.8, "{:?}", shapes[0]);
}
