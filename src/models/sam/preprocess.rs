//! SAM's image preprocessing (`SamPredictor.set_image`): resize the longest
//! side to 1024 with Pillow's bilinear filter, normalise with ImageNet
//! statistics, zero-pad bottom/right, NCHW float32.
//!
//! Parity is the point: the embedding is only meaningful to SAM's decoder if
//! it was computed on the same pixels. `tests/sam_preprocess.rs` checks this
//! against goldens made by `reference/sam_preprocess.py`.

use image::RgbImage;
use ndarray::{ArrayD, IxDyn};

use crate::imaging::pil_resize::resize_bilinear;

/// Side of SAM's square encoder input.
pub const INPUT_SIZE: usize = 1024;
pub const PIXEL_MEAN: [f32; 3] = [123.675, 116.28, 103.53];
pub const PIXEL_STD: [f32; 3] = [58.395, 57.12, 57.375];

/// `ResizeLongestSide.get_preprocess_shape`, same float64 arithmetic:
/// `(new_height, new_width)`. At least 1 pixel: SAM itself would fail on a
/// 1×20000 strip (Pillow refuses a zero size); we keep one row instead.
pub fn preprocess_shape(height: u32, width: u32) -> (u32, u32) {
    let scale = INPUT_SIZE as f64 * 1.0 / f64::from(height.max(width).max(1));
    let side = |v: u32| ((f64::from(v) * scale + 0.5) as u32).clamp(1, INPUT_SIZE as u32);
    (side(height), side(width))
}

/// The resized (not yet normalised) image, as SAM's encoder sees it.
pub fn resize_longest_side(rgb: &RgbImage) -> RgbImage {
    let (new_height, new_width) = preprocess_shape(rgb.height(), rgb.width());
    resize_bilinear(rgb, new_width, new_height)
}

/// Full preprocessing: `[1, 3, 1024, 1024]` float32, zeros outside the image.
pub fn preprocess(rgb: &RgbImage) -> ArrayD<f32> {
    let resized = resize_longest_side(rgb);
    let plane = INPUT_SIZE * INPUT_SIZE;
    let mut data = vec![0f32; 3 * plane];
    let (w, h) = (resized.width() as usize, resized.height() as usize);
    for (y, row) in resized.as_raw().chunks_exact(w * 3).enumerate().take(h) {
        for (x, px) in row.chunks_exact(3).enumerate() {
            for c in 0..3 {
                // Two float32 operations, exactly as torch computes (x - mean) / std.
                data[c * plane + y * INPUT_SIZE + x] =
                    (f32::from(px[c]) - PIXEL_MEAN[c]) / PIXEL_STD[c];
            }
        }
    }
    ArrayD::from_shape_vec(IxDyn(&[1, 3, INPUT_SIZE, INPUT_SIZE]), data)
        .unwrap_or_else(|_| ArrayD::zeros(IxDyn(&[1, 3, INPUT_SIZE, INPUT_SIZE])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_side_becomes_1024_with_sams_rounding() {
        assert_eq!(preprocess_shape(300, 451), (681, 1024));
        assert_eq!(preprocess_shape(1080, 1920), (576, 1024));
        assert_eq!(preprocess_shape(512, 512), (1024, 1024));
        assert_eq!(preprocess_shape(8, 12000), (1, 1024));
        assert_eq!(preprocess_shape(1, 20000), (1, 1024));
    }

    #[test]
    fn pads_with_zero_after_normalising() {
        let img = RgbImage::from_pixel(4, 2, image::Rgb([255, 0, 128]));
        let t = preprocess(&img);
        assert_eq!(t.shape(), &[1, 3, 1024, 1024]);
        // 4x2 → 1024x512: the valid area is rows 0..512.
        assert_eq!(t[[0, 0, 0, 0]], (255.0 - 123.675) / 58.395);
        assert_eq!(t[[0, 1, 511, 1023]], (0.0 - 116.28) / 57.12);
        assert_eq!(t[[0, 2, 512, 0]], 0.0);
        assert_eq!(t[[0, 0, 1023, 1023]], 0.0);
    }
}
