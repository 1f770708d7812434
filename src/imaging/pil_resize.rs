//! PIL-exact antialiased bilinear resize (SAM preprocessing parity).
//!
//! SAM's embeddings are computed on an image resized by Pillow's
//! `Image.resize(size, BILINEAR)` (through torchvision). The decoder (in CVAT's
//! browser plugin, or ours) maps clicks onto that embedding, so a resize that
//! drifts shifts every mask. General-purpose resizers do not match Pillow:
//! `fast_image_resize` uses 16-bit coefficients and is off by one level on
//! 10–16 % of pixels, OpenCV does not antialias when shrinking. This is a
//! straight port of Pillow 13's `ImagingResample` for 8-bit images (the
//! executable spec is `pillow_bilinear_u8` in `reference/sam_preprocess.py`):
//! double-precision triangle weights widened by the scale factor, 22-bit
//! fixed-point coefficients, two separable passes through an 8-bit
//! intermediate, and Pillow 13's choice of which pass runs first.

use image::RgbImage;

/// Pillow's `PRECISION_BITS` for 8-bit images (32 - 8 - 2).
const PRECISION_BITS: u32 = 22;
const CHANNELS: usize = 3;

/// Per output pixel: the first source pixel, how many are read, and their
/// fixed-point weights (`ksize` slots per output pixel, Pillow's layout).
struct Coeffs {
    bounds: Vec<(usize, usize)>,
    ksize: usize,
    kk: Vec<i32>,
}

impl Coeffs {
    fn weights(&self, i: usize) -> &[i32] {
        let (_, n) = self.bounds[i];
        &self.kk[i * self.ksize..i * self.ksize + n]
    }
}

/// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for the bilinear
/// (triangle, support 1) filter over the whole axis.
fn coeffs(in_size: usize, out_size: usize) -> Coeffs {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut kk = vec![0i32; out_size * ksize];
    let mut w = vec![0f64; ksize];
    let ss = 1.0 / filterscale;
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        // `as` truncates toward zero, like C's (int) cast.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let n = xmax.saturating_sub(xmin).min(ksize);
        let mut ww = 0.0;
        for (x, slot) in w.iter_mut().enumerate().take(n) {
            let t = (((x + xmin) as f64 - center + 0.5) * ss).abs();
            let v = if t < 1.0 { 1.0 - t } else { 0.0 };
            *slot = v;
            ww += v;
        }
        let row = &mut kk[xx * ksize..xx * ksize + n];
        for (k, &v) in row.iter_mut().zip(&w[..n]) {
            let v = if ww != 0.0 { v / ww } else { v };
            let scaled = v * f64::from(1u32 << PRECISION_BITS);
            *k = if v < 0.0 {
                (-0.5 + scaled) as i32
            } else {
                (0.5 + scaled) as i32
            };
        }
        bounds.push((xmin, n));
    }
    Coeffs { bounds, ksize, kk }
}

#[inline]
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Horizontal pass over `rows` of `src` (`width` pixels wide).
fn horizontal(src: &[u8], width: usize, rows: usize, c: &Coeffs) -> Vec<u8> {
    let out_w = c.bounds.len();
    let mut out = vec![0u8; rows * out_w * CHANNELS];
    let bias = 1i32 << (PRECISION_BITS - 1);
    for (src_row, out_row) in src
        .chunks_exact(width * CHANNELS)
        .zip(out.chunks_exact_mut(out_w * CHANNELS))
        .take(rows)
    {
        for (xx, px) in out_row.chunks_exact_mut(CHANNELS).enumerate() {
            let (xmin, _) = c.bounds[xx];
            let mut acc = [bias; CHANNELS];
            for (x, &k) in c.weights(xx).iter().enumerate() {
                let p = (xmin + x) * CHANNELS;
                for ch in 0..CHANNELS {
                    acc[ch] += i32::from(src_row[p + ch]) * k;
                }
            }
            for ch in 0..CHANNELS {
                px[ch] = clip8(acc[ch]);
            }
        }
    }
    out
}

