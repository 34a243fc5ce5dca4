"""OpenTelemetry traces: exported over OTLP/gRPC when OTEL_EXPORTER_OTLP_ENDPOINT is set, off otherwise."""

from __future__ import annotations

import logging

from opentelemetry import trace

logger = logging.getLogger(__name__)
_configured = False


def configure_tracing(service: str, otlp_endpoint: str | None) -> bool:
    """Must run before `grpc.aio.server()` is built, or the server is not instrumented."""
    global _configured
    if not otlp_endpoint or _configured:
        return _configured
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorServer, filters
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": f"aistack-{service}"}))
    insecure = otlp_endpoint.startswith("http://") or "://" not in otlp_endpoint
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint, insecure=insecure))
    )
    trace.set_tracer_provider(provider)
    # Health probes arrive every few seconds from Envoy and the launcher: tracing them is noise.
    GrpcAioInstrumentorServer(filter_=filters.negate(filters.health_check())).instrument()  # type: ignore[no-untyped-call]
    _configured = True
    logger.info("tracing on", extra={"fields": {"otlp_endpoint": otlp_endpoint}})
    return True


def shutdown_tracing() -> None:
    provider = trace.get_tracer_provider()
    shutdown = getattr(provider, "shutdown", None)
    if callable(shutdown):
        shutdown()
