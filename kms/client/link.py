"""One replica of a KmsClient: its gRPC channel and its verified session (opened on demand, dropped when broken)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

import grpc

from kms.client.channel import SessionChannel
from kms.client.errors import ClientClosed
from kms.client.evidence import VerifiedEvidence
from kms.client.transport import SessionStream, open_channel
from kms.proto.v1 import kms_pb2_grpc

_log = logging.getLogger("kms.client")


class Connection:
    """A verified evidence, the Session stream and the TLS session pinned to that evidence."""

    def __init__(self, evidence: VerifiedEvidence, stream: SessionStream, channel: SessionChannel) -> None:
        self.evidence = evidence
        self.stream = stream
        self.channel = channel

    def close(self, grace: float = 1.0) -> None:
        broken = self.channel.broken
        try:
            if not broken:
                self.channel.close()
        finally:
            self.stream.close(grace=0 if broken else grace)


Opener = Callable[[kms_pb2_grpc.KeyManagementServiceStub, str], Connection]  # (stub, the address dialled)


class Link:
    """The channel to one address and its one session, shared by every thread (requests are pipelined on it)."""

    def __init__(self, address: str, opener: Opener, grpc_credentials: grpc.ChannelCredentials | None,
                 grpc_options: Sequence[tuple[str, int | str]]) -> None:
        self.address = address
        self._opener = opener
        self._grpc = open_channel(address, grpc_credentials, grpc_options)
        self.stub = kms_pb2_grpc.KeyManagementServiceStub(self._grpc)
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._closed = False
        self.connects = 0

    def connection(self) -> Connection:
        """The session, opened (verify, pin, freshness: the opener) when there is none or it broke."""
        with self._lock:
            if self._closed:
                raise ClientClosed("the client is closed")
            conn = self._conn
            if conn is not None and not conn.channel.broken:
                return conn
            if conn is not None:
                self._conn = None
                close_quietly(conn, grace=0)
            self._conn = self._opener(self.stub, self.address)
            self.connects += 1
            return self._conn

    @property
    def current(self) -> Connection | None:
        return self._conn

    def drop(self, conn: Connection) -> None:
        with self._lock:
            if self._conn is conn:
                self._conn = None
        close_quietly(conn, grace=0)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conn, self._conn = self._conn, None
        if conn is not None:
            close_quietly(conn)
        self._grpc.close()


def close_quietly(conn: Connection, grace: float = 1.0) -> None:
    try:
        conn.close(grace)
    except Exception as exc:
        _log.debug("kms client: closing a session failed: %s", exc)
