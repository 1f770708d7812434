//! Image decoding with hard limits and EXIF orientation.
//!
//! The header is read first and the pixel count checked before any pixel
//! buffer exists, so a 2 MB PNG that declares 50000×50000 pixels is refused in
//! microseconds with flat memory. Orientation is applied the way OpenCV's
//! `imread` does (Ultralytics' reference path), so boxes come back in the frame
//! the user sees. Every colour model (gray, RGBA, CMYK, 16-bit, palette) ends
//! as 8-bit RGB.

use std::io::Cursor;

use image::{
    metadata::Orientation, DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage,
};

use super::jpeg;

use crate::{Error, Result};

#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    /// Largest width × height accepted, checked on the header.
    pub max_pixels: u64,
    /// `--fast-decode`: JPEGs may be decoded at 1/2, 1/4 or 1/8 scale as long
    /// as both sides stay at least this `[height, width]` (the model input).
    pub fast_decode_min: Option<[u32; 2]>,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_pixels: 16384 * 16384,
            fast_decode_min: None,
        }
    }
}

/// An upright RGB image plus what it was decoded from.
#[derive(Debug)]
pub struct DecodedImage {
    pub rgb: RgbImage,
    pub format: ImageFormat,
    /// Size of the upright original; differs from `rgb` after fast decode.
    pub width: u32,
    pub height: u32,
}

impl DecodedImage {
    fn full(rgb: RgbImage, format: ImageFormat) -> Self {
        let (width, height) = rgb.dimensions();
        Self {
            rgb,
            format,
            width,
            height,
        }
    }

    /// Original pixels per decoded pixel, `[x, y]` (1 unless fast-decoded).
    pub fn scale(&self) -> [f32; 2] {
        [
            self.width as f32 / self.rgb.width() as f32,
            self.height as f32 / self.rgb.height() as f32,
        ]
    }
}

pub fn decode_image(bytes: &[u8], limits: DecodeLimits) -> Result<DecodedImage> {
    if bytes.is_empty() {
        return Err(Error::EmptyImage);
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::CorruptImage(e.to_string()))?;
    let Some(format) = reader.format() else {
        return Err(Error::UnsupportedImage(format!(
            "unrecognised file signature (starts with {}); expected JPEG, PNG, BMP, TIFF, WebP or GIF",
            describe_start(bytes)
        )));
    };
    if format == ImageFormat::Jpeg {
        if let Some(image) = decode_jpeg(bytes, limits)? {
            return Ok(image);
        }
    }
    let mut reader = reader;
    let mut decoder_limits = Limits::default();
    // Decoders allocate at most the output (up to 16-bit RGBA) plus working memory.
    decoder_limits.max_alloc = Some(limits.max_pixels.saturating_mul(8).max(64 << 20));
    reader.limits(decoder_limits);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| map_image_error(e, format))?;

    let (width, height) = decoder.dimensions();
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(Error::ImageTooLarge {
            width,
            height,
            pixels,
            limit: limits.max_pixels,
        });
    }
    if pixels == 0 {
        return Err(Error::CorruptImage(format!(
            "{format:?} image has zero width or height"
        )));
    }
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| map_image_error(e, format))?;
    image.apply_orientation(orientation);
    metrics::counter!("nuclio_ort_images_decoded_total", "format" => format_name(format))
        .increment(1);
    Ok(DecodedImage::full(into_rgb8(image), format))
}

fn check_size(width: u32, height: u32, format: ImageFormat, limits: DecodeLimits) -> Result<()> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(Error::ImageTooLarge {
            width,
            height,
            pixels,
            limit: limits.max_pixels,
        });
    }
    if pixels == 0 {
        return Err(Error::CorruptImage(format!(
            "{format:?} image has zero width or height"
        )));
    }
    Ok(())
}

