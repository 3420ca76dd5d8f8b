"""The PKCS#11 module's local framed protocol (proto/kms/proto/agent/v1/local.proto is the contract).

Each frame, both ways, is a 4-byte big-endian length and one LocalRequest / LocalResponse; one answer per request,
in order. A frame above FRAME_MAX, or one that does not decode (or names no body), is answered with
AGENT_ERROR_MALFORMED and ends the connection. Login state belongs to the connection: with a PIN configured,
operations need a LoginRequest with that PIN first (compared in constant time); without one any login succeeds.
"""

from __future__ import annotations

import hmac
import socket
import struct

from google.protobuf.message import DecodeError

from kms.agent import metrics
from kms.agent.operations import prepare
from kms.agent.pool import AgentUnavailable, AgentUntrusted, ServerPool
from kms.client.errors import OutcomeUnknown
from kms.errors import EnclaveFailure, KmsError
from kms.log import get_logger
from kms.proto.agent.v1 import local_pb2 as lp
from kms.proto.enclave.v1 import boundary_pb2 as pb

_log = get_logger("kms.agent")
FRAME_MAX = 131072
DETAIL_MAX = 256     # local.options: error_detail max_size 257 (with its NUL)
LABEL_MAX = 32       # TokenInfo.label max_size 33


def _detail(text: str) -> str:
    raw = text.encode()
    return raw[:DETAIL_MAX].decode(errors="ignore") if len(raw) > DETAIL_MAX else text


def _error(code: int, detail: str) -> lp.LocalResponse:
    return lp.LocalResponse(error=code, error_detail=_detail(detail))


def _read_exact(conn: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


class LocalProtocol:
    """Serves one connection at a time per thread (CheckedListener's handler); shares the pool."""

    def __init__(self, pool: ServerPool, *, domain_id: bytes, pin: str | None = None,
                 label: str = "Enclave KMS") -> None:
        if len(label.encode()) > LABEL_MAX:
            raise ValueError(f"the token label is at most {LABEL_MAX} bytes")
        self._pool = pool
        self._domain_id = domain_id
        self._pin = None if pin is None else pin.encode()
        self._label = label

    def handle(self, conn: socket.socket) -> None:
        """Answer frames until the peer closes or sends a malformed one."""
        logged_in = self._pin is None
        while True:
            header = _read_exact(conn, 4)
            if header is None:
                return
            (n,) = struct.unpack(">I", header)
            request = None
            if n <= FRAME_MAX:
                body = _read_exact(conn, n)
                if body is None:
                    return
                try:
                    request = lp.LocalRequest.FromString(body)
                except DecodeError:
                    request = None
            if request is None or request.WhichOneof("body") is None:
                what = f"a frame of {n} bytes exceeds {FRAME_MAX}" if n > FRAME_MAX else "the frame does not decode"
                self._send(conn, _error(lp.AGENT_ERROR_MALFORMED, what if request is None else "an empty request"))
                return
            response, logged_in = self.answer(request, logged_in)
            self._send(conn, response)

    def _send(self, conn: socket.socket, response: lp.LocalResponse) -> None:
        body = response.WhichOneof("body") or "none"
        metrics.LOCAL_REQUESTS.labels(body=body, error=lp.AgentError.Name(response.error)).inc()
        data = response.SerializeToString()
        conn.sendall(struct.pack(">I", len(data)) + data)

    def answer(self, request: lp.LocalRequest, logged_in: bool) -> tuple[lp.LocalResponse, bool]:
        """The answer to one request, and the connection's login state after it."""
        kind = request.WhichOneof("body")
        if kind == "login":
            if self._pin is not None and not hmac.compare_digest(request.login.pin.encode(), self._pin):
                _log.warning("PKCS#11 login refused: wrong PIN")
                return _error(lp.AGENT_ERROR_PIN_INCORRECT, "the PIN is not the agent's"), logged_in
            return lp.LocalResponse(login=lp.LoginResponse()), True
        if kind == "token_info":
            return self._token_info(), logged_in
        if not logged_in:
            return _error(lp.AGENT_ERROR_NOT_LOGGED_IN, "log in first (C_Login with the agent's PIN)"), logged_in
        return self._forward(request.request), logged_in

    def _token_info(self) -> lp.LocalResponse:
        info = lp.TokenInfo(label=self._label, serial=self._domain_id[:8].hex(), login_required=self._pin is not None,
                            domain_id=self._domain_id)
        try:
            evidence = self._pool.evidence()
        except KmsError as exc:
            return self._agent_error(exc)
        checked = evidence.result.checked
        info.simulated = checked is not None and checked.simulated
        info.mrsigner = evidence.identity.mrsigner
        return lp.LocalResponse(token_info=info)

    def _forward(self, request: pb.Request) -> lp.LocalResponse:
        operation = "unknown"
        try:
            operation = prepare(request)
            response = self._pool.call(request)
        except EnclaveFailure as exc:   # the enclave's refusal (or one in its codes, refused here): a Response
            _log.info("request refused", operation=operation, code=exc.code_name)
            return lp.LocalResponse(response=pb.Response(version=pb.BOUNDARY_VERSION_1, error=exc.code,
                                                         domain_id=self._domain_id))
        except KmsError as exc:
            return self._agent_error(exc)
        _log.debug("request answered", operation=operation)
        return lp.LocalResponse(response=response)

    @staticmethod
    def _agent_error(exc: KmsError) -> lp.LocalResponse:
        if isinstance(exc, AgentUntrusted):
            code = lp.AGENT_ERROR_UNTRUSTED
        elif isinstance(exc, AgentUnavailable):
            code = lp.AGENT_ERROR_UNAVAILABLE
        else:   # OutcomeUnknown and anything unforeseen
            code = lp.AGENT_ERROR_INTERNAL
            if not isinstance(exc, OutcomeUnknown):
                _log.error("PKCS#11 request failed in the agent", error=str(exc))
        return _error(code, str(exc))
