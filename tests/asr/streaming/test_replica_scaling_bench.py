"""The multi-GPU scaling benchmark, run small on CPU: the launcher places replicas by AISTACK_ASR_GPUS,
Envoy balances sessions over them, and the report holds what docs/asr-gpu.md's tables are built from."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from asr_testkit import needs_espeak

pytestmark = [pytest.mark.slow, needs_espeak]

REPO = Path(__file__).resolve().parents[3]


def test_scaling_bench_through_the_launcher_and_envoy(tmp_path: Path) -> None:
    out = tmp_path / "scaling.json"
    # GPU ids on a CPU run: each replica still gets its own CUDA_VISIBLE_DEVICES, which CPU decoding ignores.
    run = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "asr" / "replica_scaling.py"),
            "--model",
            "whisper/tiny.en",
            "--gpus",
            "0,1",
            "--replicas",
            "1,2",
            "--levels",
            "3",
            "--seconds",
            "8",
            "--warmup-s",
            "0",
            "--clients",
            "2",
            "--port-offset",
            "4100",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(out.read_text())
    rows = {row["replicas"]: row for row in report["rows"]}
    assert sorted(rows) == [1, 2]
    for replicas, row in rows.items():
        assert row["sessions"] == 3 * replicas
        assert row["errors"] == 0, row["first_error"]
        # Every session reached a replica and got windows back: 8 s of speech is at least one 5 s window.
        assert sum(row["sessions_by_replica"].values()) == row["sessions"]
        assert row["windows"] >= row["sessions"]
        assert 0 < row["p50"] <= row["p95"] <= row["max"]
        # The launcher started as many replicas as asked: each one's metrics were read.
        assert len(row["mean_batch_by_replica"]) == replicas
    assert report["capacity"] == {"1": 3, "2": 6}
    assert report["scaling"] == {"1": 1.0, "2": 1.0}
