"""Decoding many sessions' windows in one CTranslate2 call: features, encoder length buckets, greedy.

This is the blocking core the batcher's worker thread runs (and the WER benchmark calls directly).

Encoder input length. Whisper's encoder is trained on 30 s (3000 feature frames); faster-whisper pads
every window to that. CTranslate2 (>= 3.19) also accepts fewer frames, using the first positions of the
positional table, so a 5 s window can be encoded as, say, 10 s instead of 30 s: the encoder costs
roughly linearly less, and attention quadratically less. Plain Whisper degrades on very short contexts
(it loops or drops words), so inputs are rounded up to a length *bucket* with a margin of padding after
the speech; `buckets_seconds=(30,)` is the faithful padded-30 s behaviour. Which buckets keep WER is
measured, not assumed (bench/asr/streaming_capacity.py --wer; docs/asr.md "Streaming").

Prompts. CTranslate2 requires <|startoftranscript|> at the same position in every row of a batch, so
rows are grouped (by language, and with or without a prompt) and the prompts of a group are cut to the
shortest one, keeping their most recent tokens. That bounds a batch to a few generate calls.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import ctranslate2
import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.audio import pad_or_trim
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import get_compression_ratio, get_suppressed_tokens

from aistack_asr.engine import Segment, Word

SAMPLE_RATE = 16_000
FRAMES_PER_SECOND = 100
MAX_FRAMES = 3000
PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"


class WhisperModelLike(Protocol):
    """What the decoder needs from the registry's LoadedModel."""

    @property
    def name(self) -> str: ...

    @property
    def whisper(self) -> WhisperModel: ...

    @property
    def multilingual(self) -> bool: ...


@dataclass(frozen=True)
class DecodeRequest:
    """One window to transcribe. `audio` is float32 mono 16 kHz; times in results are window-relative."""

    audio: np.ndarray
    # ISO 639-1 code; None: detected per window (multilingual models only).
    language: str | None
    # Token ids conditioning the window (previous text); empty: none.
    prompt: tuple[int, ...] = ()
    want_words: bool = False


# A window's segments and words are the same types the whole-file path returns (greedy decoding, so
# temperature 0), and so convert to protobuf the same way.
DecodedWord = Word
DecodedSegment = Segment


@dataclass(frozen=True)
class WindowOutput:
    """The transcript of one window."""

    text: str
    segments: tuple[DecodedSegment, ...]
    language: str
    # Text token ids (no specials): what the next window's prompt is made of.
    text_tokens: tuple[int, ...]
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    # True when the no-speech rule (high no-speech probability and low confidence) emptied the text.
    no_speech: bool
    # This window's share of the batch's model time, and the batch it ran in.
    model_seconds: float = 0.0
    batch_size: int = 1
    encoder_frames: int = MAX_FRAMES
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


class BatchDecoder(Protocol):
    """What a batcher runs: many windows in, their transcripts out, blocking, on the batcher's thread.

    `WindowDecoder` (CTranslate2) is the one here; a GPU serving engine can stand behind the same call.
    """

    @property
    def model(self) -> WhisperModelLike: ...

    def encode_text(self, text: str) -> tuple[int, ...]:
        """Token ids of prompt text."""
        ...

    def decode(self, requests: Sequence[DecodeRequest]) -> list[WindowOutput]:
        """Transcripts in request order."""
        ...


def _bucket_frames(content_frames: int, buckets_frames: Sequence[int], margin_frames: int) -> int:
    needed = content_frames + margin_frames
    for bucket in buckets_frames:
        if bucket >= needed:
            return bucket
    return MAX_FRAMES


