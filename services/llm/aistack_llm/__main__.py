"""`python -m aistack_llm`: the LLM service (gRPC on 50055, OpenAI-compatible HTTP on 8055)."""

import json
import os
import sys

from aistack_kit.auth import generate_token
from aistack_kit.config import Env, Mode
from aistack_kit.server import run

from aistack_llm.app import DEFAULT_PORT, LlmCapability
from aistack_llm.config import LlmConfig


def main() -> None:
    env = Env()
    if not env.str_list("API_TOKENS") and env.raw("AISTACK_MODE") in (None, Mode.EMBEDDED.value):
        # The HTTP surface must accept the same token as gRPC; the kit would make its own, unseen
        # here, so make the run's token first and let both read it.
        token = generate_token()
        os.environ["API_TOKENS"] = json.dumps([token])
        print(f"[llm] API_TOKENS not set; generated token for this run: {token}", file=sys.stderr)
    run("llm", DEFAULT_PORT, lambda: LlmCapability(LlmConfig.from_env(), Env().str_list("API_TOKENS")))


if __name__ == "__main__":
    main()
