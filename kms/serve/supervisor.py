"""`kms serve --processes N`: a supervisor and N worker processes on one node (docs/cluster.md, "Processes on one
node").

Each worker is a whole `kms serve` with its own enclave, on the node's data directory (its sealed domain key and
simulated platform) and the shared store, and all of them listen on the API port with SO_REUSEPORT: the kernel
spreads connections over the workers that are listening. The supervisor loads no enclave. It holds the API port
(a bound, not listening, SO_REUSEPORT socket, so the port stays ours while a worker restarts), serves the
plaintext health port (SERVING while at least one worker is ready) and the metrics port (every worker's metrics
added up: prometheus_client's multiprocess mode), starts the workers one after the other, restarts one that
dies after a bounded backoff, and on SIGTERM/SIGINT drains them all; a second signal ends them at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass

from kms.config import CONFIG_ENV, ENV_PREFIX, FIELDS, Settings, parse_address
from kms.log import get_logger

WORKER_ENV = "ENCLAVE_KMS_WORKER"          # the worker's index, set by the supervisor only
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's multiprocess mode
READY_KEY = "kms_worker_ready"             # the worker's one line on stdout once it serves
BACKOFF_FIRST_S, BACKOFF_MAX_S, STABLE_S = 0.5, 30.0, 60.0

_log = get_logger("kms.supervisor")


def worker_index() -> int | None:
    """This process's worker index when a supervisor started it, else None."""
    text = os.environ.get(WORKER_ENV)
    return int(text) if text is not None and text.isdigit() else None


def _reserve(listen: str) -> tuple[socket.socket, str]:
    """Bind (not listen) the API address with SO_REUSEPORT: the port, resolved when 0 was asked for."""
    host, port = parse_address(listen, "listen")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1" if host == "localhost" else host, port))
    except OSError:
        sock.close()
        raise
    port = sock.getsockname()[1]
    return sock, (f"[{host}]:{port}" if ":" in host else f"{host}:{port}")


def _env_text(value: object) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


@dataclass
class Worker:
    index: int
    pid: int = 0
    ready: bool = False
    restarts: int = 0
    info: dict | None = None
    proc: asyncio.subprocess.Process | None = None


