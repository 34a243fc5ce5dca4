"""Envoy's configuration, built from the service catalog.

One listener serves REST/JSON (transcoded to gRPC with the descriptor set from proto/), native gRPC and
gRPC-Web. Requests are routed on the gRPC service prefix (`/aistack.asr.v1.AsrService/`); transcoded REST
is routed on the gRPC path the transcoder rewrote it to. Catalog `http_prefixes` go untouched to the
service's own HTTP server. Two targets share everything but addresses: `embedded` (one machine,
127.0.0.1, catalog ports) and `compose` (service DNS names, every replica behind one name).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from aistack_launcher.catalog import SERVICES, ServiceEntry, replica_ports

from aistack_edge.settings import COMPOSE_DESCRIPTOR_SET, DESCRIPTOR_SET, EdgeSettings

Json = dict[str, Any]

# Who always reaches the platform: reflection answers for every deployed service there (grpcurl
# `list` through Envoy sees the whole API), and the standard health service for probes.
PLATFORM_SERVICE = "platform"
PLATFORM_ROUTED_PREFIXES = (
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.health.v1.Health/",
)
TOKEN_DESCRIPTOR_KEY = "bearer_token"
EDGE_DOMAIN = "edge.aistack"


class Target(StrEnum):
    EMBEDDED = "embedded"
    COMPOSE = "compose"


@dataclass(frozen=True)
class Upstreams:
    """Where each service's replicas listen: gRPC, and its HTTP server when it has one."""

    grpc: Mapping[str, Sequence[tuple[str, int]]]
    http: Mapping[str, Sequence[tuple[str, int]]]

    @classmethod
    def embedded(
        cls,
        services: Sequence[ServiceEntry],
        *,
        port_offset: int = 0,
        grpc_ports: Mapping[str, Sequence[int]] | None = None,
        http_ports: Mapping[str, Sequence[int]] | None = None,
    ) -> Upstreams:
        """127.0.0.1 and the catalog's ports (+ offset); tests pass their own free ports per service."""
        grpc_ports = grpc_ports or {}
        http_ports = http_ports or {}
        grpc = {
            s.name: [
                ("127.0.0.1", p) for p in grpc_ports.get(s.name, replica_ports(s, s.grpc_port, port_offset))
            ]
            for s in services
        }
        http = {
            s.name: [
                ("127.0.0.1", p) for p in http_ports.get(s.name, replica_ports(s, s.http_port, port_offset))
            ]
            for s in services
            if s.http_prefixes and s.http_port is not None
        }
        return cls(grpc, http)

    @classmethod
    def compose(cls, services: Sequence[ServiceEntry]) -> Upstreams:
        """One DNS name per service (its replicas are that name's addresses), on the catalog's ports."""
        grpc = {s.name: [(s.name, s.grpc_port)] for s in services}
        http = {
            s.name: [(s.name, s.http_port)] for s in services if s.http_prefixes and s.http_port is not None
        }
        return cls(grpc, http)


def build_config(
    target: Target,
    *,
    services: Sequence[ServiceEntry] = SERVICES,
    settings: EdgeSettings | None = None,
    upstreams: Upstreams | None = None,
    descriptor_set: str | None = None,
) -> Json:
    settings = settings or EdgeSettings()
    if upstreams is None:
        upstreams = Upstreams.embedded(services) if target is Target.EMBEDDED else Upstreams.compose(services)
    if descriptor_set is None:
        descriptor_set = str(DESCRIPTOR_SET) if target is Target.EMBEDDED else COMPOSE_DESCRIPTOR_SET
    bind = "127.0.0.1" if target is Target.EMBEDDED else "0.0.0.0"
    dns = target is Target.COMPOSE
    clusters = [
        _grpc_cluster(s, upstreams.grpc[s.name], settings, dns=dns)
        for s in services
        if upstreams.grpc.get(s.name)
    ]
    clusters += [
        _http_cluster(s, upstreams.http[s.name], settings, dns=dns)
        for s in services
        if s.name in upstreams.http
    ]
    return {
        "admin": {"address": _socket(bind, settings.admin_port)},
        "static_resources": {
            "listeners": [_listener(bind, services, upstreams, settings, descriptor_set)],
            "clusters": clusters,
        },
    }


def _socket(host: str, port: int) -> Json:
    return {"socket_address": {"address": host, "port_value": port}}


def _typed(type_name: str, **fields: Any) -> Json:
    return {"@type": f"type.googleapis.com/{type_name}", **fields}


