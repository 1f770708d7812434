//! JPEG through libjpeg-turbo: the decoder behind OpenCV's `imread` and PIL,
//! so pixels (and therefore YOLO scores) match Ultralytics bit for bit, and
//! DCT-domain scaling (1/2, 1/4, 1/8) for `--fast-decode`.

use image::{metadata::Orientation, RgbImage};
use turbojpeg::{Colorspace, Decompressor, Image, PixelFormat, ScalingFactor};

use crate::{Error, Result};

/// What a JPEG header says, read without decoding pixels.
pub struct JpegHeader {
    pub width: u32,
    pub height: u32,
    /// CMYK/YCCK files are left to the general decoder, which converts them.
    pub cmyk: bool,
}

pub fn read_header(bytes: &[u8]) -> Result<JpegHeader> {
    let header = turbojpeg::read_header(bytes)
        .map_err(|e| Error::CorruptImage(format!("JPEG header: {e}")))?;
    Ok(JpegHeader {
        width: header.width as u32,
        height: header.height as u32,
        cmyk: matches!(header.colorspace, Colorspace::CMYK | Colorspace::YCCK),
    })
}

/// The largest DCT scale-down that keeps both sides at least `min` (so the
/// letterbox still only shrinks), or 1 when no scaling helps.
pub fn scale_for(width: u32, height: u32, min: [u32; 2]) -> ScalingFactor {
    for denom in [8, 4, 2] {
        let (w, h) = (width.div_ceil(denom), height.div_ceil(denom));
        if w >= min[1] && h >= min[0] {
            return ScalingFactor::new(1, denom as usize);
        }
    }
    ScalingFactor::ONE
}

/// Decodes to 8-bit RGB at `scale`. Truncated or corrupt data is an error
/// (libjpeg-turbo's "premature end" warning included), not a grey-filled image.
pub fn decode(bytes: &[u8], width: u32, height: u32, scale: ScalingFactor) -> Result<RgbImage> {
    let corrupt = |e: turbojpeg::Error| {
        Error::CorruptImage(format!("JPEG data is corrupt or truncated: {e}"))
    };
    let mut decompressor =
        Decompressor::new().map_err(|e| Error::Internal(format!("libjpeg-turbo: {e}")))?;
    decompressor.set_scaling_factor(scale).map_err(corrupt)?;
    let w = (width as usize * scale.num()).div_ceil(scale.denom());
    let h = (height as usize * scale.num()).div_ceil(scale.denom());
    let mut pixels = vec![0u8; w * h * 3];
    decompressor
        .decompress(
            bytes,
            Image {
                pixels: pixels.as_mut_slice(),
                width: w,
                pitch: w * 3,
                height: h,
                format: PixelFormat::RGB,
            },
        )
        .map_err(corrupt)?;
    RgbImage::from_raw(w as u32, h as u32, pixels)
        .ok_or_else(|| Error::Internal("JPEG buffer size mismatch".into()))
}

/// EXIF orientation from the APP1 segment, walking the marker segments up to
/// the first scan (a few hundred bytes; no pixel data is touched).
pub fn orientation(bytes: &[u8]) -> Orientation {
    let mut i = 2; // after SOI
    while i + 4 <= bytes.len() {
        if bytes[i] != 0xFF {
            break;
        }
        let marker = bytes[i + 1];
        if marker == 0xFF {
            i += 1; // fill byte
            continue;
        }
        if marker == 0xDA || marker == 0xD9 {
            break; // start of scan / end of image: no more metadata
        }
        let len = usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
        let Some(segment) = bytes.get(i + 4..i + 2 + len) else {
            break;
        };
        if marker == 0xE1 {
            if let Some(exif) = segment.strip_prefix(b"Exif\0\0") {
                if let Some(o) = Orientation::from_exif_chunk(exif) {
                    return o;
                }
            }
        }
        i += 2 + len;
    }
    Orientation::NoTransforms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_largest_scale_that_keeps_the_model_size() {
        assert_eq!(scale_for(3840, 2160, [640, 640]), ScalingFactor::ONE_HALF); // 1920x1080; 1/4 → 960x540 < 640 high
        assert_eq!(
            scale_for(3840, 2160, [320, 320]),
            ScalingFactor::ONE_QUARTER
        );
        assert_eq!(scale_for(640, 480, [640, 640]), ScalingFactor::ONE);
    }

    #[test]
    fn no_exif_means_no_transform() {
        assert_eq!(
            orientation(&[0xFF, 0xD8, 0xFF, 0xD9]),
            Orientation::NoTransforms
        );
        assert_eq!(
            orientation(&[0xFF, 0xD8, 0xFF, 0xE1, 0x00]),
            Orientation::NoTransforms
        );
    }
}
