"""A loopback gRPC recording proxy: forwards every KMS RPC to the real server and keeps every frame, raw."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent import futures

import grpc

SERVICE = "kms.v1.KeyManagementService"


class RecordingProxy:
    """Sits between client and server (both loopback). Messages are handled as raw bytes (no
    deserialization), so `frames` holds exactly what crossed the host, in both directions."""

    def __init__(self, upstream: str) -> None:
        self._upstream = grpc.insecure_channel(upstream, options=[("grpc.max_receive_message_length", 1 << 20)])
        self._lock = threading.Lock()
        self.frames: list[tuple[str, str, bytes]] = []  # (method, "c2s" | "s2c", raw message)
        self.rpcs: Counter[str] = Counter()
        # tamper(session number, frame number, raw SessionFrame) -> what is forwarded (client to server)
        self.tamper: Callable[[int, int, bytes], bytes] | None = None
        handlers = {
            "GetEvidence": grpc.unary_unary_rpc_method_handler(self._get_evidence),
            "Session": grpc.stream_stream_rpc_method_handler(self._session),
        }
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=32),
                                   options=[("grpc.max_receive_message_length", 1 << 20)])
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),
                                               _Unknown(self)))
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self.target = f"127.0.0.1:{self.port}"
        self._server.start()

    def _record(self, method: str, direction: str, data: bytes) -> None:
        with self._lock:
            self.frames.append((method, direction, bytes(data)))

    def _get_evidence(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        with self._lock:
            self.rpcs["GetEvidence"] += 1
        self._record("GetEvidence", "c2s", request)
        try:
            reply = self._upstream.unary_unary(f"/{SERVICE}/GetEvidence")(request, timeout=30)
        except grpc.RpcError as exc:
            context.abort(exc.code(), exc.details() or "")
        self._record("GetEvidence", "s2c", reply)
        return reply

    def _session(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        with self._lock:
            self.rpcs["Session"] += 1
            number = self.rpcs["Session"]

        def upward() -> Iterator[bytes]:
            for i, frame in enumerate(requests, 1):
                self._record("Session", "c2s", frame)
                tamper = self.tamper
                yield tamper(number, i, frame) if tamper is not None else frame

        call = self._upstream.stream_stream(f"/{SERVICE}/Session")(upward())
        context.add_callback(call.cancel)
        try:
            for frame in call:
                self._record("Session", "s2c", frame)
                yield frame
        except grpc.RpcError as exc:
            context.abort(exc.code(), exc.details() or "")

    def session_frames(self) -> list[bytes]:
        with self._lock:
            return [f for m, _, f in self.frames if m == "Session"]

    def all_bytes(self) -> list[bytes]:
        with self._lock:
            return [f for _, _, f in self.frames]

    def stop(self) -> None:
        self._server.stop(grace=None)
        self._upstream.close()


class _Unknown(grpc.GenericRpcHandler):
    """Any other method is counted and refused (the client must need nothing else)."""

    def __init__(self, proxy: RecordingProxy) -> None:
        self._proxy = proxy

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        with self._proxy._lock:
            self._proxy.rpcs[handler_call_details.method] += 1
        return None