def _listener(
    bind: str,
    services: Sequence[ServiceEntry],
    upstreams: Upstreams,
    settings: EdgeSettings,
    descriptor_set: str,
) -> Json:
    hcm = _typed(
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        stat_prefix="aistack",
        codec_type="AUTO",
        # A gateway may carry many live calls on one HTTP/2 connection (Envoy's default allows 1024).
        http2_protocol_options={"max_concurrent_streams": settings.max_streams_per_connection},
        # The same id reaches the service (its logs, its x-request-id metadata) and the caller.
        generate_request_id=True,
        always_set_request_id_in_response=True,
        access_log=[_access_log()],
        local_reply_config=_local_replies(),
        route_config={
            "name": "aistack",
            "virtual_hosts": [
                {
                    "name": "aistack",
                    "domains": ["*"],
                    "routes": _routes(services, upstreams, settings),
                    "typed_per_filter_config": {"envoy.filters.http.cors": _cors_policy(settings)},
                }
            ],
        },
        http_filters=_http_filters(services, upstreams, settings, descriptor_set),
        # Streams (live audio) may stay open for a whole call; only silence on the wire ends them.
        stream_idle_timeout="300s",
    )
    return {
        "name": "aistack",
        "address": _socket(bind, settings.port),
        "filter_chains": [
            {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}
        ],
    }


def _access_log() -> Json:
    # No Authorization header here: tokens are never logged.
    fields = {
        "ts": "%START_TIME%",
        "request_id": "%REQ(X-REQUEST-ID)%",
        "method": "%REQ(:METHOD)%",
        "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
        "status": "%RESPONSE_CODE%",
        "grpc_status": "%GRPC_STATUS%",
        "flags": "%RESPONSE_FLAGS%",
        "upstream": "%UPSTREAM_HOST%",
        "duration_ms": "%DURATION%",
        "bytes_in": "%BYTES_RECEIVED%",
        "bytes_out": "%BYTES_SENT%",
    }
    return {
        "name": "envoy.access_loggers.stdout",
        "typed_config": _typed(
            "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
            log_format={"json_format": fields},
        ),
    }


def _local_replies() -> Json:
    """Envoy's own refusals as the same JSON error shape the services give through the transcoder.

    Only for REST callers: a gRPC caller gets the matching grpc-status from Envoy already, and a JSON
    body would end up inside its grpc-message. A transcoded request already carries the gRPC content
    type when the router fails, but also the `x-envoy-original-path` the transcoder left.
    """
    not_grpc = {
        "or_filter": {
            "filters": [
                {
                    "header_filter": {
                        "header": {
                            "name": "content-type",
                            "string_match": {"prefix": "application/grpc"},
                            "invert_match": True,
                            "treat_missing_header_as_empty": True,
                        }
                    }
                },
                {"header_filter": {"header": {"name": "x-envoy-original-path", "present_match": True}}},
            ]
        }
    }

    def mapper(http_status: int, grpc_code: int, reason: str, message: str) -> Json:
        return {
            "filter": {
                "and_filter": {"filters": [{"status_code_filter": _status_is(http_status)}, not_grpc]}
            },
            "body_format_override": {
                "json_format": {
                    "code": grpc_code,
                    "message": message,
                    "details": [
                        {
                            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                            "reason": reason,
                            "domain": EDGE_DOMAIN,
                            "metadata": {"request_id": "%REQ(X-REQUEST-ID)%"},
                        }
                    ],
                },
                "content_type": "application/json",
            },
        }

    return {
        "mappers": [
            mapper(
                429, 8, "RATE_LIMITED", "too many requests for this token; retry after the Retry-After delay"
            ),
            mapper(413, 8, "REQUEST_TOO_LARGE", "request body is larger than the edge allows"),
            mapper(404, 5, "NO_ROUTE", "no API at %REQ(:METHOD)% %REQ(:PATH)%"),
            mapper(503, 14, "UPSTREAM_UNAVAILABLE", "service unavailable: %LOCAL_REPLY_BODY%"),
            mapper(400, 3, "BAD_REQUEST", "%LOCAL_REPLY_BODY%"),
        ]
    }


def _status_is(status: int) -> Json:
    return {
        "comparison": {
            "op": "EQ",
            "value": {"default_value": status, "runtime_key": f"aistack_reply_{status}"},
        }
    }


def _cors_policy(settings: EdgeSettings) -> Json:
    origins = (
        [{"safe_regex": {"regex": ".*"}}]
        if "*" in settings.cors_origins
        else [{"exact": o} for o in settings.cors_origins]
    )
    return _typed(
        "envoy.extensions.filters.http.cors.v3.CorsPolicy",
        allow_origin_string_match=origins,
        allow_methods="GET, PUT, DELETE, POST, OPTIONS",
        allow_headers=(
            "authorization, content-type, x-grpc-web, x-user-agent, grpc-timeout, x-request-id, "
            "x-session-affinity, keep-alive, user-agent, cache-control"
        ),
        expose_headers="grpc-status, grpc-message, grpc-status-details-bin, x-request-id, x-served-by",
        max_age="86400",
    )


