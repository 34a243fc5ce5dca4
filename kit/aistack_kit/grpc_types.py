"""Type aliases for grpc.aio objects whose stubs are generic over message types we rarely pin.

The stubs make these classes generic but the runtime classes are not subscriptable, hence the
TYPE_CHECKING split.
"""

from typing import TYPE_CHECKING, Any, TypeAlias

import grpc

if TYPE_CHECKING:
    Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
    Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]
else:
    Context = grpc.aio.ServicerContext
    Handler = grpc.RpcMethodHandler
