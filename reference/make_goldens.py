#!/usr/bin/env python3
"""Regenerate tests/golden/yolo/ from the reference pipeline.

For each model and threshold, every top-level image of the shared test data
(plus bad/exif-orientation-6.jpg, to pin down EXIF handling) is run through
yolo_reference.py and written to
    tests/golden/yolo/<model-stem>/<image-file-name>@<threshold>.json

The shared folder comes from NUCLIO_ORT_TEST_DATA (default ../shared); a relative
value is taken from the repository root, which is where `cargo test` runs.
Paths stored in the goldens are relative to that folder, so they stay valid
wherever it is mounted.
"""

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from yolo_reference import YoloDetector, decode_image, to_cvat  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
MODELS = ["yolo11n-coco-640.onnx", "yolo11n-coco-320.onnx"]
THRESHOLDS = [0.25, 0.5]
IOU = 0.7
EXTRA_IMAGES = ["images/bad/exif-orientation-6.jpg"]


def main():
    shared = REPO / os.environ.get("NUCLIO_ORT_TEST_DATA", "../shared")
    shared = shared.resolve()
    images = sorted(
        p.relative_to(shared).as_posix()
        for p in (shared / "images").iterdir()
        if p.is_file() and p.suffix in (".png", ".jpg")
    ) + EXTRA_IMAGES
    out_root = REPO / "tests" / "golden" / "yolo"

    for model in MODELS:
        detector = YoloDetector(str(shared / "models" / model))
        out_dir = out_root / Path(model).stem
        out_dir.mkdir(parents=True, exist_ok=True)
        for rel in images:
            rgb = decode_image((shared / rel).read_bytes())
            for thr in THRESHOLDS:
                dets = to_cvat(detector, *detector.detect(rgb, thr, IOU))
                golden = {
                    "model": f"models/{model}",
                    "image": rel,
                    "threshold": thr,
                    "iou": IOU,
                    "width": rgb.shape[1],
                    "height": rgb.shape[0],
                    "detections": dets,
                }
                path = out_dir / f"{Path(rel).name}@{thr}.json"
                path.write_text(json.dumps(golden, indent=2) + "\n")
                summary = ", ".join(f"{d['label']} {d['confidence']:.2f}" for d in dets) or "-"
                print(f"{path.relative_to(REPO)}: {summary}")


if __name__ == "__main__":
    main()
