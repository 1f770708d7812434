#!/usr/bin/env python3
"""Reference implementation of SAM's image-encoder preprocessing, as CVAT runs it.

Chain being reproduced (CVAT `serverless/pytorch/facebookresearch/sam/nuclio`,
`segment_anything` SamPredictor.set_image / Sam.preprocess):

 1. Decode: ``Image.open(buf).convert("RGB")`` then ``np.array(image)`` -> HxWx3
    uint8 (CVAT main.py).  Pillow facts the Rust side has to match:
      * EXIF orientation is NOT applied (no ImageOps.exif_transpose).  The
        ``--exif-transpose`` flag here is an opt-in deviation, off by default.
      * Embedded ICC profiles are ignored (no colour management).
      * JPEG is decoded by libjpeg-turbo (Pillow wheel) with its defaults:
        islow integer IDCT, "fancy" (triangular) chroma upsampling.  A
        different decoder (zune-jpeg, jpeg-decoder) may differ by a few
        levels per pixel on JPEGs; PNG decoding is exact.
      * Mode conversions by convert("RGB"): L -> (v, v, v); LA/RGBA/PA -> alpha
        is DROPPED (no compositing onto a background); P -> palette lookup;
        CMYK -> naive Pillow formula (Adobe-inverted JPEG CMYK is un-inverted
        by the JPEG plugin first); 16-bit "I;16" grey -> values are CLAMPED to
        0..255 (not scaled; a typical 16-bit photo becomes almost all 255).
 2. Resize longest side to 1024 (ResizeLongestSide.apply_image):
      scale = 1024 * 1.0 / max(h, w)            (Python float64)
      new_h = int(h * scale + 0.5); new_w = int(w * scale + 0.5)
    (equal to int(side * 1024 / max(h, w) + 0.5) for every side <= 9000; the
    exact SAM expression is used here), then
      np.array(torchvision.transforms.functional.resize(to_pil_image(img), (new_h, new_w)))
    torchvision's resize on a PIL image ignores its ``antialias`` argument
    (PIL always antialiases) and calls ``img.resize((new_w, new_h),
    Image.BILINEAR)`` (interpolation default BILINEAR, no reducing_gap).  So
    this is Pillow's separable *convolution* bilinear (triangle filter whose
    support is widened by the scale factor when downscaling = antialias; plain
    half-pixel-centred bilinear when upscaling), integer fixed-point
    coefficients (22 fractional bits for 8-bit images), horizontal pass first
    into an 8-bit intermediate image, then vertical, each pass rounding and
    clamping to uint8 -- EXCEPT that Pillow >= 13 runs the vertical pass first
    when h - new_h > 2 * (w - new_w) (height shrinks much more than width;
    for SAM: downscaled images taller than about 2:1).  If (new_w, new_h)
    equals the input size Pillow returns an unchanged copy.  Pass order and
    coefficient precision only move results by +-1 level; CVAT's own SAM
    image does not pin Pillow, so the goldens (Pillow 13.0.0, pinned in
    requirements.txt) are exact for *this* reference, not for every CVAT.
    MEASURED: fast_image_resize 5.5 ``Convolution(FilterType::Bilinear)`` on
    U8x3 is NOT bit-exact: it uses 16-bit coefficients (Pillow-SIMD style) and
    differs by 1 level on 10-16% of output pixels of the test images (max 1 on
    PNGs).  ``pillow_bilinear_u8`` below is a bit-exact port of Pillow's
    algorithm (checked with --check-port); port it if exact parity matters.
    OpenCV INTER_LINEAR is +-1 when upscaling but far off when downscaling
    (no antialias: up to 39 levels on scene-1080p.jpg).
 3. Normalise in float32: x = (float32(u8) - mean) / std with
      mean = [123.675, 116.28, 103.53], std = [58.395, 57.12, 57.375]
    (torch: uint8 tensor minus float32 buffer, then true division; both are
    single correctly-rounded float32 ops, which NumPy reproduces exactly).
 4. Zero-pad bottom/right to 1024x1024 AFTER normalisation (padding value is
    0.0, not -mean/std), layout NCHW [1, 3, 1024, 1024] float32.

CLI:
    python reference/sam_preprocess.py IMAGE [OUT.npy] [--raw OUT.f32] [--exif-transpose]
  OUT.npy : numpy .npy float32 [1,3,1024,1024]
  --raw   : raw little-endian float32, C order (NCHW), exactly 12,582,912 bytes,
            no header -- for Rust tests without numpy.
  --check-port : also assert that pillow_bilinear_u8() below (a pure NumPy,
            bit-exact port of Pillow's resize; the spec to port to Rust) equals
            Pillow on this image.
  Prints a one-line JSON summary (sizes, per-channel stats) to stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

INPUT_SIZE = 1024
PIXEL_MEAN = np.array([123.675, 116.28, 103.53], dtype=np.float32)
PIXEL_STD = np.array([58.395, 57.12, 57.375], dtype=np.float32)


def load_rgb(path, exif_transpose: bool = False) -> np.ndarray:
    """Decode like CVAT's SAM handler: PIL open + convert('RGB') -> HxWx3 uint8."""
    with Image.open(path) as im:
        if exif_transpose:
            im = ImageOps.exif_transpose(im)
        return np.array(im.convert("RGB"))


