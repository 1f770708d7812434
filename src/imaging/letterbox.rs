//! Ultralytics' `LetterBox` written straight into an NCHW tensor slot.
//!
//! Parity matters more than elegance here: YOLO boxes and scores must match
//! Ultralytics' own pipeline, which resizes with OpenCV's `INTER_LINEAR` on
//! 8-bit images. That resize samples 2×2 source pixels with 11-bit fixed-point
//! weights and does *not* smooth when shrinking, so general-purpose
//! (antialiasing) resizers drift visibly on 4K → 640. The resize below follows
//! OpenCV's arithmetic (half-pixel centres, `cvRound`ed weights, the SIMD
//! vertical pass), fused with padding, /255 and the HWC → CHW transpose so the
//! image is written once, in place, into its slot of the batch tensor.

use image::RgbImage;
use rayon::prelude::*;

/// Pad value of Ultralytics' letterbox (grey 114).
const PAD: u8 = 114;
/// OpenCV's `INTER_RESIZE_COEF_BITS`.
const COEF_BITS: u32 = 11;
const COEF_SCALE: f32 = (1 << COEF_BITS) as f32;

/// Where the image landed inside the model input: enough to map boxes back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    /// Scale applied to the source image (`r` in Ultralytics).
    pub ratio: f64,
    pub new_width: u32,
    pub new_height: u32,
    pub pad_left: u32,
    pub pad_top: u32,
    pub src_width: u32,
    pub src_height: u32,
}

impl Letterbox {
    /// `r = min(H/h, W/w)` (upscaling allowed), `round` half-to-even like Python,
    /// padding split with `round(d ∓ 0.1)` so odd remainders go bottom/right.
    pub fn plan(src_width: u32, src_height: u32, dst_width: u32, dst_height: u32) -> Self {
        let (w, h) = (f64::from(src_width), f64::from(src_height));
        let ratio = (f64::from(dst_height) / h).min(f64::from(dst_width) / w);
        // At least one pixel: a 12000×8 strip would otherwise round to height 0.
        let new_width = ((w * ratio).round_ties_even() as u32).clamp(1, dst_width);
        let new_height = ((h * ratio).round_ties_even() as u32).clamp(1, dst_height);
        let dw = f64::from(dst_width - new_width) / 2.0;
        let dh = f64::from(dst_height - new_height) / 2.0;
        Self {
            ratio,
            new_width,
            new_height,
            pad_left: (dw - 0.1).round_ties_even().max(0.0) as u32,
            pad_top: (dh - 0.1).round_ties_even().max(0.0) as u32,
            src_width,
            src_height,
        }
    }

    /// Maps a point of the model input back to the source image (unclipped).
    pub fn to_source(&self, x: f32, y: f32) -> (f32, f32) {
        let r = self.ratio as f32;
        (
            (x - self.pad_left as f32) / r,
            (y - self.pad_top as f32) / r,
        )
    }
}

/// Letterboxes `src` into `out`, a `3 × dst_height × dst_width` CHW slot of
/// the batch tensor, as RGB scaled to [0, 1].
pub fn letterbox_into(
    src: &RgbImage,
    dst_width: u32,
    dst_height: u32,
    out: &mut [f32],
) -> Letterbox {
    let plan = Letterbox::plan(src.width(), src.height(), dst_width, dst_height);
    let (dw, dh) = (dst_width as usize, dst_height as usize);
    let plane = dw * dh;
    debug_assert_eq!(out.len(), 3 * plane);
    let (nw, nh) = (plan.new_width as usize, plan.new_height as usize);
    let (left, top) = (plan.pad_left as usize, plan.pad_top as usize);
    fill_padding(out, dw, dh, (left, top, nw, nh));
    let resize = (nw, nh) != (src.width() as usize, src.height() as usize);
    let (xt, yt) = if resize {
        (
            taps(src.width() as usize, nw),
            taps(src.height() as usize, nh),
        )
    } else {
        (Vec::new(), Vec::new())
    };
    // The image rows of each plane, cut into bands resized in parallel: a 4K
    // frame is one request's latency, and at concurrency 1 the other cores idle.
    let bands = rayon::current_num_threads().clamp(1, 8);
    let band_rows = nh.div_ceil(bands).max(1);
    fn region(
        plane: &mut [f32],
        rows: std::ops::Range<usize>,
        dw: usize,
        band: usize,
    ) -> Vec<&mut [f32]> {
        plane[rows.start * dw..rows.end * dw]
            .chunks_mut(band * dw)
            .collect()
    }
    let region = |p| region(p, top..top + nh, dw, band_rows);
    let mut planes = out.chunks_exact_mut(plane);
    let (Some(r), Some(g), Some(b)) = (planes.next(), planes.next(), planes.next()) else {
        return plan;
    };
    let work: Vec<_> = region(r)
        .into_iter()
        .zip(region(g))
        .zip(region(b))
        .enumerate()
        .collect();
    work.into_par_iter().for_each(|(band, ((r, g), b))| {
        let y0 = band * band_rows;
        let y1 = (y0 + band_rows).min(nh);
        let mut write_row = |y: usize, rgb: &[u8]| {
            let offset = (y - y0) * dw + left;
            let span = offset..offset + nw;
            let planes = r[span.clone()]
                .iter_mut()
                .zip(&mut g[span.clone()])
                .zip(&mut b[span]);
            for (((r, g), b), px) in planes.zip(rgb.chunks_exact(3)) {
                *r = f32::from(px[0]) * (1.0 / 255.0);
                *g = f32::from(px[1]) * (1.0 / 255.0);
                *b = f32::from(px[2]) * (1.0 / 255.0);
            }
        };
        if resize {
            resize_linear_rows(src, &xt, &yt[y0..y1], y0, &mut write_row);
        } else {
            for (y, row) in src
                .as_raw()
                .chunks_exact(nw * 3)
                .enumerate()
                .take(y1)
                .skip(y0)
            {
                write_row(y, row);
            }
        }
    });
    plan
}

