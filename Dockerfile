# syntax=docker/dockerfile:1
#
# nuclio-ort, CPU only: the release binary and ONNX Runtime (CPU build, from the
# `onnxruntime` wheel) on a distroless glibc base. About 65 MB.
#
#   docker build -t nuclio-ort:cpu .
#
# GPU images: Dockerfile.cuda. Deployment: docs/deploy.md.

ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG PYTHON_IMAGE=python:3.12-slim-bookworm
# Pin a digest for reproducible builds: --build-arg RUNTIME_IMAGE=gcr.io/distroless/cc-debian12@sha256:...
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

# ---------------------------------------------------------------------------
FROM ${RUST_IMAGE} AS builder
WORKDIR /src
# libjpeg-turbo is built from the turbojpeg crate's bundled source and linked
# statically: it needs cmake and nasm here, nothing at run time.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake nasm \
    && rm -rf /var/lib/apt/lists/*
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && install -D -m 0755 target/release/nuclio-ort /out/nuclio-ort \
    && strip /out/nuclio-ort

# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS libs
COPY scripts/image_budget.py /build/image_budget.py
# Downloads the pinned `onnxruntime` wheel and copies libonnxruntime.so.* and
# libonnxruntime_providers_shared.so to /staging/opt/onnxruntime/lib.
RUN --mount=type=cache,target=/wheels \
    python /build/image_budget.py --variant cpu --cache-dir /wheels --stage /staging

# ---------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE}
LABEL org.opencontainers.image.title="nuclio-ort" \
      org.opencontainers.image.description="ONNX Runtime inference server for CVAT AI tools (Nuclio function contract), CPU build" \
      org.opencontainers.image.licenses="Apache-2.0"

COPY --from=libs /staging/opt/ /opt/
COPY --from=builder /out/nuclio-ort /usr/local/bin/nuclio-ort

ENV ORT_DYLIB_PATH=/opt/onnxruntime/lib/libonnxruntime.so \
    LD_LIBRARY_PATH=/opt/onnxruntime/lib \
    HOME=/tmp \
    NUCLIO_ORT_DEVICE=cpu

USER 1000:1000
EXPOSE 8080 8082 8090
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=5s --timeout=4s --start-period=120s --retries=3 \
    CMD ["/usr/local/bin/nuclio-ort", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/nuclio-ort"]
CMD ["serve"]
