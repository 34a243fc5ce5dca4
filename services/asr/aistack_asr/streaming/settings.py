"""Streaming configuration (AISTACK_ASR_STREAM_*), validated once at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from aistack_kit.config import ConfigError, Env

from aistack_asr.config import workers as model_workers

# Whisper's context: no window may exceed it.
MAX_WINDOW_SECONDS = 30.0


def _buckets(env: Env, name: str, default: str) -> tuple[float, ...]:
    value = env.str(name, default).strip().lower()
    if value in {"off", "30", "none"}:
        return (30.0,)
    try:
        items = tuple(sorted({float(item) for item in value.split(",") if item.strip()}))
    except ValueError:
        raise ConfigError(
            f"{name} must be comma-separated seconds (e.g. 10,15,20,30) or off, got {value!r}"
        ) from None
    if not items or any(not 1.0 <= s <= MAX_WINDOW_SECONDS for s in items):
        raise ConfigError(f"{name} must hold seconds between 1 and 30, got {value!r}")
    return items if items[-1] == MAX_WINDOW_SECONDS else (*items, MAX_WINDOW_SECONDS)


@dataclass(frozen=True)
class StreamingSettings:
    # Sessions one replica serves at once; the next one is refused with RESOURCE_EXHAUSTED.
    max_sessions: int = 64
    # RetryInfo delay sent with that refusal.
    retry_after_seconds: float = 5.0
    # No audio for this long ends the session (IDLE_TIMEOUT).
    idle_timeout_seconds: float = 30.0
    # Longest session, in audio or wall time, whichever comes first (MAX_DURATION).
    max_session_seconds: float = 4 * 3600.0
    default_batch_window_seconds: float = 5.0
    default_max_batch_window_seconds: float = 10.0
    # Batcher: most windows per CTranslate2 call, and how long the first window waits for company.
    max_batch_size: int = 16
    max_batch_wait_seconds: float = 0.05
    # Batches decoded at once per model; matches the model's parallel workers (AISTACK_ASR_WORKERS).
    workers: int = 1
    # Encoder input lengths (seconds): a window is padded to the smallest bucket that holds it plus
    # `encoder_margin_frames`; (30,) is faithful padded-30 s decoding. Default measured (docs/asr.md).
    encoder_buckets_seconds: tuple[float, ...] = (10.0, 15.0, 20.0, 30.0)
    encoder_margin_frames: int = 64
    max_new_tokens: int = 128
    # Carried prompt: at most this many tokens of the previous windows' text.
    prompt_max_tokens: int = 64
    # A pause this long between speech ends the prompt: nothing is carried across it.
    prompt_reset_silence_seconds: float = 2.0
    # Silero speech probability threshold, and the pause that may close a window.
    vad_threshold: float = 0.5
    min_pause_seconds: float = 0.3
    # Speech kept around the voiced part of a window when it is decoded.
    speech_pad_seconds: float = 0.3
    # Interim hypotheses of the open window, when asked: at most one per this interval.
    interim_interval_seconds: float = 1.0
    # Events buffered per session for a slow reader; when full only that session waits.
    output_queue_size: int = 64
    no_speech_threshold: float = 0.6
    log_prob_threshold: float = -1.0
    compression_ratio_threshold: float = 2.4

    @classmethod
    def from_env(cls, env: Env | None = None) -> StreamingSettings:
        env = env or Env()
        p = "AISTACK_ASR_STREAM_"
        batch = env.float(f"{p}BATCH_WINDOW_SECONDS", 5.0, minimum=1.0, maximum=MAX_WINDOW_SECONDS)
        max_batch = env.float(f"{p}MAX_BATCH_WINDOW_SECONDS", 10.0, minimum=1.0, maximum=MAX_WINDOW_SECONDS)
        if max_batch < batch:
            raise ConfigError(
                f"{p}MAX_BATCH_WINDOW_SECONDS ({max_batch}) must be >= {p}BATCH_WINDOW_SECONDS ({batch})"
            )
        return cls(
            max_sessions=env.int(f"{p}MAX_SESSIONS", 64, minimum=1),
            retry_after_seconds=env.float(f"{p}RETRY_AFTER_SECONDS", 5.0, minimum=0.0),
            idle_timeout_seconds=env.float(f"{p}IDLE_TIMEOUT_SECONDS", 30.0, minimum=0.1),
            max_session_seconds=env.float(f"{p}MAX_SESSION_SECONDS", 4 * 3600.0, minimum=1.0),
            default_batch_window_seconds=batch,
            default_max_batch_window_seconds=max_batch,
            max_batch_size=env.int(f"{p}MAX_BATCH_SIZE", 16, minimum=1, maximum=1024),
            workers=env.int(f"{p}WORKERS", model_workers(env), minimum=1, maximum=64),
            max_batch_wait_seconds=env.float(f"{p}MAX_BATCH_WAIT_MS", 50.0, minimum=0.0, maximum=10_000.0)
            / 1000.0,
            encoder_buckets_seconds=_buckets(env, f"{p}ENCODER_BUCKETS", "10,15,20,30"),
            encoder_margin_frames=env.int(f"{p}ENCODER_MARGIN_FRAMES", 64, minimum=0, maximum=1000),
            max_new_tokens=env.int(f"{p}MAX_NEW_TOKENS", 128, minimum=8, maximum=440),
            prompt_max_tokens=env.int(f"{p}PROMPT_MAX_TOKENS", 64, minimum=0, maximum=220),
            prompt_reset_silence_seconds=env.float(f"{p}PROMPT_RESET_SILENCE_SECONDS", 2.0, minimum=0.1),
            vad_threshold=env.float(f"{p}VAD_THRESHOLD", 0.5, minimum=0.05, maximum=0.95),
            min_pause_seconds=env.float(f"{p}MIN_PAUSE_SECONDS", 0.3, minimum=0.064, maximum=5.0),
            speech_pad_seconds=env.float(f"{p}SPEECH_PAD_SECONDS", 0.3, minimum=0.0, maximum=2.0),
            interim_interval_seconds=env.float(f"{p}INTERIM_INTERVAL_SECONDS", 1.0, minimum=0.2),
            output_queue_size=env.int(f"{p}OUTPUT_QUEUE_SIZE", 64, minimum=4),
            no_speech_threshold=env.float(f"{p}NO_SPEECH_THRESHOLD", 0.6, minimum=0.0, maximum=1.0),
            log_prob_threshold=env.float(f"{p}LOG_PROB_THRESHOLD", -1.0, maximum=0.0),
            compression_ratio_threshold=env.float(f"{p}COMPRESSION_RATIO_THRESHOLD", 2.4, minimum=1.0),
        )
