"""The grpc.aio front end: start-up sequence, API and health ports, metrics, graceful shutdown on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import stat
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from kms.api import metrics
from kms.api.interceptors import server_interceptors
from kms.api.servicer import KmsServicer
from kms.config import Settings, parse_address
from kms.enclave.node import SEALED_DOMAIN_KEY
from kms.log import get_logger
from kms.metrics_endpoint import MetricsServer
from kms.proto.enclave.v1 import boundary_pb2 as pb
from kms.proto.v1 import kms_pb2, kms_pb2_grpc
from kms.service.cluster import Replication
from kms.service.evidence import QuotingEnclave, open_quoting_enclave
from kms.service.housekeeping import Housekeeping
from kms.service.joins import JoinBoard
from kms.service.relay import Relay, open_enclave
from kms.service.store import BaseStore, open_store

_log = get_logger("kms.server")
SERVICE_NAME = kms_pb2.DESCRIPTOR.services_by_name["KeyManagementService"].full_name
MAX_SEND_BYTES = 4 * 1024 * 1024  # one answer drains the enclave's pending TLS output (≤ 512 KiB and a record)


class StartupError(Exception):
    """The server cannot start (data directory, ports, enclave); the message says why."""


@dataclass(frozen=True)
class Addresses:
    """Where the server listens (ports resolved when 0 was asked for)."""

    api: str
    health: str
    metrics: str
    collateral_url: str
    sim_pccs: str


def _check_data_dir(settings: Settings) -> None:
    path = settings.data_dir
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = path.stat().st_mode
    if mode & stat.S_IWOTH and not settings.allow_world_writable_data_dir_insecure:
        raise StartupError(f"data_dir {path} is writable by other users (mode {stat.S_IMODE(mode):o}); "
                           "run `chmod o-w` on it, or set allow_world_writable_data_dir_insecure")


def _options(s: Settings, reuse_port: bool) -> list[tuple[str, int]]:
    return [
        # a port already in use is an error, not a shared listener; only `kms serve --processes` workers share it
        ("grpc.so_reuseport", int(reuse_port)),
        ("grpc.max_receive_message_length", s.max_message_bytes),
        ("grpc.max_send_message_length", MAX_SEND_BYTES),
        ("grpc.keepalive_time_ms", int(s.keepalive_time_s * 1000)),
        ("grpc.keepalive_timeout_ms", int(s.keepalive_timeout_s * 1000)),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", int(s.keepalive_min_time_s * 1000)),
        ("grpc.http2.max_ping_strikes", 2),
    ]


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _bind(server: grpc.aio.Server, address: str, name: str) -> str:
    host, port = parse_address(address, name)
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError:
        bound = 0
    if not bound:  # gRPC says only "failed to bind" (its C core's log line has the reason, but is silenced)
        raise StartupError(f"{name}: cannot listen on {address}: {_bind_problem(host, port)}")
    return f"[{host}]:{bound}" if ":" in host else f"{host}:{bound}"


def _bind_problem(host: str, port: int) -> str:
    """Why an address cannot be bound, as the operating system says it (e.g. "Address already in use")."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((host, port))
    except OSError as exc:
        return exc.strerror or str(exc)
    return "gRPC could not bind it"


