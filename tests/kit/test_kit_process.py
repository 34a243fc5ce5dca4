"""A kit service as a process: OTLP traces when configured, graceful SIGTERM."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from aistack.platform.v1 import platform_service_pb2 as pb
from aistack.platform.v1 import platform_service_pb2_grpc as pb_grpc
from aistack_edge.testing import free_port, start_service
from aistack_kit.testing import TEST_TOKEN, auth_metadata
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

TOKENS = f'["{TEST_TOKEN}"]'


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver, as a collector would run it."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        with self._lock:
            for resource_spans in request.resource_spans:
                attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                for scope in resource_spans.scope_spans:
                    self.spans += [(attributes.get("service.name", ""), s.name) for s in scope.spans]
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, int]]:
    servicer = Receiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, port
    server.stop(None)


def test_calls_are_traced_over_otlp_and_health_checks_are_not(receiver: tuple[Receiver, int]) -> None:
    spans, otlp_port = receiver
    port = free_port()
    env = {"API_TOKENS": TOKENS, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp_port}"}
    with (
        start_service("aistack_platform", port, env) as service,
        grpc.insecure_channel(f"127.0.0.1:{port}") as ch,
    ):
        stub = pb_grpc.PlatformServiceStub(ch)
        stub.GetHealth(pb.GetHealthRequest(), timeout=5)
        stub.ListServices(pb.ListServicesRequest(), metadata=auth_metadata(), timeout=5)
        for _ in range(3):
            health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
        # SIGTERM flushes the batch exporter on the way out.
        assert service.stop() == 0
    names = {name for _, name in spans.spans}
    assert "/aistack.platform.v1.PlatformService/GetHealth" in names
    assert "/aistack.platform.v1.PlatformService/ListServices" in names
    assert not [name for name in names if "grpc.health" in name]
    assert {service for service, _ in spans.spans} == {"aistack-platform"}


def test_no_otlp_endpoint_means_no_export(receiver: tuple[Receiver, int]) -> None:
    spans, _ = receiver
    port = free_port()
    with start_service("aistack_platform", port, {"API_TOKENS": TOKENS}) as service:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            pb_grpc.PlatformServiceStub(ch).GetHealth(pb.GetHealthRequest(), timeout=5)
        assert service.stop() == 0
    assert spans.spans == []


def test_sigterm_turns_health_not_serving_then_exits_zero() -> None:
    port = free_port()
    env = {"API_TOKENS": TOKENS, "AISTACK_SHUTDOWN_GRACE_SECONDS": "3"}
    with (
        start_service("aistack_platform", port, env) as service,
        grpc.insecure_channel(f"127.0.0.1:{port}") as ch,
    ):
        # A Watch opened before the signal is an in-flight call: it lives through the grace period
        # and sees the change, as Envoy's health checker and load balancers would.
        watch = health_pb2_grpc.HealthStub(ch).Watch(health_pb2.HealthCheckRequest(), timeout=30)
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        started = time.monotonic()
        service.popen.send_signal(signal.SIGTERM)
        assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert time.monotonic() - started < 2
        assert service.popen.wait(30) == 0
