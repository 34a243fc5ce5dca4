"""`aistack health`: is every capability serving? Exit code 0 only when all are."""

from __future__ import annotations

import argparse
from typing import Any

import grpc
from aistack.platform.v1 import platform_service_pb2 as pb
from aistack_kit.errors import error_info_of
from google.protobuf import json_format

from aistack_client.client import AistackClient


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser("health", help="health of every capability")
    parser.add_argument("--json", action="store_true", help="print the response as JSON")
    parser.set_defaults(handler=run)


async def run(args: argparse.Namespace, client: AistackClient) -> int:
    try:
        reply = await client.platform.GetHealth(pb.GetHealthRequest(), timeout=10)
    except grpc.aio.AioRpcError as exc:
        info = error_info_of(exc)
        if exc.code() is grpc.StatusCode.UNAVAILABLE and info is not None:
            # The platform answered: some capability is down; say which.
            print(f"NOT SERVING: {info.metadata.get('services', exc.details())}")
            return 1
        raise
    if args.json:
        print(json_format.MessageToJson(reply, preserving_proto_field_name=True))
        return 0
    print(
        f"{pb.ServingStatus.Name(reply.status).removeprefix('SERVING_STATUS_')}  (platform {reply.version})"
    )
    for service in reply.services:
        status = pb.ServingStatus.Name(service.status).removeprefix("SERVING_STATUS_")
        print(f"  {status:<12} {service.service}  {service.target}")
    return 0 if reply.status == pb.SERVING_STATUS_SERVING else 1
