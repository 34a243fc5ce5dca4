#!/bin/bash
# On the GPU machine (device tool), from the repository root, with `.gpu-bundle` carried (built here by
# scripts/gpu/make_scaling_bundle.sh):
#   bash scripts/gpu/run_asr_scaling.sh [args for bench/asr/replica_scaling.py]
# Unpacks the bundle into /tmp/aistack-gpu (kept while the machine stays warm), builds a random-weight
# Whisper-medium-shaped CTranslate2 model there once, links CUDA 12 cuBLAS names for CTranslate2, and runs
# the benchmark: the launcher starts the platform, the ASR replicas (one per GPU) and Envoy. Writes
# $OUT/scaling.json and $OUT/scaling.log.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/asr_scaling_out}
mkdir -p "$OUT"
STAGE=/tmp/aistack-gpu
if [ ! -f "$STAGE/.unpacked" ]; then
    mkdir -p "$STAGE/site" "$STAGE/bin"
    python3 - "$STAGE" <<'PY' || exit 1
import lzma, shutil, sys, tarfile
stage = sys.argv[1]
with tarfile.open(".gpu-bundle/site.tar.xz", "r:xz") as archive:
    archive.extractall(f"{stage}/site", filter="tar")
with lzma.open(".gpu-bundle/envoy.xz") as src, open(f"{stage}/bin/envoy", "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
    chmod +x "$STAGE/bin/envoy"
    touch "$STAGE/.unpacked"
fi
# shellcheck source=ct2_cuda_compat.sh
source scripts/gpu/ct2_cuda_compat.sh
export PATH="$STAGE/bin:$PATH"
export PYTHONPATH="$STAGE/site:$PWD/gen/python:$PWD/kit:$PWD/client:$PWD/envoy:$PWD/launcher:$PWD/services/platform:$PWD/services/asr"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
{
    echo "== $(date -u +%FT%TZ) $(hostname), $(nproc) cores"
    nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader
    python3 -c 'import ctranslate2; print("ctranslate2", ctranslate2.__version__, "CUDA devices:", ctranslate2.get_cuda_device_count())'
} 2>&1 | tee "$OUT/scaling.log"
python3 bench/asr/replica_scaling.py --speech .gpu-bundle/speech.ogg --out "$OUT/scaling.json" "$@" 2>&1 \
    | grep --line-buffered -v -e "Loading weights" -e "Writing model shards" | tee -a "$OUT/scaling.log"
exit "${PIPESTATUS[0]}"
