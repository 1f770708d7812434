//! CPU cost of each request stage outside the model, on realistic frames
//! (1080p and 4K JPEGs from the shared test data), to see where a request's
//! time goes and to catch regressions in the hand-written hot paths
//! (letterbox, NMS, RLE).
//!
//!     cargo bench --bench pipeline               # all, ~2 minutes on 2 cores
//!     cargo bench --bench pipeline -- jpeg       # one group
//!
//! Samples are few and short on purpose: the stages take milliseconds, and a
//! noisy 2-core machine gains nothing from criterion's default 100 samples.
//! Absolute times are only comparable within one run.

use std::{hint::black_box, io::Cursor, path::PathBuf, time::Duration};

use base64::Engine;
use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use image::{ImageFormat, RgbImage};
use nuclio_ort::{
    imaging::{decode_base64, decode_image, letterbox_into, DecodeLimits},
    post::{nms, rle, Candidate},
};

/// Model input of the fast-decode and letterbox benches (YOLO11n at 640).
const INPUT: u32 = 640;
/// Batch the letterbox writes into, as the inference queue would assemble it.
const BATCH: usize = 4;

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

/// One test frame in every encoding the benches need, prepared once.
struct Frame {
    name: &'static str,
    jpeg: Vec<u8>,
    base64: String,
    png: Vec<u8>,
    rgb: RgbImage,
    /// The JPEG decoded at reduced DCT scale (what `--fast-decode` letterboxes).
    rgb_fast: RgbImage,
}

fn fast_limits() -> DecodeLimits {
    DecodeLimits {
        fast_decode_min: Some([INPUT, INPUT]),
        ..DecodeLimits::default()
    }
}

fn load_frames() -> Vec<Frame> {
    let Some(dir) = shared_dir() else {
        eprintln!("SKIP: shared test data not found (set NUCLIO_ORT_TEST_DATA)");
        return Vec::new();
    };
    [("1080p", "scene-1080p.jpg"), ("4k", "scene-4k.jpg")]
        .into_iter()
        .map(|(name, file)| {
            let path = dir.join("images").join(file);
            let jpeg = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            let rgb = decode_image(&jpeg, DecodeLimits::default())
                .expect("the scene JPEG decodes")
                .rgb;
            let rgb_fast = decode_image(&jpeg, fast_limits())
                .expect("the scene JPEG decodes at reduced scale")
                .rgb;
            let mut png = Vec::new();
            rgb.write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
                .expect("PNG re-encoding in memory");
            Frame {
                name,
                base64: base64::engine::general_purpose::STANDARD.encode(&jpeg),
                jpeg,
                png,
                rgb,
                rgb_fast,
            }
        })
        .collect()
}

