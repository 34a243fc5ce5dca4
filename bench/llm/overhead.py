"""Overhead of the LLM service over its upstream: tokens/s and time to first token, streamed.

Starts an upstream and the service (`python -m aistack_llm`) as separate processes, then sends the
same streamed chat requests at concurrency 1, 8 and 32 to:
  direct   the upstream's own /v1/chat/completions
  service  our OpenAI-compatible /api/v1/chat/completions (HTTP, SSE), which relays to the upstream
  grpc     our StreamChat (with --grpc)
Rounds alternate between the paths so that drift in the machine's load hits both alike. Upstreams:
  synthetic  bench/llm/synthetic_upstream.py: constant TTFT and token pace, concurrent like vLLM; what
             remains between `direct` and `service` is our overhead
  llama      the embedded llama.cpp + SmolLM2-135M (one request at a time, CPU-bound, noisy when shared)

    .venv/bin/python bench/llm/overhead.py [--upstream synthetic llama] [--rounds 3] [--max-tokens 32]
        [--grpc] [--json out.json]

Goal (issue 5): overhead <= 3 % on throughput, <= 5 ms on time to first token.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
from aistack.llm.v1 import llm_service_pb2 as pb
from aistack.llm.v1 import llm_service_pb2_grpc as pb_grpc
from aistack_kit.testing import free_port, machine_description
from aistack_llm.embedded_upstream import server_argv

TOKEN = "bench-token-0123456789"
PROMPT = "Write a short poem about the sea."


def wait_http(url: str, headers: dict[str, str] | None = None, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, headers=headers, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer in {timeout} s")


@dataclass
class Result:
    ttft: float
    tokens: int
    seconds: float


async def sse_request(client: httpx.AsyncClient, url: str, body: dict[str, object]) -> Result:
    started = time.perf_counter()
    ttft = 0.0
    tokens = 0
    async with client.stream("POST", url, json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            choices = json.loads(line[6:]).get("choices") or [{}]
            if choices[0].get("delta", {}).get("content"):
                if tokens == 0:
                    ttft = time.perf_counter() - started
                tokens += 1
    return Result(ttft, tokens, time.perf_counter() - started)


async def grpc_request(stub: pb_grpc.LlmServiceAsyncStub, max_tokens: int) -> Result:
    request = pb.StreamChatRequest(
        messages=[pb.ChatMessage(role=pb.ROLE_USER, content=PROMPT)],
        generation_config=pb.GenerationConfig(max_tokens=max_tokens, temperature=0.0, seed=1),
    )
    started = time.perf_counter()
    ttft = 0.0
    tokens = 0
    async for message in stub.StreamChat(request, metadata=(("authorization", f"Bearer {TOKEN}"),)):
        if message.delta:
            if tokens == 0:
                ttft = time.perf_counter() - started
            tokens += 1
    return Result(ttft, tokens, time.perf_counter() - started)


async def phase(one: Callable[[], Awaitable[Result]], concurrency: int, requests: int) -> dict[str, float]:
    queue = list(range(requests))
    results: list[Result] = []

    async def worker() -> None:
        while queue:
            queue.pop()
            results.append(await one())

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    tokens = sum(r.tokens for r in results)
    return {
        "tokens_per_second": tokens / wall,
        "ttft_p50_ms": statistics.median(r.ttft for r in results) * 1000,
        "ttft_mean_ms": statistics.fmean(r.ttft for r in results) * 1000,
        "tokens": tokens,
        "requests": len(results),
        "wall_seconds": wall,
    }


async def run(
    args: argparse.Namespace, upstream_url: str, service_url: str, grpc_target: str
) -> dict[str, object]:
    body = {
        "model": "paneas-v1",
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": args.max_tokens,
        "temperature": 0,
        "seed": 1,
        "stream": True,
    }
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    direct = httpx.AsyncClient(timeout=600, limits=limits)
    ours = httpx.AsyncClient(timeout=600, limits=limits, headers={"Authorization": f"Bearer {TOKEN}"})
    channel = grpc.aio.insecure_channel(grpc_target)
    stub = pb_grpc.LlmServiceStub(channel)
    paths: dict[str, Callable[[], Awaitable[Result]]] = {
        "direct": lambda: sse_request(direct, f"{upstream_url}/chat/completions", body),
        "service": lambda: sse_request(ours, f"{service_url}/api/v1/chat/completions", body),
    }
    if args.grpc:
        paths["grpc"] = lambda: grpc_request(stub, args.max_tokens)
    # Warm both paths (connections, llama.cpp's first-call costs).
    for one in paths.values():
        await one()
    table: dict[str, dict[str, list[dict[str, float]]]] = {}
    for concurrency in args.concurrency:
        requests = max(args.min_requests, concurrency)
        for _ in range(args.rounds):
            for name, one in paths.items():
                measured = await phase(one, concurrency, requests)
                table.setdefault(str(concurrency), {}).setdefault(name, []).append(measured)
                print(
                    f"c={concurrency:>2} {name:<7} {measured['tokens_per_second']:7.1f} tok/s  "
                    f"TTFT p50 {measured['ttft_p50_ms']:8.1f} ms  ({measured['requests']} requests)",
                    flush=True,
                )
    await direct.aclose()
    await ours.aclose()
    await channel.close(None)
    summary: dict[str, object] = {}
    for concurrency, by_path in table.items():
        # Medians over rounds: on a shared machine one disturbed round should not move the result.
        averaged = {
            name: {
                "tokens_per_second": statistics.median(m["tokens_per_second"] for m in rounds),
                "ttft_p50_ms": statistics.median(m["ttft_p50_ms"] for m in rounds),
            }
            for name, rounds in by_path.items()
        }
        base = averaged["direct"]
        for name, values in averaged.items():
            if name != "direct":
                values["throughput_overhead_pct"] = 100 * (
                    1 - values["tokens_per_second"] / base["tokens_per_second"]
                )
                values["ttft_overhead_ms"] = values["ttft_p50_ms"] - base["ttft_p50_ms"]
        summary[concurrency] = averaged
    return summary


def start_upstream(kind: str, port: int, args: argparse.Namespace) -> tuple[subprocess.Popen[bytes], str]:
    if kind == "llama":
        return subprocess.Popen(
            server_argv(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        ), "llama-cpp"
    argv = [
        sys.executable,
        str(Path(__file__).with_name("synthetic_upstream.py")),
        "--port",
        str(port),
        "--ttft-ms",
        str(args.synthetic_ttft_ms),
        "--token-ms",
        str(args.synthetic_token_ms),
    ]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), "openai"


def measure(kind: str, args: argparse.Namespace) -> dict[str, object]:
    upstream_port, grpc_port, http_port = free_port(), free_port(), free_port()
    upstream_url = f"http://127.0.0.1:{upstream_port}/v1"
    upstream, dialect = start_upstream(kind, upstream_port, args)
    env = {
        **os.environ,
        "API_TOKENS": json.dumps([TOKEN]),
        "AISTACK_GRPC_PORT": str(grpc_port),
        "AISTACK_LLM_HTTP_PORT": str(http_port),
        "AISTACK_LLM_UPSTREAMS": json.dumps({"up": {"url": upstream_url, "dialect": dialect}}),
        "AISTACK_LLM_ALIASES": json.dumps({"paneas-v1": {"upstream": "up", "model": "m"}}),
        "AISTACK_LLM_EMBEDDING_MODELS": "{}",
        "AISTACK_LOG_LEVEL": "warning",
    }
    service = subprocess.Popen([sys.executable, "-m", "aistack_llm"], env=env, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"{upstream_url}/models")
        wait_http(f"http://127.0.0.1:{http_port}/api/v1/models", {"Authorization": f"Bearer {TOKEN}"})
        print(f"== upstream: {kind}", flush=True)
        return asyncio.run(run(args, upstream_url, f"http://127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}"))
    finally:
        for process in (service, upstream):
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description="LLM service overhead over its upstream")
    parser.add_argument(
        "--upstream",
        nargs="+",
        choices=("llama", "synthetic"),
        default=["synthetic", "llama"],
        help="llama: embedded llama.cpp + SmolLM2; synthetic: constant-speed server (synthetic_upstream.py)",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--min-requests", type=int, default=8)
    parser.add_argument("--synthetic-ttft-ms", type=float, default=20.0)
    parser.add_argument("--synthetic-token-ms", type=float, default=20.0)
    parser.add_argument("--grpc", action="store_true", help="measure gRPC StreamChat too")
    parser.add_argument("--json", type=Path, help="write the summary here")
    args = parser.parse_args()
    # A stopped bench still stops the processes it started (the finally blocks run on SystemExit).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results = {kind: measure(kind, args) for kind in args.upstream}
    report = {
        "machine": machine_description(),
        "max_tokens": args.max_tokens,
        "rounds": args.rounds,
        "synthetic": {"ttft_ms": args.synthetic_ttft_ms, "token_ms": args.synthetic_token_ms},
        "results": results,
    }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