class KmsServer:
    """One node: store, enclave, relay, the API and health servers, metrics and the simulated PCCS."""

    def __init__(self, settings: Settings, *, reuse_port: bool = False) -> None:
        self.settings = settings
        self.reuse_port = reuse_port
        self.identity: pb.GetIdentityResponse | None = None
        self.addresses: Addresses | None = None
        self.health = health_aio.HealthServicer()
        self._stack = contextlib.AsyncExitStack()
        self._stop = asyncio.Event()
        self._hurry = asyncio.Event()  # a second stop request: cut the drain short
        self.exit_code = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._api: grpc.aio.Server | None = None
        self.relay: Relay | None = None
        self.housekeeping: Housekeeping | None = None
        self.replication: Replication | None = None

    async def start(self) -> None:
        """Open everything in order; on failure, close what was opened and raise."""
        self._loop = asyncio.get_running_loop()
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise

    async def _start(self) -> None:
        s, stack = self.settings, self._stack
        for name, value in s.insecure_settings().items():
            _log.warning("insecure setting enabled", setting=name, value=value)
        _check_data_dir(s)
        store = await asyncio.to_thread(open_store, s, observer=metrics.observe_store_write)
        _log.info("record store", backend=type(store).__name__, group_commit=s.store_group_commit)
        stack.callback(store.close)
        qe = open_quoting_enclave(s.quoting, s.data_dir, s.collateral_url)  # before the enclave: fails fast
        _log.info("quoting enclave", quoting=s.quoting, simulated=qe.simulated)
        enclave = await asyncio.to_thread(open_enclave, s.data_dir, store, qe, tcs=s.enclave_tcs,
                                          heap_size=s.enclave_heap_mib << 20, stack_size=s.enclave_stack_kib << 10)
        relay = Relay(enclave, workers=s.worker_count, max_queued=s.max_queued_ecalls, max_sessions=s.max_sessions,
                      observe_ecall=metrics.observe_ecall, on_sessions=metrics.set_sessions, qe=qe)
        stack.push_async_callback(relay.close)
        self.relay = relay
        self.identity = await relay.identity()
        if s.housekeeping_interval_s > 0:  # stopped (LIFO) before the relay closes
            self.housekeeping = Housekeeping(relay, store, interval_s=s.housekeeping_interval_s)
            task = asyncio.create_task(self.housekeeping.run(), name="housekeeping")
            stack.push_async_callback(_cancel, task)
        self._start_cluster(store, qe)
        pccs_url = await self._start_pccs()
        collateral_url = s.collateral_url or pccs_url
        metrics_address = self._start_metrics()
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        await self.health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
        health_server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        stack.push_async_callback(health_server.stop, None)  # also when a later bind fails: stopped inside the loop
        health_pb2_grpc.add_HealthServicer_to_server(self.health, health_server)
        health_address = _bind(health_server, s.health_listen, "health_listen")
        self._api = grpc.aio.server(interceptors=server_interceptors(), options=_options(s, self.reuse_port))
        stack.push_async_callback(self._api.stop, None)
        kms_pb2_grpc.add_KeyManagementServiceServicer_to_server(
            KmsServicer(relay, collateral_url=collateral_url, idle_timeout_s=s.session_idle_timeout_s), self._api)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._api)
        if s.reflection:
            reflection.enable_server_reflection((SERVICE_NAME, "grpc.health.v1.Health", reflection.SERVICE_NAME),
                                                self._api)
        api_address = _bind(self._api, s.listen, "listen")
        await health_server.start()
        await self._api.start()
        self.addresses = Addresses(api_address, health_address, metrics_address, collateral_url, pccs_url)

    def _start_cluster(self, store: BaseStore, qe: QuotingEnclave) -> None:
        """The join relay through the shared store (docs/cluster.md), stopped before the relay closes."""
        assert self.relay is not None
        board = JoinBoard(store)
        name = self.settings.replica_name or socket.gethostname()
        self.replication = Replication(self.relay, board, qe, name=name[:64], poll_s=self.settings.cluster_poll_s,
                                       store_has_domain=lambda: store.revision("domain-state") > 0,
                                       sealed_path=self.settings.data_dir / SEALED_DOMAIN_KEY)
        task = asyncio.create_task(self.replication.run(), name="cluster")
        self._stack.push_async_callback(_cancel, task)

    async def _start_pccs(self) -> str:
        if not self.settings.sim_pccs:
            return ""
        from kms.sim.pccs import serve as serve_pccs

        host, port = parse_address(self.settings.sim_pccs_listen, "sim_pccs_listen")
        try:
            pccs = await asyncio.to_thread(serve_pccs, self.settings.data_dir, host, port)
        except Exception as exc:
            raise StartupError(f"sim_pccs_listen: cannot start the simulated PCCS: {exc}") from exc
        self._stack.callback(pccs.stop)
        return pccs.url

    def _start_metrics(self) -> str:
        if not self.settings.metrics_listen:
            return ""
        try:
            server = MetricsServer(self.settings.metrics_listen)
        except OSError as exc:
            raise StartupError(f"metrics_listen: cannot listen on {self.settings.metrics_listen}: {exc}") from exc
        self._stack.callback(server.stop)
        return server.address

    def request_stop(self, reason: str = "requested") -> None:
        """Begin a graceful shutdown; safe from any thread and from signal handlers."""
        if self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._stop_requested, reason)

    def _stop_requested(self, reason: str) -> None:
        if not self._stop.is_set():
            _log.info("shutdown requested", reason=reason)
            self._stop.set()
        elif not self._hurry.is_set():  # a second Ctrl-C: stop now, in-flight RPCs are cancelled
            _log.warning("second shutdown request: stopping without draining", reason=reason)
            self.exit_code = 128 + signal.Signals[reason].value if reason in signal.Signals.__members__ else 1
            self._hurry.set()

    @property
    def hurried(self) -> bool:
        """A second stop request cut the drain short."""
        return self._hurry.is_set()

    async def _unless_hurried(self, aw: asyncio.Future[None] | asyncio.Task[None]) -> bool:
        """Wait for `aw` or a second stop request, whichever comes first; True if `aw` finished."""
        hurry = asyncio.ensure_future(self._hurry.wait())
        try:
            done, _ = await asyncio.wait({aw, hurry}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            hurry.cancel()
        return aw in done

    async def wait(self) -> None:
        """Until a shutdown is requested."""
        await self._stop.wait()

    async def shutdown(self) -> None:
        """Health NOT_SERVING, wait shutdown_delay_s, stop accepting and drain (grace), close sessions and enclave."""
        s = self.settings
        await self.health.enter_graceful_shutdown()
        _log.info("health NOT_SERVING; draining", delay_s=s.shutdown_delay_s, grace_s=s.shutdown_grace_s)
        delay = asyncio.ensure_future(asyncio.sleep(s.shutdown_delay_s))
        if not await self._unless_hurried(delay):
            delay.cancel()
        if self._api is not None:
            stopping = asyncio.ensure_future(self._api.stop(s.shutdown_grace_s))
            if not await self._unless_hurried(stopping):
                await self._api.stop(None)  # the shorter grace wins: in-flight RPCs are cancelled now
            await stopping
        await self._stack.aclose()
        _log.info("stopped", drained=not self.hurried)


async def run(settings: Settings, on_started: Callable[[KmsServer], None] | None = None, *,
              reuse_port: bool = False) -> int:
    """Serve until SIGTERM or SIGINT, then shut down gracefully; a second signal during the drain stops at once.
    Returns the exit code: 0 after a drain, 128 + the signal's number when a second signal cut it short.
    reuse_port: the API port is shared with the other workers of `kms serve --processes` (SO_REUSEPORT)."""
    server = KmsServer(settings, reuse_port=reuse_port)
    await server.start()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.request_stop, sig.name)
    if on_started is not None:
        on_started(server)
    try:
        await server.wait()
    finally:
        try:
            await server.shutdown()  # the handlers stay: a second signal hurries it instead of raising mid-drain
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
    return server.exit_code
