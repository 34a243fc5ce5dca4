"""`aistack`: the platform from the command line, through Envoy, over gRPC.

Each capability adds `aistack_client/commands/<name>.py` with `register(subparsers)` and one line
in COMMANDS below. A command's handler is `async def run(args, client) -> int` set with
`parser.set_defaults(handler=run)`.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from collections.abc import Awaitable, Callable, Sequence

import grpc
from aistack_kit.errors import error_info_of

from aistack_client.client import DEFAULT_URL, AistackClient

Handler = Callable[[argparse.Namespace, AistackClient], Awaitable[int]]

# One module per capability under aistack_client.commands.
COMMANDS: tuple[str, ...] = (
    "health",
    "services",
    "asr",
    "asr_stream",
    "llm",
    "tts",
    "ocr",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aistack", description="Call aistack through its edge.")
    parser.add_argument("--url", help=f"edge host:port (env AISTACK_URL, default {DEFAULT_URL})")
    parser.add_argument(
        "--token", help="bearer token (env AISTACK_TOKEN, else the first of API_TOKENS, else run/token)"
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="command")
    for name in COMMANDS:
        importlib.import_module(f"aistack_client.commands.{name}").register(subparsers)
    return parser


async def _run(args: argparse.Namespace) -> int:
    handler: Handler = args.handler
    async with AistackClient(args.url, args.token) as client:
        try:
            return await handler(args, client)
        except grpc.aio.AioRpcError as exc:
            info = error_info_of(exc)
            reason = f" [{info.reason}]" if info is not None else ""
            print(f"aistack: {exc.code().name}{reason}: {exc.details()}", file=sys.stderr)
            return 1


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
