"""Streaming ASR capacity through Envoy as replicas are added: one replica per GPU (issue 8).

For each replica count in `--replicas` (say `1,2`), the launcher starts the ASR service exactly as
`make run` would with `AISTACK_ASR_GPUS` set (one replica per listed GPU, each seeing only its own device
through CUDA_VISIBLE_DEVICES; on CPU, `AISTACK_ASR_REPLICAS`), the platform service and Envoy. Client
processes then stream real-time sessions through Envoy, each with its own `x-session-affinity` value, at
increasing session counts. Per level it reports the window latency the server measures (arrival of a
window's last audio to its event) at p50/p95, the client-side p95 (chunk sent to event received), errors,
how sessions spread over the replicas (`x-served-by`) and the mean batch per replica (Prometheus).

The capacity of a replica count is the largest level whose server p95 <= `--target-p95` with no errors.
Scaling is capacity(N) / (N * capacity(1)) at the same p95 target; the goal is >= 0.9.

Levels are sessions per replica (`--levels`); after the first failing level, `--refine` bisection steps
narrow the capacity of the first replica count. Later counts start at `--scaled-levels` fractions of the
first count's capacity per replica (so a 2-GPU run tests 0.9x, 1.0x and 1.1x of twice one GPU), unless
`--baseline` gives that capacity from an earlier run.

    # CPU, embedded tiny.en, two replicas on one machine (what CI can do):
    .venv/bin/python bench/asr/replica_scaling.py --model whisper/tiny.en --replicas 1,2 --levels 2,4 \\
        --seconds 10 --clients 1
    # GPUs: a Whisper-medium-shaped CTranslate2 folder, one replica per GPU (scripts/gpu/run_asr_scaling.sh)
    python3 bench/asr/replica_scaling.py --model whisper/medium --model-path /models/medium-ct2 \\
        --device cuda --compute-type int8_float16 --gpus 0,1 --replicas 1,2 --levels 400,800,1200 \\
        --max-batch 128 --max-new-tokens 24 --prompt-tokens 0 --chunk-ms 500 --clients 8
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import streaming_capacity as sc  # a sibling script, not a package

T0 = time.monotonic()
AFFINITY = "x-session-affinity"
RATE = sc.RATE


# -- speech ----------------------------------------------------------------------------------------


def speech_loop(args: argparse.Namespace) -> np.ndarray:
    """The audio every session streams (rolled per session): a file, or espeak-ng sentences with pauses."""
    if args.speech:
        from aistack_asr.audio import decode_audio

        audio: np.ndarray = decode_audio(Path(args.speech).read_bytes())
        return audio
    sentences = sc.EN if args.language == "en" else sc.PT
    pause = np.zeros(int(0.4 * RATE), dtype=np.float32)
    return np.concatenate([part for s in sentences for part in (sc.espeak(s, args.language), pause)])


def write_speech(audio: np.ndarray, path: Path) -> None:
    """Ogg/Opus at 32 kbit/s: a 25 s loop in about 100 kB, small enough to carry to a GPU machine."""
    import av

    with av.open(str(path), "w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=48_000)
        stream.bit_rate = 32_000
        stream.layout = "mono"  # type: ignore[union-attr]
        frame = av.AudioFrame.from_ndarray(
            (np.clip(audio, -1, 1) * 32767).astype(np.int16)[None, :], format="s16", layout="mono"
        )
        frame.sample_rate = RATE
        for packet in stream.encode(frame):  # type: ignore[union-attr]
            container.mux(packet)
        for packet in stream.encode(None):  # type: ignore[union-attr]
            container.mux(packet)


# -- the deployment under test -----------------------------------------------------------------------


def deployment_env(args: argparse.Namespace, replicas: int, run_dir: Path) -> dict[str, str]:
    # server_env sizes the per-replica session limit from `sessions`: keep it out of the way.
    limits = argparse.Namespace(**{**vars(args), "sessions": [max(args.levels) * replicas * 2]})
    env = {
        **os.environ,
        **sc.server_env(limits),
        "AISTACK_SERVICES": "asr",
        "AISTACK_RUN_DIR": str(run_dir),
        "AISTACK_PORT_OFFSET": str(args.port_offset),
        "API_TOKENS": json.dumps([args.token]),
        "AISTACK_STARTUP_TIMEOUT_SECONDS": str(args.startup_timeout),
        # One bearer token opens every session here; its rate limit is not what is measured.
        "AISTACK_EDGE_RATE_LIMIT_PER_SECOND": "1000000",
        "AISTACK_EDGE_RATE_LIMIT_BURST": "1000000",
        "AISTACK_LOG_LEVEL": "WARNING",
    }
    env.pop("AISTACK_ASR_GPUS", None)
    env.pop("AISTACK_ASR_REPLICAS", None)
    if args.gpus:
        env["AISTACK_ASR_GPUS"] = ",".join(args.gpus[i % len(args.gpus)] for i in range(replicas))
    else:
        env["AISTACK_ASR_REPLICAS"] = str(replicas)
    return env


@contextlib.contextmanager
def deployment(args: argparse.Namespace, replicas: int) -> Iterator[None]:
    """`python -m aistack_launcher` with `replicas` ASR replicas; returns once Envoy sees them all healthy."""
    with tempfile.TemporaryDirectory(prefix="aistack-scaling-") as tmp:
        run_dir = Path(tmp)
        log = (run_dir / "launcher.log").open("wb")
        started = time.monotonic()
        launcher = subprocess.Popen(
            [sys.executable, "-m", "aistack_launcher"],
            env=deployment_env(args, replicas, run_dir),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_healthy(args, replicas, launcher, run_dir)
            print(
                f"{replicas} replica(s) healthy behind Envoy in {time.monotonic() - started:.0f} s",
                flush=True,
            )
            yield
        finally:
            launcher.send_signal(signal.SIGINT)  # the launcher's Ctrl-C: stops every child, then itself
            try:
                launcher.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(launcher.pid, signal.SIGKILL)
                launcher.wait()
            log.close()
            if args.keep_logs:
                for path in sorted(run_dir.rglob("*.log")):
                    print(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}", flush=True)


def wait_healthy(
    args: argparse.Namespace, replicas: int, launcher: subprocess.Popen[bytes], run_dir: Path
) -> None:
    from aistack_edge.testing import upstream_health

    deadline = time.monotonic() + args.startup_timeout + 60
    while time.monotonic() < deadline:
        if launcher.poll() is not None:
            logs = "\n".join(p.read_text(errors="replace")[-4000:] for p in run_dir.rglob("*.log"))
            raise SystemExit(f"the launcher exited {launcher.returncode}:\n{logs}")
        with contextlib.suppress(OSError, urllib.error.URLError, KeyError, ValueError):
            hosts = upstream_health(args.admin_port).get("asr", [])
            if len(hosts) == replicas and all(hosts):
                return
        time.sleep(1)
    raise SystemExit(f"{replicas} ASR replica(s) not healthy behind Envoy in time")


def metrics_ports(args: argparse.Namespace, replicas: int) -> list[int]:
    from aistack_launcher.catalog import ASR

    return [ASR.metrics_port + args.port_offset + 100 * i for i in range(replicas)]


def batch_totals(port: int) -> tuple[float, float]:
    """(sum, count) of `aistack_asr_batch_size` on one replica, over every model."""
    total, count = 0.0, 0.0
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        for line in reply.read().decode().splitlines():
            match = re.match(r"aistack_asr_batch_size_(sum|count)(?:\{[^}]*\})? ([0-9.e+-]+)$", line)
            if match:
                if match.group(1) == "sum":
                    total += float(match.group(2))
                else:
                    count += float(match.group(2))
    return total, count


# -- the callers -------------------------------------------------------------------------------------


def client_worker(
    address: str,
    indices: Sequence[int],
    total: int,
    audio: np.ndarray,
    start_at: float,
    options: dict[str, Any],
) -> list[dict[str, Any]]:
    """One client process: its share of the sessions, each on its own affinity key, on one channel."""
    args = argparse.Namespace(**options)

    async def run() -> list[sc.SessionResult]:
        import grpc
        from aistack.asr.v1 import asr_service_pb2_grpc as pb_grpc

        async with grpc.aio.insecure_channel(address) as channel:
            stub = pb_grpc.AsrServiceStub(channel)
            # Staggered over one window, as callers arrive, so windows do not all close at once.
            return await asyncio.gather(
                *(
                    sc.one_session(
                        stub,
                        np.roll(audio, -int(i * audio.size / total)),
                        args.seconds,
                        max(0.0, start_at - time.time()) + args.window * i / total,
                        args,
                        metadata=((AFFINITY, str(uuid.uuid4())),),
                    )
                    for i in indices
                )
            )

    return [asdict(r) for r in asyncio.run(run())]


def cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of the whole host, from /proc/stat."""
    with open("/proc/stat") as stat:
        fields = [float(x) for x in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def command_output(argv: Sequence[str]) -> str:
    """A monitoring command's output, or "" where the machine lacks it (no GPU, no procps)."""
    try:
        return subprocess.run(list(argv), capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def gpu_utilization() -> list[int]:
    """Each GPU's utilization now (%), or [] without nvidia-smi."""
    out = command_output(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"])
    return [int(x) for x in out.split()]


def busiest_processes(count: int = 6) -> list[str]:
    """`%CPU threads command` of the processes using most CPU now (where the host's time goes)."""
    out = command_output(["ps", "-eo", "pcpu,nlwp,args", "--sort=-pcpu"])
    return [" ".join(line.split())[:120] for line in out.splitlines()[1 : count + 1]]


def run_level(
    pool: ProcessPoolExecutor, args: argparse.Namespace, replicas: int, total: int, audio: np.ndarray
) -> dict[str, Any]:
    ports = metrics_ports(args, replicas)
    before = [batch_totals(p) for p in ports]
    cpu_before = cpu_times()
    # GPU utilization sampled a few times while every session is streaming.
    samples: list[list[int]] = []
    busiest: list[str] = []

    def sample_gpus() -> None:
        for index in range(3):
            time.sleep(args.seconds / 5)
            samples.append(gpu_utilization())
            if index == 1:
                busiest.extend(busiest_processes())

    sampler = threading.Thread(target=sample_gpus, daemon=True)
    sampler.start()
    options = {k: v for k, v in vars(args).items() if isinstance(v, str | int | float | bool | list)}
    start_at = time.time() + 2.0  # every client process starts its clock together
    clients = min(args.clients, total)
    started = time.monotonic()
    futures = [
        pool.submit(client_worker, args.address, range(c, total, clients), total, audio, start_at, options)
        for c in range(clients)
    ]
    results = [r for f in futures for r in f.result()]
    wall = time.monotonic() - started
    after = [batch_totals(p) for p in ports]
    cpu_after = cpu_times()
    host_busy = (cpu_after[0] - cpu_before[0]) / max(1.0, cpu_after[1] - cpu_before[1])
    sampler.join(timeout=1)
    gpu_busy = [round(float(np.mean(g)), 0) for g in zip(*samples, strict=False)] if samples else []
    server = [x for r in results for x in r["server_latencies"]]
    client = [x for r in results for x in r["client_latencies"]]
    errors = [r["error"] for r in results if r["error"]]
    spread = Counter(r["served_by"] for r in results if r["served_by"])
    batches = [
        (a[0] - b[0]) / (a[1] - b[1]) if a[1] > b[1] else float("nan")
        for a, b in zip(after, before, strict=True)
    ]
    row = {
        "replicas": replicas,
        "sessions": total,
        "sessions_per_replica": total / replicas,
        "windows": len(server),
        "p50": sc.percentile(server, 50),
        "p95": sc.percentile(server, 95),
        "client_p95": sc.percentile(client, 95),
        "max": max(server) if server else float("nan"),
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
        "sessions_by_replica": dict(sorted(spread.items())),
        "mean_batch_by_replica": [round(b, 1) for b in batches],
        "wall": wall,
        # The whole host (services, Envoy and these client processes): a CPU-bound level shows here.
        "host_cpu_busy": round(host_busy, 2),
        "gpu_utilization": gpu_busy,
        "busiest_processes": busiest,
    }
    row["passed"] = bool(server) and row["p95"] <= args.target_p95 and not errors
    print(
        f"replicas={replicas} N={total:5d} ({total / replicas:.0f}/replica) windows={row['windows']:6d} "
        f"p50={row['p50']:.2f}s p95={row['p95']:.2f}s client p95={row['client_p95']:.2f}s "
        f"max={row['max']:.2f}s errors={len(errors)} batch={row['mean_batch_by_replica']} "
        f"spread={list(spread.values())} cpu={host_busy:.0%} gpu={gpu_busy} ({wall:.0f} s)"
        + (f" first error: {errors[0]}" if errors else ""),
        flush=True,
    )
    for line in busiest:
        print(f"    {line}", flush=True)
    return row


def sweep(
    pool: ProcessPoolExecutor,
    args: argparse.Namespace,
    replicas: int,
    per_replica: list[int],
    refine: int,
    audio: np.ndarray,
) -> list[dict[str, Any]]:
    """Levels in order until one fails, then `refine` bisection steps between the last pass and it."""
    rows: list[dict[str, Any]] = []
    passed, failed = 0, 0
    for level in per_replica:
        if out_of_time(args):
            break
        row = run_level(pool, args, replicas, level * replicas, audio)
        rows.append(row)
        if not row["passed"]:
            failed = level
            break
        passed = level
    for _ in range(refine):
        if not failed or failed - passed <= args.resolution:
            break
        level = (passed + failed) // 2
        if out_of_time(args):
            break
        row = run_level(pool, args, replicas, level * replicas, audio)
        rows.append(row)
        passed, failed = (level, failed) if row["passed"] else (passed, level)
    return rows


def warm_up(
    pool: ProcessPoolExecutor, args: argparse.Namespace, replicas: int, first_level: int, audio: np.ndarray
) -> None:
    """Unmeasured streaming after a start, at half the first level, until the batchers are idle again.

    The first batches of each shape are slow (kernel selection, allocator growth). Warming up at the first
    level itself can leave a backlog that the first measured level inherits (seen at 425 sessions on an
    H100, where the warmed-up service later held 500).
    """
    warm = argparse.Namespace(**{**vars(args), "seconds": args.warmup_s})
    print("warm-up:", end=" ", flush=True)
    run_level(pool, warm, replicas, max(1, first_level // 2) * replicas, audio)
    ports = metrics_ports(args, replicas)
    last, deadline = None, time.monotonic() + 30
    while time.monotonic() < deadline:
        counts = [batch_totals(p)[1] for p in ports]
        if counts == last:
            return
        last = counts
        time.sleep(1.0)


def out_of_time(args: argparse.Namespace) -> bool:
    """No time left for one more level before `--deadline-s` (a device call's limit)."""
    left = args.deadline_s - (time.monotonic() - T0)
    if args.deadline_s and left < args.seconds + args.window + 15:
        print(f"stopping: {left:.0f} s left before the deadline", flush=True)
        return True
    return False


def capacity(rows: Sequence[dict[str, Any]]) -> int:
    return max((int(r["sessions"]) for r in rows if r["passed"]), default=0)


# -- the random-weight model -------------------------------------------------------------------------


def build_model(folder: Path, dims_name: str, quantization: str) -> None:
    """A Whisper of `dims_name` shape with random weights, in CTranslate2's format, with a tokenizer.

    Only the cost is real: the text it writes is noise, so the token budget per window is fixed
    (`--max-new-tokens`) and the carried prompt is off (no loop retries on noise text).
    """
    import shutil

    from aistack_asr.gpu.checkpoint import MEDIUM, TINY_TEST, build_random_whisper, convert_to_ctranslate2

    if (folder / "model.bin").is_file():
        return
    started = time.monotonic()
    checkpoint = folder.with_name(folder.name + "-hf")
    build_random_whisper(checkpoint, MEDIUM if dims_name == "medium" else TINY_TEST, seed=0, dtype="float16")
    convert_to_ctranslate2(checkpoint, folder, quantization)
    shutil.copy(checkpoint / "tokenizer.json", folder / "tokenizer.json")
    shutil.rmtree(checkpoint)
    print(
        f"built a random {dims_name} Whisper ({quantization}) in {time.monotonic() - started:.0f} s",
        flush=True,
    )


# -- main --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sc.add_session_args(parser)
    parser.add_argument(
        "--build-random-model", choices=("medium", "tiny"), help="build --model-path first (random weights)"
    )
    parser.add_argument("--gpus", default="", type=lambda v: [g for g in v.split(",") if g], help="GPU ids")
    parser.add_argument("--replicas", default="1,2", type=lambda v: [int(x) for x in v.split(",")])
    parser.add_argument(
        "--levels",
        default="2,4",
        type=lambda v: [int(x) for x in v.split(",")],
        help="sessions per replica, in order",
    )
    parser.add_argument("--refine", type=int, default=0, help="bisection steps after the first failing level")
    parser.add_argument(
        "--resolution", type=int, default=25, help="stop refining below this many per replica"
    )
    parser.add_argument(
        "--scaled-levels",
        default="0.9,1.0,1.1",
        type=lambda v: [float(x) for x in v.split(",")],
        help="later replica counts: fractions of the first count's capacity per replica",
    )
    parser.add_argument("--baseline", type=int, default=0, help="one replica's capacity from an earlier run")
    parser.add_argument("--seconds", type=float, default=25.0, help="audio each session streams per level")
    parser.add_argument("--speech", default="", help="an audio file to stream (default: espeak-ng sentences)")
    parser.add_argument("--write-speech", default="", help="write the espeak-ng loop as Ogg/Opus and exit")
    parser.add_argument("--target-p95", type=float, default=1.5)
    parser.add_argument(
        "--clients", type=int, default=4, help="client processes (each one HTTP/2 connection)"
    )
    parser.add_argument("--port-offset", type=int, default=3000)
    parser.add_argument("--startup-timeout", type=float, default=300.0)
    parser.add_argument("--keep-logs", action="store_true", help="print the deployment's logs at the end")
    parser.add_argument("--warmup-s", type=float, default=10.0, help="unmeasured streaming after each start")
    parser.add_argument(
        "--deadline-s", type=float, default=0, help="start no level that would end after this"
    )
    parser.add_argument("--out", default="", help="write the rows and the summary here as JSON")
    args = parser.parse_args(argv)
    if args.write_speech:
        write_speech(speech_loop(args), Path(args.write_speech))
        return
    from aistack_edge.settings import EdgeSettings
    from aistack_kit.testing import TEST_TOKEN, machine_description

    if args.build_random_model:
        build_model(Path(args.model_path), args.build_random_model, args.compute_type)
    args.token = TEST_TOKEN
    defaults = EdgeSettings()
    args.address = f"127.0.0.1:{defaults.port + args.port_offset}"
    args.admin_port = defaults.admin_port + args.port_offset
    audio = speech_loop(args)
    summary: dict[str, Any] = {
        "machine": machine_description(),
        "args": {k: v for k, v in vars(args).items() if k not in ("token",)},
        "rows": [],
        "capacity": {},
    }
    print(f"machine: {summary['machine']}")
    print(
        f"model {args.model} ({args.model_path or 'registry'}) on {args.device} {args.compute_type}, "
        f"gpus {args.gpus or 'none'}, replicas {args.replicas}, {args.seconds:g} s per level, "
        f"{args.chunk_ms} ms chunks, windows {args.window:g}-{args.max_window:g} s, "
        f"max batch {args.max_batch}, "
        f"{args.clients} client processes, speech loop {audio.size / RATE:.1f} s",
        flush=True,
    )

    def save() -> None:
        if args.out:
            Path(args.out).write_text(json.dumps(summary, indent=1, default=str))

    baseline = args.baseline
    with ProcessPoolExecutor(max_workers=args.clients, mp_context=get_context("spawn")) as pool:
        for replicas in args.replicas:
            if replicas == 1 or not baseline:
                levels, refine = args.levels, args.refine
            else:
                # Around N times one replica's capacity: is the scaling at least 0.9 N at the same p95?
                levels, refine = sorted({max(1, round(f * baseline)) for f in args.scaled_levels}), 0
            with deployment(args, replicas):
                if args.warmup_s:
                    warm_up(pool, args, replicas, min(levels), audio)
                rows = sweep(pool, args, replicas, levels, refine, audio)
            summary["rows"].extend(rows)
            summary["capacity"][replicas] = capacity(rows)
            if replicas == 1 and not args.baseline:
                baseline = capacity(rows)
            save()
    one = baseline or summary["capacity"].get(1, 0)
    summary["baseline_one_replica"] = one
    summary["scaling"] = {n: (c / (n * one) if one else None) for n, c in summary["capacity"].items()}
    save()
    for n, c in summary["capacity"].items():
        ratio = summary["scaling"][n]
        print(
            f"{n} replica(s): capacity {c} sessions at p95 <= {args.target_p95} s"
            + (f" = {ratio:.2f} x {n} x one replica's {one}" if ratio is not None else ""),
            flush=True,
        )


if __name__ == "__main__":
    main()
