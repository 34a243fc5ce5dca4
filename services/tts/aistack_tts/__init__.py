"""TTS service: text to speech (Piper and espeak-ng embedded, XTTS-v2 with voice cloning in production)."""
