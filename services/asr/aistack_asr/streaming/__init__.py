"""Live recognition: VAD windows from many sessions, decoded together in one batched call per model."""

from aistack_asr.streaming.insights import InsightsProvider, InsightsSession, TranscribedWindow
from aistack_asr.streaming.recognizer import ModelSource, StreamingRecognizer
from aistack_asr.streaming.settings import StreamingSettings

__all__ = [
    "InsightsProvider",
    "InsightsSession",
    "ModelSource",
    "StreamingRecognizer",
    "StreamingSettings",
    "TranscribedWindow",
]