def preprocess_shape(h: int, w: int, long_side: int = INPUT_SIZE) -> tuple[int, int]:
    """segment_anything ResizeLongestSide.get_preprocess_shape (verbatim arithmetic)."""
    scale = long_side * 1.0 / max(h, w)
    newh, neww = h * scale, w * scale
    return int(newh + 0.5), int(neww + 0.5)


def resize_longest(rgb: np.ndarray, long_side: int = INPUT_SIZE) -> np.ndarray:
    """HxWx3 uint8 -> new_h x new_w x 3 uint8 (Pillow bilinear, antialiased)."""
    new_h, new_w = preprocess_shape(rgb.shape[0], rgb.shape[1], long_side)
    pil = Image.fromarray(rgb, mode=None)  # == torchvision to_pil_image for HxWx3 uint8 -> "RGB"
    assert pil.mode == "RGB"
    return np.array(pil.resize((new_w, new_h), Image.BILINEAR))



# --------------------------------------------------------------------------
# Bit-exact port of Pillow's BILINEAR resize for 8-bit images (libImaging/Resample.c,
# ImagingResampleInner with box = full image, reducing_gap = None).  Kept here as an
# executable SPEC for the Rust side: a straight port of these ~50 lines reproduces
# Pillow 13.0.0 exactly (checked by --check-port on the shared images, and on a few
# hundred random sizes incl. tall/narrow ones, arbitrary up/down scales).  Note that
# fast_image_resize (v5, Convolution(Bilinear), U8x3) uses 16-bit coefficients with
# adaptive precision (Pillow-SIMD style) and is off by +-1 on ~10-16% of pixels.
# --------------------------------------------------------------------------

PRECISION_BITS = 32 - 8 - 2  # 22


def _pillow_coeffs(in_size: int, out_size: int):
    """precompute_coeffs + normalize_coeffs_8bpc for the bilinear (triangle) filter."""
    scale = in_size / out_size                    # double
    filterscale = max(scale, 1.0)                 # widen the filter when downscaling (antialias)
    support = 1.0 * filterscale                   # bilinear support = 1
    ksize = int(math.ceil(support)) * 2 + 1
    bounds = []
    kk = np.zeros((out_size, ksize), np.int64)
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        ss = 1.0 / filterscale
        xmin = max(int(center - support + 0.5), 0)           # C (int) truncation
        xmax = min(int(center + support + 0.5), in_size) - xmin
        w = [max(0.0, 1.0 - abs((x + xmin - center + 0.5) * ss)) for x in range(xmax)]
        ww = sum(w)                                          # summed left to right in double
        for x in range(xmax):
            v = w[x] / ww if ww != 0.0 else w[x]
            # (int)(v * 2^22 +- 0.5): round half away from zero, then truncate
            kk[xx, x] = int(-0.5 + v * (1 << PRECISION_BITS)) if v < 0 else int(0.5 + v * (1 << PRECISION_BITS))
        bounds.append((xmin, xmax))
    return bounds, kk


def _pillow_pass(img: np.ndarray, bounds, kk, axis: int) -> np.ndarray:
    a = np.moveaxis(img, axis, 0).astype(np.int64)
    out = np.empty((len(bounds),) + a.shape[1:], np.int64)
    for i, (xmin, n) in enumerate(bounds):
        acc = np.full(a.shape[1:], 1 << (PRECISION_BITS - 1), np.int64)   # rounding bias
        for x in range(n):
            acc += a[xmin + x] * kk[i, x]
        out[i] = np.clip(acc >> PRECISION_BITS, 0, 255)                   # clip8
    return np.moveaxis(out.astype(np.uint8), 0, axis)


