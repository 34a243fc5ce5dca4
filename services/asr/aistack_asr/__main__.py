"""`python -m aistack_asr`: the ASR service."""

from aistack_kit.server import run

from aistack_asr.app import DEFAULT_PORT, build

if __name__ == "__main__":
    run("asr", DEFAULT_PORT, build)
