"""agent.proto's KmsAgent service: one unary RPC per forwarded operation, built from the service descriptor.

Each RPC wraps its message as that member of a session Request, sends it through the pool as the agent's
principal, and answers with the Response's result member. Errors become gRPC statuses (kms.agent.status), with
the ErrorCode's name in the trailing metadata `kms-error-code`. Calls that arrive over TCP must carry
`authorization: Bearer <token>`; unix-socket callers were checked by uid before their connection was read.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from typing import Any

import grpc

from kms.agent import metrics
from kms.agent.operations import FORWARDED, camel, prepare
from kms.agent.pool import ServerPool
from kms.agent.status import status_for
from kms.errors import KmsError
from kms.log import get_logger
from kms.proto.agent.v1 import agent_pb2
from kms.proto.enclave.v1 import boundary_pb2 as pb

_log = get_logger("kms.agent")
SERVICE = agent_pb2.DESCRIPTOR.services_by_name["KmsAgent"]
SERVICE_NAME = SERVICE.full_name
ERROR_CODE_KEY = "kms-error-code"
_TCP_PEERS = ("ipv4:", "ipv6:")


def rpc_operations() -> dict[str, str]:
    """RPC name -> the Request oneof member it carries (CreateKey -> create_key)."""
    return {camel(op): op for op in FORWARDED}


class AgentService:
    """The handlers; `token` (bytes) is required of TCP peers when set."""

    def __init__(self, pool: ServerPool, *, token: bytes | None = None) -> None:
        self._pool = pool
        self._token = None if token is None else b"Bearer " + token

    def generic_handler(self) -> grpc.GenericRpcHandler:
        operations = rpc_operations()
        handlers = {}
        for method in SERVICE.methods:
            operation = operations[method.name]   # a KeyError here is a proto out of step with FORWARDED
            request_cls = getattr(pb, method.input_type.name)
            response_cls = getattr(pb, method.output_type.name)
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                self._handler(method.name, operation, response_cls),
                request_deserializer=request_cls.FromString, response_serializer=response_cls.SerializeToString)
        return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)

    def _handler(self, method: str, operation: str, response_cls: Any) -> Callable[[Any, grpc.ServicerContext], Any]:
        labels = {"grpc_type": "unary", "grpc_service": SERVICE_NAME, "grpc_method": method}

        def handle(message: Any, context: grpc.ServicerContext) -> Any:
            metrics.STARTED.labels(**labels).inc()
            began = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                self._authenticate(context)
                request = pb.Request()
                getattr(request, operation).CopyFrom(message)
                prepare(request)
                response = self._pool.call(request)
                result = response.WhichOneof("result")
                if result is None:
                    return response_cls()
                answer = getattr(response, result)
                if not isinstance(answer, response_cls):
                    raise KmsError(f"the enclave answered {operation} with {result}, not {response_cls.__name__}")
                _log.debug("request answered", method=method)
                return answer
            except KmsError as exc:
                code, name = status_for(exc)
                _log.info("request refused", method=method, grpc_code=code.name, error_code=name)
                context.set_trailing_metadata(((ERROR_CODE_KEY, name),))
                context.abort(code, f"{name}: {exc}")
            except _Unauthenticated as exc:
                code = grpc.StatusCode.UNAUTHENTICATED
                metrics.UNAUTHENTICATED.inc()
                _log.warning("call refused: no valid bearer token", method=method, peer=context.peer())
                context.abort(code, str(exc))
            finally:
                metrics.HANDLED.labels(**labels, grpc_code=code.name).inc()
                metrics.HANDLING.labels(**labels).observe(time.perf_counter() - began)

        return handle

    def _authenticate(self, context: grpc.ServicerContext) -> None:
        if not context.peer().startswith(_TCP_PEERS):
            return
        if self._token is None:   # a TCP listener always has a token (the settings insist); fail closed anyway
            raise _Unauthenticated("this agent takes no TCP calls")
        given = [v for k, v in context.invocation_metadata() if k == "authorization"]
        value = given[0].encode() if len(given) == 1 and isinstance(given[0], str) else b""
        if not hmac.compare_digest(value, self._token):
            raise _Unauthenticated("a bearer token is required on TCP: metadata 'authorization: Bearer <token>'")


class _Unauthenticated(Exception):
    pass
