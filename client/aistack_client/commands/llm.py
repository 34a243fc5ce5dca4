"""`aistack chat "prompt"`: a chat answer from the LLM service (`--stream` prints it as it comes)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from aistack.llm.v1 import llm_service_pb2 as pb
from aistack.llm.v1 import llm_service_pb2_grpc as pb_grpc

from aistack_client.client import AistackClient


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser("chat", help="ask the LLM (paneas-v1 by default)")
    parser.add_argument("prompt", help="the user message")
    parser.add_argument("--model", default="", help="model alias (default: the service's default, paneas-v1)")
    parser.add_argument("--system", help="a system message before the prompt")
    parser.add_argument("--stream", action="store_true", help="print the answer as it is generated")
    parser.add_argument(
        "--max-tokens", type=int, default=0, help="most tokens to generate (0: service default)"
    )
    parser.add_argument("--temperature", type=float, help="0 to 2 (default: the model's)")
    parser.add_argument("--seed", type=int, help="sampling seed, for repeatable answers")
    parser.add_argument("--usage", action="store_true", help="print token counts to stderr")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait (default 300)")
    parser.set_defaults(handler=run)


def _request(args: argparse.Namespace) -> pb.ChatRequest:
    messages = []
    if args.system:
        messages.append(pb.ChatMessage(role=pb.ROLE_SYSTEM, content=args.system))
    messages.append(pb.ChatMessage(role=pb.ROLE_USER, content=args.prompt))
    config = pb.GenerationConfig(max_tokens=args.max_tokens)
    if args.temperature is not None:
        config.temperature = args.temperature
    if args.seed is not None:
        config.seed = args.seed
    return pb.ChatRequest(model=args.model, messages=messages, generation_config=config)


async def run(args: argparse.Namespace, client: AistackClient) -> int:
    stub = client.stub(pb_grpc.LlmServiceStub)
    request = _request(args)
    if not args.stream:
        reply = await stub.Chat(request, timeout=args.timeout)
        print(reply.message.content)
        usage = reply.usage
    else:
        streamed = pb.StreamChatRequest(
            model=request.model, messages=request.messages, generation_config=request.generation_config
        )
        usage = pb.Usage()
        async for delta in stub.StreamChat(streamed, timeout=args.timeout):
            sys.stdout.write(delta.delta)
            sys.stdout.flush()
            if delta.HasField("usage"):
                usage = delta.usage
        print()
    if args.usage:
        print(
            f"tokens: prompt {usage.prompt_tokens}, completion {usage.completion_tokens}, "
            f"total {usage.total_tokens}",
            file=sys.stderr,
        )
    return 0
