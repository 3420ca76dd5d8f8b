"""API test fixtures: one in-process server per module on a fresh data directory, a channel, an initialized domain."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from kms.client.credentials import Credentials
from tests.api.helpers import LOOPBACK, InProcessServer, init_domain, open_session


@pytest.fixture(scope="module")
def server(build, tmp_path_factory) -> Iterator[InProcessServer]:
    """One in-process server per module on a fresh data directory (loopback, port 0 everywhere)."""
    from kms.config import load_settings

    data = tmp_path_factory.mktemp("kms") / "data"
    settings = load_settings(env={}, flags={"data_dir": str(data), **LOOPBACK, "reflection": True,
                                            "session_idle_timeout_s": 30, "shutdown_delay_s": 0})
    srv = InProcessServer(settings)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def channel(server: InProcessServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.addresses.api) as ch:
        yield ch


@pytest.fixture(scope="module")
def admin(server: InProcessServer, channel: grpc.Channel) -> Credentials:
    """The domain initialized once per module; returns the first admin's credentials."""
    creds = Credentials.generate("alice")
    session, _ = open_session(channel, creds)
    init_domain(session)
    session.close()
    return creds
