"""Domain transcripts to protobuf (shared by the unary and streaming paths)."""

from __future__ import annotations

from aistack.asr.v1 import asr_service_pb2 as pb
from google.protobuf import duration_pb2

from aistack_asr.engine import Segment, Word


def duration(seconds: float) -> duration_pb2.Duration:
    """An offset on the audio's clock or an elapsed time: never negative (rounding may dip below zero)."""
    value = duration_pb2.Duration()
    value.FromNanoseconds(round(max(seconds, 0.0) * 1e9))
    return value


def word_to_proto(word: Word, offset: float = 0.0) -> pb.WordInfo:
    return pb.WordInfo(
        word=word.word,
        start_offset=duration(word.start + offset),
        end_offset=duration(word.end + offset),
        probability=word.probability,
    )


def segment_to_proto(segment: Segment, offset: float = 0.0) -> pb.Segment:
    return pb.Segment(
        text=segment.text,
        start_offset=duration(segment.start + offset),
        end_offset=duration(segment.end + offset),
        avg_logprob=segment.avg_logprob,
        no_speech_prob=segment.no_speech_prob,
        compression_ratio=segment.compression_ratio,
        temperature=segment.temperature,
        words=[word_to_proto(w, offset) for w in segment.words],
    )
