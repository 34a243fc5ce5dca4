"""ASR service: faster-whisper transcription of files (unary) and live audio (streaming)."""
