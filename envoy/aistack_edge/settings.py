"""The edge's knobs, read from the environment once (AISTACK_EDGE_*)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aistack_kit.config import Env

REPO_ROOT = Path(__file__).resolve().parents[2]
DESCRIPTOR_SET = REPO_ROOT / "gen" / "aistack.binpb"
# Where the compose deployment mounts gen/aistack.binpb into the Envoy container.
COMPOSE_DESCRIPTOR_SET = "/etc/envoy/aistack.binpb"


@dataclass(frozen=True)
class EdgeSettings:
    # The one listener: REST/JSON, native gRPC and gRPC-Web.
    port: int = 8000
    admin_port: int = 9901
    # Largest REST request / response body the transcoder buffers (uploads, synthesized audio).
    max_request_bytes: int = 64 * 1024 * 1024
    max_response_bytes: int = 64 * 1024 * 1024
    # Per bearer token: sustained requests a second and the burst allowed on top.
    rate_limit_per_second: int = 50
    rate_limit_burst: int = 100
    # Shared by every request without an Authorization header (health probes, refused calls).
    anonymous_rate_limit_per_second: int = 200
    anonymous_rate_limit_burst: int = 400
    # Distinct tokens that keep their own bucket; the least recently seen beyond this are forgotten.
    rate_limit_max_tokens: int = 10_000
    # Non-gRPC HTTP routes (the OpenAI-compatible surface): a long generation is still one request.
    http_timeout_seconds: int = 600
    # Requests (gRPC streams included) in flight to one service's replicas together, and connections to
    # them: Envoy's own default of 1024 would cap live ASR sessions for the whole cluster.
    max_upstream_requests: int = 100_000
    # HTTP/2 streams on one connection, from callers and to each replica (Envoy's default is 1024).
    max_streams_per_connection: int = 10_000
    # Browser origins allowed for gRPC-Web and REST; `*` allows any.
    cors_origins: tuple[str, ...] = ("*",)

    @classmethod
    def from_env(cls, env: Env | None = None) -> EdgeSettings:
        env = env or Env()
        d = cls()
        return cls(
            port=env.int("AISTACK_EDGE_PORT", d.port, minimum=1, maximum=65535),
            admin_port=env.int("AISTACK_EDGE_ADMIN_PORT", d.admin_port, minimum=1, maximum=65535),
            max_request_bytes=env.int("AISTACK_EDGE_MAX_REQUEST_BYTES", d.max_request_bytes, minimum=1024),
            max_response_bytes=env.int("AISTACK_EDGE_MAX_RESPONSE_BYTES", d.max_response_bytes, minimum=1024),
            rate_limit_per_second=env.int(
                "AISTACK_EDGE_RATE_LIMIT_PER_SECOND", d.rate_limit_per_second, minimum=1
            ),
            rate_limit_burst=env.int("AISTACK_EDGE_RATE_LIMIT_BURST", d.rate_limit_burst, minimum=1),
            anonymous_rate_limit_per_second=env.int(
                "AISTACK_EDGE_ANONYMOUS_RATE_LIMIT_PER_SECOND", d.anonymous_rate_limit_per_second, minimum=1
            ),
            anonymous_rate_limit_burst=env.int(
                "AISTACK_EDGE_ANONYMOUS_RATE_LIMIT_BURST", d.anonymous_rate_limit_burst, minimum=1
            ),
            rate_limit_max_tokens=env.int(
                "AISTACK_EDGE_RATE_LIMIT_MAX_TOKENS", d.rate_limit_max_tokens, minimum=1
            ),
            http_timeout_seconds=env.int(
                "AISTACK_EDGE_HTTP_TIMEOUT_SECONDS", d.http_timeout_seconds, minimum=1
            ),
            max_upstream_requests=env.int(
                "AISTACK_EDGE_MAX_UPSTREAM_REQUESTS", d.max_upstream_requests, minimum=1
            ),
            max_streams_per_connection=env.int(
                "AISTACK_EDGE_MAX_STREAMS_PER_CONNECTION",
                d.max_streams_per_connection,
                minimum=1,
                maximum=2**31 - 1,
            ),
            cors_origins=tuple(env.str_list("AISTACK_EDGE_CORS_ORIGINS")) or d.cors_origins,
        )
