#!/usr/bin/env python3
"""Benchmark peer: a CVAT-style Python detector function, as users deploy today.

It mirrors the shape of CVAT's serverless ONNX functions (e.g. the YOLOv7 one):
base64 JSON in, PIL decode, OpenCV letterbox, onnxruntime, numpy NMS, a JSON
array of rectangles out, with the stdlib HTTP server standing in for Nuclio's
Python processor.

    python bench/python_peer.py --model M.onnx --listen 127.0.0.1:8081 --threads 0

POST <any path> {"image": <base64>, "threshold"?: float} -> CVAT detections.
GET /__internal/health -> 200.
"""

import argparse
import base64
import binascii
import io
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "reference"))
from yolo_reference import YoloDetector, to_cvat  # noqa: E402

DEFAULT_THRESHOLD = 0.5  # what CVAT's functions use when the caller sends none
IOU = 0.7


class BadRequest(Exception):
    pass


def parse_request(body: bytes):
    try:
        req = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadRequest(f"body is not JSON: {e}") from e
    if not isinstance(req, dict) or not isinstance(req.get("image"), str):
        raise BadRequest("expected a JSON object with a base64 'image' string")
    try:
        threshold = float(req.get("threshold") or DEFAULT_THRESHOLD)  # CVAT omits 0/absent
    except (TypeError, ValueError) as e:
        raise BadRequest("'threshold' must be a number") from e
    if not 0.0 <= threshold <= 1.0:
        raise BadRequest("'threshold' must be within [0, 1]")
    try:
        data = base64.b64decode(req["image"], validate=True)
    except (binascii.Error, ValueError) as e:
        raise BadRequest(f"'image' is not valid base64: {e}") from e
    try:
        # Exactly what CVAT's functions do: no EXIF transpose, 16-bit gray clips.
        # PIL's decompression-bomb check rejects absurd declared sizes here.
        rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    except Exception as e:  # PIL raises a zoo of types for bad input
        raise BadRequest(f"cannot decode image: {e}") from e
    return rgb, threshold


def make_handler(detector: YoloDetector):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, so load generators can reuse connections

        def _reply(self, status: int, payload):
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/__internal/health":
                self._reply(200, {"status": "ok"})
            else:
                self._reply(404, {"error": "not found"})

        def do_POST(self):
            try:
                length = int(self.headers.get("Content-Length", 0))
            except ValueError:
                length = -1
            if length < 0:
                self.close_connection = True
                return self._reply(400, {"error": "bad Content-Length"})
            body = self.rfile.read(length)
            try:
                rgb, threshold = parse_request(body)
            except BadRequest as e:
                return self._reply(400, {"error": str(e)})
            try:
                dets = to_cvat(detector, *detector.detect(rgb, threshold, IOU), confidence_as_str=True)
            except Exception as e:  # keep serving; report like a function crash would
                return self._reply(500, {"error": f"inference failed: {e}"})
            self._reply(200, dets)

        def log_message(self, *args):  # per-request stderr logging would skew the benchmark
            pass

    return Handler


def main():
    ap = argparse.ArgumentParser(description="CVAT-style Python YOLO detector (benchmark peer)")
    ap.add_argument("--model", required=True)
    ap.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT")
    ap.add_argument("--threads", type=int, default=0, help="ORT intra-op threads (0 = ORT default)")
    args = ap.parse_args()

    host, _, port = args.listen.rpartition(":")
    detector = YoloDetector(args.model, intra_op_threads=args.threads)
    server = ThreadingHTTPServer((host or "127.0.0.1", int(port)), make_handler(detector))
    server.daemon_threads = True
    print(f"listening on http://{server.server_address[0]}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