/// Writes the grey border around the `(left, top, width, height)` image
/// rectangle of each plane; the rectangle itself is written by the resize, so
/// filling it too would touch every float of the tensor twice.
fn fill_padding(
    out: &mut [f32],
    dw: usize,
    dh: usize,
    (left, top, nw, nh): (usize, usize, usize, usize),
) {
    let pad = f32::from(PAD) / 255.0;
    for plane in out.chunks_exact_mut(dw * dh) {
        plane[..top * dw].fill(pad);
        plane[(top + nh) * dw..].fill(pad);
        for row in plane[top * dw..(top + nh) * dw].chunks_exact_mut(dw) {
            row[..left].fill(pad);
            row[left + nw..].fill(pad);
        }
    }
}

/// One output tap of OpenCV's linear interpolation: source index and weights.
#[derive(Clone, Copy)]
struct Tap {
    index: usize,
    w0: i32,
    w1: i32,
}

/// `fx = (dx + 0.5)·scale − 0.5`, indices clamped to the border (OpenCV's
/// `BORDER_REPLICATE` for resize), weights rounded to 11 bits with `cvRound`.
fn taps(src_len: usize, dst_len: usize) -> Vec<Tap> {
    let scale = src_len as f64 / dst_len as f64;
    (0..dst_len)
        .map(|d| {
            let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let mut s = f.floor();
            let mut frac = f - s;
            if s < 0.0 {
                s = 0.0;
                frac = 0.0;
            }
            if s as usize >= src_len - 1 {
                s = (src_len - 1) as f32;
                frac = 0.0;
            }
            Tap {
                index: s as usize,
                w0: ((1.0 - frac) * COEF_SCALE).round_ties_even() as i32,
                w1: (frac * COEF_SCALE).round_ties_even() as i32,
            }
        })
        .collect()
}

