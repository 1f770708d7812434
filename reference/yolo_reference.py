#!/usr/bin/env python3
"""Reference Ultralytics YOLO11/YOLOv8 *detect* pipeline for ONNX models.

This is the oracle the Rust server is tested against (see make_goldens.py), so it
follows what `ultralytics` does at predict time step by step, using only numpy,
OpenCV and onnxruntime (CPU EP). Arithmetic is kept in float32 where Ultralytics
works on float32 torch tensors, so scores and boxes match it to the last bits
rather than merely "closely".

    python reference/yolo_reference.py MODEL IMAGE [--threshold 0.25] [--iou 0.7]
"""

import argparse
import ast
import json
import sys

import cv2
import numpy as np
import onnxruntime as ort

PAD_VALUE = 114  # LetterBox default padding colour
MAX_DET = 300  # non_max_suppression(max_det=300)
MAX_NMS = 30000  # candidates fed to NMS at most
MAX_WH = 7680  # per-class box offset that turns one NMS into class-aware NMS


def decode_image(data: bytes) -> np.ndarray:
    """Encoded bytes -> HxWx3 uint8 RGB, the way Ultralytics reads files.

    Ultralytics' `imread` is `cv2.imdecode(np.fromfile(path), cv2.IMREAD_COLOR)`.
    IMREAD_COLOR is what defines the behaviour on odd inputs: it applies EXIF
    orientation, replicates grayscale to 3 channels, drops alpha (no compositing),
    converts CMYK, and reduces 16-bit samples to 8 bits (v >> 8).
    """
    buf = np.frombuffer(data, np.uint8)
    if buf.size == 0:
        raise ValueError("empty image")
    try:
        bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    except cv2.error as e:  # e.g. declared size above CV_IO_MAX_IMAGE_PIXELS
        raise ValueError(f"cannot decode image: {e}") from e
    if bgr is None or bgr.size == 0:
        raise ValueError("cannot decode image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def letterbox(img: np.ndarray, new_shape: tuple[int, int]):
    """Ultralytics LetterBox(auto=False, scale_fill=False, scaleup=True, center=True).

    Returns (padded image, gain, (left, top)). Note Python's round() is
    half-to-even; Ultralytics uses it too, so a Rust port must not use
    f64::round (half away from zero) for new_unpad when w*r lands on .5 exactly.
    """
    h, w = img.shape[:2]
    r = min(new_shape[0] / h, new_shape[1] / w)
    # max(1, ...) deviates from Ultralytics only where it would crash: an extreme
    # aspect ratio (e.g. 12000x8) rounds one side to 0 and cv2.resize rejects it.
    new_w, new_h = max(1, round(w * r)), max(1, round(h * r))
    if (w, h) != (new_w, new_h):
        img = cv2.resize(img, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    dw, dh = (new_shape[1] - new_w) / 2, (new_shape[0] - new_h) / 2
    # The +-0.1 puts the odd pixel at the bottom/right; dw, dh are multiples of
    # 0.5, so these rounds never hit a tie.
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    img = cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3)
    return img, r, (left, top)


def xywh2xyxy(xywh: np.ndarray) -> np.ndarray:
    half = xywh[:, 2:] / np.float32(2)
    return np.concatenate([xywh[:, :2] - half, xywh[:, :2] + half], axis=1)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_thres: float) -> np.ndarray:
    """Greedy NMS with torchvision.ops.nms semantics.

    Highest score first; a box is dropped when its IoU with a kept box is
    strictly greater than iou_thres. IoU is computed in float32 as the
    torchvision CPU kernel does, then compared in double (the threshold is a
    C++ double there). Returns kept indices in descending-score order.
    """
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.maximum(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), np.float32(0))
        h = np.maximum(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), np.float32(0))
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter)
        order = rest[~(iou.astype(np.float64) > iou_thres)]  # NaN (0/0) never suppresses, as in torch
    return np.asarray(keep, dtype=np.int64)


def non_max_suppression(pred: np.ndarray, nc: int, conf_thres: float, iou_thres: float):
    """ultralytics.utils.nms.non_max_suppression for one image, default options
    (agnostic=False, multi_label=False, max_det=300, max_nms=30000).

    pred: [4 + nc (+ extra), anchors] float32, rows cx, cy, w, h, class scores.
    Returns (boxes xyxy float32 [n,4], scores float32 [n], classes int [n]),
    in descending-score order, in letterboxed-input pixels.
    """
    x = pred.T  # [anchors, 4 + nc]
    cls_scores = x[:, 4 : 4 + nc]
    conf = cls_scores.max(axis=1)
    # Comparison in float32, as torch does with a Python scalar threshold.
    cand = conf > np.float32(conf_thres)
    boxes = xywh2xyxy(x[cand, :4])
    scores = conf[cand]
    classes = cls_scores[cand].argmax(axis=1)  # first max on ties, like torch.max
    if scores.size > MAX_NMS:
        top = np.argsort(-scores, kind="stable")[:MAX_NMS]
        boxes, scores, classes = boxes[top], scores[top], classes[top]
    # Class-aware NMS in a single pass: shift each class into its own region.
    # Done in float32 like Ultralytics, where the shift costs precision for high
    # class ids (ulp is 1/16 px at 79 * 7680), which can nudge borderline IoUs.
    offset = classes.astype(np.float32)[:, None] * np.float32(MAX_WH)
    keep = nms(boxes + offset, scores, iou_thres)[:MAX_DET]
    return boxes[keep], scores[keep], classes[keep]


