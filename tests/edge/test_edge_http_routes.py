"""Catalog `http_prefixes`: plain HTTP to the service's own server, untranscoded, streamed, body-limited."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from aistack_edge.build import Upstreams
from aistack_edge.settings import EdgeSettings
from aistack_edge.testing import RunningEnvoy, free_port, start_envoy
from aistack_launcher.catalog import ServiceEntry

MAX_BODY = 64 * 1024


class OpenAiLikeServer(ThreadingHTTPServer):
    """Answers chat completions as server-sent events; holds the last event until the test allows it."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.release = threading.Event()
        self.seen: list[dict[str, object]] = []


class _Handler(BaseHTTPRequestHandler):
    server: OpenAiLikeServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.server.seen.append(
            {"path": self.path, "authorization": self.headers.get("authorization"), "body": json.loads(body)}
        )
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()
        self.wfile.write(b'data: {"delta": "Ol\xc3\xa1"}\n\n')
        self.wfile.flush()
        self.server.release.wait(10)
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def http_edge() -> Iterator[tuple[RunningEnvoy, OpenAiLikeServer]]:
    server = OpenAiLikeServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    entry = ServiceEntry(
        name="llm",
        module="unused",
        grpc_services=("aistack.llm.v1.LlmService",),
        grpc_port=free_port(),
        metrics_port=0,
        http_prefixes=("/api/v1/chat/completions",),
        http_port=server.server_address[1],
    )
    upstreams = Upstreams.embedded(
        [entry], grpc_ports={"llm": [free_port()]}, http_ports={"llm": [server.server_address[1]]}
    )
    with start_envoy([entry], upstreams, EdgeSettings(max_request_bytes=MAX_BODY)) as envoy:
        yield envoy, server
    server.shutdown()


def test_sse_events_arrive_as_they_are_sent(http_edge: tuple[RunningEnvoy, OpenAiLikeServer]) -> None:
    edge, server = http_edge
    server.release.clear()
    request = {"model": "paneas-v1", "stream": True, "messages": [{"role": "user", "content": "oi"}]}
    with httpx.stream(
        "POST",
        f"{edge.url}/api/v1/chat/completions",
        json=request,
        headers={"authorization": "Bearer some-token"},
        timeout=10,
    ) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"] == "text/event-stream"
        lines = reply.iter_lines()
        # The server holds back its last event until this first one got here: a buffering edge
        # would time out instead.
        assert next(line for line in lines if line) == 'data: {"delta": "Olá"}'
        server.release.set()
        assert next(line for line in lines if line) == "data: [DONE]"
    seen = server.seen[-1]
    assert seen["path"] == "/api/v1/chat/completions"
    assert seen["authorization"] == "Bearer some-token"
    assert seen["body"] == request


def test_request_body_over_the_limit_is_413_json(http_edge: tuple[RunningEnvoy, OpenAiLikeServer]) -> None:
    edge, server = http_edge
    before = len(server.seen)
    big = {"messages": [{"role": "user", "content": "x" * (MAX_BODY + 1)}]}
    reply = httpx.post(f"{edge.url}/api/v1/chat/completions", json=big, timeout=10)
    assert reply.status_code == 413
    assert reply.json()["details"][0]["reason"] == "REQUEST_TOO_LARGE"
    assert len(server.seen) == before
