"""Relay with a stand-in enclave: bounded queue, contextvars in workers, session limit, idempotent close."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

from kms import errors
from kms.errors import E
from kms.service.relay import FrameTooLarge, Overloaded, Relay, SessionLimitReached

REQUEST = contextvars.ContextVar("request", default=None)


class FakeEnclave:
    def __init__(self) -> None:
        self.opened: list[int] = []
        self.closed: list[int] = []
        self.fail_feed: errors.KmsError | None = None
        self.closed_enclave = False

    def session_open(self) -> int:
        self.opened.append(len(self.opened) + 1)
        return self.opened[-1]

    def session_feed(self, sid: int, data: bytes) -> tuple[bytes, bool]:
        if self.fail_feed is not None:
            raise self.fail_feed
        return data[::-1], data == b"bye"

    def session_close(self, sid: int) -> None:
        self.closed.append(sid)

    def close(self) -> None:
        self.closed_enclave = True


def test_queue_bound_and_context_propagation() -> None:
    async def main() -> None:
        relay = Relay(FakeEnclave(), workers=1, max_queued=1, max_sessions=4)  # type: ignore[arg-type]
        release = threading.Event()
        REQUEST.set("r-7")
        first = asyncio.ensure_future(relay.run("block", lambda: (release.wait(5), REQUEST.get())[1]))
        await asyncio.sleep(0.05)
        with pytest.raises(Overloaded, match="too many enclave calls"):
            await relay.run("second", lambda: None)
        release.set()
        assert await first == "r-7"
        await relay.close()

    asyncio.run(main())


def test_ecall_timings_are_observed() -> None:
    seen: list[str] = []

    async def main() -> None:
        relay = Relay(FakeEnclave(), workers=2, max_queued=8, max_sessions=2,  # type: ignore[arg-type]
                      observe_ecall=lambda name, s: seen.append(name))
        session = await relay.open_session()
        assert await session.feed(b"abc") == (b"cba", False)
        await session.close()
        await relay.close()

    asyncio.run(main())
    assert seen == ["session_open", "session_feed", "session_close"]


def test_session_limit_and_slot_release() -> None:
    counts: list[int] = []

    async def main() -> None:
        enclave = FakeEnclave()
        relay = Relay(enclave, workers=2, max_queued=8, max_sessions=2, on_sessions=counts.append)  # type: ignore[arg-type]
        a, b = await relay.open_session(), await relay.open_session()
        with pytest.raises(SessionLimitReached, match="limit 2"):
            await relay.open_session()
        await a.close()
        await a.close()  # idempotent
        c = await relay.open_session()
        assert relay.sessions_active == 2 and enclave.closed == [a.sid]
        with pytest.raises(FrameTooLarge, match="at most 131072 bytes"):
            await c.feed(b"x" * (128 * 1024 + 1))
        assert await c.feed(b"bye") == (b"eyb", True)  # the enclave ended it: no close ECALL needed
        await c.close()
        assert enclave.closed == [a.sid]
        await relay.close()  # closes b, then the enclave
        assert enclave.closed == [a.sid, b.sid] and enclave.closed_enclave and relay.sessions_active == 0

    asyncio.run(main())
    assert counts[-1] == 0 and max(counts) == 2


def test_a_failed_feed_ends_the_session_and_the_enclave_limit_maps_to_session_limit() -> None:
    async def main() -> None:
        enclave = FakeEnclave()
        relay = Relay(enclave, workers=1, max_queued=8, max_sessions=8)  # type: ignore[arg-type]
        session = await relay.open_session()
        enclave.fail_feed = errors.error_for_code(E.KMS_ERR_SESSION_TLS)
        with pytest.raises(errors.SessionError):
            await session.feed(b"tampered")
        await session.close()
        assert enclave.closed == [] and relay.sessions_active == 0

        def full() -> int:
            raise errors.error_for_code(E.KMS_ERR_SESSION_LIMIT)

        enclave.session_open = full  # type: ignore[method-assign]
        with pytest.raises(SessionLimitReached, match="session table is full"):
            await relay.open_session()
        assert relay.sessions_active == 0
        await relay.close()

    asyncio.run(main())
