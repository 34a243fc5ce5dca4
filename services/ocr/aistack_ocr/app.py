"""The OCR capability and its configuration (environment, validated once at start-up)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from aistack.ocr.v1 import ocr_service_pb2 as pb
from aistack.ocr.v1 import ocr_service_pb2_grpc as pb_grpc
from aistack_kit.config import ConfigError, Env, Mode
from aistack_kit.server import Capability

from aistack_ocr.documents import Limits
from aistack_ocr.engine import EngineLoadError, OcrEngine
from aistack_ocr.paddle_engine import INFERENCE_ENGINES, PaddleOcrEngine, PaddleOcrSettings
from aistack_ocr.pipeline import OcrPipeline, PipelineSettings, normalize_languages
from aistack_ocr.rapid_engine import RapidOcrEngine, RapidOcrSettings
from aistack_ocr.servicer import OcrServicer

DEFAULT_PORT = 50053
ENGINES = ("rapidocr", "paddleocr")


@dataclass(frozen=True)
class OcrSettings:
    engine: str
    pipeline: PipelineSettings
    rapid: RapidOcrSettings
    paddle: PaddleOcrSettings

    @classmethod
    def from_env(cls, env: Env | None = None) -> OcrSettings:
        env = env or Env()
        mode = env.mode()
        # The GPU deployment reads with PaddleOCR; one machine on CPU with the models in the rapidocr wheel.
        engine = env.choice(
            "AISTACK_OCR_ENGINE", "paddleocr" if mode is Mode.PRODUCTION else "rapidocr", ENGINES
        )
        max_message = env.int("AISTACK_MAX_MESSAGE_BYTES", 64 * 1024 * 1024, minimum=1024)
        limits = Limits(
            max_pages=env.int("AISTACK_OCR_MAX_PAGES", 200, minimum=1),
            max_pixels=env.int("AISTACK_OCR_MAX_PIXELS", 40_000_000, minimum=10_000),
            max_bytes=env.int("AISTACK_OCR_MAX_UPLOAD_BYTES", 50 * 1024 * 1024, minimum=1024),
            max_dpi=env.int("AISTACK_OCR_MAX_DPI", 600, minimum=72, maximum=1200),
        )
        if limits.max_bytes > max_message:
            raise ConfigError(
                f"AISTACK_OCR_MAX_UPLOAD_BYTES ({limits.max_bytes}) must not exceed "
                f"AISTACK_MAX_MESSAGE_BYTES ({max_message}): gRPC would refuse such uploads first"
            )
        default_dpi = env.int("AISTACK_OCR_DPI", 200, minimum=72, maximum=limits.max_dpi)
        languages = normalize_languages(env.str_list("AISTACK_OCR_LANGUAGES")) or ("pt", "en")
        pipeline = PipelineSettings(
            limits=limits,
            default_dpi=default_dpi,
            default_languages=languages,
            workers=env.int("AISTACK_OCR_WORKERS", 1, minimum=1, maximum=64),
            max_queue=env.int("AISTACK_OCR_MAX_QUEUE", 8, minimum=0),
            text_layer_min_chars=env.int("AISTACK_OCR_TEXT_LAYER_MIN_CHARS", 8, minimum=1),
            progress_log_seconds=env.float("AISTACK_OCR_PROGRESS_LOG_SECONDS", 5.0, minimum=0.0),
        )
        rapid_dir = env.raw("AISTACK_OCR_RAPID_MODEL_DIR")
        rapid = RapidOcrSettings(
            model_dir=Path(rapid_dir) if rapid_dir else None,
            threads=env.int("AISTACK_OCR_THREADS", 0, minimum=0, maximum=256),
            use_cuda=env.bool("AISTACK_OCR_RAPID_USE_CUDA", False),
            max_side_pixels=env.int("AISTACK_OCR_MAX_SIDE_PIXELS", 2000, minimum=256),
            min_score=env.float("AISTACK_OCR_MIN_SCORE", 0.5, minimum=0.0, maximum=1.0),
        )
        paddle_languages = normalize_languages(env.str_list("AISTACK_OCR_PADDLE_LANGUAGES")) or ("pt", "en")
        paddle = PaddleOcrSettings(
            model_dir=Path(env.str("AISTACK_OCR_PADDLE_MODEL_DIR", "/srv/models/paddleocr")),
            det_model=env.str("AISTACK_OCR_PADDLE_DET_MODEL", PaddleOcrSettings.det_model),
            rec_model=env.str("AISTACK_OCR_PADDLE_REC_MODEL", PaddleOcrSettings.rec_model),
            textline_orientation_model=env.str(
                "AISTACK_OCR_PADDLE_TEXTLINE_ORIENTATION_MODEL", PaddleOcrSettings.textline_orientation_model
            ),
            doc_orientation_model=env.str(
                "AISTACK_OCR_PADDLE_DOC_ORIENTATION_MODEL", PaddleOcrSettings.doc_orientation_model
            ),
            device=env.str("AISTACK_OCR_PADDLE_DEVICE", "gpu:0"),
            inference_engine=env.choice("AISTACK_OCR_PADDLE_INFERENCE_ENGINE", "", INFERENCE_ENGINES),
            use_tensorrt=env.bool("AISTACK_OCR_PADDLE_TENSORRT", True),
            precision=env.choice("AISTACK_OCR_PADDLE_PRECISION", "fp16", ("fp16", "fp32")),
            languages=frozenset(paddle_languages),
            min_score=rapid.min_score,
        )
        return cls(engine=engine, pipeline=pipeline, rapid=rapid, paddle=paddle)


def build_engine(settings: OcrSettings) -> OcrEngine:
    """The configured engine; the PaddleOCR one is checked here so a missing folder or package stops
    the process before it binds a port."""
    if settings.engine == "paddleocr":
        engine = PaddleOcrEngine(settings.paddle)
        try:
            engine.preflight()
        except EngineLoadError as exc:
            raise ConfigError(str(exc)) from None
        return engine
    return RapidOcrEngine(settings.rapid)


class OcrCapability(Capability):
    def __init__(self, engine: OcrEngine, settings: PipelineSettings | None = None) -> None:
        self.pipeline = OcrPipeline(engine, settings)

    @classmethod
    def from_env(cls, env: Env | None = None) -> OcrCapability:
        settings = OcrSettings.from_env(env)
        return cls(build_engine(settings), settings.pipeline)

    @property
    def service_names(self) -> Sequence[str]:
        return (pb.DESCRIPTOR.services_by_name["OcrService"].full_name,)

    def register(self, server: grpc.aio.Server) -> None:
        pb_grpc.add_OcrServiceServicer_to_server(OcrServicer(self.pipeline), server)

    async def load(self) -> None:
        await self.pipeline.load()
        # Checked once the engine knows what it reads: a default nobody can serve is a config error.
        self.pipeline.check_languages(())

    async def close(self) -> None:
        await self.pipeline.close()
