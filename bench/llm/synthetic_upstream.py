"""A constant-speed OpenAI-compatible chat upstream, for measuring the service's own overhead.

llama.cpp on a shared 2-core machine varies by tens of milliseconds from one request to the next and
serves one request at a time, which hides a proxy's few milliseconds and never shows 32 concurrent
streams as vLLM serves them. This server answers every streamed chat the same way, concurrently: the
first token after `--ttft-ms`, then one token every `--token-ms`, in vLLM's chunk format, `max_tokens`
tokens in all. It is a yardstick for bench/llm/overhead.py (`--upstream synthetic`), not a model.

    python bench/llm/synthetic_upstream.py --port 8090 [--ttft-ms 20] [--token-ms 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


def build_app(ttft: float, gap: float) -> Starlette:
    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "synthetic", "object": "model"}]})

    async def chat(request: Request) -> Response:
        body = await request.json()
        tokens = int(body.get("max_tokens") or 16)
        model = str(body.get("model") or "synthetic")
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())

        def chunk(delta: dict[str, str], finish: str | None = None) -> bytes:
            payload = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            }
            return b"data: " + json.dumps(payload).encode() + b"\n\n"

        async def events() -> AsyncIterator[bytes]:
            started = time.perf_counter()
            yield chunk({"role": "assistant", "content": ""})
            for index in range(tokens):
                # Sleep to an absolute schedule so the pace does not drift with event-loop load.
                due = started + ttft + index * gap
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                yield chunk({"content": f" word{index}"})
            yield chunk({}, "length")
            usage = {"prompt_tokens": 12, "completion_tokens": tokens, "total_tokens": 12 + tokens}
            yield (
                b"data: "
                + json.dumps({"id": completion_id, "choices": [], "usage": usage}).encode()
                + b"\n\n"
            )
            yield b"data: [DONE]\n\n"

        if not body.get("stream"):
            await asyncio.sleep(ttft + gap * max(0, tokens - 1))
            text = "".join(f" word{i}" for i in range(tokens))
            return JSONResponse(
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "length",
                        }
                    ],
                    "usage": {"prompt_tokens": 12, "completion_tokens": tokens, "total_tokens": 12 + tokens},
                }
            )
        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(
        routes=[
            Route("/v1/models", models, methods=["GET"]),
            Route("/v1/chat/completions", chat, methods=["POST"]),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--ttft-ms", type=float, default=20.0)
    parser.add_argument("--token-ms", type=float, default=20.0)
    args = parser.parse_args()
    app = build_app(args.ttft_ms / 1000, args.token_ms / 1000)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