/// Resizes `src` to `nw × nh` with OpenCV `INTER_LINEAR` semantics on 8-bit
/// data, handing each finished RGB row to `emit`. Horizontally resized source
/// rows are cached, so every source row is filtered at most once.
/// `yt` are the taps of output rows `first..first + yt.len()`, so bands of
/// one image can be resized independently.
fn resize_linear_rows(
    src: &RgbImage,
    xt: &[Tap],
    yt: &[Tap],
    first: usize,
    mut emit: impl FnMut(usize, &[u8]),
) {
    let (sw, sh) = (src.width() as usize, src.height() as usize);
    let nw = xt.len();
    let raw = src.as_raw();
    let hresize = |sy: usize, out: &mut [i32]| {
        let row = &raw[sy * sw * 3..(sy + 1) * sw * 3];
        for (px, t) in out.chunks_exact_mut(3).zip(xt) {
            let s0 = t.index * 3;
            let s1 = (t.index + 1).min(sw - 1) * 3;
            let (a, b) = (&row[s0..s0 + 3], &row[s1..s1 + 3]);
            px[0] = i32::from(a[0]) * t.w0 + i32::from(b[0]) * t.w1;
            px[1] = i32::from(a[1]) * t.w0 + i32::from(b[1]) * t.w1;
            px[2] = i32::from(a[2]) * t.w0 + i32::from(b[2]) * t.w1;
        }
    };
    // Two cached horizontal rows, tagged with the source row they hold.
    let mut rows = [vec![0i32; nw * 3], vec![0i32; nw * 3]];
    let mut held = [usize::MAX, usize::MAX];
    let mut line = vec![0u8; nw * 3];
    for (dy, t) in yt.iter().enumerate() {
        let want = [t.index, (t.index + 1).min(sh - 1)];
        if held[0] != want[0] {
            if held[1] == want[0] {
                // Moving down one source row: the old second row is the new first.
                rows.swap(0, 1);
                held.swap(0, 1);
            } else {
                hresize(want[0], &mut rows[0]);
                held[0] = want[0];
            }
        }
        if held[1] != want[1] {
            if want[1] == want[0] {
                let [first, second] = &mut rows;
                second.copy_from_slice(first);
            } else {
                hresize(want[1], &mut rows[1]);
            }
            held[1] = want[1];
        }
        // OpenCV's SIMD vertical pass (VResizeLinearVec_32s8u):
        // ((S0 >> 4)·b0 >> 16) + ((S1 >> 4)·b1 >> 16), then (+2) >> 2.
        let (b0, b1) = (t.w0, t.w1);
        for ((dst, &s0), &s1) in line.iter_mut().zip(&rows[0]).zip(&rows[1]) {
            let v = (((s0 >> 4) * b0) >> 16) + (((s1 >> 4) * b1) >> 16);
            *dst = ((v + 2) >> 2).clamp(0, 255) as u8;
        }
        emit(first + dy, &line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_matches_ultralytics_for_common_frames() {
        // 1920x1080 → 640: r = 1/3, 640x360, pad 140 top and bottom.
        let p = Letterbox::plan(1920, 1080, 640, 640);
        assert_eq!(
            (p.new_width, p.new_height, p.pad_left, p.pad_top),
            (640, 360, 0, 140)
        );
        // 451x300 → 640: r = 640/451, height 425.7 → 426, dh = 107 → top 107.
        let p = Letterbox::plan(451, 300, 640, 640);
        assert_eq!((p.new_width, p.new_height, p.pad_top), (640, 426, 107));
        // Odd remainder: 640x639 → dh = 0.5 → top round(0.4) = 0.
        let p = Letterbox::plan(640, 639, 640, 640);
        assert_eq!((p.new_height, p.pad_top), (639, 0));
        // Degenerate strip keeps at least one row.
        assert_eq!(Letterbox::plan(12000, 8, 640, 640).new_height, 1);
    }

    #[test]
    fn pads_with_114_and_preserves_constant_images() {
        let src = RgbImage::from_pixel(40, 20, image::Rgb([10, 200, 30]));
        let mut out = vec![0.0; 3 * 64 * 64];
        let plan = letterbox_into(&src, 64, 64, &mut out);
        assert_eq!(
            (plan.new_width, plan.new_height, plan.pad_top),
            (64, 32, 16)
        );
        let at =
            |c: usize, y: usize, x: usize| (out[c * 64 * 64 + y * 64 + x] * 255.0).round() as u8;
        assert_eq!(at(0, 0, 0), 114);
        assert_eq!(at(2, 63, 63), 114);
        assert_eq!((at(0, 30, 20), at(1, 30, 20), at(2, 30, 20)), (10, 200, 30));
    }

    #[test]
    fn linear_resize_interpolates_like_opencv() {
        // A horizontal ramp 0, 100, 200 upscaled to 6: OpenCV gives
        // 0 25 75 125 175 200 (half-pixel centres, clamped borders).
        let mut src = RgbImage::new(3, 1);
        for (x, v) in [0u8, 100, 200].into_iter().enumerate() {
            src.put_pixel(x as u32, 0, image::Rgb([v, v, v]));
        }
        let mut got = Vec::new();
        resize_linear_rows(&src, &taps(3, 6), &taps(1, 1), 0, |_, row: &[u8]| {
            got.extend(row.iter().step_by(3).copied())
        });
        assert_eq!(got, vec![0, 25, 75, 125, 175, 200]);
    }

    #[test]
    fn parallel_bands_give_the_same_pixels_as_one_band() {
        let src = RgbImage::from_fn(333, 517, |x, y| {
            image::Rgb([(x * 7 + y) as u8, (x ^ y) as u8, (x * y) as u8])
        });
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut out = vec![0.0; 3 * 96 * 128];
            pool.install(|| letterbox_into(&src, 128, 96, &mut out));
            out
        };
        assert_eq!(run(1), run(5));
    }
}
