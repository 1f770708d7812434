#!/usr/bin/env python3
"""Generate tiny, SAM-shaped ONNX test fixtures (no real SAM weights needed).

Writes (relative to the repository root, or to --out-dir):

  tests/fixtures/sam/encoder.onnx             SAM image-encoder interface
  tests/fixtures/sam/decoder.onnx             SAM ONNX mask-decoder interface, K=1
  tests/fixtures/sam/decoder-multimask.onnx   same interface, K=3 (multimask)

and then verifies all three with onnxruntime against the NumPy reference
implementations in this file (``reference_embedding``, ``reference_logits``).
``--check-only`` verifies existing files without rewriting them.

All three are plain ONNX graphs (opset 17, IR version 8) built from standard
operators with onnx.helper; each file is a few KB.

Encoder  (``encoder.onnx``)
---------------------------
  input   image             float32 [1, 3, 1024, 1024]   SAM-preprocessed NCHW
  output  image_embeddings  float32 [1, 256, 64, 64]

  pooled[k, i, j]     = mean(image[0, k, 16*i : 16*i+16, 16*j : 16*j+16])   k in 0..3
  emb[0, c, i, j]     = pooled[c % 3, i, j] * (1 + c / 256)                   c in 0..256

  Graph: AveragePool(kernel 16, stride 16) -> Gather(axis 1, indices c % 3)
  -> Mul(scale[c] = 1 + c/256).  The multiply is a single float32 operation,
  so emb matches the formula up to the rounding of the 256-element average
  (relative error ~1e-6; compare with rtol 1e-5 / atol 1e-5).
  Consequences that tests can rely on: cells that lie completely in the
  zero padding (i >= ceil(new_h/16) or j >= ceil(new_w/16)) are exactly 0;
  emb[0, c] / (1 + c/256) is the same for all c with equal c % 3.

Decoder  (``decoder.onnx``, K=1; ``decoder-multimask.onnx``, K=3)
---------------------------------------------------------------
  inputs  image_embeddings  float32 [1, 256, 64, 64]   shape-checked, IGNORED
          point_coords      float32 [1, N, 2]          (x, y) * 1024 / max(h, w)
          point_labels      float32 [1, N]             1 pos, 0 neg, 2 box TL,
                                                       3 box BR, -1 padding
          mask_input        float32 [1, 1, 256, 256]   shape-checked, IGNORED
          has_mask_input    float32 [1]                shape-checked, IGNORED
          orig_im_size      float32 [2]                [h, w]
  outputs masks             float32 [1, K, H, W]       logits, H = floor(h), W = floor(w)
          iou_predictions   float32 [1, K]             constants
          low_res_masks     float32 [1, K, 256, 256]   logits on the 1024-frame / 4 grid

  N is dynamic (N = 0 is allowed).  Only the sign of a logit matters to SAM
  (mask = logits > 0.0); the values below are signed distances in original
  image pixels, clipped to [-10000, 10000].

  Let s = max(h, w) / 1024 and, for each prompt point n,
      (px_n, py_n) = point_coords[0, n] * s          (original-image pixels)
  Mask k has radius R_k:
      K=1: R = [40],         iou_predictions = [[0.9]]
      K=3: R = [20, 40, 60], iou_predictions = [[0.5, 0.9, 0.7]]
           (the best-IoU mask, index 1, is identical to the K=1 mask)

  For a pixel at integer column x (0..W-1) and row y (0..H-1):
      d_n        = sqrt((x - px_n)^2 + (y - py_n)^2)
      Dpos       = min over n with label 1 of d_n        (+inf-ish 1e15 if none)
      Dneg       = min over n with label 0 of d_n        (1e15 if none)
      P_k        = R_k - Dpos                  > 0 inside the union of positive disks
      box (only when >= 1 label-2 point AND >= 1 label-3 point):
          x0 = min px over label-2 points, y0 = min py over label-2 points
          x1 = max px over label-3 points, y1 = max py over label-3 points
          B  = min(x - x0, x1 - x, y - y0, y1 - y) + 0.5
               > 0 iff x0 - 0.5 < x < x1 + 0.5 and y0 - 0.5 < y < y1 + 0.5,
               i.e. for integer corners the box is INCLUSIVE: x0 <= x <= x1.
          otherwise B = -1e30
      F_k        = max(P_k, B)                 (positive disks UNION box)
      logit_k    = clip(min(F_k, Dneg - R_k), -1e4, 1e4)
                                               (MINUS the negative disks)
  So: every positive point adds an open disk of radius R_k (pixels with
  d < R_k; pixels with d == R_k exactly are OUT, logit 0), the box adds the
  inclusive rectangle, every negative point removes the closed disk d <= R_k
  (logit 0 there, so not in the mask).  Labels -1 and any other value are
  ignored.  No positive point and no box -> empty mask (logits -1e4).
  Example: point (100, 50), label 1, image 640x480 (coords fed as
  (160, 80)): masks[0, 0] is the disk (x-100)^2 + (y-50)^2 < 1600, logit 40
  at (100, 50), 1 at (139, 50), 0 at (140, 50) (excluded), 40 - hypot(539, 429)
  = -648.88 at the far corner (639, 479); 5013 pixels are set (the 5025
  lattice points with d <= 40 minus the 12 lying exactly on the circle).

  Float caveat: coordinates make a round trip (x * 1024/max -> * max/1024) in
  float32, so a pixel lying within ~1e-3 px of a disk boundary may flip.
  Use point coordinates that are exact in float32 after scaling (e.g. image
  sizes whose max side divides 1024*2^k, like 640, 512, 1024, 2048) or skip
  boundary pixels when comparing.

  low_res_masks[0, k, i, j] = the same logit_k evaluated at the (non-integer)
  original-image position x = (4*j + 1.5) * s, y = (4*i + 1.5) * s, i.e. the
  centre of the 4x4 block of the padded 1024x1024 frame, with no cropping
  (cells in the padding region are evaluated like any other position).

  The image embedding, mask_input and has_mask_input have NO influence on any
  output (they are still declared graph inputs, so onnxruntime checks their
  shapes and a caller must feed all six).

Memory/cost: the decoder materialises float32 [N+1, H, W] squared-distance
tensors (the +1 is an internal padding point that keeps reductions non-empty;
about three such buffers may be live at once), i.e. roughly 12*(N+1)*H*W
bytes peak: ~100 MB for 1920x1080 with 3 points.  Keep test images modest.

Usage:  .venv/bin/python scripts/gen_sam_fixtures.py [--out-dir DIR] [--check-only]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8
EMBED_DIM = 256
EMBED_HW = 64
INPUT_SIZE = 1024
LOW_RES = 256
POOL = INPUT_SIZE // EMBED_HW  # 16
BIG = 1e30           # "infinite" squared distance / box logit
CLIP = 1e4           # logits are clipped to [-CLIP, CLIP]

SINGLE = {"radii": [40.0], "iou": [0.9]}
MULTI = {"radii": [20.0, 40.0, 60.0], "iou": [0.5, 0.9, 0.7]}

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "tests" / "fixtures" / "sam"


# --------------------------------------------------------------------------
# NumPy references (the documented behaviour)
# --------------------------------------------------------------------------

def embed_scale() -> np.ndarray:
    return (1.0 + np.arange(EMBED_DIM, dtype=np.float32) / np.float32(256)).astype(np.float32)


def reference_embedding(image: np.ndarray) -> np.ndarray:
    """image f32 [1,3,1024,1024] -> f32 [1,256,64,64] (float64 pooling)."""
    x = image.astype(np.float64).reshape(1, 3, EMBED_HW, POOL, EMBED_HW, POOL)
    pooled = x.mean(axis=(3, 5)).astype(np.float32)          # [1,3,64,64]
    idx = np.arange(EMBED_DIM) % 3
    return pooled[:, idx] * embed_scale()[None, :, None, None]


def _field(xs, ys, pts, labels, radii):
    """Logits [K, len(ys), len(xs)] in float64 for original-pixel positions."""
    radii = np.asarray(radii, np.float64)[:, None, None]
    X = np.asarray(xs, np.float64)[None, :]
    Y = np.asarray(ys, np.float64)[:, None]

    def dmin(sel):
        d2 = np.full((len(ys), len(xs)), BIG)
        for (px, py) in pts[sel]:
            d2 = np.minimum(d2, (X - px) ** 2 + (Y - py) ** 2)
        return np.sqrt(d2)

    dpos = dmin(labels == 1)
    dneg = dmin(labels == 0)
    P = radii - dpos[None]
    tl, br = pts[labels == 2], pts[labels == 3]
    if len(tl) and len(br):
        x0, y0 = tl[:, 0].min(), tl[:, 1].min()
        x1, y1 = br[:, 0].max(), br[:, 1].max()
        B = np.minimum(np.minimum(X - x0, x1 - X), np.minimum(Y - y0, y1 - Y)) + 0.5
    else:
        B = np.full((len(ys), len(xs)), -BIG)
    F = np.maximum(P, B[None])
    return np.clip(np.minimum(F, dneg[None] - radii), -CLIP, CLIP)


def reference_logits(coords_1024, labels, h, w, radii):
    """NumPy reference for the decoder fixture.

    coords_1024: [N,2] point coords already multiplied by 1024/max(h,w);
    labels: [N]; returns (masks [K,H,W], low_res [K,256,256]) as float64.
    """
    coords = np.asarray(coords_1024, np.float64).reshape(-1, 2)
    labels = np.asarray(labels, np.float64).reshape(-1)
    s = max(h, w) / INPUT_SIZE
    pts = coords * s
    H, W = int(np.floor(h)), int(np.floor(w))
    masks = _field(np.arange(W), np.arange(H), pts, labels, radii)
    g = (4.0 * np.arange(LOW_RES) + 1.5) * s
    low = _field(g, g, pts, labels, radii)
    return masks, low


# --------------------------------------------------------------------------
# Graph builders
# --------------------------------------------------------------------------

def _const(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def _model(graph, doc):
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="nuclio-ort/scripts/gen_sam_fixtures.py",
        doc_string=doc,
    )
    model.ir_version = IR_VERSION
    helper.set_model_props(model, {
        "nuclio_ort_fixture": "sam",
        "description": doc,
    })
    onnx.checker.check_model(model, full_check=True)
    return model


def build_encoder() -> onnx.ModelProto:
    nodes = [
        helper.make_node("AveragePool", ["image"], ["pooled"],
                         kernel_shape=[POOL, POOL], strides=[POOL, POOL]),
        helper.make_node("Gather", ["pooled", "chan_idx"], ["expanded"], axis=1),
        helper.make_node("Mul", ["expanded", "chan_scale"], ["image_embeddings"]),
    ]
    inits = [
        _const("chan_idx", (np.arange(EMBED_DIM) % 3).astype(np.int64)),
        _const("chan_scale", embed_scale().reshape(1, EMBED_DIM, 1, 1)),
    ]
    graph = helper.make_graph(
        nodes, "sam_encoder_fixture",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, INPUT_SIZE, INPUT_SIZE])],
        [helper.make_tensor_value_info("image_embeddings", TensorProto.FLOAT,
                                       [1, EMBED_DIM, EMBED_HW, EMBED_HW])],
        inits,
    )
    return _model(graph, "SAM encoder test fixture: emb[c,i,j] = avgpool16(image)[c%3,i,j] * (1 + c/256)")


class _G:
    """Tiny helper to emit nodes with unique names."""

    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def c(self, arr, dtype=np.float32):
        self.n += 1
        name = f"k{self.n}"
        self.inits.append(_const(name, np.asarray(arr, dtype=dtype)))
        return name

    def op(self, op_type, inputs, out=None, **attrs):
        self.n += 1
        out = out or f"t{self.n}_{op_type}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=f"n{self.n}_{op_type}", **attrs))
        return out


def _emit_field(g: _G, xs, ys, px3, py3, pen_pos, pen_neg, box, radii, out):
    """Emit logits [K, Hy, Wx] into `out`. xs: [Wx] float, ys: [Hy] float."""
    xr = g.op("Reshape", [xs, g.c([1, 1, -1], np.int64)])            # [1,1,W]
    yc = g.op("Reshape", [ys, g.c([1, -1, 1], np.int64)])            # [1,H,1]
    dx = g.op("Sub", [xr, px3])                                       # [M,1,W]
    dy = g.op("Sub", [yc, py3])                                       # [M,H,1]
    d2 = g.op("Add", [g.op("Mul", [dx, dx]), g.op("Mul", [dy, dy])])  # [M,H,W]
    dpos = g.op("Sqrt", [g.op("ReduceMin", [g.op("Add", [d2, pen_pos])], axes=[0], keepdims=1)])  # [1,H,W]
    dneg = g.op("Sqrt", [g.op("ReduceMin", [g.op("Add", [d2, pen_neg])], axes=[0], keepdims=1)])
    R = g.c(np.asarray(radii, np.float32).reshape(-1, 1, 1))         # [K,1,1]
    P = g.op("Sub", [R, dpos])                                        # [K,H,W]
    present, x0, y0, x1, y1 = box
    half = g.c(0.5)
    bx = g.op("Min", [g.op("Sub", [xr, x0]), g.op("Sub", [x1, xr])])  # [1,1,W]
    by = g.op("Min", [g.op("Sub", [yc, y0]), g.op("Sub", [y1, yc])])  # [1,H,1]
    B = g.op("Add", [g.op("Min", [bx, by]), half])                    # [1,H,W]
    B = g.op("Where", [present, B, g.c(-BIG)])
    F = g.op("Max", [P, B])
    L = g.op("Min", [F, g.op("Sub", [dneg, R])])
    L = g.op("Clip", [L, g.c(-CLIP), g.c(CLIP)])
    return g.op("Unsqueeze", [L, g.c([0], np.int64)], out=out)        # [1,K,H,W]


def build_decoder(radii, iou) -> onnx.ModelProto:
    K = len(radii)
    g = _G()
    # Append one padding point (0,0,label -1) so every reduction is non-empty (N may be 0).
    coords = g.op("Concat", ["point_coords", g.c(np.zeros((1, 1, 2)))], axis=1)   # [1,M,2]
    labels = g.op("Concat", ["point_labels", g.c([[-1.0]])], axis=1)              # [1,M]
    h = g.op("Floor", [g.op("Gather", ["orig_im_size", g.c(0, np.int64)], axis=0)])
    w = g.op("Floor", [g.op("Gather", ["orig_im_size", g.c(1, np.int64)], axis=0)])
    s = g.op("Div", [g.op("Max", [h, w]), g.c(float(INPUT_SIZE))])
    pts = g.op("Mul", [coords, s])                                                 # original pixels
    px = g.op("Gather", [pts, g.c(0, np.int64)], axis=2)                           # [1,M]
    py = g.op("Gather", [pts, g.c(1, np.int64)], axis=2)
    col = g.c([-1, 1, 1], np.int64)
    px3 = g.op("Reshape", [px, col])                                               # [M,1,1]
    py3 = g.op("Reshape", [py, col])
    lab3 = g.op("Reshape", [labels, col])
    zero, big = g.c(0.0), g.c(BIG)
    pen_pos = g.op("Where", [g.op("Equal", [lab3, g.c(1.0)]), zero, big])
    pen_neg = g.op("Where", [g.op("Equal", [lab3, g.c(0.0)]), zero, big])
    # box from label-2 (top-left) and label-3 (bottom-right) points
    is2 = g.op("Equal", [labels, g.c(2.0)])
    is3 = g.op("Equal", [labels, g.c(3.0)])
    neg_big = g.c(-BIG)
    x0 = g.op("ReduceMin", [g.op("Where", [is2, px, big])], keepdims=0)
    y0 = g.op("ReduceMin", [g.op("Where", [is2, py, big])], keepdims=0)
    x1 = g.op("ReduceMax", [g.op("Where", [is3, px, neg_big])], keepdims=0)
    y1 = g.op("ReduceMax", [g.op("Where", [is3, py, neg_big])], keepdims=0)
    has2 = g.op("ReduceMax", [g.op("Cast", [is2], to=TensorProto.FLOAT)], keepdims=0)
    has3 = g.op("ReduceMax", [g.op("Cast", [is3], to=TensorProto.FLOAT)], keepdims=0)
    present = g.op("Greater", [g.op("Mul", [has2, has3]), g.c(0.5)])
    box = (present, x0, y0, x1, y1)

    # full-resolution grid: integer pixel indices
    one = g.c(1.0)
    xs = g.op("Range", [zero, w, one])
    ys = g.op("Range", [zero, h, one])
    _emit_field(g, xs, ys, px3, py3, pen_pos, pen_neg, box, radii, "masks")
    # low-res grid: centre of each 4x4 block of the 1024 frame, mapped to original pixels
    grid = g.op("Mul", [g.c((4.0 * np.arange(LOW_RES) + 1.5).astype(np.float32)), s])
    _emit_field(g, grid, grid, px3, py3, pen_pos, pen_neg, box, radii, "low_res_masks")
    g.nodes.append(helper.make_node("Constant", [], ["iou_predictions"], name="iou_const",
                                    value=numpy_helper.from_array(np.asarray([iou], np.float32))))

    f = TensorProto.FLOAT
    inputs = [
        helper.make_tensor_value_info("image_embeddings", f, [1, EMBED_DIM, EMBED_HW, EMBED_HW]),
        helper.make_tensor_value_info("point_coords", f, [1, "num_points", 2]),
        helper.make_tensor_value_info("point_labels", f, [1, "num_points"]),
        helper.make_tensor_value_info("mask_input", f, [1, 1, LOW_RES, LOW_RES]),
        helper.make_tensor_value_info("has_mask_input", f, [1]),
        helper.make_tensor_value_info("orig_im_size", f, [2]),
    ]
    outputs = [
        helper.make_tensor_value_info("masks", f, [1, K, "height", "width"]),
        helper.make_tensor_value_info("iou_predictions", f, [1, K]),
        helper.make_tensor_value_info("low_res_masks", f, [1, K, LOW_RES, LOW_RES]),
    ]
    graph = helper.make_graph(g.nodes, f"sam_decoder_fixture_k{K}", inputs, outputs, g.inits)
    doc = (f"SAM decoder test fixture, K={K}: logits = signed distance to union of disks of radius "
           f"{radii} px around label-1 points and the label-2/3 box, minus disks around label-0 points; "
           f"iou_predictions={iou}; embeddings/mask_input ignored. See scripts/gen_sam_fixtures.py.")
    return _model(graph, doc)


# --------------------------------------------------------------------------
# Self-check with onnxruntime
# --------------------------------------------------------------------------

def _session(path):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _feeds(points, labels, h, w, emb=None):
    scale = INPUT_SIZE / max(h, w)
    pts = np.asarray(points, np.float32).reshape(1, -1, 2) * np.float32(scale)
    return {
        "image_embeddings": emb if emb is not None else np.zeros((1, 256, 64, 64), np.float32),
        "point_coords": pts.astype(np.float32),
        "point_labels": np.asarray(labels, np.float32).reshape(1, -1),
        "mask_input": np.zeros((1, 1, 256, 256), np.float32),
        "has_mask_input": np.zeros((1,), np.float32),
        "orig_im_size": np.asarray([h, w], np.float32),
    }


def _compare(name, got, ref, band=1e-3):
    """Signs must agree except where |ref| < band; values within 1e-3 absolute."""
    assert got.shape == ref.shape, (name, got.shape, ref.shape)
    sure = np.abs(ref) >= band
    bad = ((got > 0) != (ref > 0)) & sure
    assert not bad.any(), f"{name}: {int(bad.sum())} sign mismatches"
    err = np.abs(got.astype(np.float64) - ref)
    tol = 1e-3 + 1e-5 * np.abs(ref)
    assert (err <= tol).all(), f"{name}: max err {err.max()}"


def self_check(out_dir: Path, timing=True) -> None:
    rng = np.random.default_rng(1234)
    enc = _session(out_dir / "encoder.onnx")
    dec1 = _session(out_dir / "decoder.onnx")
    dec3 = _session(out_dir / "decoder-multimask.onnx")

    # ---- encoder ----
    img = rng.normal(size=(1, 3, 1024, 1024)).astype(np.float32)
    img[:, :, 700:, :] = 0.0            # "padding" rows
    (emb,) = enc.run(None, {"image": img})
    assert emb.shape == (1, 256, 64, 64) and emb.dtype == np.float32
    np.testing.assert_allclose(emb, reference_embedding(img), rtol=1e-5, atol=1e-5)
    assert (emb[:, :, 44:, :] == 0).all()          # 700/16 = 43.75 -> rows 44.. fully padded
    assert not (emb[:, :, 43, :] == 0).all()
    const = np.full((1, 3, 1024, 1024), 2.0, np.float32)
    (e2,) = enc.run(None, {"image": const})
    np.testing.assert_allclose(e2[0, :, 0, 0], 2.0 * embed_scale(), rtol=1e-6)
    print("encoder.onnx: OK (matches avgpool16 * (1 + c/256) formula)")

    # ---- decoder K=1: the example from the brief ----
    names = [o.name for o in dec1.get_outputs()]
    assert names == ["masks", "iou_predictions", "low_res_masks"], names
    f = _feeds([(100, 50)], [1], 480, 640)
    assert np.array_equal(f["point_coords"], np.array([[[160, 80]]], np.float32))
    masks, iou, low = dec1.run(None, f)
    assert masks.shape == (1, 1, 480, 640) and iou.shape == (1, 1) and low.shape == (1, 1, 256, 256)
    yy, xx = np.mgrid[0:480, 0:640]
    disk = (xx - 100) ** 2 + (yy - 50) ** 2 < 1600
    assert np.array_equal(masks[0, 0] > 0, disk), "disk mismatch"
    assert masks[0, 0, 50, 100] == 40 and masks[0, 0, 50, 139] == 1 and masks[0, 0, 50, 140] == 0
    assert abs(masks[0, 0, 479, 639] - (40 - np.hypot(539, 429))) < 1e-3
    assert int(disk.sum()) == 5013, int(disk.sum())  # 5025 lattice points with d <= 40, minus 12 on the circle
    assert abs(iou[0, 0] - 0.9) < 1e-7
    ref_m, ref_l = reference_logits(f["point_coords"][0], [1], 480, 640, SINGLE["radii"])
    _compare("K1 masks", masks[0], ref_m)
    _compare("K1 low_res", low[0], ref_l)
    # embedding / mask_input do not matter
    f2 = dict(f, image_embeddings=rng.normal(size=(1, 256, 64, 64)).astype(np.float32),
              mask_input=np.ones((1, 1, 256, 256), np.float32), has_mask_input=np.ones(1, np.float32))
    m2 = dec1.run(None, f2)[0]
    assert np.array_equal(m2, masks)

    # ---- a battery of prompt combinations vs. the NumPy reference ----
    cases = [
        ("no points", [], [], 300, 451),
        ("padding only", [(0, 0)], [-1], 300, 451),
        ("negative only", [(200, 100)], [0], 300, 451),
        ("pos+neg overlap", [(200, 100), (230, 100)], [1, 0], 300, 451),
        ("two pos + padding", [(10, 10), (400, 250), (0, 0)], [1, 1, -1], 300, 451),
        ("box only", [(50, 60), (120, 90)], [2, 3], 480, 640),
        ("box + pos outside", [(50, 60), (120, 90), (300, 300)], [2, 3, 1], 480, 640),
        ("box + neg", [(50, 60), (120, 90), (60, 70)], [2, 3, 0], 480, 640),
        ("half box ignored", [(50, 60), (300, 300)], [2, 1], 480, 640),
        ("fractional", [(33.3, 17.7), (401.25, 288.5)], [1, 1], 400, 600),
        ("1080p", [(960, 540), (100, 1000), (1000, 500)], [1, 1, 0], 1080, 1920),
        ("portrait", [(100, 700)], [1], 1024, 512),
    ]
    for name, p, l, h, w in cases:
        f = _feeds(p, l, h, w) if p else _feeds(np.zeros((0, 2)), np.zeros((0,)), h, w)
        for sess, cfg in ((dec1, SINGLE), (dec3, MULTI)):
            masks, iou, low = sess.run(None, f)
            K = len(cfg["radii"])
            assert masks.shape == (1, K, h, w) and low.shape == (1, K, 256, 256), name
            ref_m, ref_l = reference_logits(f["point_coords"][0], f["point_labels"][0], h, w, cfg["radii"])
            _compare(f"{name} K={K} masks", masks[0], ref_m)
            _compare(f"{name} K={K} low_res", low[0], ref_l)
    # inclusive box
    m = dec1.run(None, _feeds([(50, 60), (120, 90)], [2, 3], 480, 640))[0][0, 0] > 0
    box = np.zeros((480, 640), bool)
    box[60:91, 50:121] = True
    assert np.array_equal(m, box), "box must be inclusive"
    # no points -> empty
    m = dec1.run(None, _feeds(np.zeros((0, 2)), np.zeros((0,)), 300, 451))[0]
    assert (m == -CLIP).all()
    print("decoder.onnx: OK (disk r=40, box, negatives, padding, low_res)")

    # ---- K=3: best IoU is index 1 (r=40) and equals the K=1 mask ----
    f = _feeds([(100, 50)], [1], 480, 640)
    m3, iou3, _ = dec3.run(None, f)
    m1 = dec1.run(None, f)[0]
    assert np.allclose(iou3, [[0.5, 0.9, 0.7]])
    best = int(np.argmax(iou3[0]))
    assert best == 1 and np.array_equal(m3[0, best], m1[0, 0])
    areas = [int((m3[0, k] > 0).sum()) for k in range(3)]
    assert areas[0] < areas[1] < areas[2], areas
    print(f"decoder-multimask.onnx: OK (areas r=20/40/60: {areas}, argmax iou = 1)")

    if timing:
        report_timing(enc, dec1, dec3)


def _bench(fn, reps):
    fn()  # warm-up
    t = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
    return 1000 * float(np.median(t))


def report_timing(enc, dec1, dec3):
    import onnxruntime as ort
    img = np.random.default_rng(0).normal(size=(1, 3, 1024, 1024)).astype(np.float32)
    print(f"timing (onnxruntime {ort.__version__}, CPU, median):")
    print(f"  encoder [1,3,1024,1024]:            {_bench(lambda: enc.run(None, {'image': img}), 20):7.2f} ms")
    for h, w in ((1024, 1024), (1080, 1920)):
        f = _feeds([(w / 2, h / 2), (w / 4, h / 4), (w / 3, h / 5)], [1, 1, 0], h, w)
        for name, sess in (("decoder K=1", dec1), ("decoder K=3", dec3)):
            ms = _bench(lambda: sess.run(None, f), 10)
            print(f"  {name}, {w}x{h}, 3 points:    {ms:7.2f} ms")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--check-only", action="store_true", help="verify existing files, don't rewrite")
    ap.add_argument("--no-timing", action="store_true")
    args = ap.parse_args(argv)
    out = args.out_dir
    if not args.check_only:
        out.mkdir(parents=True, exist_ok=True)
        for fname, model in (
            ("encoder.onnx", build_encoder()),
            ("decoder.onnx", build_decoder(SINGLE["radii"], SINGLE["iou"])),
            ("decoder-multimask.onnx", build_decoder(MULTI["radii"], MULTI["iou"])),
        ):
            onnx.save(model, str(out / fname))
            print(f"wrote {out / fname} ({(out / fname).stat().st_size} bytes)")
    self_check(out, timing=not args.no_timing)
    return 0


if __name__ == "__main__":
    sys.exit(main())
