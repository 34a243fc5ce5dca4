"""Python client for aistack over the generated gRPC stubs, and the `aistack` command line."""

from aistack_client.client import AistackClient, resolve_token, resolve_url

__all__ = ["AistackClient", "resolve_token", "resolve_url"]
