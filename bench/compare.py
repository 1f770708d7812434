#!/usr/bin/env python3
"""nuclio-ort against the Python peer, side by side, on this machine (issue 6).

Builds nothing: give it the release binary and the venv python (which runs
bench/python_peer.py). Both servers run at the same time on free loopback
ports with the same model and the same ONNX Runtime intra-op threads; the load
comes from `nuclio-ort bench` and alternates between them (A, B, A, B ...), so
slow drift of a noisy machine hits both sides alike. Every number that matters
is a ratio of two runs made back to back; absolute times are printed only for
context.

Regimes:
  decode-bound  yolo11n-coco-320.onnx + scene-4k.jpg: concurrency 1 median
                latency (exact and --fast-decode), concurrency 8 throughput
  model-bound   yolo11n-coco-640.onnx + scene-1080p.jpg: throughput and
                p50/p99 at concurrency 1, 4 and 16
  memory        peak and current RSS of every server (/proc)
  overload      concurrency 64 against nuclio-ort with a small --max-queue
                (and --max-batch 1: on a CPU batching adds no throughput, only
                latency): every request answered, rejections fast, accepted p99
                bounded. Twice: clients that honour Retry-After (as the 503
                asks) and clients that retry at once (a flood: on this 2-core
                machine the flood itself starves the server of CPU)

    cargo build --release [--example preprocess_timing]
    python3 bench/compare.py --binary target/release/nuclio-ort --python .venv/bin/python [--quick]

Writes the markdown report to bench/results.md (--out) and prints it.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

DECODE_MODEL, DECODE_IMAGE = "yolo11n-coco-320.onnx", "scene-4k.jpg"
MODEL_MODEL, MODEL_IMAGE = "yolo11n-coco-640.onnx", "scene-1080p.jpg"
MODEL_CONCURRENCY = (1, 4, 8, 16)
OVERLOAD_CONCURRENCY = 64


def log(msg: str) -> None:
    print(f"[compare {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {
        "nproc": os.cpu_count() or 1,
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu": cpu,
        "memory": mem,
        "kernel": platform.release(),
    }


class ServerProcess:
    """A server we started, with its log file; stopped by its own handle only."""

    def __init__(self, name: str, cmd: list, url: str, ready_url: str, logdir: Path, env=None):
        self.name, self.url, self.ready_url = name, url, ready_url
        self.log_path = logdir / f"{name}.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL)
        self.peak_rss_mib = 0.0

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{self.tail()}")
            try:
                with urllib.request.urlopen(self.ready_url, timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready within {timeout:.0f}s:\n{self.tail()}")

    def tail(self) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return ""

    def rss_mib(self) -> tuple:
        """(current, peak) resident memory in MiB from /proc/PID/status."""
        values = {}
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    values[key] = int(rest.split()[0]) / 1024
        except (OSError, ValueError, IndexError):
            pass
        return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class Compare:
    def __init__(self, args):
        self.args = args
        self.data = Path(args.data)
        self.logdir = Path(tempfile.mkdtemp(prefix="nuclio-ort-compare-"))
        self.servers = []
        self.threads = args.threads or (os.cpu_count() or 1)
        quick = args.quick
        self.rounds = args.rounds or (2 if quick else 3)
        self.slice = args.slice or (4.0 if quick else 12.0)

    # -- servers ---------------------------------------------------------------------------

    def start_ours(self, name: str, model: str, *extra: str) -> ServerProcess:
        port, health, metrics = free_port(), free_port(), free_port()
        cmd = [
            self.args.binary, "serve",
            "--model", str(self.data / "models" / model),
            "--listen", f"127.0.0.1:{port}",
            "--health-listen", f"127.0.0.1:{health}",
            "--metrics-listen", f"127.0.0.1:{metrics}",
            "--threads", str(self.threads),
            *extra,
        ]
        env = dict(os.environ, NUCLIO_ORT_LOG="warn")
        s = ServerProcess(name, cmd, f"http://127.0.0.1:{port}/", f"http://127.0.0.1:{health}/ready", self.logdir, env)
        self.servers.append(s)
        return s

    def start_peer(self, name: str, model: str) -> ServerProcess:
        port = free_port()
        cmd = [
            self.args.python, str(ROOT / "bench" / "python_peer.py"),
            "--model", str(self.data / "models" / model),
            "--listen", f"127.0.0.1:{port}",
            "--threads", str(self.threads),
        ]
        s = ServerProcess(name, cmd, f"http://127.0.0.1:{port}/", f"http://127.0.0.1:{port}/__internal/health", self.logdir)
        self.servers.append(s)
        return s

    def stop_all(self) -> None:
        for s in self.servers:
            s.stop()
        self.servers.clear()

    def sample_rss(self, *servers: ServerProcess) -> None:
        for s in servers:
            s.peak_rss_mib = max(s.peak_rss_mib, s.rss_mib()[1])

    # -- load ------------------------------------------------------------------------------

    def bench(self, server: ServerProcess, image: str, concurrency: int, duration: float, warmup=None, extra=()) -> dict:
        cmd = [
            self.args.binary, "bench", "--url", server.url,
            "--image", str(self.data / "images" / image),
            "--concurrency", str(concurrency),
            "--duration", f"{duration:.1f}s",
            "--warmup", str(concurrency if warmup is None else warmup),
            "--timeout", "60s",
            "--json",
            *extra,
        ]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode not in (0, 1) or not out.stdout.strip():
            raise RuntimeError(f"bench against {server.name} failed ({out.returncode}): {out.stderr}\n{server.tail()}")
        summary = json.loads(out.stdout)
        errors = sum(e["count"] for e in summary["errors"].values())
        log(
            f"  {server.name:<14} c={concurrency:<3} {summary['ok_per_s']:7.2f} ok/s  "
            f"p50 {summary['latency_ms']['p50']:8.1f} ms  p99 {summary['latency_ms']['p99']:8.1f} ms  "
            f"errors {errors}  shapes {summary['shapes']}"
        )
        self.sample_rss(server)
        return summary

    def alternate(self, servers: list, image: str, concurrency: int) -> dict:
        """Rounds of back-to-back runs: {server name: [summary per round]}."""
        runs = {s.name: [] for s in servers}
        for r in range(self.rounds):
            # Reverse the order every other round so neither side always goes first.
            order = servers if r % 2 == 0 else list(reversed(servers))
            for s in order:
                runs[s.name].append(self.bench(s, image, concurrency, self.slice))
        return runs

    # -- regimes ---------------------------------------------------------------------------

    def decode_bound(self) -> dict:
        log(f"decode-bound: {DECODE_MODEL} + {DECODE_IMAGE}")
        ours = self.start_ours("nuclio-ort", DECODE_MODEL)
        fast = self.start_ours("nuclio-ort-fast", DECODE_MODEL, "--fast-decode")
        peer = self.start_peer("python-peer", DECODE_MODEL)
        for s in (ours, fast, peer):
            s.wait_ready()
        result = {"c1": self.alternate([ours, fast, peer], DECODE_IMAGE, 1),
                  "c8": self.alternate([ours, fast, peer], DECODE_IMAGE, 8)}
        result["rss"] = {s.name: (s.rss_mib()[0], s.peak_rss_mib) for s in (ours, fast, peer)}
        self.stop_all()
        return result

    def model_bound(self) -> dict:
        log(f"model-bound: {MODEL_MODEL} + {MODEL_IMAGE}")
        ours = self.start_ours("nuclio-ort", MODEL_MODEL)
        peer = self.start_peer("python-peer", MODEL_MODEL)
        for s in (ours, peer):
            s.wait_ready()
        result = {f"c{c}": self.alternate([ours, peer], MODEL_IMAGE, c) for c in MODEL_CONCURRENCY}
        result["rss"] = {s.name: (s.rss_mib()[0], s.peak_rss_mib) for s in (ours, peer)}
        self.stop_all()
        return result

    def overload(self) -> dict:
        q, b = self.args.max_queue, self.args.max_batch
        log(f"overload: {MODEL_MODEL} + {MODEL_IMAGE}, --max-queue {q} --max-batch {b}, concurrency {OVERLOAD_CONCURRENCY}")
        ours = self.start_ours("nuclio-ort-q", MODEL_MODEL, "--max-queue", str(q), "--max-batch", str(b))
        ours.wait_ready()
        unloaded = self.bench(ours, MODEL_IMAGE, 1, self.slice)
        polite = self.bench(ours, MODEL_IMAGE, OVERLOAD_CONCURRENCY, self.slice * 1.5, warmup=0,
                            extra=("--honor-retry-after",))
        flood = self.bench(ours, MODEL_IMAGE, OVERLOAD_CONCURRENCY, self.slice * 1.5, warmup=0)
        rss = ours.rss_mib()
        self.stop_all()
        return {"max_queue": q, "max_batch": b, "unloaded": unloaded, "polite": polite, "flood": flood, "rss": rss}

    def preprocess(self) -> str:
        if not self.args.preprocess_example:
            return ""
        log("preprocessing, one core: peer vs examples/preprocess_timing")
        cmd = [
            self.args.python, str(ROOT / "bench" / "preprocess_peer.py"),
            "--ours", self.args.preprocess_example, "--data", str(self.data),
            "--rounds", str(self.rounds), "--iterations", "8" if self.args.quick else "15",
        ]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            log(f"preprocessing comparison failed: {out.stderr.strip()}")
            return ""
        return out.stdout


# -- report ----------------------------------------------------------------------------------


def med(runs: list, *path: str) -> float:
    values = []
    for r in runs:
        v = r
        for key in path:
            v = v[key]
        values.append(v)
    return statistics.median(values) if values else float("nan")


def paired_ratio(num: list, den: list, *path: str) -> float:
    """Median over rounds of num/den, each pair measured back to back."""
    ratios = []
    for a, b in zip(num, den):
        x, y = a, b
        for key in path:
            x, y = x[key], y[key]
        if y:
            ratios.append(x / y)
    return statistics.median(ratios) if ratios else float("nan")


def errors_of(runs: list) -> int:
    return sum(e["count"] for r in runs for e in r["errors"].values())


def shapes_note(runs: dict) -> str:
    shapes = {name: {r["shapes"] for r in rs} for name, rs in runs.items()}
    flat = {s for v in shapes.values() for s in v}
    if len(flat) == 1:
        return f"every reply had {flat.pop()} shapes on both sides"
    return "shapes per reply differ: " + ", ".join(f"{n}: {sorted(v, key=str)}" for n, v in shapes.items())


def report(c: Compare, m: dict, dec: dict, mod: dict, ovl: dict, pre: str, started: float) -> str:
    a = c.args
    L = []
    L.append("# nuclio-ort vs the Python peer")
    L.append("")
    L.append(
        f"Generated {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')} by `bench/compare.py"
        f"{' --quick' if a.quick else ''}` in {(time.monotonic() - started) / 60:.1f} min. "
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory']} RAM, Linux {m['kernel']}. "
        f"ONNX Runtime intra-op threads: {c.threads} on both servers. "
        f"{c.rounds} alternating rounds of {c.slice:.0f} s per configuration; "
        "ratios are medians of per-round ratios of back-to-back runs (higher = nuclio-ort better)."
    )
    L.append("")
    L.append("Python peer: `bench/python_peer.py` (PIL decode, OpenCV letterbox, onnxruntime, numpy NMS, "
             "stdlib threading HTTP server), the shape of CVAT's Python ONNX functions.")
    L.append("")

    # decode-bound
    c1, c8 = dec["c1"], dec["c8"]
    P, O, F = "python-peer", "nuclio-ort", "nuclio-ort-fast"
    L.append(f"## Decode-bound: `{DECODE_MODEL}` + `{DECODE_IMAGE}` (3840x2160)")
    L.append("")
    L.append("| metric | Python peer | nuclio-ort | ratio | nuclio-ort --fast-decode | ratio |")
    L.append("|---|---|---|---|---|---|")
    L.append(
        f"| c=1 median latency (ms) | {med(c1[P], 'latency_ms', 'p50'):.1f} | {med(c1[O], 'latency_ms', 'p50'):.1f} | "
        f"**{paired_ratio(c1[P], c1[O], 'latency_ms', 'p50'):.2f}x** | {med(c1[F], 'latency_ms', 'p50'):.1f} | "
        f"**{paired_ratio(c1[P], c1[F], 'latency_ms', 'p50'):.2f}x** |"
    )
    L.append(
        f"| c=1 p99 latency (ms) | {med(c1[P], 'latency_ms', 'p99'):.1f} | {med(c1[O], 'latency_ms', 'p99'):.1f} | "
        f"{paired_ratio(c1[P], c1[O], 'latency_ms', 'p99'):.2f}x | {med(c1[F], 'latency_ms', 'p99'):.1f} | "
        f"{paired_ratio(c1[P], c1[F], 'latency_ms', 'p99'):.2f}x |"
    )
    L.append(
        f"| c=8 throughput (req/s) | {med(c8[P], 'ok_per_s'):.2f} | {med(c8[O], 'ok_per_s'):.2f} | "
        f"**{paired_ratio(c8[O], c8[P], 'ok_per_s'):.2f}x** | {med(c8[F], 'ok_per_s'):.2f} | "
        f"**{paired_ratio(c8[F], c8[P], 'ok_per_s'):.2f}x** |"
    )
    L.append(
        f"| c=8 p50 / p99 latency (ms) | {med(c8[P], 'latency_ms', 'p50'):.0f} / {med(c8[P], 'latency_ms', 'p99'):.0f} | "
        f"{med(c8[O], 'latency_ms', 'p50'):.0f} / {med(c8[O], 'latency_ms', 'p99'):.0f} | | "
        f"{med(c8[F], 'latency_ms', 'p50'):.0f} / {med(c8[F], 'latency_ms', 'p99'):.0f} | |"
    )
    L.append("")
    L.append(f"Errors: {errors_of(c1[P] + c8[P])} peer, {errors_of(c1[O] + c8[O])} nuclio-ort, "
             f"{errors_of(c1[F] + c8[F])} fast. Exact path: {shapes_note({P: c1[P], O: c1[O]})}; "
             f"fast decode: {shapes_note({F: c1[F]})}.")
    L.append("")

    # model-bound
    L.append(f"## Model-bound: `{MODEL_MODEL}` + `{MODEL_IMAGE}` (1920x1080)")
    L.append("")
    L.append("| concurrency | peer req/s | nuclio-ort req/s | throughput ratio | peer p50 / p99 (ms) | nuclio-ort p50 / p99 (ms) | p99 ratio |")
    L.append("|---|---|---|---|---|---|---|")
    errs_p = errs_o = 0
    for conc in MODEL_CONCURRENCY:
        r = mod[f"c{conc}"]
        errs_p += errors_of(r[P])
        errs_o += errors_of(r[O])
        L.append(
            f"| {conc} | {med(r[P], 'ok_per_s'):.2f} | {med(r[O], 'ok_per_s'):.2f} | "
            f"**{paired_ratio(r[O], r[P], 'ok_per_s'):.2f}x** | "
            f"{med(r[P], 'latency_ms', 'p50'):.0f} / {med(r[P], 'latency_ms', 'p99'):.0f} | "
            f"{med(r[O], 'latency_ms', 'p50'):.0f} / {med(r[O], 'latency_ms', 'p99'):.0f} | "
            f"{paired_ratio(r[P], r[O], 'latency_ms', 'p99'):.2f}x |"
        )
    L.append("")
    L.append(f"Errors: {errs_p} peer, {errs_o} nuclio-ort. {shapes_note({P: mod['c1'][P], O: mod['c1'][O]})}.")
    L.append("")

    # memory
    L.append("## Memory (RSS, MiB)")
    L.append("")
    L.append("| regime | server | peak (VmHWM) | after the runs (VmRSS) |")
    L.append("|---|---|---|---|")
    for regime, rss in (("decode-bound", dec["rss"]), ("model-bound", mod["rss"])):
        for name, (now, peak) in rss.items():
            L.append(f"| {regime} | {name} | {peak:.0f} | {now:.0f} |")
    L.append("")

    # overload
    u = ovl["unloaded"]
    runs = (("clients honour Retry-After", ovl["polite"]), ("clients retry at once", ovl["flood"]))
    nan = float("nan")
    no503 = {"count": 0, "latency_ms": {"p50": nan, "p99": nan, "max": nan}}
    unl = u["latency_ms"]["p99"]
    L.append(f"## Overload: nuclio-ort, `--max-queue {ovl['max_queue']} --max-batch {ovl['max_batch']}`, "
             f"concurrency {OVERLOAD_CONCURRENCY}, `{MODEL_MODEL}` + `{MODEL_IMAGE}`")
    L.append("")
    L.append("| | " + " | ".join(name for name, _ in runs) + " |")
    L.append("|---|" + "---|" * len(runs))

    def row(label, fn):
        L.append(f"| {label} | " + " | ".join(fn(o) for _, o in runs) + " |")

    def other(o):
        return {k: v["count"] for k, v in o["errors"].items() if k != "503"}

    def rej(o):
        return o["errors"].get("503", no503)

    row("requests answered", lambda o: f"{o['requests']} in {o['duration_s']:.1f} s: {o['ok']} ok, {rej(o)['count']} rejected (503), "
        f"unanswered: {', '.join(f'{k} {v}' for k, v in other(o).items()) or 'none'}")
    row("accepted throughput (req/s)", lambda o: f"{o['ok_per_s']:.2f} (unloaded {u['ok_per_s']:.2f})")
    row("503 latency p50 / p99 / max (ms)", lambda o: f"{rej(o)['latency_ms']['p50']:.1f} / {rej(o)['latency_ms']['p99']:.1f} / {rej(o)['latency_ms']['max']:.1f}")
    row("accepted latency p50 / p99 (ms)", lambda o: f"{o['latency_ms']['p50']:.0f} / {o['latency_ms']['p99']:.0f}")
    row("accepted p99 / unloaded p99", lambda o: f"**{o['latency_ms']['p99'] / unl:.1f}x**" if unl else "n/a")
    L.append("")
    L.append(f"Unloaded (c=1): p50 {u['latency_ms']['p50']:.0f} ms, p99 {unl:.0f} ms. "
             f"RSS peak / now: {ovl['rss'][1]:.0f} / {ovl['rss'][0]:.0f} MiB. The load generator runs on the "
             "same 2 cores: a flood of immediate retries spends them on sending and draining request bodies, "
             "which is why accepted throughput and latency suffer there.")
    L.append("")
    for _, o in runs:
        for kind, e in o["errors"].items():
            if kind != "503":
                L.append(f"- `{kind}` errors ({e['count']}, p50 {e['latency_ms']['p50']:.1f} ms): `{e['example'][:160]}`")
    L.append("")

    if pre:
        L.append("## Preprocessing, one core (`bench/preprocess_peer.py`)")
        L.append("")
        L.append(pre.strip())
        L.append("")
    return "\n".join(L) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=str(ROOT / "target" / "release" / "nuclio-ort"), help="release nuclio-ort binary")
    ap.add_argument("--python", default=str(ROOT / ".venv" / "bin" / "python"), help="python with onnxruntime, numpy, PIL, OpenCV")
    ap.add_argument("--data", default=os.environ.get("NUCLIO_ORT_TEST_DATA", str(ROOT.parent / "shared")))
    ap.add_argument("--threads", type=int, default=0, help="ORT intra-op threads for both servers (default: nproc)")
    ap.add_argument("--quick", action="store_true", help="short run (~3-4 min): 2 rounds of 4 s")
    ap.add_argument("--rounds", type=int, default=0, help="alternating rounds per configuration (default 3, quick 2)")
    ap.add_argument("--slice", type=float, default=0, help="seconds per run (default 12, quick 4)")
    ap.add_argument("--max-queue", type=int, default=1, help="--max-queue of the overload run")
    ap.add_argument("--max-batch", type=int, default=1, help="--max-batch of the overload run")
    ap.add_argument("--preprocess-example", help="built examples/preprocess_timing: adds the one-core preprocessing table")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results.md"))
    args = ap.parse_args()
    data = Path(args.data)
    if not os.access(args.binary, os.X_OK):
        ap.error(f"{args.binary} is not an executable (cargo build --release)")
    if not shutil.which(args.python) and not os.access(args.python, os.X_OK):
        ap.error(f"{args.python} not found (make setup)")
    if not (data / "models" / MODEL_MODEL).is_file():
        ap.error(f"{data}/models/{MODEL_MODEL} not found (set --data or NUCLIO_ORT_TEST_DATA)")
    args.data = str(data.resolve())

    started = time.monotonic()
    c = Compare(args)
    log(f"rounds {c.rounds}, {c.slice:.0f} s per run, ORT threads {c.threads}, logs in {c.logdir}")
    try:
        m = machine()
        dec = c.decode_bound()
        mod = c.model_bound()
        ovl = c.overload()
        pre = c.preprocess()
    finally:
        c.stop_all()
    raw = c.logdir / "raw.json"
    raw.write_text(json.dumps({"machine": m, "decode_bound": dec, "model_bound": mod, "overload": ovl}, indent=1))
    log(f"raw summaries in {raw}")
    text = report(c, m, dec, mod, ovl, pre, started)
    Path(args.out).write_text(text)
    print(text)
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
