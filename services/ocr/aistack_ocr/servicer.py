"""OcrService: protobuf <-> the OCR pipeline, nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aistack.ocr.v1 import ocr_service_pb2 as pb
from aistack.ocr.v1 import ocr_service_pb2_grpc as pb_grpc
from aistack_kit.grpc_types import Context
from google.api import httpbody_pb2
from google.protobuf import duration_pb2

from aistack_ocr.pipeline import DocumentResult, OcrPipeline, PageResult
from aistack_ocr.upload import from_http_body, options_from_config


def page_to_pb(page: PageResult) -> pb.Page:
    return pb.Page(
        page_number=page.page_number,
        width=page.width,
        height=page.height,
        lines=[
            pb.Line(
                text=line.text,
                confidence=line.confidence,
                bounding_poly=pb.BoundingPoly(vertices=[pb.Vertex(x=x, y=y) for x, y in line.polygon]),
            )
            for line in page.lines
        ],
        text=page.text,
        from_text_layer=page.from_text_layer,
        rotation_degrees=float(page.rotation_degrees),
    )


def response_to_pb(result: DocumentResult) -> pb.RecognizeResponse:
    elapsed = duration_pb2.Duration()
    elapsed.FromNanoseconds(int(result.seconds * 1e9))
    return pb.RecognizeResponse(
        pages=[page_to_pb(page) for page in result.pages],
        text=result.text,
        page_count=result.page_count,
        processing_duration=elapsed,
        engine=result.engine,
    )


class OcrServicer(pb_grpc.OcrServiceServicer):
    def __init__(self, pipeline: OcrPipeline) -> None:
        self._pipeline = pipeline

    async def Recognize(self, request: pb.RecognizeRequest, context: Context) -> pb.RecognizeResponse:
        result = await self._pipeline.recognize(
            request.content, request.mime_type, options_from_config(request.config)
        )
        return response_to_pb(result)

    async def RecognizeUpload(self, request: httpbody_pb2.HttpBody, context: Context) -> pb.RecognizeResponse:
        upload = from_http_body(request.content_type, request.data)
        result = await self._pipeline.recognize(upload.content, upload.mime_type, upload.options)
        return response_to_pb(result)

    async def RecognizeStream(
        self, request: pb.RecognizeStreamRequest, context: Context
    ) -> AsyncIterator[pb.RecognizeStreamResponse]:
        async for progress in self._pipeline.stream(
            request.content, request.mime_type, options_from_config(request.config)
        ):
            yield pb.RecognizeStreamResponse(
                page=page_to_pb(progress.page),
                pages_done=progress.pages_done,
                pages_total=progress.pages_total,
            )
