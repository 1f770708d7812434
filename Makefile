# One entry point for people and CI. `make serve` and `make test` work on a
# fresh machine with cargo and python3: they install ONNX Runtime (PyPI wheel)
# and the reference tooling into .venv first.

SHELL := /bin/bash
VENV ?= .venv
PYTHON := $(VENV)/bin/python
export NUCLIO_ORT_TEST_DATA ?= ../shared
MODEL ?= $(NUCLIO_ORT_TEST_DATA)/models/yolo11n-coco-640.onnx
LISTEN ?= 0.0.0.0:8080
SERVE_ARGS ?=

.PHONY: setup system-deps build serve test lint fmt goldens fixtures bench image-check clean

## setup: build tools (cmake, nasm for the bundled libjpeg-turbo) and ONNX Runtime
## (libonnxruntime from the `onnxruntime` wheel) plus the test tooling into .venv
setup: system-deps $(VENV)/.installed

system-deps:
	@missing=""; for tool in cmake nasm; do command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing$$missing"; apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; \
	  else echo "missing build tools:$$missing (install them, e.g. sudo apt-get install$$missing)"; exit 1; fi; \
	fi

$(VENV)/.installed: requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -r requirements.txt
	@touch $@

## build: release binary at target/release/nuclio-ort
build: system-deps
	cargo build --release --locked

## serve: set up, build and serve MODEL (default: the shared YOLO11n 640 model) on LISTEN
serve: setup build
	./target/release/nuclio-ort serve --model "$(MODEL)" --listen "$(LISTEN)" $(SERVE_ARGS)

## test: set up, then run every test (unit, integration, parity, contract) and the lints
test: setup lint
	cargo test --locked --all-targets

## lint: formatting and clippy, warnings are errors
lint:
	cargo fmt --all -- --check
	cargo clippy --locked --all-targets -- -D warnings

fmt:
	cargo fmt --all

## goldens: regenerate the YOLO parity goldens with the Python reference
goldens: setup
	$(PYTHON) reference/make_goldens.py

## fixtures: regenerate the SAM ONNX fixtures
fixtures: setup
	$(PYTHON) scripts/gen_sam_fixtures.py

## bench: nuclio-ort vs the Python peer, side by side (writes bench/results.md)
bench: setup build
	cargo build --release --locked --example preprocess_timing
	$(PYTHON) bench/compare.py --binary target/release/nuclio-ort --python $(PYTHON) \
	  --preprocess-example target/release/examples/preprocess_timing $(BENCH_ARGS)

## image-check: image size budget from the wheels (no Docker needed) and Dockerfile/function.yaml lint
image-check: setup
	$(VENV)/bin/pip install --quiet -r scripts/requirements-image.txt
	$(PYTHON) scripts/image_budget.py
	$(PYTHON) scripts/lint_dockerfiles.py --require-hadolint

clean:
	cargo clean
	rm -rf $(VENV)
