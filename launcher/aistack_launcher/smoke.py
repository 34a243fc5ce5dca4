"""`make smoke-test`: a few real calls through Envoy, by REST, gRPC and grpcurl, with and without a token."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from aistack.platform.v1 import platform_service_pb2 as pb
from aistack_client.client import AistackClient, resolve_token, resolve_url


class SmokeFailed(Exception):
    pass


def _http(url: str, token: str | None = None) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _check(condition: bool, what: str) -> None:
    if not condition:
        raise SmokeFailed(what)


async def _grpc(url: str, token: str) -> list[str]:
    async with AistackClient(url, token) as client:
        health = await client.platform.GetHealth(pb.GetHealthRequest(), timeout=10)
        _check(health.status == pb.SERVING_STATUS_SERVING, f"gRPC GetHealth: {health}")
        listing = await client.platform.ListServices(pb.ListServicesRequest(), timeout=10)
        return [name for s in listing.services for name in s.grpc_services]


def main() -> int:
    parser = argparse.ArgumentParser(prog="aistack-smoke", description=__doc__)
    parser.add_argument("--url", default=None, help="edge (env AISTACK_URL, default localhost:8000)")
    args = parser.parse_args()
    host = resolve_url(args.url)
    base = f"http://{host}"
    token = resolve_token()
    if token is None:
        print(
            "smoke-test: no token (AISTACK_TOKEN, API_TOKENS or run/token from `make run`)", file=sys.stderr
        )
        return 2
    grpc_names: list[str] = []

    def rest_health() -> str:
        status, body = _http(f"{base}/api/v1/health")
        _check(status == 200 and body.get("status") == "SERVING_STATUS_SERVING", f"{status} {body}")
        return f"{len(body.get('services', []))} capabilities serving"  # type: ignore[arg-type]

    def rest_refused() -> str:
        status, body = _http(f"{base}/api/v1/services")
        details = body.get("details") or [{}]
        reason = details[0].get("reason")  # type: ignore[index]
        _check(status == 401 and reason == "INVALID_TOKEN", f"{status} {body}")
        return "401 INVALID_TOKEN"

    def rest_services() -> str:
        status, body = _http(f"{base}/api/v1/services", token)
        _check(status == 200, f"{status} {body}")
        return ", ".join(s["name"] for s in body["services"])  # type: ignore[attr-defined]

    def grpc_calls() -> str:
        grpc_names.extend(asyncio.run(_grpc(host, token)))
        return f"{len(grpc_names)} gRPC services listed"

    def grpcurl_list() -> str:
        grpcurl = shutil.which("grpcurl", path=str(Path(sys.executable).parent)) or shutil.which("grpcurl")
        _check(grpcurl is not None, "grpcurl not installed (make setup)")
        assert grpcurl is not None
        listed = subprocess.run(
            [grpcurl, "-plaintext", host, "list"], capture_output=True, text=True, timeout=20, check=False
        )
        missing = [n for n in grpc_names if n not in listed.stdout.split()]
        _check(listed.returncode == 0 and not missing, f"missing {missing}: {listed.stdout}{listed.stderr}")
        return "every deployed service visible through reflection"

    checks: list[tuple[str, Callable[[], str]]] = [
        ("REST GET /api/v1/health", rest_health),
        ("REST without token is refused", rest_refused),
        ("REST GET /api/v1/services with token", rest_services),
        ("gRPC GetHealth + ListServices (aistack_client)", grpc_calls),
        ("grpcurl list (reflection)", grpcurl_list),
    ]
    failed = 0
    for name, check in checks:
        try:
            print(f"  ✓ {name}: {check()}")
        except Exception as exc:
            failed += 1
            print(f"  ✗ {name}: {exc}")
    print("smoke-test passed" if not failed else f"smoke-test: {failed} check(s) failed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
