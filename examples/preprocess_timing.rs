//! Times nuclio-ort's CPU path before inference (base64 → decode → letterbox
//! and normalise into a fresh tensor) on one thread, for the side-by-side
//! comparison with the Python peer in `bench/preprocess_peer.py`, which runs
//! this program between its own timings and prints the ratios.
//!
//!     cargo build --release --example preprocess_timing
//!     RAYON_NUM_THREADS=1 target/release/examples/preprocess_timing \
//!         --image ../shared/images/scene-4k.jpg --iterations 20 [--fast] [--size 640]
//!
//! Prints one JSON object: median and per-stage median milliseconds. The
//! pipeline is single-threaded by construction (one request = one CPU-pool
//! task on the server), so one core here is what one request costs there.

use std::{path::PathBuf, process::ExitCode, time::Instant};

use base64::Engine;
use nuclio_ort::imaging::{decode_base64, decode_image, letterbox_into, DecodeLimits};

struct Options {
    image: PathBuf,
    iterations: usize,
    warmup: usize,
    size: u32,
    fast: bool,
}

fn parse() -> Result<Options, String> {
    let mut options = Options {
        image: PathBuf::new(),
        iterations: 20,
        warmup: 2,
        size: 640,
        fast: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--image" => options.image = PathBuf::from(value()?),
            "--iterations" => options.iterations = value()?.parse().map_err(|e| format!("{e}"))?,
            "--warmup" => options.warmup = value()?.parse().map_err(|e| format!("{e}"))?,
            "--size" => options.size = value()?.parse().map_err(|e| format!("{e}"))?,
            "--fast" => options.fast = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if options.image.as_os_str().is_empty() || options.iterations == 0 {
        return Err("usage: preprocess_timing --image FILE [--iterations N] [--warmup N] [--size 640] [--fast]".into());
    }
    Ok(options)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() -> ExitCode {
    let options = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let file = match std::fs::read(&options.image) {
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!("cannot read {}: {e}", options.image.display());
            return ExitCode::from(2);
        }
    };
    let text = base64::engine::general_purpose::STANDARD.encode(&file);
    let limits = DecodeLimits {
        fast_decode_min: options.fast.then_some([options.size, options.size]),
        ..DecodeLimits::default()
    };
    let size = options.size;
    let (mut b64, mut decode, mut letterbox, mut total) = (vec![], vec![], vec![], vec![]);
    let mut decoded_size = (0, 0);
    for i in 0..options.warmup + options.iterations {
        let t0 = Instant::now();
        let bytes = match decode_base64(&text) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("base64: {e}");
                return ExitCode::FAILURE;
            }
        };
        let t1 = Instant::now();
        let image = match decode_image(&bytes, limits) {
            Ok(image) => image,
            Err(e) => {
                eprintln!("decode: {e}");
                return ExitCode::FAILURE;
            }
        };
        let t2 = Instant::now();
        // A fresh tensor per request, as the server allocates one.
        let mut tensor = vec![0f32; 3 * (size * size) as usize];
        letterbox_into(&image.rgb, size, size, &mut tensor);
        std::hint::black_box(&tensor);
        let t3 = Instant::now();
        decoded_size = image.rgb.dimensions();
        if i >= options.warmup {
            let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1000.0;
            b64.push(ms(t0, t1));
            decode.push(ms(t1, t2));
            letterbox.push(ms(t2, t3));
            total.push(ms(t0, t3));
        }
    }
    let summary = serde_json::json!({
        "impl": "nuclio-ort",
        "image": options.image.display().to_string(),
        "mode": if options.fast { "fast" } else { "exact" },
        "size": size,
        "decoded": [decoded_size.0, decoded_size.1],
        "iterations": options.iterations,
        "median_ms": median(total),
        "stages_ms": {
            "base64": median(b64),
            "decode": median(decode),
            "letterbox": median(letterbox),
        },
    });
    println!("{summary}");
    ExitCode::SUCCESS
}