def _http_filters(
    services: Sequence[ServiceEntry], upstreams: Upstreams, settings: EdgeSettings, descriptor_set: str
) -> list[Json]:
    grpc_services = [name for s in services if s.name in upstreams.grpc for name in s.grpc_services]
    return [
        {
            "name": "envoy.filters.http.cors",
            "typed_config": _typed("envoy.extensions.filters.http.cors.v3.Cors"),
        },
        # gRPC-Web becomes gRPC before anything else looks at it, so it is limited and routed like gRPC.
        {
            "name": "envoy.filters.http.grpc_web",
            "typed_config": _typed("envoy.extensions.filters.http.grpc_web.v3.GrpcWeb"),
        },
        {"name": "envoy.filters.http.local_ratelimit", "typed_config": _rate_limit(settings)},
        {
            "name": "envoy.filters.http.grpc_json_transcoder",
            "typed_config": _typed(
                "envoy.extensions.filters.http.grpc_json_transcoder.v3.GrpcJsonTranscoder",
                proto_descriptor=descriptor_set,
                services=grpc_services,
                print_options={
                    "always_print_primitive_fields": True,
                    "preserve_proto_field_names": True,
                    "always_print_enums_as_ints": False,
                },
                convert_grpc_status=True,
                max_request_body_size=settings.max_request_bytes,
                max_response_body_size=settings.max_response_bytes,
            ),
        },
        # Body limit for the untranscoded HTTP routes; off elsewhere so gRPC streams are never buffered.
        {
            "name": "envoy.filters.http.buffer",
            "disabled": True,
            "typed_config": _typed(
                "envoy.extensions.filters.http.buffer.v3.Buffer", max_request_bytes=settings.max_request_bytes
            ),
        },
        {
            "name": "envoy.filters.http.router",
            "typed_config": _typed("envoy.extensions.filters.http.router.v3.Router"),
        },
    ]


def _rate_limit(settings: EdgeSettings) -> Json:
    """One token bucket per distinct Authorization value (a wildcard descriptor), RESOURCE_EXHAUSTED for gRPC.

    Requests without the header share the anonymous bucket. Tokens seen least recently beyond
    `rate_limit_max_tokens` lose their bucket (and start full when they return).
    """
    return _typed(
        "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
        stat_prefix="per_token",
        token_bucket=_bucket(settings.anonymous_rate_limit_burst, settings.anonymous_rate_limit_per_second),
        filter_enabled={
            "default_value": {"numerator": 100, "denominator": "HUNDRED"},
            "runtime_key": "rl_enabled",
        },
        filter_enforced={
            "default_value": {"numerator": 100, "denominator": "HUNDRED"},
            "runtime_key": "rl_enforced",
        },
        rate_limits=[
            {
                "actions": [
                    {
                        "request_headers": {
                            "header_name": "authorization",
                            "descriptor_key": TOKEN_DESCRIPTOR_KEY,
                            "skip_if_absent": True,
                        }
                    }
                ]
            }
        ],
        descriptors=[
            {
                "entries": [{"key": TOKEN_DESCRIPTOR_KEY, "value": ""}],
                "token_bucket": _bucket(settings.rate_limit_burst, settings.rate_limit_per_second),
            }
        ],
        max_dynamic_descriptors=settings.rate_limit_max_tokens,
        # A token's requests draw on its own bucket only, not also on the anonymous one.
        always_consume_default_token_bucket=False,
        rate_limited_as_resource_exhausted=True,
        response_headers_to_add=[
            {"append_action": "OVERWRITE_IF_EXISTS_OR_ADD", "header": {"key": "retry-after", "value": "1"}}
        ],
    )


def _bucket(burst: int, per_second: int) -> Json:
    return {"max_tokens": burst, "tokens_per_fill": per_second, "fill_interval": "1s"}


