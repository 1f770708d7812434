//! SAM preprocessing parity with the Python reference (Pillow decode, Pillow
//! bilinear resize, float32 normalisation, zero padding): the goldens in
//! `tests/golden/sam/` were written by `reference/make_sam_goldens.py`.

mod common;

use nuclio_ort::{
    imaging::{decode_image, DecodeLimits},
    models::sam::preprocess::{preprocess, resize_longest_side, INPUT_SIZE},
};
use serde_json::Value;

const IMAGES: [&str; 4] = [
    "chelsea.png",
    "coffee.png",
    "astronaut.png",
    "scene-1080p.jpg",
];

fn golden(name: &str) -> Value {
    let path = format!(
        "{}/tests/golden/sam/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).expect("golden JSON")
}

fn size(v: &Value) -> [u32; 2] {
    [
        v[0].as_u64().expect("h") as u32,
        v[1].as_u64().expect("w") as u32,
    ]
}

#[test]
fn preprocessing_matches_the_reference_goldens() {
    let Some(shared) = require_shared!() else {
        return;
    };
    for name in IMAGES {
        let g = golden(name);
        let bytes = std::fs::read(shared.join("images").join(name)).expect("image");
        let decoded = decode_image(&bytes, DecodeLimits::default()).expect("decode");
        assert_eq!(
            [decoded.rgb.height(), decoded.rgb.width()],
            size(&g["orig_size"]),
            "{name}"
        );

        // The resize alone: exact per-channel sums of the uint8 image.
        let resized = resize_longest_side(&decoded.rgb);
        assert_eq!(
            [resized.height(), resized.width()],
            size(&g["resized_size"]),
            "{name}"
        );
        let mut sums = [0u64; 3];
        for px in resized.pixels() {
            for (sum, v) in sums.iter_mut().zip(px.0) {
                *sum += u64::from(v);
            }
        }
        let want: Vec<u64> = g["resized_u8_channel_sum"]
            .as_array()
            .expect("sums")
            .iter()
            .map(|v| v.as_u64().expect("sum"))
            .collect();
        assert_eq!(
            sums.to_vec(),
            want,
            "{name}: resized uint8 channel sums differ from Pillow"
        );

        let tensor = preprocess(&decoded.rgb);
        assert_eq!(tensor.shape(), &[1, 3, INPUT_SIZE, INPUT_SIZE]);
        let (mut worst, mut u8_mismatches) = (0f64, 0);
        let rows = g["samples"]["rows"].as_array().expect("samples");
        assert!(
            rows.len() >= 2000,
            "{name}: golden has {} samples",
            rows.len()
        );
        for row in rows {
            let [y, x, c, u8v, value] = [0, 1, 2, 3, 4].map(|i| row[i].as_f64().expect("number"));
            let (y, x, c) = (y as u32, x as u32, c as usize);
            let got = tensor[[0, c, y as usize, x as usize]];
            worst = worst.max((f64::from(got) - value).abs());
            if u8v >= 0.0 && f64::from(resized.get_pixel(x, y).0[c]) != u8v {
                u8_mismatches += 1;
            }
            if u8v < 0.0 {
                assert_eq!(got, 0.0, "{name}: padding at ({y}, {x}, {c}) is {got}");
            }
        }
        assert!(worst <= 1e-3, "{name}: max |diff| {worst} > 1e-3");
        assert_eq!(
            u8_mismatches, 0,
            "{name}: resized pixels differ from Pillow"
        );

        // Whole-tensor statistics over the valid region.
        let [nh, nw] = size(&g["resized_size"]);
        for c in 0..3 {
            let valid = tensor.slice(ndarray::s![0, c, ..nh as usize, ..nw as usize]);
            let mean = valid.iter().map(|v| f64::from(*v)).sum::<f64>() / valid.len() as f64;
            let want = g["valid_mean"][c].as_f64().expect("mean");
            assert!(
                (mean - want).abs() < 1e-5,
                "{name}: channel {c} mean {mean} vs {want}"
            );
            let padding = tensor
                .slice(ndarray::s![0, c, nh as usize.., ..])
                .iter()
                .chain(tensor.slice(ndarray::s![0, c, .., nw as usize..]).iter())
                .all(|v| *v == 0.0);
            assert!(padding, "{name}: non-zero padding in channel {c}");
        }
    }
}
