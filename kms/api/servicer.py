"""KeyManagementService: public evidence, and Session, a relay of TLS records the front end cannot read."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

from kms import errors
from kms.api import metrics
from kms.log import get_logger
from kms.proto.v1 import kms_pb2, kms_pb2_grpc
from kms.service.relay import FrameTooLarge, Overloaded, Relay, RelaySession, SessionIdle, SessionLimitReached

_log = get_logger("kms.api.session")
_END = object()
_REASONS: tuple[tuple[type[errors.KmsError], str], ...] = (
    (SessionLimitReached, "limit"), (SessionIdle, "idle"), (FrameTooLarge, "frame_too_large"),
    (Overloaded, "overloaded"), (errors.EnclaveUnavailable, "enclave_unavailable"), (errors.SessionError, "tls"),
)


def failure_reason(exc: errors.KmsError) -> str:
    """The kms_session_failures_total label for an error that ended a session."""
    return next((reason for cls, reason in _REASONS if isinstance(exc, cls)), "other")


async def _frames(requests: AsyncIterator[kms_pb2.SessionFrame], idle_s: float) -> AsyncIterator[bytes]:
    """The client's TLS bytes, frame by frame; SessionIdle when none arrives within idle_s."""
    it = aiter(requests)
    while True:
        try:
            async with asyncio.timeout(idle_s):
                frame = await anext(it, _END)
        except TimeoutError:
            raise SessionIdle(f"no frame for {idle_s:g} s: the server closed the idle session; "
                              "open a new session") from None
        if frame is _END:
            return
        yield frame.tls  # type: ignore[union-attr]


class KmsServicer(kms_pb2_grpc.KeyManagementServiceServicer):
    """The API; every enclave call goes through the relay's bounded pool, errors through the interceptor."""

    def __init__(self, relay: Relay, *, collateral_url: str, idle_timeout_s: float) -> None:
        self.relay = relay
        self.collateral_url = collateral_url
        self.idle_timeout_s = idle_timeout_s

    async def GetEvidence(self, request: kms_pb2.GetEvidenceRequest,
                          context: grpc.aio.ServicerContext) -> kms_pb2.GetEvidenceResponse:
        ev = await self.relay.evidence()
        return kms_pb2.GetEvidenceResponse(
            certificate=ev.certificate, quote=ev.quote, collateral_url=self.collateral_url,
            simulated=ev.simulated, initialized=ev.initialized, enclave_version=ev.enclave_version)

    async def Session(self, request_iterator: AsyncIterator[kms_pb2.SessionFrame],
                      context: grpc.aio.ServicerContext) -> AsyncIterator[kms_pb2.SessionFrame]:
        session: RelaySession | None = None
        outcome = "closed"
        try:
            session = await self.relay.open_session()
            async for data in _frames(request_iterator, self.idle_timeout_s):
                out, closed = await session.feed(data)
                yield kms_pb2.SessionFrame(tls=out)
                if closed:
                    return
            outcome = "client_done"
        except errors.SessionError as exc:
            outcome = "tls"
            metrics.session_failed("tls")
            raise errors.SessionError(f"session ended: the enclave refused the TLS data ({exc.code_name}); "
                                      "open a new session", exc.code) from exc
        except errors.KmsError as exc:
            outcome = failure_reason(exc)
            metrics.session_failed(outcome)
            raise
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            if session is not None:
                await session.close()
                _log.info("session ended", outcome=outcome, frames_in=session.frames_in,
                          frames_out=session.frames_out, bytes_in=session.bytes_in, bytes_out=session.bytes_out)