/// libjpeg-turbo path; `None` for CMYK/YCCK files, which the general decoder converts.
fn decode_jpeg(bytes: &[u8], limits: DecodeLimits) -> Result<Option<DecodedImage>> {
    let header = jpeg::read_header(bytes)?;
    check_size(header.width, header.height, ImageFormat::Jpeg, limits)?;
    if header.cmyk {
        return Ok(None);
    }
    let orientation = jpeg::orientation(bytes);
    let transposed = matches!(
        orientation,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    );
    let scale = match limits.fast_decode_min {
        // The minimum applies to the upright frame.
        Some([h, w]) if transposed => jpeg::scale_for(header.width, header.height, [w, h]),
        Some(min) => jpeg::scale_for(header.width, header.height, min),
        None => turbojpeg::ScalingFactor::ONE,
    };
    let rgb = jpeg::decode(bytes, header.width, header.height, scale)?;
    let mut image = DynamicImage::ImageRgb8(rgb);
    image.apply_orientation(orientation);
    let (width, height) = if transposed {
        (header.height, header.width)
    } else {
        (header.width, header.height)
    };
    metrics::counter!("nuclio_ort_images_decoded_total", "format" => "jpg").increment(1);
    Ok(Some(DecodedImage {
        rgb: into_rgb8(image),
        format: ImageFormat::Jpeg,
        width,
        height,
    }))
}

/// 8-bit RGB without a copy when the image already is.
fn into_rgb8(image: DynamicImage) -> RgbImage {
    match image {
        DynamicImage::ImageRgb8(rgb) => rgb,
        // 16-bit: keep the high byte, as OpenCV's IMREAD_COLOR does.
        DynamicImage::ImageLuma16(gray) => {
            let (w, h) = gray.dimensions();
            let data = gray
                .into_raw()
                .iter()
                .flat_map(|v| [(v >> 8) as u8; 3])
                .collect();
            RgbImage::from_raw(w, h, data).unwrap_or_default()
        }
        other => other.to_rgb8(),
    }
}

fn map_image_error(error: image::ImageError, format: ImageFormat) -> Error {
    use image::ImageError as E;
    match error {
        E::Limits(e) => {
            Error::CorruptImage(format!("{format:?} image exceeds decoder limits: {e}"))
        }
        E::Unsupported(e) => Error::UnsupportedImage(format!("{format:?}: {e}")),
        E::Decoding(e) => {
            Error::CorruptImage(format!("{format:?} data is corrupt or truncated: {e}"))
        }
        E::IoError(e) => Error::CorruptImage(format!("{format:?} data is truncated: {e}")),
        other => Error::CorruptImage(format!("{format:?}: {other}")),
    }
}

fn format_name(format: ImageFormat) -> &'static str {
    format.extensions_str().first().copied().unwrap_or("other")
}

/// A short printable description of the first bytes, so a user who posted
/// HTML or a wrong file sees what the server received.
fn describe_start(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(16)];
    if head.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        format!("{:?}", String::from_utf8_lossy(head))
    } else {
        head.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let mut out = Vec::new();
        RgbImage::new(w, h)
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn decodes_png_and_checks_pixel_limit_on_header() {
        let bytes = png(20, 10);
        let img = decode_image(&bytes, DecodeLimits::default()).unwrap();
        assert_eq!(img.rgb.dimensions(), (20, 10));
        let err = decode_image(
            &bytes,
            DecodeLimits {
                max_pixels: 100,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(
            matches!(err, Error::ImageTooLarge { pixels: 200, .. }),
            "{err}"
        );
    }

    #[test]
    fn names_what_it_received() {
        let err = decode_image(b"<!DOCTYPE html><html>", DecodeLimits::default()).unwrap_err();
        assert_eq!(err.kind(), "unsupported_image");
        assert!(err.to_string().contains("<!DOCTYPE"), "{err}");
        assert!(matches!(
            decode_image(b"", DecodeLimits::default()),
            Err(Error::EmptyImage)
        ));
    }
}