def scale_boxes(boxes: np.ndarray, gain: float, pad: tuple[int, int], shape_hw: tuple[int, int]) -> np.ndarray:
    """ultralytics.utils.ops.scale_boxes(padding=True) + clip_boxes.

    Current Ultralytics (PR #23967, 2026-03) derives the pad as
    round((S - round(w0 * gain)) / 2 - 0.1), which is exactly the (left, top)
    the letterbox applied, so we take that directly. Older releases used the
    unrounded w0 * gain and could be 1 input px off the real padding.
    """
    boxes = boxes.copy()
    boxes[:, [0, 2]] -= np.float32(pad[0])
    boxes[:, [1, 3]] -= np.float32(pad[1])
    boxes /= np.float32(gain)
    h, w = shape_hw
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
    return boxes


def _parse_imgsz(value: str) -> tuple[int, int]:
    v = ast.literal_eval(value)
    return (int(v), int(v)) if isinstance(v, (int, float)) else (int(v[0]), int(v[1]))


class YoloDetector:
    """An ONNX Runtime session plus the metadata needed to pre/post-process."""

    def __init__(self, model_path: str, intra_op_threads: int = 0):
        so = ort.SessionOptions()
        so.intra_op_num_threads = intra_op_threads  # 0 = ORT default (one per core)
        so.inter_op_num_threads = 1
        self.session = ort.InferenceSession(model_path, so, providers=["CPUExecutionProvider"])
        inp = self.session.get_inputs()[0]
        meta = self.session.get_modelmeta().custom_metadata_map
        self.input_name = inp.name
        self.input_dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
        h, w = inp.shape[2:4]
        if isinstance(h, int) and isinstance(w, int):
            self.input_hw = (h, w)
        elif "imgsz" in meta:  # dynamic spatial axes: the export size is what it was trained for
            self.input_hw = _parse_imgsz(meta["imgsz"])
        else:
            raise ValueError("model input size is dynamic and there is no 'imgsz' metadata")
        self.names = {int(k): str(v) for k, v in ast.literal_eval(meta.get("names", "{}")).items()}

    def preprocess(self, rgb: np.ndarray):
        img, gain, pad = letterbox(rgb, self.input_hw)
        # HWC uint8 -> NCHW, cast *then* divide (in the input dtype, as
        # Ultralytics does with im.float()/im.half() followed by im /= 255).
        x = np.ascontiguousarray(img.transpose(2, 0, 1)[None]).astype(self.input_dtype)
        x /= self.input_dtype(255)
        return x, gain, pad

    def infer(self, x: np.ndarray) -> np.ndarray:
        out = self.session.run(None, {self.input_name: x})[0]
        return out[0].astype(np.float32)  # [4 + nc (+ extra), anchors]

    def detect(self, rgb: np.ndarray, conf_thres: float = 0.25, iou_thres: float = 0.7):
        """RGB image -> (boxes xyxy in image pixels, scores, classes), best first."""
        x, gain, pad = self.preprocess(rgb)
        pred = self.infer(x)
        nc = len(self.names) or pred.shape[0] - 4
        boxes, scores, classes = non_max_suppression(pred, nc, conf_thres, iou_thres)
        return scale_boxes(boxes, gain, pad, rgb.shape[:2]), scores, classes

    def label(self, cls: int) -> str:
        return self.names.get(int(cls), str(int(cls)))


def to_cvat(detector: YoloDetector, boxes, scores, classes, confidence_as_str: bool = False) -> list[dict]:
    """CVAT detector reply: rectangles sorted by score, best first."""
    order = np.argsort(-scores, kind="stable")
    return [
        {
            "label": detector.label(classes[i]),
            "type": "rectangle",
            "points": [float(v) for v in boxes[i]],
            # CVAT's own functions send str(numpy float32); CVAT ignores the value.
            "confidence": str(scores[i]) if confidence_as_str else float(scores[i]),
            "attributes": [],
        }
        for i in order
    ]


def run(model_path: str, image_path: str, threshold: float = 0.25, iou: float = 0.7):
    """Returns (width, height, CVAT detections) for one image file."""
    detector = YoloDetector(model_path)
    with open(image_path, "rb") as f:
        rgb = decode_image(f.read())
    dets = to_cvat(detector, *detector.detect(rgb, threshold, iou))
    return rgb.shape[1], rgb.shape[0], dets


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("image")
    ap.add_argument("--threshold", type=float, default=0.25, help="class score threshold (strict >)")
    ap.add_argument("--iou", type=float, default=0.7, help="NMS IoU threshold")
    args = ap.parse_args(argv)
    _, _, dets = run(args.model, args.image, args.threshold, args.iou)
    json.dump(dets, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