def pillow_bilinear_u8(img: np.ndarray, new_w: int, new_h: int) -> np.ndarray:
    """HxWxC uint8 -> new_h x new_w x C uint8, bit-identical to
    Image.fromarray(img).resize((new_w, new_h), Image.BILINEAR)."""
    h, w = img.shape[:2]
    if (new_w, new_h) == (w, h):
        return img.copy()
    bv, kv = _pillow_coeffs(h, new_h)
    bh, kh = _pillow_coeffs(w, new_w)
    # Pillow >= 13 (python-pillow/Pillow#9549): when the height shrinks "significantly more"
    # than the width, the vertical pass runs first.  Rule inferred from Pillow 13.0.0's
    # output (exhaustively matched on random sizes): h - new_h > 2 * (w - new_w), with
    # new_h < h and new_w != w.  Older Pillow always does horizontal first.  For SAM's
    # uniform downscale this means: taller than ~2:1 images larger than 1024.
    if new_w != w and new_h < h and (h - new_h) > 2 * (w - new_w):
        img = _pillow_pass(img, bv, kv, axis=0)
        return _pillow_pass(img, bh, kh, axis=1)
    if new_w != w:
        # horizontal pass first, only over the source rows the vertical pass will read
        y0, y1 = bv[0][0], bv[-1][0] + bv[-1][1]
        img = _pillow_pass(img[y0:y1], bh, kh, axis=1)   # 8-bit intermediate
        bv = [(a - y0, n) for a, n in bv]
    if new_h != h:
        img = _pillow_pass(img, bv, kv, axis=0)
    return img


def normalize_pad(resized: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """new_h x new_w x 3 uint8 -> [1,3,size,size] float32, normalised then zero-padded."""
    h, w, _ = resized.shape
    norm = (resized.astype(np.float32) - PIXEL_MEAN) / PIXEL_STD      # float32 throughout
    out = np.zeros((1, 3, size, size), dtype=np.float32)
    out[0, :, :h, :w] = norm.transpose(2, 0, 1)
    return out


def sam_preprocess(path, exif_transpose: bool = False):
    """Returns (tensor [1,3,1024,1024] f32, info dict)."""
    rgb = load_rgb(path, exif_transpose)
    resized = resize_longest(rgb)
    tensor = normalize_pad(resized)
    info = {
        "orig_size": [int(rgb.shape[0]), int(rgb.shape[1])],
        "resized_size": [int(resized.shape[0]), int(resized.shape[1])],
    }
    return tensor, info, rgb, resized


def valid_stats(tensor: np.ndarray, new_h: int, new_w: int):
    v = tensor[0, :, :new_h, :new_w].astype(np.float64)
    return v.mean(axis=(1, 2)).tolist(), v.std(axis=(1, 2)).tolist()


def write_raw(tensor: np.ndarray, path) -> None:
    np.ascontiguousarray(tensor, dtype="<f4").tofile(path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="SAM encoder preprocessing reference (PIL, as CVAT)")
    ap.add_argument("image", type=Path)
    ap.add_argument("out_npy", type=Path, nargs="?", help="write float32 [1,3,1024,1024] .npy")
    ap.add_argument("--raw", type=Path, help="write raw little-endian float32 NCHW (no header)")
    ap.add_argument("--exif-transpose", action="store_true",
                    help="apply EXIF orientation first (CVAT's SAM handler does NOT)")
    ap.add_argument("--check-port", action="store_true",
                    help="also assert pillow_bilinear_u8 (the pure-NumPy spec) == Pillow on IMAGE")
    args = ap.parse_args(argv)
    if args.out_npy is None and args.raw is None and not args.check_port:
        ap.error("give OUT.npy and/or --raw OUT.f32 (or --check-port)")

    tensor, info, rgb, resized = sam_preprocess(args.image, args.exif_transpose)
    if args.check_port:
        port = pillow_bilinear_u8(rgb, resized.shape[1], resized.shape[0])
        assert np.array_equal(port, resized), "pillow_bilinear_u8 differs from Pillow"
        info["pillow_port_exact"] = True
    if args.out_npy is not None:
        np.save(args.out_npy, tensor)
    if args.raw is not None:
        write_raw(tensor, args.raw)
    mean, std = valid_stats(tensor, *info["resized_size"])
    info.update(shape=list(tensor.shape), dtype="float32", valid_mean=mean, valid_std=std)
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
