#!/bin/bash
# The one command sent to the GPU machine (device tool), from the repository root:
#   bash scripts/gpu/run_asr_bench.sh [extra args for bench/asr/gpu/asr_gpu_bench.py]
# with `.whl` carried (the CTranslate2 cp312 manylinux wheel; see docs/asr-gpu.md). Writes
# $OUT/asr_gpu_bench.json and $OUT/asr_gpu_bench.log. ASR_BENCH_TIMEOUT (seconds, default 530) bounds the
# whole run so that a device call ends inside its 10-minute limit with its results.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/asr_gpu_out}
mkdir -p "$OUT"
LOG="$OUT/asr_gpu_bench.log"
{
    echo "== $(date -u +%FT%TZ) $(hostname)"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    if ls .whl/*.whl >/dev/null 2>&1; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
            || echo "wheel install failed"
    else
        echo "no .whl folder: CTranslate2 phases will be skipped"
    fi
} >"$LOG" 2>&1
# shellcheck source=ct2_cuda_compat.sh
source scripts/gpu/ct2_cuda_compat.sh
# Only our package is put on the path (under a stub aistack_asr), so the service's own imports
# (grpc, faster-whisper...) are not needed on the GPU machine.
mkdir -p /tmp/asrpath/aistack_asr
: >/tmp/asrpath/aistack_asr/__init__.py
ln -sfn "$PWD/services/asr/aistack_asr/gpu" /tmp/asrpath/aistack_asr/gpu
export PYTHONPATH=/tmp/asrpath:/tmp/site:${PYTHONPATH:-}
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
timeout -k 10 "${ASR_BENCH_TIMEOUT:-530}" python3 bench/asr/gpu/asr_gpu_bench.py --out "$OUT" "$@" 2>&1 \
    | grep --line-buffered -v -e "Loading weights" -e "Writing model shards" | tee -a "$LOG"
rc=${PIPESTATUS[0]}
echo "== exit $rc" | tee -a "$LOG"
python3 - "$OUT/asr_gpu_bench.json" <<'PY' || true
import json, sys
r = json.load(open(sys.argv[1]))
for k in ("correctness", "ct2", "torch", "torch_no_graphs", "encoder_compiled", "capacity", "notes", "fatal"):
    if k in r:
        print(k, json.dumps(r[k])[:1500])
PY
exit "$rc"