def _routes(services: Sequence[ServiceEntry], upstreams: Upstreams, settings: EdgeSettings) -> list[Json]:
    routes: list[Json] = []
    for service in services:
        if service.name not in upstreams.grpc:
            continue
        prefixes = [f"/{name}/" for name in service.grpc_services]
        if service.name == PLATFORM_SERVICE:
            prefixes += PLATFORM_ROUTED_PREFIXES
        for prefix in prefixes:
            action: Json = {
                "cluster": service.name,
                # Streams last as long as the caller keeps them; unary deadlines come from grpc-timeout.
                "timeout": "0s",
                "max_stream_duration": {"grpc_timeout_header_max": "0s"},
            }
            if service.affinity_header:
                action["hash_policy"] = [{"header": {"header_name": service.affinity_header}}]
            routes.append({"match": {"prefix": prefix}, "route": action})
    for service in services:
        if service.name not in upstreams.http:
            continue
        for prefix in service.http_prefixes:
            action = {
                "cluster": f"{service.name}-http",
                "timeout": f"{settings.http_timeout_seconds}s",
                "idle_timeout": f"{settings.http_timeout_seconds}s",
            }
            if service.affinity_header:
                action["hash_policy"] = [{"header": {"header_name": service.affinity_header}}]
            routes.append(
                {
                    "match": {"prefix": prefix},
                    "route": action,
                    "typed_per_filter_config": {
                        # Not a transcoded API: pass bodies through (SSE streams unbuffered) ...
                        "envoy.filters.http.grpc_json_transcoder": _typed(
                            "envoy.config.route.v3.FilterConfig", disabled=True
                        ),
                        # ... but bound the request body, which the transcoder would otherwise have done.
                        "envoy.filters.http.buffer": _typed(
                            "envoy.extensions.filters.http.buffer.v3.BufferPerRoute",
                            buffer={"max_request_bytes": settings.max_request_bytes},
                        ),
                    },
                }
            )
    return routes


def _endpoints(cluster: str, addresses: Sequence[tuple[str, int]]) -> Json:
    return {
        "cluster_name": cluster,
        "endpoints": [
            {"lb_endpoints": [{"endpoint": {"address": _socket(host, port)}} for host, port in addresses]}
        ],
    }


def _discovery(dns: bool) -> Json:
    # Compose: every replica is an address of the service's name, re-resolved as containers come and go.
    return {"type": "STRICT_DNS", "dns_lookup_family": "V4_ONLY"} if dns else {"type": "STATIC"}


def _circuit_breakers(settings: EdgeSettings) -> Json:
    """Envoy's defaults (1024 requests in flight per cluster) would refuse the 1025th live ASR session
    with a 503 however many replicas serve it; each service enforces its own per-replica limit with
    RESOURCE_EXHAUSTED and RetryInfo, so the edge only guards against runaway numbers."""
    limit = settings.max_upstream_requests
    return {
        "thresholds": [
            {
                "priority": "DEFAULT",
                "max_connections": limit,
                "max_pending_requests": limit,
                "max_requests": limit,
                "max_retries": 3,
            }
        ]
    }


def _grpc_cluster(
    service: ServiceEntry, addresses: Sequence[tuple[str, int]], settings: EdgeSettings, *, dns: bool
) -> Json:
    cluster: Json = {
        "name": service.name,
        **_discovery(dns),
        "connect_timeout": "2s",
        "lb_policy": "RING_HASH" if service.affinity_header else "ROUND_ROBIN",
        "circuit_breakers": _circuit_breakers(settings),
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": _typed(
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                explicit_http_config={
                    "http2_protocol_options": {
                        # Long audio streams: let one connection carry many, with room to breathe.
                        "max_concurrent_streams": settings.max_streams_per_connection,
                        "initial_stream_window_size": 4 * 1024 * 1024,
                        "initial_connection_window_size": 16 * 1024 * 1024,
                    }
                },
            )
        },
        "health_checks": [
            {
                "timeout": "2s",
                "interval": "5s",
                # Without traffic Envoy would otherwise wait 60 s before looking again at a replica that
                # was still loading its model on the first check.
                "no_traffic_interval": "5s",
                "unhealthy_threshold": 2,
                "healthy_threshold": 1,
                "grpc_health_check": {"service_name": service.grpc_services[0]},
            }
        ],
        "load_assignment": _endpoints(service.name, addresses),
    }
    if service.affinity_header:
        # Each replica's share of sessions follows its arcs of the ring. With 1024 entries over two replicas,
        # 3000 random sessions split 1459/1541; with 16384, 1493/1507 (a few hundred KiB in Envoy).
        cluster["ring_hash_lb_config"] = {"minimum_ring_size": 16384}
    return cluster


def _http_cluster(
    service: ServiceEntry, addresses: Sequence[tuple[str, int]], settings: EdgeSettings, *, dns: bool
) -> Json:
    name = f"{service.name}-http"
    return {
        "name": name,
        **_discovery(dns),
        "connect_timeout": "2s",
        "lb_policy": "RING_HASH" if service.affinity_header else "ROUND_ROBIN",
        "circuit_breakers": _circuit_breakers(settings),
        "load_assignment": _endpoints(name, addresses),
    }


def write_config(config: Json, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2, sort_keys=False) + "\n")