class WindowDecoder:
    """Greedy, batched decoding of windows for one loaded model.

    Safe for concurrent callers (the batcher's workers): CTranslate2 calls are, the feature extractor
    keeps no per-call state, and the caches filled here only ever get equal values.
    """

    def __init__(
        self,
        model: WhisperModelLike,
        *,
        buckets_seconds: Sequence[float] = (30.0,),
        margin_frames: int = 64,
        max_new_tokens: int = 128,
        no_speech_threshold: float = 0.6,
        log_prob_threshold: float = -1.0,
    ) -> None:
        self.model = model
        self._whisper = model.whisper
        self._ct2: ctranslate2.models.Whisper = model.whisper.model
        self.buckets_frames = tuple(
            sorted({min(MAX_FRAMES, max(1, round(s * FRAMES_PER_SECOND))) for s in buckets_seconds})
        )
        self.margin_frames = margin_frames
        self.max_new_tokens = max_new_tokens
        self.no_speech_threshold = no_speech_threshold
        self.log_prob_threshold = log_prob_threshold
        self._tokenizers: dict[str | None, Tokenizer] = {}
        self._suppress: tuple[int, ...] | None = None

    def tokenizer(self, language: str | None) -> Tokenizer:
        key = language if self.model.multilingual else None
        tokenizer = self._tokenizers.get(key)
        if tokenizer is None:
            tokenizer = Tokenizer(
                self._whisper.hf_tokenizer,
                self.model.multilingual,
                task="transcribe",
                language=(key or "en") if self.model.multilingual else None,
            )
            self._tokenizers[key] = tokenizer
        return tokenizer

    def encode_text(self, text: str) -> tuple[int, ...]:
        return tuple(self.tokenizer(None).encode(text))

    def decode(self, requests: Sequence[DecodeRequest]) -> list[WindowOutput]:
        """Transcribes the windows; results in request order."""
        started = time.perf_counter()
        results: list[WindowOutput | None] = [None] * len(requests)
        features = [self._whisper.feature_extractor(r.audio) for r in requests]
        content_frames = [max(1, f.shape[-1] - 1) for f in features]
        groups: dict[tuple[str | None, bool], list[int]] = {}
        for index, request in enumerate(requests):
            language = request.language if self.model.multilingual else None
            groups.setdefault((language, bool(request.prompt)), []).append(index)
        for (language, _), indexes in groups.items():
            outputs = self._decode_group(
                [requests[i] for i in indexes],
                [features[i] for i in indexes],
                [content_frames[i] for i in indexes],
                language,
            )
            for index, output in zip(indexes, outputs, strict=True):
                results[index] = output
        elapsed = time.perf_counter() - started
        share = elapsed / max(1, len(requests))
        final = []
        for maybe in results:
            assert maybe is not None
            output = maybe
            final.append(
                WindowOutput(
                    text=output.text,
                    segments=output.segments,
                    language=output.language,
                    text_tokens=output.text_tokens,
                    avg_logprob=output.avg_logprob,
                    no_speech_prob=output.no_speech_prob,
                    compression_ratio=output.compression_ratio,
                    no_speech=output.no_speech,
                    model_seconds=share,
                    batch_size=len(requests),
                    encoder_frames=output.encoder_frames,
                )
            )
        return final

    def _decode_group(
        self,
        requests: Sequence[DecodeRequest],
        features: Sequence[np.ndarray],
        content_frames: Sequence[int],
        language: str | None,
    ) -> list[WindowOutput]:
        frames = max(_bucket_frames(n, self.buckets_frames, self.margin_frames) for n in content_frames)
        batch = np.stack([pad_or_trim(f, frames) for f in features]).astype(np.float32, copy=False)
        encoder_output = self._ct2.encode(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(batch)), to_cpu=False
        )
        tokenizer = self.tokenizer(language)
        shortest = min(len(r.prompt) for r in requests)
        previous = [list(r.prompt[len(r.prompt) - shortest :]) if shortest else [] for r in requests]
        base = self._whisper.get_prompt(tokenizer, previous[0], without_timestamps=False)
        prompts = [self._whisper.get_prompt(tokenizer, p, without_timestamps=False) for p in previous]
        languages = [language or "en"] * len(requests)
        if self.model.multilingual and language is None:
            # Detected per window: swap the language token, which keeps <|startoftranscript|> aligned.
            detected = self._ct2.detect_language(encoder_output)
            position = base.index(tokenizer.language)
            for row, candidates in enumerate(detected):
                token, _probability = candidates[0]
                prompts[row][position] = tokenizer.tokenizer.token_to_id(token)
                languages[row] = token[2:-2]
        elif not self.model.multilingual:
            languages = ["en"] * len(requests)
        if self._suppress is None:
            self._suppress = tuple(get_suppressed_tokens(tokenizer, (-1,)) or ())
        max_length = min(self._whisper.max_length, len(base) + self.max_new_tokens)
        generated = self._ct2.generate(
            encoder_output,
            prompts,
            beam_size=1,
            max_length=max_length,
            suppress_blank=True,
            suppress_tokens=list(self._suppress),
            return_scores=True,
            return_no_speech_prob=True,
        )
        split: list[list[dict[str, Any]]] = []
        summaries = []
        for request, result, n_frames in zip(requests, generated, content_frames, strict=True):
            tokens = list(result.sequences_ids[0])
            length = len(tokens)
            avg_logprob = float(result.scores[0]) * length / (length + 1)
            no_speech_prob = float(result.no_speech_prob)
            duration = request.audio.size / SAMPLE_RATE
            segments, _seek, _single = self._whisper._split_segments_by_timestamps(
                tokenizer=tokenizer,
                tokens=tokens,
                time_offset=0.0,
                segment_size=n_frames,
                segment_duration=duration,
                seek=0,
            )
            split.append(segments)
            summaries.append((tokens, avg_logprob, no_speech_prob, duration))
        if any(r.want_words for r in requests):
            text_only = [
                [dict(s, tokens=[t for t in s["tokens"] if t < tokenizer.eot]) for s in seg] for seg in split
            ]
            has_text = [any(s["tokens"] for s in seg) for seg in text_only]
            if any(has_text):
                # find_alignment needs one row per encoder row; a row without text aligns the end token.
                for seg, ok in zip(text_only, has_text, strict=True):
                    if not ok:
                        seg[:] = [dict(seek=0, start=0.0, end=0.0, tokens=[])]
                self._whisper.add_word_timestamps(
                    text_only,
                    tokenizer,
                    encoder_output,
                    list(content_frames),
                    PREPEND_PUNCTUATIONS,
                    APPEND_PUNCTUATIONS,
                    0.0,
                )
                for seg, aligned in zip(split, text_only, strict=True):
                    for segment, with_words in zip(seg, aligned, strict=False):
                        segment["words"] = with_words.get("words", [])
        outputs = []
        for request, segments, (tokens, avg_logprob, no_speech_prob, duration), language_code in zip(
            requests, split, summaries, languages, strict=True
        ):
            outputs.append(
                self._window_output(
                    request,
                    tokenizer,
                    segments,
                    tokens,
                    avg_logprob,
                    no_speech_prob,
                    duration,
                    language_code,
                    frames,
                )
            )
        return outputs

    def _window_output(
        self,
        request: DecodeRequest,
        tokenizer: Tokenizer,
        segments: list[dict[str, Any]],
        tokens: list[int],
        avg_logprob: float,
        no_speech_prob: float,
        duration: float,
        language: str,
        frames: int,
    ) -> WindowOutput:
        text_tokens = tuple(t for t in tokens if t < tokenizer.eot)
        text = tokenizer.decode(list(text_tokens)).strip()
        no_speech = no_speech_prob > self.no_speech_threshold and avg_logprob < self.log_prob_threshold
        compression = get_compression_ratio(text) if text else 0.0
        decoded: list[DecodedSegment] = []
        if not no_speech:
            for segment in segments:
                seg_text = tokenizer.decode(segment["tokens"]).strip()
                if not seg_text:
                    continue
                start = float(min(max(segment["start"], 0.0), duration))
                end = float(min(max(segment["end"], start), duration))
                words = (
                    tuple(
                        DecodedWord(
                            word=str(w["word"]).strip(),
                            start=float(min(max(w["start"], 0.0), duration)),
                            end=float(min(max(w["end"], 0.0), duration)),
                            probability=float(w["probability"]),
                        )
                        for w in segment.get("words", [])
                        if str(w["word"]).strip()
                    )
                    if request.want_words
                    else ()
                )
                decoded.append(
                    DecodedSegment(
                        text=seg_text,
                        start=start,
                        end=end,
                        avg_logprob=avg_logprob,
                        no_speech_prob=no_speech_prob,
                        compression_ratio=get_compression_ratio(seg_text),
                        words=words,
                    )
                )
        return WindowOutput(
            text="" if no_speech else text,
            segments=tuple(decoded),
            language=language,
            text_tokens=() if no_speech else text_tokens,
            avg_logprob=avg_logprob,
            no_speech_prob=no_speech_prob,
            compression_ratio=compression,
            no_speech=no_speech,
            encoder_frames=frames,
        )
