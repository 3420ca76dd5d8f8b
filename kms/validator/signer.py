"""The remote-signer loop of one validator: dial the node, handshake, answer requests, redial with backoff."""

from __future__ import annotations

import random
import socket
import threading
import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519
from prometheus_client import Counter

from kms.log import get_logger
from kms.validator.config import Address, SignerConfig, ValidatorEntry
from kms.validator.privval import Decision, PrivvalHandler, decode, encode
from kms.validator.protoio import PlainStream, ProtocolError, Stream, delimited, read_delimited
from kms.validator.secret_connection import SecretConnection

SIGNATURES = Counter("kms_validator_signatures_total", "Validator signature decisions, by chain and outcome "
                     "(signed, reused, refused, error).", ("chain", "outcome"))
_log = get_logger("kms.validator")


def log_decision(d: Decision, key_id: str) -> None:
    """Log one signature decision (no data bytes) and count it."""
    SIGNATURES.labels(chain=d.chain_id, outcome=d.outcome).inc()
    fields: dict[str, Any] = {"chain": d.chain_id, "key_id": key_id, "height": d.height, "round": d.round,
                              "step": d.step, "outcome": d.outcome}
    if d.reason:
        fields["reason"] = d.reason
    level = _log.info if d.outcome in ("signed", "reused") else _log.warning
    if d.outcome == "error" and "corrupt" in d.reason:
        level = _log.error
    level("validator signature", **fields)


def dial(addr: Address, identity: ed25519.Ed25519PrivateKey, timeout: float) -> tuple[socket.socket, Stream]:
    """Connect to the node; SecretConnection over tcp (pinned to node_id when given), plain over unix."""
    if addr.scheme == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(addr.path)
        except OSError:
            sock.close()
            raise
        return sock, PlainStream(sock)
    sock = socket.create_connection((addr.host, addr.port), timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = SecretConnection(sock, identity)
        if addr.node_id and conn.remote_id != addr.node_id:
            raise ProtocolError(f"the node's id {conn.remote_id} is not the configured {addr.node_id}")
    except BaseException:
        sock.close()
        raise
    return sock, conn


class ValidatorSigner:
    """Serves one [[validator]] entry on its own thread until stop() (a SIGTERM) is called."""

    def __init__(self, entry: ValidatorEntry, handler: PrivvalHandler, identity: ed25519.Ed25519PrivateKey,
                 config: SignerConfig) -> None:
        self.entry, self.handler, self.identity, self.config = entry, handler, identity, config
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"validator-{entry.chain_id}", daemon=True)
        self.connections = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop after the request in hand is answered: no new request is read."""
        self._stop.set()
        with self._lock:
            if self._sock is not None:
                try:
                    self._sock.shutdown(socket.SHUT_RD)  # unblocks the read; a pending answer can still be written
                except OSError:
                    pass

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        delay = self.config.backoff_min_s
        where = {"chain": self.entry.chain_id, "addr": str(self.entry.addr)}
        while not self._stop.is_set():
            try:
                sock, stream = dial(self.entry.addr, self.identity, self.config.connect_timeout_s)
            except (OSError, ProtocolError, ConnectionError) as exc:
                _log.info("validator: node not reachable, retrying", error=str(exc), retry_s=round(delay, 2), **where)
                self._stop.wait(delay * (0.5 + random.random() / 2))  # noqa: S311 - jitter
                delay = min(self.config.backoff_max_s, delay * 2)
                continue
            delay = self.config.backoff_min_s
            self.connections += 1
            _log.info("validator: connected to the node", **where)
            try:
                self._serve(sock, stream)
            except (OSError, ProtocolError, ConnectionError) as exc:
                if not self._stop.is_set():
                    _log.warning("validator: connection to the node lost", error=str(exc), **where)
            except Exception as exc:  # a bug must not end this validator's loop: drop the connection, redial
                _log.error("validator: unexpected failure, reconnecting", error=repr(exc), **where)
            finally:
                with self._lock:
                    self._sock = None
                stream.close()
            if not self._stop.is_set():
                self._stop.wait(self.config.backoff_min_s)
        _log.info("validator: stopped", **where)

    def _serve(self, sock: socket.socket, stream: Stream) -> None:
        sock.settimeout(self.config.idle_timeout_s)
        with self._lock:
            if self._stop.is_set():
                return
            self._sock = sock
        while not self._stop.is_set():
            body = read_delimited(stream)
            started = time.monotonic()
            reply = self.handler.handle(decode(body))
            stream.write(delimited(encode(reply)))
            if reply.WhichOneof("sum") != "ping_response":
                _log.debug("validator: answered", chain=self.entry.chain_id, kind=reply.WhichOneof("sum"),
                           ms=round((time.monotonic() - started) * 1000, 2))


def handler_observer(key_id: str) -> Any:
    """The `observe` callback for a PrivvalHandler: log and count."""
    return lambda d: log_decision(d, key_id)
