#!/usr/bin/env python3
"""Preprocessing cost of the Python peer against nuclio-ort, one core each.

Times the peer's CPU path before inference exactly as bench/python_peer.py runs
it (base64.b64decode, PIL decode + convert("RGB"), OpenCV letterbox, NCHW
float32 /255 via the reference's YoloDetector.preprocess) on the scene frames,
single-threaded (cv2.setNumThreads(1)). With --ours it alternates with the Rust
side (examples/preprocess_timing.rs: same stages, exact and --fast-decode) in
rounds A, B, A, B ... so both see the same machine noise, and prints the ratios.

    cargo build --release --example preprocess_timing
    .venv/bin/python bench/preprocess_peer.py --ours target/release/examples/preprocess_timing

Targets (issue 6): >= 2x the peer on scene-1080p.jpg (exact path),
>= 4x with fast decode on scene-4k.jpg.
"""

import argparse
import base64
import io
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "reference"))
from yolo_reference import YoloDetector  # noqa: E402

IMAGES = ("scene-1080p.jpg", "scene-4k.jpg")


def time_peer(path: Path, size: int, iterations: int, warmup: int = 2) -> dict:
    """The peer's stages, per-stage medians in ms."""
    text = base64.b64encode(path.read_bytes()).decode()
    # YoloDetector.preprocess only reads these two attributes; no ORT session needed.
    fake = SimpleNamespace(input_hw=(size, size), input_dtype=np.float32)
    stages = {"base64": [], "decode": [], "letterbox": []}
    totals = []
    for i in range(warmup + iterations):
        t0 = time.perf_counter()
        data = base64.b64decode(text, validate=True)
        t1 = time.perf_counter()
        rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        t2 = time.perf_counter()
        x, _gain, _pad = YoloDetector.preprocess(fake, rgb)
        t3 = time.perf_counter()
        assert x.shape == (1, 3, size, size)
        if i >= warmup:
            stages["base64"].append((t1 - t0) * 1000)
            stages["decode"].append((t2 - t1) * 1000)
            stages["letterbox"].append((t3 - t2) * 1000)
            totals.append((t3 - t0) * 1000)
    return {
        "impl": "python-peer",
        "image": str(path),
        "mode": "exact",
        "samples": totals,
        "stages_ms": {k: statistics.median(v) for k, v in stages.items()},
    }


def time_ours(binary: str, path: Path, size: int, iterations: int, fast: bool) -> dict:
    cmd = [binary, "--image", str(path), "--iterations", str(iterations), "--size", str(size)]
    if fast:
        cmd.append("--fast")
    env = dict(os.environ, RAYON_NUM_THREADS="1")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout)


def compare(args) -> dict:
    """{image: {"peer": [...], "exact": [...], "fast": [...], stage medians}} over all rounds."""
    results = {}
    for name in IMAGES:
        path = Path(args.data) / "images" / name
        entry = {"peer": [], "exact": [], "fast": [], "stages": {}}
        for _ in range(args.rounds):
            peer = time_peer(path, args.size, args.iterations)
            entry["peer"].append(statistics.median(peer["samples"]))
            entry["stages"]["peer"] = peer["stages_ms"]
            if args.ours:
                for mode in ("exact", "fast"):
                    ours = time_ours(args.ours, path, args.size, args.iterations, mode == "fast")
                    entry[mode].append(ours["median_ms"])
                    entry["stages"][mode] = ours["stages_ms"]
        results[name] = entry
    return results


def ratios(entry: dict, mode: str) -> float:
    """Median over rounds of peer/ours, each round's pair measured back to back."""
    return statistics.median(p / o for p, o in zip(entry["peer"], entry[mode]))


def markdown(results: dict, size: int) -> str:
    lines = [
        f"Single-threaded preprocessing (base64 + decode + letterbox/normalise to {size}x{size}), "
        "median ms per image; ratio = peer / ours (higher is better).",
        "",
        "| image | peer (PIL + OpenCV) | nuclio-ort exact | ratio | nuclio-ort fast decode | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for name, e in results.items():
        peer = statistics.median(e["peer"])
        if e["exact"]:
            exact, fast = statistics.median(e["exact"]), statistics.median(e["fast"])
            lines.append(
                f"| {name} | {peer:.1f} | {exact:.1f} | {ratios(e, 'exact'):.2f}x | "
                f"{fast:.1f} | {ratios(e, 'fast'):.2f}x |"
            )
        else:
            lines.append(f"| {name} | {peer:.1f} | - | - | - | - |")
    lines += ["", "Stage medians (ms, last round):", "", "| image | impl | base64 | decode | letterbox |", "|---|---|---|---|---|"]
    for name, e in results.items():
        for impl, s in e["stages"].items():
            lines.append(f"| {name} | {impl} | {s['base64']:.2f} | {s['decode']:.2f} | {s['letterbox']:.2f} |")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.environ.get("NUCLIO_ORT_TEST_DATA", str(ROOT.parent / "shared")))
    ap.add_argument("--size", type=int, default=640, help="model input side (default 640)")
    ap.add_argument("--iterations", type=int, default=15, help="timed iterations per round and side")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (peer, ours, peer, ours ...)")
    ap.add_argument("--ours", help="path of the built examples/preprocess_timing binary")
    ap.add_argument("--json", action="store_true", help="print the raw results as JSON")
    args = ap.parse_args()
    if not Path(args.data, "images").is_dir():
        ap.error(f"no images under {args.data} (set --data or NUCLIO_ORT_TEST_DATA)")
    cv2.setNumThreads(1)
    # One core for both sides: the child inherits this affinity.
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    results = compare(args)
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        print(markdown(results, args.size), end="")
        if args.ours:
            hd, k4 = results["scene-1080p.jpg"], results["scene-4k.jpg"]
            r1, r2 = ratios(hd, "exact"), ratios(k4, "fast")
            print(f"\ntarget scene-1080p exact >= 2x: {r1:.2f}x {'PASS' if r1 >= 2 else 'MISS'}")
            print(f"target scene-4k fast decode >= 4x: {r2:.2f}x {'PASS' if r2 >= 4 else 'MISS'}")


if __name__ == "__main__":
    main()