fn decoding(c: &mut Criterion, frames: &[Frame]) {
    let mut group = c.benchmark_group("base64");
    for f in frames {
        group.throughput(Throughput::Bytes(f.base64.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(f.name), f, |b, f| {
            b.iter(|| decode_base64(black_box(&f.base64)).expect("valid base64"))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("decode");
    group.sampling_mode(SamplingMode::Flat);
    for f in frames {
        group.throughput(Throughput::Elements(u64::from(
            f.rgb.width() * f.rgb.height(),
        )));
        group.bench_with_input(BenchmarkId::new("jpeg-exact", f.name), f, |b, f| {
            b.iter(|| decode_image(black_box(&f.jpeg), DecodeLimits::default()).expect("decodes"))
        });
        group.bench_with_input(BenchmarkId::new("jpeg-fast", f.name), f, |b, f| {
            b.iter(|| decode_image(black_box(&f.jpeg), fast_limits()).expect("decodes"))
        });
        group.bench_with_input(BenchmarkId::new("png", f.name), f, |b, f| {
            b.iter(|| decode_image(black_box(&f.png), DecodeLimits::default()).expect("decodes"))
        });
    }
    group.finish();
}

fn letterbox(c: &mut Criterion, frames: &[Frame]) {
    let slot = 3 * (INPUT * INPUT) as usize;
    let mut batch = vec![0f32; BATCH * slot];
    let mut group = c.benchmark_group("letterbox");
    for f in frames {
        for (kind, rgb) in [("exact", &f.rgb), ("fast", &f.rgb_fast)] {
            let id = BenchmarkId::new(format!("{kind}-{}x{}", rgb.width(), rgb.height()), f.name);
            let mut next = 0;
            group.bench_with_input(id, rgb, |b, rgb| {
                b.iter(|| {
                    // Rotate through the batch slots like consecutive requests.
                    next = (next + 1) % BATCH;
                    let out = &mut batch[next * slot..(next + 1) * slot];
                    letterbox_into(black_box(rgb), INPUT, INPUT, out)
                })
            });
        }
    }
    group.finish();

    // The whole CPU side of a request before inference: base64 → decode → letterbox.
    let mut group = c.benchmark_group("request-preprocess");
    group.sampling_mode(SamplingMode::Flat);
    let mut out = vec![0f32; slot];
    for f in frames {
        for (kind, limits) in [("exact", DecodeLimits::default()), ("fast", fast_limits())] {
            group.bench_with_input(BenchmarkId::new(kind, f.name), f, |b, f| {
                b.iter(|| {
                    let bytes = decode_base64(black_box(&f.base64)).expect("valid base64");
                    let image = decode_image(&bytes, limits).expect("decodes");
                    letterbox_into(&image.rgb, INPUT, INPUT, &mut out)
                })
            });
        }
    }
    group.finish();
}

/// Deterministic pseudo-random numbers (xorshift), so every run sees the same input.
struct Rng(u64);

impl Rng {
    fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// 8400 candidates (every anchor of a 640 YOLO head, i.e. threshold 0):
/// clustered around 60 objects as a real head produces them, 80 classes.
fn candidates() -> Vec<Candidate> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let objects: Vec<([f32; 4], usize)> = (0..60)
        .map(|i| {
            let (x, y) = (rng.next_f32() * 560.0, rng.next_f32() * 560.0);
            let (w, h) = (20.0 + rng.next_f32() * 200.0, 20.0 + rng.next_f32() * 200.0);
            ([x, y, (x + w).min(640.0), (y + h).min(640.0)], i % 80)
        })
        .collect();
    (0..8400)
        .map(|i| {
            let (bbox, class) = objects[i % objects.len()];
            let jitter = |v: f32, rng: &mut Rng| v + (rng.next_f32() - 0.5) * 16.0;
            Candidate {
                bbox: [
                    jitter(bbox[0], &mut rng),
                    jitter(bbox[1], &mut rng),
                    jitter(bbox[2], &mut rng),
                    jitter(bbox[3], &mut rng),
                ],
                score: rng.next_f32(),
                class: if i % 7 == 0 { (class + 1) % 80 } else { class },
            }
        })
        .collect()
}

fn post(c: &mut Criterion, frames: &[Frame]) {
    let input = candidates();
    let mut group = c.benchmark_group("nms");
    group.throughput(Throughput::Elements(input.len() as u64));
    group.bench_function("8400-candidates", |b| {
        b.iter_batched(
            || input.clone(),
            |c| nms(c, 0.7, 300),
            BatchSize::SmallInput,
        )
    });
    group.finish();

    let mut group = c.benchmark_group("rle");
    for f in frames {
        let (w, h) = (f.rgb.width() as usize, f.rgb.height() as usize);
        // A frame-sized mask with three filled ellipses (object masks).
        let mut mask = vec![0u8; w * h];
        for (cx, cy, rx, ry) in [
            (0.25, 0.5, 0.15, 0.3),
            (0.5, 0.4, 0.1, 0.2),
            (0.8, 0.6, 0.12, 0.25),
        ] {
            let (cx, cy, rx, ry) = (cx * w as f64, cy * h as f64, rx * w as f64, ry * h as f64);
            for y in 0..h {
                let dy = (y as f64 - cy) / ry;
                if dy.abs() > 1.0 {
                    continue;
                }
                let half = rx * (1.0 - dy * dy).sqrt();
                let (x0, x1) = (
                    (cx - half).max(0.0) as usize,
                    ((cx + half) as usize).min(w - 1),
                );
                mask[y * w + x0..=y * w + x1].fill(255);
            }
        }
        group.throughput(Throughput::Elements((w * h) as u64));
        group.bench_with_input(BenchmarkId::new("full-frame", f.name), &mask, |b, m| {
            b.iter(|| rle::encode(black_box(m)))
        });
        // The crop of the first object, as a detector's `mask` shape carries it.
        let bounds = [
            (0.10 * w as f64) as u32,
            (0.20 * h as f64) as u32,
            (0.40 * w as f64) as u32,
            (0.80 * h as f64) as u32,
        ];
        group.bench_with_input(BenchmarkId::new("cvat-crop", f.name), &mask, |b, m| {
            b.iter(|| rle::encode_cvat(black_box(m), w, bounds).expect("bounds inside"))
        });
    }
    group.finish();
}

fn pipeline(c: &mut Criterion) {
    let frames = load_frames();
    decoding(c, &frames);
    letterbox(c, &frames);
    post(c, &frames);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = pipeline
}
criterion_main!(benches);
