#!/usr/bin/env python3
"""Write small SAM-preprocessing goldens for Rust parity tests.

For each image in IMAGES (read from $NUCLIO_ORT_TEST_DATA/images, default
<repo>/../shared/images; a relative $NUCLIO_ORT_TEST_DATA is taken relative to
the repository root) this writes tests/golden/sam/<file name>.json, e.g.
tests/golden/sam/chelsea.png.json, produced with reference/sam_preprocess.py
(Pillow decode + convert("RGB"), no EXIF transpose, Pillow bilinear resize of
the longest side to 1024, float32 normalisation, zero padding, NCHW).

JSON fields (all sizes are [height, width]):
  image, source_sha256        file name and sha256 of the file bytes
  orig_size                   decoded size
  resized_size                SAM ResizeLongestSide size (valid region of the tensor)
  decoded_rgb_sha256          sha256 of the decoded HxWx3 uint8 RGB bytes (row-major, RGBRGB..):
                              checks the image decoder alone
  resized_rgb_sha256          sha256 of the resized new_h x new_w x 3 uint8 bytes: exact resize parity
  resized_u8_channel_sum      exact integer per-channel sums of the resized uint8 image
  valid_mean, valid_std       per-channel mean / population std (float64) of the
                              normalised float32 tensor over the valid region
  pad_value                   0.0 (value everywhere outside the valid region)
  samples.columns             ["y", "x", "c", "u8", "value"]
  samples.rows                ~2000 deterministic entries: tensor[0, c, y, x] == value
                              (value is the float32 written in shortest round-trip form,
                              so parsing it as f64 and casting to f32 is exact); u8 is the
                              resized uint8 pixel (-1 in the padding). Mix: 1600 uniform
                              in the valid region, up to 200 on its border rows/columns
                              and corners, the rest in the padding (10 on the first padded
                              row / column each, when present, then random; or more uniform
                              samples when there is no padding).
  fixture_embedding           samples of what tests/fixtures/sam/encoder.onnx returns for
                              this tensor: rows [c, i, j, value] with
                              value = mean(tensor[0, c%3, 16i:16i+16, 16j:16j+16]) * (1 + c/256)
                              (float64 mean, cast to f32); compare with rtol/atol 1e-5.
                              Cross-checked against onnxruntime when the fixture exists.

Suggested Rust tolerances: with an exact Pillow-equivalent resize every sample
matches to 1e-6 and the hashes match; a resize that is off by one level on some
pixels gives |value diff| <= 1/57.12 ~= 0.0176 per sample and mean diffs ~1e-3.
JPEG inputs (scene-1080p.jpg) additionally depend on the JPEG decoder (see
decoded_rgb_sha256).

Usage: .venv/bin/python reference/make_sam_goldens.py [--out-dir DIR] [IMAGE ...]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sam_preprocess import INPUT_SIZE, sam_preprocess, valid_stats  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
IMAGES = ["chelsea.png", "coffee.png", "astronaut.png", "scene-1080p.jpg"]
N_UNIFORM, N_BORDER, N_TOTAL = 1600, 200, 2000
N_EMBED = 300


def shared_dir() -> Path:
    env = os.environ.get("NUCLIO_ORT_TEST_DATA", "../shared")
    p = Path(env)
    return p if p.is_absolute() else (REPO_ROOT / p).resolve()


def f32(v) -> float:
    """float32 value -> Python float whose repr is the shortest f32 round-trip string."""
    return float(str(np.float32(v)))


def pick_samples(rng, new_h, new_w):
    ys, xs = [], []
    # uniform inside the valid region
    ys += list(rng.integers(0, new_h, N_UNIFORM))
    xs += list(rng.integers(0, new_w, N_UNIFORM))
    # border of the valid region: corners + first/last rows and columns
    border = [(0, 0), (0, new_w - 1), (new_h - 1, 0), (new_h - 1, new_w - 1)]
    k = (N_BORDER - len(border)) // 4
    border += [(0, int(x)) for x in rng.integers(0, new_w, k)]
    border += [(new_h - 1, int(x)) for x in rng.integers(0, new_w, k)]
    border += [(int(y), 0) for y in rng.integers(0, new_h, k)]
    border += [(int(y), new_w - 1) for y in rng.integers(0, new_h, k)]
    ys += [b[0] for b in border]
    xs += [b[1] for b in border]
    # padding (bottom rows and/or right columns), else more uniform samples
    rest = N_TOTAL - len(ys)
    if new_h < INPUT_SIZE or new_w < INPUT_SIZE:
        # the padded row / column right next to the valid region first
        if new_h < INPUT_SIZE:
            for x in rng.integers(0, INPUT_SIZE, 10):
                ys.append(new_h)
                xs.append(int(x))
                rest -= 1
        if new_w < INPUT_SIZE:
            for y in rng.integers(0, INPUT_SIZE, 10):
                ys.append(int(y))
                xs.append(new_w)
                rest -= 1
        while rest > 0:
            y = int(rng.integers(0, INPUT_SIZE))
            x = int(rng.integers(0, INPUT_SIZE))
            if y >= new_h or x >= new_w:
                ys.append(y)
                xs.append(x)
                rest -= 1
    else:
        ys += list(rng.integers(0, new_h, rest))
        xs += list(rng.integers(0, new_w, rest))
    cs = rng.integers(0, 3, len(ys))
    return [(int(y), int(x), int(c)) for y, x, c in zip(ys, xs, cs)]


def fixture_embedding(tensor, rng):
    pooled = tensor[0].astype(np.float64).reshape(3, 64, 16, 64, 16).mean(axis=(2, 4))
    rows = []
    for _ in range(N_EMBED):
        c, i, j = int(rng.integers(0, 256)), int(rng.integers(0, 64)), int(rng.integers(0, 64))
        v = np.float32(pooled[c % 3, i, j]) * np.float32(1 + c / 256)
        rows.append([c, i, j, f32(v)])
    return rows


def cross_check_fixture(tensor, rows) -> bool:
    enc = REPO_ROOT / "tests" / "fixtures" / "sam" / "encoder.onnx"
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    if not enc.exists():
        return False
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(enc), so, providers=["CPUExecutionProvider"])
    (emb,) = sess.run(None, {"image": tensor})
    got = np.array([emb[0, c, i, j] for c, i, j, _ in rows])
    want = np.array([r[3] for r in rows])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    return True


def make_golden(path: Path) -> dict:
    tensor, info, rgb, resized = sam_preprocess(path)
    new_h, new_w = info["resized_size"]
    rng = np.random.default_rng(zlib.crc32(path.name.encode()))
    rows = []
    for y, x, c in pick_samples(rng, new_h, new_w):
        u8 = int(resized[y, x, c]) if (y < new_h and x < new_w) else -1
        rows.append([y, x, c, u8, f32(tensor[0, c, y, x])])
        assert np.float32(rows[-1][4]) == tensor[0, c, y, x]  # shortest repr round-trips exactly
    mean, std = valid_stats(tensor, new_h, new_w)
    emb_rows = fixture_embedding(tensor, rng)
    checked = cross_check_fixture(tensor, emb_rows)
    return {
        "image": path.name,
        "source_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "pipeline": "PIL Image.open().convert('RGB') (no EXIF transpose, ICC ignored) -> "
                    "PIL resize((new_w,new_h), BILINEAR) -> (u8 - mean) / std in float32 -> "
                    "zero-pad bottom/right to 1024 -> NCHW float32",
        "generator": {
            "pillow": __import__("PIL").__version__,
            "libjpeg_turbo": __import__("PIL.features", fromlist=["version"]).version("libjpeg_turbo"),
            "numpy": np.__version__,
        },
        "input_size": INPUT_SIZE,
        "pixel_mean": [123.675, 116.28, 103.53],
        "pixel_std": [58.395, 57.12, 57.375],
        "orig_size": info["orig_size"],
        "resized_size": [new_h, new_w],
        "decoded_rgb_sha256": hashlib.sha256(np.ascontiguousarray(rgb).tobytes()).hexdigest(),
        "resized_rgb_sha256": hashlib.sha256(np.ascontiguousarray(resized).tobytes()).hexdigest(),
        "resized_u8_channel_sum": [int(s) for s in resized.reshape(-1, 3).sum(axis=0, dtype=np.int64)],
        "valid_mean": mean,
        "valid_std": std,
        "pad_value": 0.0,
        "samples": {"columns": ["y", "x", "c", "u8", "value"], "rows": rows},
        "fixture_embedding": {
            "columns": ["c", "i", "j", "value"],
            "formula": "mean(tensor[0, c%3, 16i:16i+16, 16j:16j+16]) * (1 + c/256)",
            "checked_with_onnxruntime": checked,
            "rows": emb_rows,
        },
    }


def dump(obj) -> str:
    """Compact JSON: one key per line, one sample row per line (small files, readable diffs)."""
    def enc(v, indent):
        if isinstance(v, dict):
            pad = " " * (indent + 1)
            items = [f"{pad}{json.dumps(k)}: {enc(x, indent + 1)}" for k, x in v.items()]
            return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
        if isinstance(v, list) and v and isinstance(v[0], list):
            return "[\n" + ",\n".join(json.dumps(r, separators=(",", ":")) for r in v) + "\n" + " " * indent + "]"
        return json.dumps(v, separators=(", ", ": "))
    return enc(obj, 0) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="write tests/golden/sam/*.json")
    ap.add_argument("--out-dir", type=Path, default=REPO_ROOT / "tests" / "golden" / "sam")
    ap.add_argument("images", nargs="*", default=IMAGES, help="file names under <shared>/images")
    args = ap.parse_args(argv)
    src = shared_dir() / "images"
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name in args.images:
        g = make_golden(src / name)
        text = dump(g)
        json.loads(text)  # sanity
        out = args.out_dir / f"{name}.json"
        out.write_text(text)
        print(f"{out.relative_to(REPO_ROOT) if out.is_relative_to(REPO_ROOT) else out}: "
              f"{len(text)} bytes, orig {g['orig_size']} -> {g['resized_size']}, "
              f"{len(g['samples']['rows'])} samples, fixture check={g['fixture_embedding']['checked_with_onnxruntime']}")
        assert len(text) < 100_000, "golden too large"
    return 0


if __name__ == "__main__":
    sys.exit(main())