/// Vertical pass over an image `width` pixels wide; `c` indexes its rows.
fn vertical(src: &[u8], width: usize, c: &Coeffs) -> Vec<u8> {
    let stride = width * CHANNELS;
    let out_h = c.bounds.len();
    let mut out = vec![0u8; out_h * stride];
    let mut acc = vec![0i32; stride];
    for (yy, out_row) in out.chunks_exact_mut(stride).enumerate() {
        let (ymin, _) = c.bounds[yy];
        acc.fill(1i32 << (PRECISION_BITS - 1));
        // Integer sums are exact, so row-by-row accumulation equals Pillow's per-pixel loop.
        for (y, &k) in c.weights(yy).iter().enumerate() {
            let row = &src[(ymin + y) * stride..(ymin + y + 1) * stride];
            for (a, &v) in acc.iter_mut().zip(row) {
                *a += i32::from(v) * k;
            }
        }
        for (o, &a) in out_row.iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
    out
}

/// Resizes to `new_width × new_height` exactly as Pillow 13's
/// `Image.resize((new_width, new_height), Image.BILINEAR)` does on an RGB image.
pub fn resize_bilinear(src: &RgbImage, new_width: u32, new_height: u32) -> RgbImage {
    let (w, h) = (src.width() as usize, src.height() as usize);
    let (nw, nh) = (new_width as usize, new_height as usize);
    if nw == 0 || nh == 0 || w == 0 || h == 0 {
        return RgbImage::new(new_width, new_height);
    }
    if (nw, nh) == (w, h) {
        return src.clone();
    }
    let data: &[u8] = src.as_raw();
    let cv = coeffs(h, nh);
    let ch = coeffs(w, nw);
    // Pillow >= 13 runs the vertical pass first when the height shrinks much
    // more than the width (rule inferred from its output, see the reference).
    let vertical_first = nw != w && nh < h && (h as i64 - nh as i64) > 2 * (w as i64 - nw as i64);
    let out = if vertical_first {
        let tall = vertical(data, w, &cv);
        horizontal(&tall, w, nh, &ch)
    } else {
        let mut cv = cv;
        let (rows, first_row) = if nw != w {
            // Only the source rows the vertical pass will read.
            let y0 = cv.bounds.first().map_or(0, |b| b.0);
            let y1 = cv.bounds.last().map_or(h, |b| b.0 + b.1);
            let stripe = &data[y0 * w * CHANNELS..y1 * w * CHANNELS];
            for b in &mut cv.bounds {
                b.0 -= y0;
            }
            (horizontal(stripe, w, y1 - y0, &ch), y1 - y0)
        } else {
            (data.to_vec(), h)
        };
        if nh != h {
            vertical(&rows, nw, &cv)
        } else {
            debug_assert_eq!(first_row, h);
            rows
        }
    };
    RgbImage::from_raw(new_width, new_height, out).unwrap_or_else(|| RgbImage::new(0, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random RGB test image (same as the Python check below).
    fn pattern(w: u32, h: u32) -> RgbImage {
        let mut state: u32 = 12345;
        RgbImage::from_fn(w, h, |_, _| {
            let mut next = || {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (state >> 16) as u8
            };
            image::Rgb([next(), next(), next()])
        })
    }

    fn fnv1a(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
    }

    #[test]
    fn identity_and_constant_images() {
        let img = pattern(7, 5);
        assert_eq!(resize_bilinear(&img, 7, 5), img);
        let flat = RgbImage::from_pixel(37, 23, image::Rgb([10, 200, 255]));
        for (w, h) in [(1024, 637), (5, 3), (1, 1), (37, 1)] {
            let out = resize_bilinear(&flat, w, h);
            assert!(out.pixels().all(|p| p.0 == [10, 200, 255]), "{w}x{h}");
        }
    }

    /// Checksums of Pillow 13.0.0's own output for `pattern()` images, one per
    /// code path (upscale, downscale horizontal-first, tall vertical-first,
    /// one axis only). Produced by `Image.fromarray(a).resize(size, BILINEAR)`.
    #[test]
    fn matches_pillow_bit_for_bit() {
        for (w, h, nw, nh, expected) in PILLOW_CASES {
            let out = resize_bilinear(&pattern(*w, *h), *nw, *nh);
            assert_eq!(out.dimensions(), (*nw, *nh));
            assert_eq!(
                fnv1a(out.as_raw()),
                *expected,
                "{w}x{h} -> {nw}x{nh} differs from Pillow"
            );
        }
    }

    const PILLOW_CASES: &[(u32, u32, u32, u32, u64)] = &[
        (45, 31, 101, 70, 0x3d34b0b17aabb562),
        (300, 200, 113, 75, 0xd60e19461a387d08),
        (60, 500, 40, 123, 0x8e6cd709948f9b88),
        (80, 50, 80, 17, 0xfd3a78aef5e42eac),
        (80, 50, 33, 50, 0x101771bb743433bf),
        (1, 1, 5, 9, 0xf29df468fe113954),
        (97, 13, 1024, 137, 0xe8d81e833fec027a),
        (2000, 3, 1024, 2, 0x4d1263440ebb6497),
        (700, 1500, 478, 1024, 0xd4fd376ba8c7fbf7),
    ];
}
