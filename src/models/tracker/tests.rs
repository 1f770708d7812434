use std::path::PathBuf;

use super::synthetic;
use super::*;

/// Shared test data folder: `$NUCLIO_ORT_TEST_DATA`, default `../shared` next to the
/// crate root. `None` (with a message) when missing, panics when `CI=true`.
fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("NUCLIO_ORT_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    if dir.join("images").join("chelsea.png").is_file() {
        return Some(dir);
    }
    let msg = format!(
        "shared test data not found at {} (set NUCLIO_ORT_TEST_DATA)",
        dir.display()
    );
    if std::env::var("CI").map(|v| v == "true").unwrap_or(false) {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
    None
}

fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let ua = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    if ua > 0.0 {
        inter / ua
    } else {
        0.0
    }
}

struct SeqResult {
    ious: Vec<f32>,
    confs: Vec<f32>,
    max_state_bytes: usize,
}

/// Track through a sequence the way the server does: the state goes through JSON
/// text (`to_string` / `from_str` + `parse_state`) on every frame.
fn run(seq: &synthetic::Sequence) -> SeqResult {
    let first = seq.frame(0);
    let t = init(&first, seq.truth[0]).expect("init");
    assert_eq!(t.rect, seq.truth[0], "init returns the box unchanged");
    let mut json = serde_json::to_string(&t.state).expect("serialise");
    let mut ious = vec![iou(t.rect, seq.truth[0])];
    let mut confs = vec![t.confidence];
    let mut max_state_bytes = json.len();
    for i in 1..seq.len() {
        let frame = seq.frame(i);
        let value: serde_json::Value = serde_json::from_str(&json).expect("state JSON parses");
        let state = parse_state(&value).expect("state valid");
        let r = update(&frame, &state).expect("update");
        json = serde_json::to_string(&r.state).expect("serialise");
        max_state_bytes = max_state_bytes.max(json.len());
        ious.push(iou(r.rect, seq.truth[i]));
        confs.push(r.confidence);
    }
    SeqResult {
        ious,
        confs,
        max_state_bytes,
    }
}

