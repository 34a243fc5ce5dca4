"""The TTS service's Prometheus metrics (on the kit's registry)."""

from prometheus_client import Counter, Histogram

AUDIO_SECONDS = Counter(
    "aistack_tts_audio_seconds_total", "Seconds of audio synthesized.", ["engine", "language"]
)
CHARACTERS = Counter(
    "aistack_tts_characters_total", "Characters of normalized text synthesized.", ["engine", "language"]
)
SYNTHESIS_SECONDS = Histogram(
    "aistack_tts_synthesis_seconds",
    "Wall time to synthesize a whole request (all sentences).",
    ["engine"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120),
)
FIRST_CHUNK_SECONDS = Histogram(
    "aistack_tts_time_to_first_chunk_seconds",
    "Wall time from request to the first audio chunk being ready.",
    ["engine"],
    buckets=(0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 4, 8),
)
REAL_TIME_FACTOR = Histogram(
    "aistack_tts_real_time_factor",
    "Synthesis wall time divided by audio duration (below 1: faster than real time).",
    ["engine"],
    buckets=(0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 4),
)
VOICES_CLONED = Counter("aistack_tts_voices_cloned_total", "Voices created by CreateVoice.", ["engine"])
