//! Cost of the built-in tracker on a 1080p frame (`scene-1080p.jpg`).
//!
//!     cargo bench --bench tracker                 # all groups, ~1 minute
//!     cargo bench --bench tracker -- per_object   # one group
//!
//! * `per_object`: one object's `update` on one core, decode excluded; with and
//!   without the state's JSON round trip CVAT imposes (parse + validate + write).
//!   The budget is 5 ms per object per frame.
//! * `eight_objects`: eight objects on the same frame, one after the other vs
//!   rayon over objects (what the function does), to show the parallelism.
//! * `request`: a whole request through `TrackerFunction::invoke` (JSON, base64,
//!   JPEG decode, tracking, reply), with 1 and 8 objects.

use std::{hint::black_box, path::PathBuf, time::Duration};

use base64::Engine as _;
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use image::RgbImage;
use nuclio_ort::{
    contract::function_config::FunctionConfig,
    functions::tracker::{TrackerFunction, TrackerSettings},
    imaging::{decode_image, DecodeLimits},
    models::tracker::{self, TrackerState},
};
use rayon::prelude::*;

/// Objects on the 1920x1080 scene (astronaut, cat, coffee side by side).
const OBJECTS: [(&str, [f32; 4]); 8] = [
    ("cat-face", [720.0, 216.0, 1324.0, 864.0]),
    ("cat-eye", [980.0, 390.0, 1140.0, 540.0]),
    ("cat-nose", [1190.0, 690.0, 1320.0, 790.0]),
    ("astronaut-face", [280.0, 300.0, 410.0, 430.0]),
    ("helmet", [410.0, 650.0, 690.0, 864.0]),
    ("flag", [56.0, 216.0, 180.0, 600.0]),
    ("cup", [1600.0, 240.0, 1918.0, 600.0]),
    ("saucer", [1450.0, 340.0, 1910.0, 840.0]),
];

fn shared_dir() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::var_os("NUCLIO_ORT_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared"));
    let dir = if dir.is_relative() {
        root.join(dir)
    } else {
        dir
    };
    dir.join("images").is_dir().then_some(dir)
}

fn update(frame: &RgbImage, state: &TrackerState) -> tracker::Tracked {
    tracker::update(frame, state).expect("update")
}

fn per_object(c: &mut Criterion, frame: &RgbImage) {
    let mut group = c.benchmark_group("per_object");
    for (name, rect) in [OBJECTS[0], OBJECTS[1]] {
        let state = tracker::init(frame, rect).expect("init").state;
        group.bench_with_input(BenchmarkId::new("update", name), &state, |b, state| {
            b.iter(|| update(black_box(frame), black_box(state)))
        });
        let text = serde_json::to_string(&state).expect("state JSON");
        group.bench_with_input(
            BenchmarkId::new("update+state_json", name),
            &text,
            |b, text| {
                b.iter(|| {
                    let value: serde_json::Value = serde_json::from_str(text).expect("JSON");
                    let state = tracker::parse_state(&value).expect("state");
                    serde_json::to_string(&update(frame, &state).state).expect("JSON")
                })
            },
        );
        group.bench_with_input(BenchmarkId::new("init", name), &rect, |b, rect| {
            b.iter(|| tracker::init(black_box(frame), *rect).expect("init"))
        });
    }
    group.finish();
}

fn eight_objects(c: &mut Criterion, frame: &RgbImage) {
    let states: Vec<TrackerState> = OBJECTS
        .iter()
        .map(|(_, rect)| tracker::init(frame, *rect).expect("init").state)
        .collect();
    let mut group = c.benchmark_group("eight_objects");
    group.throughput(Throughput::Elements(OBJECTS.len() as u64));
    group.bench_function("sequential", |b| {
        b.iter(|| states.iter().map(|s| update(frame, s)).collect::<Vec<_>>())
    });
    group.bench_function("rayon", |b| {
        b.iter(|| {
            states
                .par_iter()
                .map(|s| update(frame, s))
                .collect::<Vec<_>>()
        })
    });
    group.finish();
}

fn request(c: &mut Criterion, frame: &RgbImage, jpeg: &[u8]) {
    let settings = TrackerSettings {
        name: "tracker".into(),
        config: FunctionConfig::default(),
        limits: DecodeLimits::default(),
        model: None,
    };
    let function = TrackerFunction::builtin(&settings).expect("tracker");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let image = base64::engine::general_purpose::STANDARD.encode(jpeg);
    let mut group = c.benchmark_group("request");
    for n in [1, OBJECTS.len()] {
        let objects = &OBJECTS[..n];
        let states: Vec<TrackerState> = objects
            .iter()
            .map(|(_, rect)| tracker::init(frame, *rect).expect("init").state)
            .collect();
        let shapes: Vec<[f32; 4]> = objects.iter().map(|(_, r)| *r).collect();
        let body = Bytes::from(
            serde_json::to_vec(&serde_json::json!({
                "image": image, "shapes": shapes, "states": states,
            }))
            .expect("body"),
        );
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("jpeg_1080p", n), &body, |b, body| {
            b.iter(|| {
                runtime
                    .block_on(function.invoke(body.clone()))
                    .expect("reply")
            })
        });
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    let Some(dir) = shared_dir() else {
        eprintln!("SKIP: shared test data not found (set NUCLIO_ORT_TEST_DATA)");
        return;
    };
    let path = dir.join("images/scene-1080p.jpg");
    let jpeg = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let frame = decode_image(&jpeg, DecodeLimits::default())
        .expect("scene decodes")
        .rgb;
    per_object(c, &frame);
    eight_objects(c, &frame);
    request(c, &frame, &jpeg);
}

criterion_group! {
    name = tracker_benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(tracker_benches);
