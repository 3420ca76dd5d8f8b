"""Starting and stopping one agent: its gRPC API (unix socket, optional loopback TCP), the PKCS#11 module's local
socket, health, reflection, metrics, and a prober that keeps every KMS server verified."""

from __future__ import annotations

import ipaddress
import shutil
import signal
import tempfile
import threading
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from kms.agent.grpc_api import SERVICE_NAME, AgentService
from kms.agent.local import LocalProtocol
from kms.agent.metrics import REGISTRY
from kms.agent.pool import ServerPool
from kms.agent.sockets import CheckedListener, splice_to
from kms.config import parse_address
from kms.log import get_logger
from kms.metrics_endpoint import MetricsServer

_log = get_logger("kms.agent")
MESSAGE_MAX = 256 * 1024   # above any request the session can carry (64 KiB), so those get the agent's clear error


class AgentStartError(Exception):
    """The agent cannot start as configured (a socket, a port, the token); the message says why."""


@dataclass(frozen=True)
class AgentSettings:
    """Where the agent listens and who may call it (docs/operations.md, `kms agent`)."""

    socket: Path
    socket_mode: int = 0o600
    allow_uids: frozenset[int] = field(default_factory=frozenset)
    tcp_listen: str = ""
    token: bytes | None = None
    p11_socket: Path | None = None
    p11_pin: str | None = None
    p11_label: str = "Enclave KMS"
    metrics_listen: str = ""
    reflection: bool = True
    recheck_s: float = 5.0
    workers: int = 16

    def check(self) -> None:
        if not self.allow_uids:
            raise AgentStartError("the allow-list of peer uids is empty: no one could call the agent")
        if self.tcp_listen:
            host, _ = parse_address(self.tcp_listen, "tcp_listen")
            if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
                raise AgentStartError(f"tcp_listen {self.tcp_listen}: the agent listens on loopback only")
            if not self.token or len(self.token) < 16:
                raise AgentStartError("tcp_listen needs a bearer token of at least 16 bytes (token file or env)")


class Agent:
    """One running agent over a pool of verified KMS servers."""

    def __init__(self, settings: AgentSettings, pool: ServerPool, domain_id: bytes) -> None:
        settings.check()
        self.settings, self.pool, self.domain_id = settings, pool, domain_id
        self.health = health.HealthServicer()
        pool.on_change = self._serving
        self.addresses: dict[str, str] = {}
        self._stop = threading.Event()
        self._closers: list = []

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> None:
        s = self.settings
        self._serving(False)
        private = Path(tempfile.mkdtemp(prefix="kms-agent-"))   # 0700: only this uid reaches the inner socket
        self._closers.append(lambda: shutil.rmtree(private, ignore_errors=True))
        inner = str(private / "grpc.sock")
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=s.workers, thread_name_prefix="kms-agent"),
                             options=[("grpc.so_reuseport", 0), ("grpc.max_receive_message_length", MESSAGE_MAX),
                                      ("grpc.max_send_message_length", MESSAGE_MAX)])
        server.add_generic_rpc_handlers((AgentService(self.pool, token=s.token).generic_handler(),))
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        if s.reflection:
            reflection.enable_server_reflection((SERVICE_NAME, "grpc.health.v1.Health", reflection.SERVICE_NAME),
                                                server)
        if not server.add_insecure_port(f"unix:{inner}"):
            raise AgentStartError(f"cannot listen on {inner}")
        if s.tcp_listen:
            try:
                port = server.add_insecure_port(s.tcp_listen)
            except RuntimeError as exc:
                raise AgentStartError(f"tcp_listen: cannot listen on {s.tcp_listen}: {exc}") from exc
            host, _ = parse_address(s.tcp_listen, "tcp_listen")
            self.addresses["tcp"] = f"{host}:{port}"
        server.start()
        self._closers.append(lambda: server.stop(2).wait(5))
        self.addresses["socket"] = str(self._listen("grpc", s.socket, splice_to(inner)))
        if s.p11_socket is not None:
            local = LocalProtocol(self.pool, domain_id=self.domain_id, pin=s.p11_pin, label=s.p11_label)
            self.addresses["p11_socket"] = str(self._listen("p11", s.p11_socket, local.handle))
        if s.metrics_listen:
            try:
                metrics = MetricsServer(s.metrics_listen, registry=REGISTRY)
            except OSError as exc:
                raise AgentStartError(f"metrics_listen: cannot listen on {s.metrics_listen}: {exc}") from exc
            self._closers.append(metrics.stop)
            self.addresses["metrics"] = metrics.address
        prober = threading.Thread(target=self._probe, name="kms-agent-prober", daemon=True)
        prober.start()
        self._closers.append(lambda: prober.join(10))

    def _listen(self, name: str, path: Path, handler) -> Path:
        s = self.settings
        listener = CheckedListener(name, path, s.socket_mode, s.allow_uids, handler)
        self._closers.append(listener.close)
        return listener.path

    def _serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for service in ("", SERVICE_NAME):
            self.health.set(service, status)

    def _probe(self) -> None:
        """Verify every server at start and again every recheck_s: health follows, failover needs no handshake."""
        while not self._stop.is_set():
            self.pool.connect_all()
            self._serving(self.pool.serving)
            self._stop.wait(self.settings.recheck_s)

    def wait(self) -> None:
        self._stop.wait()

    def request_stop(self, reason: str = "requested") -> None:
        if not self._stop.is_set():
            _log.info("shutdown requested", reason=reason)
        self._stop.set()

    def close(self) -> None:
        """Stop listening (sockets removed), end the sessions, save the state heads."""
        self._stop.set()
        self._serving(False)
        while self._closers:
            self._closers.pop()()
        self.pool.close()


def run(agent: Agent) -> int:
    """Start, log the `serving` line, serve until SIGTERM or SIGINT, then close; the exit code."""
    agent.start()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: agent.request_stop(signal.Signals(signum).name))
    _log.info("serving", domain_id=agent.domain_id.hex(), servers=[s["server"] for s in agent.pool.status()],
              **agent.addresses)
    try:
        agent.wait()
    finally:
        agent.close()
        _log.info("stopped")
    return 0
