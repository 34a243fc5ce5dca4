"""`make smoke-test`: real calls through Envoy, by REST, gRPC and grpcurl, with and without a token.

The platform checks always run; then, as the seed's smoke test did, a chat completion (plain and
streamed to `[DONE]`), a multipart transcription of speech made here with espeak-ng, and a synthesis,
each only when this deployment lists that capability.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from aistack.platform.v1 import platform_service_pb2 as pb
from aistack_client.client import AistackClient, resolve_token, resolve_url

SPOKEN = "hello world"


class SmokeFailed(Exception):
    pass


def _check(condition: bool, what: object) -> None:
    if not condition:
        raise SmokeFailed(str(what)[:500])


def _json(reply: httpx.Response) -> Any:
    try:
        return reply.json()
    except ValueError:
        raise SmokeFailed(f"{reply.status_code} not JSON: {reply.text[:300]}") from None


async def _grpc(url: str, token: str) -> list[str]:
    async with AistackClient(url, token) as client:
        health = await client.platform.GetHealth(pb.GetHealthRequest(), timeout=10)
        _check(health.status == pb.SERVING_STATUS_SERVING, health)
        listing = await client.platform.ListServices(pb.ListServicesRequest(), timeout=10)
        return [name for s in listing.services for name in s.grpc_services]


class Smoke:
    def __init__(self, host: str, token: str) -> None:
        self.host = host
        self.http = httpx.Client(base_url=f"http://{host}", timeout=120)
        self.auth = {"Authorization": f"Bearer {token}"}
        self.token = token
        self.deployed: list[str] = []
        self.grpc_names: list[str] = []

    def rest_health(self) -> str:
        reply = self.http.get("/api/v1/health")
        body = _json(reply)
        _check(reply.status_code == 200 and body.get("status") == "SERVING_STATUS_SERVING", body)
        return f"{len(body['services'])} capabilities serving"

    def rest_refused(self) -> str:
        reply = self.http.get("/api/v1/services")
        reason = (_json(reply).get("details") or [{}])[0].get("reason")
        _check(reply.status_code == 401 and reason == "INVALID_TOKEN", reply.text)
        return "401 INVALID_TOKEN"

    def rest_services(self) -> str:
        reply = self.http.get("/api/v1/services", headers=self.auth)
        _check(reply.status_code == 200, reply.text)
        self.deployed = [s["name"] for s in _json(reply)["services"]]
        return ", ".join(self.deployed)

    def grpc_calls(self) -> str:
        self.grpc_names = asyncio.run(_grpc(self.host, self.token))
        return f"{len(self.grpc_names)} gRPC services listed"

    def grpcurl_list(self) -> str:
        grpcurl = shutil.which("grpcurl", path=str(Path(sys.executable).parent)) or shutil.which("grpcurl")
        _check(grpcurl is not None, "grpcurl not installed (make setup)")
        assert grpcurl is not None
        listed = subprocess.run(
            [grpcurl, "-plaintext", self.host, "list"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        missing = [n for n in self.grpc_names if n not in listed.stdout.split()]
        _check(listed.returncode == 0 and not missing, f"missing {missing}: {listed.stdout}{listed.stderr}")
        return "every deployed service visible through reflection"

    def chat(self) -> str:
        request = {
            "messages": [{"role": "user", "content": "What is the capital of France?"}],
            "max_tokens": 16,
        }
        reply = self.http.post("/api/v1/chat/completions", json=request, headers=self.auth)
        _check(reply.status_code == 200, reply.text)
        answer = _json(reply)["choices"][0]["message"]["content"]
        _check(bool(answer.strip()), reply.text)
        return repr(answer.strip()[:60])

    def chat_stream(self) -> str:
        request = {"messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 8, "stream": True}
        with self.http.stream("POST", "/api/v1/chat/completions", json=request, headers=self.auth) as reply:
            _check(reply.status_code == 200, reply.read())
            events = [line for line in reply.iter_lines() if line.startswith("data: ")]
        _check(bool(events) and events[-1] == "data: [DONE]", events[-3:])
        return f"{len(events)} events, ends with [DONE]"

    def transcribe(self) -> str:
        espeak = shutil.which("espeak-ng")
        _check(espeak is not None, "espeak-ng not installed (make setup)")
        assert espeak is not None
        with tempfile.TemporaryDirectory() as tmp:
            wav = Path(tmp) / "speech.wav"
            subprocess.run([espeak, "-v", "en-us", "-w", str(wav), SPOKEN], check=True, timeout=30)
            reply = self.http.post(
                "/api/v1/asr",
                files={"file": ("speech.wav", wav.read_bytes(), "audio/wav")},
                data={"language": "en"},
                headers=self.auth,
            )
        _check(reply.status_code == 200, reply.text)
        text = str(_json(reply).get("text", ""))
        _check(SPOKEN in text.lower(), f"expected {SPOKEN!r}, got {text!r}")
        return repr(text.strip())

    def synthesize(self) -> str:
        reply = self.http.post("/api/v1/tts", json={"text": "Olá mundo", "language": "pt"}, headers=self.auth)
        _check(reply.status_code == 200, reply.text[:300])
        _check(reply.content[:4] == b"RIFF", f"{reply.headers.get('content-type')}: not a WAV")
        return f"{len(reply.content)} bytes of {reply.headers.get('content-type')}"


def main() -> int:
    parser = argparse.ArgumentParser(prog="aistack-smoke", description=__doc__)
    parser.add_argument("--url", default=None, help="edge (env AISTACK_URL, default localhost:8000)")
    args = parser.parse_args()
    token = resolve_token()
    if token is None:
        print(
            "smoke-test: no token (AISTACK_TOKEN, API_TOKENS or run/token from `make run`)", file=sys.stderr
        )
        return 2
    smoke = Smoke(resolve_url(args.url), token)
    checks: list[tuple[str, str | None, Callable[[], str]]] = [
        ("REST GET /api/v1/health", None, smoke.rest_health),
        ("REST without token is refused", None, smoke.rest_refused),
        ("REST GET /api/v1/services with token", None, smoke.rest_services),
        ("gRPC GetHealth + ListServices (aistack_client)", None, smoke.grpc_calls),
        ("grpcurl list (reflection)", None, smoke.grpcurl_list),
        ("LLM chat completion", "llm", smoke.chat),
        ("LLM chat completion, stream=true", "llm", smoke.chat_stream),
        ("ASR multipart upload", "asr", smoke.transcribe),
        ("TTS synthesis", "tts", smoke.synthesize),
    ]
    failed = 0
    for name, capability, check in checks:
        if capability is not None and capability not in smoke.deployed:
            print(f"  - {name}: skipped ({capability} is not deployed)")
            continue
        try:
            print(f"  ✓ {name}: {check()}")
        except Exception as exc:  # report every failure, then go on with the other checks
            failed += 1
            print(f"  ✗ {name}: {type(exc).__name__}: {exc}")
    print("smoke-test passed" if not failed else f"smoke-test: {failed} check(s) failed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