class Supervisor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.workers = [Worker(i) for i in range(settings.processes)]
        self.stopping = asyncio.Event()
        self.forced = self.failed = False
        self._wake = asyncio.Event()
        self._metrics_dir = tempfile.mkdtemp(prefix="kms-metrics-")
        self._sock, self.listen = _reserve(settings.listen)
        self._health = self._metrics = None  # type: ignore[var-annotated]

    def worker_env(self, index: int) -> dict[str, str]:
        """The environment of worker `index`: this one, every setting as KMS_* (the file's, the flags'), the API
        address resolved, health on its own loopback port, metrics through the supervisor."""
        s = dataclasses.replace(self.settings, processes=1, listen=self.listen, health_listen="127.0.0.1:0",
                                metrics_listen="")
        env = {k: v for k, v in os.environ.items() if k != CONFIG_ENV}
        env.update({ENV_PREFIX + name.upper(): _env_text(getattr(s, name)) for name in FIELDS})
        env.update({WORKER_ENV: str(index), MULTIPROC_ENV: self._metrics_dir})
        return env

    # ---- health and metrics ---------------------------------------------------------------------------------

    async def _start_endpoints(self) -> tuple[str, str]:
        import grpc
        from grpc_health.v1 import health_pb2_grpc
        from grpc_health.v1.health import aio as health_aio
        from prometheus_client import CollectorRegistry, Counter, Gauge, multiprocess

        from kms.metrics_endpoint import MetricsServer

        self._health = health_aio.HealthServicer()
        self._health_server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._health_server)
        port = self._health_server.add_insecure_port(self.settings.health_listen)
        if not port:
            raise OSError(f"health_listen: cannot listen on {self.settings.health_listen}")
        await self._health_server.start()
        await self._set_health()
        host = parse_address(self.settings.health_listen, "health_listen")[0]
        health = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self._metrics_dir)
        self._ready_gauge = Gauge("kms_serve_workers_ready", "kms serve --processes workers that serve.",
                                  registry=registry)
        self._restarts = Counter("kms_serve_worker_restarts_total", "Workers restarted after they ended.",
                                 registry=registry)
        if not self.settings.metrics_listen:
            return health, ""
        self._metrics = MetricsServer(self.settings.metrics_listen, registry)
        return health, self._metrics.address

    async def _set_health(self) -> None:
        from grpc_health.v1 import health_pb2

        from kms.proto.v1 import kms_pb2

        ready = sum(w.ready for w in self.workers)
        if hasattr(self, "_ready_gauge"):
            self._ready_gauge.set(ready)
        if self.stopping.is_set():
            return
        status = health_pb2.HealthCheckResponse.SERVING if ready else health_pb2.HealthCheckResponse.NOT_SERVING
        for service in ("", kms_pb2.DESCRIPTOR.services_by_name["KeyManagementService"].full_name):
            await self._health.set(service, status)

    # ---- workers ----------------------------------------------------------------------------------------------

    async def _spawn(self, w: Worker) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "kms", "serve", env=self.worker_env(w.index), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, start_new_session=True)
        w.proc, w.pid, w.ready = proc, proc.pid, False
        _log.info("worker started", worker=w.index, worker_pid=proc.pid)
        return proc

    async def _watch(self, w: Worker, proc: asyncio.subprocess.Process, started: asyncio.Future[bool]) -> int:
        """Read the worker's stdout (its ready line) until it ends; its exit code."""
        assert proc.stdout is not None
        async for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            try:
                event = json.loads(line) if line.startswith("{") else {}
            except ValueError:
                event = {}
            if isinstance(event, dict) and READY_KEY in event:
                w.info, w.ready = event[READY_KEY], True
                await self._set_health()
                if not started.done():
                    started.set_result(True)
            else:
                print(line, flush=True)
        code = await proc.wait()
        w.ready = False
        await self._set_health()
        if not started.done():
            started.set_result(False)
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(proc.pid, self._metrics_dir)
        return code

    async def _keep(self, w: Worker, started: asyncio.Future[bool]) -> None:
        """Run worker w, and again after it ends (backoff 0.5 s doubling to 30 s; reset after 60 s up)."""
        backoff = BACKOFF_FIRST_S
        while True:
            began = time.monotonic()
            code = await self._watch(w, await self._spawn(w), started)
            if self.stopping.is_set() or not started.result():
                _log.info("worker ended", worker=w.index, worker_pid=w.pid, exit_code=code)
                return
            backoff = BACKOFF_FIRST_S if time.monotonic() - began >= STABLE_S else backoff
            _log.warning("worker ended; restarting", worker=w.index, worker_pid=w.pid, exit_code=code,
                         restart_in_s=backoff)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), backoff)
            if self.stopping.is_set():
                return
            backoff = min(backoff * 2, BACKOFF_MAX_S)
            w.restarts += 1
            self._restarts.inc()

    def signal(self, name: str) -> None:
        """First SIGTERM/SIGINT: drain every worker; the second: end them at once."""
        if self.stopping.is_set():
            self.forced = True
            _log.warning("second signal: ending every worker now", signal=name)
            self._send(signal.SIGKILL)
            return
        _log.info("shutdown requested; draining the workers", reason=name)
        self.stopping.set()
        asyncio.get_running_loop().create_task(self._health.enter_graceful_shutdown())
        self._send(signal.SIGTERM)

    def _send(self, sig: signal.Signals) -> None:
        for w in self.workers:
            if w.proc is not None and w.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    w.proc.send_signal(sig)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.signal, sig.name)
        health, metrics = await self._start_endpoints()
        tasks: list[asyncio.Task[None]] = []
        for w in self.workers:  # one after the other: the first makes the simulated platform and migrates
            started: asyncio.Future[bool] = loop.create_future()
            tasks.append(asyncio.create_task(self._keep(w, started), name=f"worker-{w.index}"))
            if not await started:
                if not self.stopping.is_set():
                    _log.error("start-up failed: a worker ended before it served", worker=w.index)
                    self.failed = True
                    self.signal("start-up failed")
                break
        if not self.stopping.is_set():
            self._serving(health, metrics)
        await asyncio.gather(*tasks)
        codes = [w.proc.returncode for w in self.workers if w.proc is not None]
        _log.info("stopped", exit_codes=codes)
        return 2 if self.failed else 1 if self.forced or any(codes) else 0

    def _serving(self, health: str, metrics: str) -> None:
        info = dict(self.workers[0].info or {})
        info.update(listen=self.listen, health_listen=health, metrics_listen=metrics, processes=len(self.workers),
                    worker_pids=[w.pid for w in self.workers])
        _log.info("serving", **info)
        print(f"Enclave KMS serving the gRPC API on {self.listen} with {len(self.workers)} processes (pids "
              f"{', '.join(str(w.pid) for w in self.workers)}), each its own enclave; SO_REUSEPORT spreads "
              f"connections\n  health    {health} (all workers)\n  metrics   "
              f"{'http://' + metrics + '/metrics' if metrics else 'off'} (all workers added up)\n"
              f"  MRENCLAVE {info.get('mrenclave')}\n  MRSIGNER  {info.get('mrsigner')}",
              file=sys.stderr, flush=True)

    async def close(self) -> None:
        if getattr(self, "_health_server", None) is not None:
            await self._health_server.stop(None)
        if self._metrics is not None:
            self._metrics.stop()
        self._sock.close()
        shutil.rmtree(self._metrics_dir, ignore_errors=True)


def supervise(settings: Settings) -> int:
    """Run `settings.processes` workers until SIGTERM/SIGINT: 0 after a clean shutdown, 1 when a worker ended
    badly or a second signal cut the drain short, 2 when the service cannot start."""
    from kms import log

    log.configure(settings.log_level, fields={"supervisor": True, "pid": os.getpid()})
    _log.info("starting", processes=settings.processes, settings=settings.public())

    async def main() -> int:
        try:
            sup = Supervisor(settings)
        except OSError as exc:
            raise OSError(f"listen: cannot hold {settings.listen}: {exc.strerror or exc}") from exc
        try:
            return await sup.run()
        finally:
            await sup.close()

    try:
        return asyncio.run(main())
    except OSError as exc:
        _log.error("start-up failed", error=str(exc), error_type=type(exc).__name__)
        print(f"error: {exc}", file=sys.stderr)
        return 2

