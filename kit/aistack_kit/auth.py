"""Bearer-token checks against API_TOKENS. Tokens are compared in constant time and never logged."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterable, Sequence

# Methods anyone may call: health for probes and load balancers, reflection so grpcurl can list
# and describe services without .proto files, and the platform health summary behind /api/v1/health.
PUBLIC_METHOD_PREFIXES: tuple[str, ...] = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
    "/aistack.platform.v1.PlatformService/GetHealth",
)


class TokenVerifier:
    def __init__(
        self, tokens: Sequence[str], public_prefixes: Iterable[str] = PUBLIC_METHOD_PREFIXES
    ) -> None:
        if not tokens:
            raise ValueError("at least one API token is required")
        self._tokens = [token.encode() for token in tokens]
        self._public = tuple(public_prefixes)

    def is_public(self, method: str) -> bool:
        return method.startswith(self._public)

    def check(self, authorization: str | None) -> bool:
        """True when `authorization` is `Bearer <one of the tokens>`."""
        if not authorization:
            return False
        scheme, _, presented = authorization.partition(" ")
        if scheme.lower() != "bearer" or not presented:
            return False
        candidate = presented.strip().encode()
        # Compare against every token so the time taken does not tell which one (or none) matched.
        matched = False
        for token in self._tokens:
            matched |= hmac.compare_digest(candidate, token)
        return matched


def generate_token() -> str:
    return "aistack_" + secrets.token_urlsafe(24)
