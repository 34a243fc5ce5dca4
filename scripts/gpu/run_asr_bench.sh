#!/bin/bash
# The one command sent to the GPU machine (device tool), from the repository root:
#   ASR_PARTS="torch ct2" bash scripts/gpu/run_asr_bench.sh [extra args for bench/asr/gpu/asr_gpu_bench.py]
# with `.whl` carried (the CTranslate2 cp312 manylinux wheel; see docs/asr-gpu.md). Each part runs in its own
# process (CTranslate2 keeps its GPU memory cache until exit) and writes $OUT/asr_gpu_<part>.json; the log is
# $OUT/asr_gpu_bench.log. ASR_BENCH_TIMEOUT (seconds per part, default 530) keeps a device call inside its
# 10-minute limit; the script's own --budget-s makes it skip work and still write its results before that.
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
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
rc=0
for part in ${ASR_PARTS:-torch ct2}; do
    # Per-part extra arguments: ASR_ARGS_CT2, ASR_ARGS_TORCH (word-split on purpose).
    extra_var="ASR_ARGS_${part^^}"
    # shellcheck disable=SC2086
    timeout -k 10 "${ASR_BENCH_TIMEOUT:-530}" python3 bench/asr/gpu/asr_gpu_bench.py --part "$part" --out "$OUT" "$@" ${!extra_var:-} 2>&1 \
        | grep --line-buffered -v -e "Loading weights" -e "Writing model shards" | tee -a "$LOG"
    prc=${PIPESTATUS[0]}
    echo "== part $part exit $prc" | tee -a "$LOG"
    [ "$prc" -eq 0 ] || rc=$prc
done
python3 - "$OUT" <<'PY' || true
import json, pathlib, sys
for f in sorted(pathlib.Path(sys.argv[1]).glob("asr_gpu_*.json")):
    r = json.loads(f.read_text())
    print("==", f.name)
    for k in ("correctness", "torch_cross_attention", "torch_no_graphs", "encoder_compiled", "capacity", "notes", "fatal"):
        if k in r:
            print(k, json.dumps(r[k])[:1200])
PY
exit "$rc"