#[test]
fn synthetic_sequences_accuracy() {
    let Some(dir) = shared_dir() else { return };
    let seqs = synthetic::sequences(&dir.join("images")).expect("sequences");
    assert!(seqs.len() >= 3);
    let mut failures = Vec::new();
    println!(
        "{:<18} {:>8} {:>10} {:>8} {:>9} {:>11}",
        "sequence", "meanIoU", "%IoU>=0.3", "minIoU", "minConf", "stateBytes"
    );
    for seq in &seqs {
        let r = run(seq);
        let n = r.ious.len() as f32;
        let mean = r.ious.iter().sum::<f32>() / n;
        let ok = r.ious.iter().filter(|&&v| v >= 0.3).count() as f32 / n;
        let min = r.ious.iter().copied().fold(1.0f32, f32::min);
        let minc = r.confs.iter().copied().fold(1.0f32, f32::min);
        println!(
            "{:<18} {:>8.3} {:>9.1}% {:>8.3} {:>9.3} {:>11}",
            seq.name,
            mean,
            ok * 100.0,
            min,
            minc,
            r.max_state_bytes
        );
        if std::env::var_os("TRACKER_TRACE").is_some() {
            for (i, (v, c)) in r.ious.iter().zip(&r.confs).enumerate() {
                println!("  {i:>2} iou {v:.3} conf {c:.3}");
            }
        }
        assert!(
            r.max_state_bytes < MAX_STATE_JSON_BYTES,
            "{}: state too large",
            seq.name
        );
        if mean < 0.75 || ok < 0.95 {
            failures.push(format!(
                "{}: mean IoU {mean:.3}, {:.1}% frames >= 0.3",
                seq.name,
                ok * 100.0
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "tracking below thresholds: {failures:?}"
    );
}

fn textured_frame(w: u32, h: u32) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| {
        let v = ((x * 7 + y * 13) ^ (x * y)) as u8;
        image::Rgb([v, v.wrapping_mul(3), 255 - v])
    })
}

#[test]
fn init_returns_box_and_state_roundtrips() {
    let f = textured_frame(320, 240);
    let t = init(&f, [50.0, 60.0, 150.0, 140.0]).unwrap();
    assert_eq!(t.rect, [50.0, 60.0, 150.0, 140.0]);
    assert_eq!(t.state.v, STATE_VERSION);
    let s = serde_json::to_string(&t.state).unwrap();
    let back = parse_state(&serde_json::from_str(&s).unwrap()).unwrap();
    assert_eq!(back, t.state);
    // Static scene: the box stays put.
    let r = update(&f, &back).unwrap();
    for k in 0..4 {
        assert!(
            (r.rect[k] - t.rect[k]).abs() < 2.0,
            "{:?} vs {:?}",
            r.rect,
            t.rect
        );
    }
    assert!(r.confidence > 0.5, "confidence {}", r.confidence);
}

#[test]
fn invalid_rects_are_rejected_with_clear_errors() {
    let f = textured_frame(100, 80);
    let msg = |r: [f32; 4]| init(&f, r).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(msg([f32::NAN, 0.0, 10.0, 10.0]).contains("finite"));
    assert!(msg([0.0, 0.0, f32::INFINITY, 10.0]).contains("finite"));
    assert!(msg([10.0, 10.0, 10.0, 20.0]).contains("area"));
    assert!(msg([10.0, 10.0, 5.0, 20.0]).contains("area"));
    assert!(msg([200.0, 10.0, 300.0, 20.0]).contains("outside"));
    assert!(msg([-50.0, -50.0, -1.0, -1.0]).contains("outside"));
    // Partially outside: clipped.
    let t = init(&f, [-10.0, -10.0, 30.0, 30.0]).unwrap();
    assert_eq!(t.rect, [0.0, 0.0, 30.0, 30.0]);
    let empty = image::RgbImage::new(0, 0);
    assert!(matches!(
        init(&empty, [0.0, 0.0, 1.0, 1.0]),
        Err(TrackError::InvalidFrame(_))
    ));
}

#[test]
fn corrupt_states_are_rejected_with_clear_errors() {
    let f = textured_frame(200, 150);
    let t = init(&f, [20.0, 20.0, 80.0, 60.0]).unwrap();
    let good = serde_json::to_value(&t.state).unwrap();
    let err = |v: serde_json::Value| {
        parse_state(&v)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert!(err(serde_json::json!(null)).contains("object"));
    assert!(err(serde_json::json!("abc")).contains("object"));
    let mut v = good.clone();
    v["v"] = serde_json::json!(99);
    assert!(err(v).contains("version 99"));
    let mut v = good.clone();
    v.as_object_mut().unwrap().remove("v");
    assert!(err(v).contains("version"));
    let mut v = good.clone();
    v["model"]["x"] = serde_json::json!("!!!not base64");
    assert!(err(v).contains("base64"));
    let mut v = good.clone();
    v["model"]["alphaf"] = serde_json::json!("AAAA");
    assert!(err(v).contains("bytes"));
    let mut v = good.clone();
    v["model"]["grid"] = serde_json::json!([7, 1000000]);
    assert!(err(v).contains("grid"));
    let mut v = good.clone();
    v["size"] = serde_json::json!([0.0, 5.0]);
    assert!(err(v).contains("size"));
    let mut v = good.clone();
    v["center"] = serde_json::json!("x");
    assert!(err(v).contains("malformed"));
    let mut v = good.clone();
    v["model"]["x_step"] = serde_json::json!(-1.0);
    assert!(err(v).contains("x_step"));
    // An unvalidated state with a NaN is refused by update too.
    let mut s = t.state.clone();
    s.center[0] = f32::NAN;
    assert!(update(&f, &s).is_err());
}

#[test]
fn odd_geometries_never_panic_and_stay_small() {
    let f = textured_frame(640, 360);
    let tiny = image::RgbImage::from_pixel(1, 1, image::Rgb([9, 9, 9]));
    for rect in [
        [0.0, 0.0, 1.0, 1.0],
        [0.2, 0.3, 0.4, 0.5],
        [0.0, 0.0, 640.0, 360.0],
        [0.0, 100.0, 640.0, 110.0],   // very wide
        [300.0, 0.0, 302.0, 360.0],   // very tall
        [-1e6, -1e6, 1e6, 1e6],       // huge, clipped
        [600.0, 300.0, 700.0, 400.0], // corner, clipped
    ] {
        let t = init(&f, rect).unwrap();
        let json = serde_json::to_string(&t.state).unwrap();
        assert!(
            json.len() < MAX_STATE_JSON_BYTES,
            "{rect:?}: {} bytes",
            json.len()
        );
        let mut st = t.state;
        for _ in 0..3 {
            st = update(&f, &st).unwrap().state;
        }
        // Different (even degenerate) frame sizes must not panic.
        let r = update(&tiny, &st).unwrap();
        assert!(r.rect.iter().all(|v| v.is_finite()));
        let _ = update(&textured_frame(3000, 20), &st).unwrap();
    }
    let t = init(&tiny, [0.0, 0.0, 1.0, 1.0]).unwrap();
    let _ = update(&tiny, &t.state).unwrap();
}

#[test]
fn keeps_last_box_when_target_disappears() {
    let dir = match shared_dir() {
        Some(d) => d,
        None => return,
    };
    let seqs = synthetic::sequences(&dir.join("images")).unwrap();
    let seq = &seqs[0];
    let f0 = seq.frame(0);
    let t = init(&f0, seq.truth[0]).unwrap();
    let mut st = t.state;
    for i in 1..4 {
        st = update(&seq.frame(i), &st).unwrap().state;
    }
    let last = st.rect;
    // Fully covered: a flat grey frame.
    let grey = image::RgbImage::from_pixel(f0.width(), f0.height(), image::Rgb([128, 128, 128]));
    let r = update(&grey, &st).unwrap();
    assert!(r.confidence < 0.2, "confidence {}", r.confidence);
    assert_eq!(r.rect, last, "keeps the last box");
    assert_eq!(r.state.confidence, r.confidence);
    assert!(r.state.lost >= 1);
}

/// `cargo test --release tracker::tests::timing_1080p -- --ignored --nocapture`
#[test]
#[ignore]
fn timing_1080p() {
    let Some(dir) = shared_dir() else { return };
    let frame = image::open(dir.join("images").join("scene-1080p.jpg"))
        .unwrap()
        .to_rgb8();
    assert_eq!((frame.width(), frame.height()), (1920, 1080));
    for (name, rect) in [
        ("small 60x80", [900.0, 500.0, 960.0, 580.0]),
        ("medium 250x300", [800.0, 400.0, 1050.0, 700.0]),
        ("large 600x900", [100.0, 90.0, 700.0, 990.0]),
    ] {
        let ms = bench_update_ms(&frame, rect, 200).unwrap();
        let t = init(&frame, rect).unwrap();
        let start = std::time::Instant::now();
        for _ in 0..200 {
            let s = serde_json::to_string(&t.state).unwrap();
            let st = parse_state(&serde_json::from_str(&s).unwrap()).unwrap();
            std::hint::black_box(update(&frame, &st).unwrap());
        }
        let ms_json = start.elapsed().as_secs_f64() * 1000.0 / 200.0;
        println!("{name}: update {ms:.2} ms, with JSON round trip {ms_json:.2} ms");
    }
}

/// The object is fully hidden (grey box over its ground truth, the rest of the scene —
/// including mirrored look-alikes — stays visible) for 6 frames: the tracker must
/// report low confidence, keep the last box instead of jumping to a look-alike, and
/// re-acquire the object when it reappears.
#[test]
fn full_occlusion_keeps_box_then_recovers() {
    let Some(dir) = shared_dir() else { return };
    let seqs = synthetic::sequences(&dir.join("images")).unwrap();
    for seq in &seqs {
        let mut st = init(&seq.frame(0), seq.truth[0]).unwrap().state;
        let (occ0, occ1) = (8usize, 13usize);
        let mut last_good = st.rect;
        let mut report = Vec::new();
        for i in 1..20 {
            let mut f = seq.frame(i);
            if (occ0..=occ1).contains(&i) {
                let [x0, y0, x1, y1] = seq.truth[i];
                let (mx, my) = (0.05 * (x1 - x0), 0.05 * (y1 - y0));
                for y in (y0 - my).max(0.0) as u32..((y1 + my) as u32).min(f.height()) {
                    for x in (x0 - mx).max(0.0) as u32..((x1 + mx) as u32).min(f.width()) {
                        f.put_pixel(x, y, image::Rgb([128, 128, 128]));
                    }
                }
            }
            let json = serde_json::to_string(&st).unwrap();
            let r = update(
                &f,
                &parse_state(&serde_json::from_str(&json).unwrap()).unwrap(),
            )
            .unwrap();
            let v = iou(r.rect, seq.truth[i]);
            report.push(format!(
                "{i}: iou {v:.2} conf {:.2} lost {}",
                r.confidence, r.state.lost
            ));
            if i < occ0 {
                last_good = r.rect;
            } else if i <= occ1 {
                // Must not wander off: stays on (or very near) the last good box.
                assert!(
                    iou(r.rect, last_good) > 0.7,
                    "{}: drifted during occlusion: {report:?}",
                    seq.name
                );
            } else if i >= occ1 + 3 {
                assert!(v > 0.5, "{}: not re-acquired: {report:?}", seq.name);
            }
            st = r.state;
        }
        println!("{}: {}", seq.name, report.join(" | "));
    }
}
