"""Limits on a small server (its own module: one enclave per process at a time): sessions and idle timeout."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest

from kms.client.credentials import Credentials
from kms.proto.enclave.v1 import boundary_pb2 as pb
from tests.api.helpers import (
    LOOPBACK,
    GrpcExchange,
    InProcessServer,
    open_session,
    wait_until,
)

MAX_SESSIONS = 3


@pytest.fixture(scope="module")
def small(build, tmp_path_factory) -> Iterator[InProcessServer]:
    from kms.config import load_settings

    settings = load_settings(env={}, flags={"data_dir": str(tmp_path_factory.mktemp("small") / "data"), **LOOPBACK,
                                            "max_sessions": MAX_SESSIONS, "session_idle_timeout_s": 1,
                                            "shutdown_delay_s": 0})
    srv = InProcessServer(settings)
    yield srv
    srv.stop()


def _active(srv: InProcessServer) -> int:
    return srv.server.relay.sessions_active


def test_session_limit_is_resource_exhausted(small) -> None:
    with grpc.insecure_channel(small.addresses.api) as ch:
        alice = Credentials.generate("alice")
        sessions = [open_session(ch, alice)[0] for _ in range(MAX_SESSIONS)]
        with pytest.raises(grpc.RpcError) as info:
            open_session(ch, alice)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert f"too many concurrent sessions (limit {MAX_SESSIONS})" in info.value.details()
        sessions[0].close()
        assert wait_until(lambda: _active(small) < MAX_SESSIONS)
        open_session(ch, alice)[0].close()
        for s in sessions[1:]:
            s.close()
    assert wait_until(lambda: _active(small) == 0)


def test_idle_session_is_closed_with_deadline_exceeded(small) -> None:
    with grpc.insecure_channel(small.addresses.api) as ch:
        session, _ = open_session(ch, Credentials.generate("alice"))
        time.sleep(1.5)
        with pytest.raises(grpc.RpcError) as info:
            session.call(pb.Request(get_identity=pb.GetIdentityRequest()))
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "idle session" in info.value.details()
        exchange = GrpcExchange(ch)  # never writes: closed after the idle timeout too
        with pytest.raises(grpc.RpcError) as info:
            next(exchange._responses)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert wait_until(lambda: _active(small) == 0)
