from aistack_kit.server import run

from aistack_tts.app import DEFAULT_PORT, TtsCapability, TtsConfig

if __name__ == "__main__":
    run("tts", DEFAULT_PORT, lambda: TtsCapability(TtsConfig.from_env()))
