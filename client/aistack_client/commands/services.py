"""`aistack services`: the capabilities this deployment serves, with their gRPC and REST surfaces."""

from __future__ import annotations

import argparse
from typing import Any

from aistack.platform.v1 import platform_service_pb2 as pb
from google.protobuf import json_format

from aistack_client.client import AistackClient


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser("services", help="what this deployment serves")
    parser.add_argument("--json", action="store_true", help="print the response as JSON")
    parser.set_defaults(handler=run)


async def run(args: argparse.Namespace, client: AistackClient) -> int:
    reply = await client.platform.ListServices(pb.ListServicesRequest(), timeout=10)
    if args.json:
        print(json_format.MessageToJson(reply, preserving_proto_field_name=True))
        return 0
    for service in reply.services:
        print(f"{service.name}  ({service.replicas} replica{'s' if service.replicas != 1 else ''})")
        for name in service.grpc_services:
            print(f"  gRPC  {name}")
        for route in service.rest_routes:
            print(f"  REST  {route.http_method:<6} {route.path}")
        for prefix in service.http_prefixes:
            print(f"  HTTP  {prefix}*")
    return 0
