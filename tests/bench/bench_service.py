"""Benchmark: the real `kms serve` over loopback through attested sessions (Encrypt 1 KiB, Sign Ed25519 and
ECDSA P-256) next to a bare grpc.aio bidirectional echo with the same concurrency and payload, and session set-up.

Run: `./dev bench` or `.venv/bin/python -m tests.bench.bench_service [--seconds S] [--concurrency C]
[--processes P]`. C sessions (one KmsClient each, one request in flight each) are spread over P
client processes; the echo server runs in its own process and is driven by the same harness with
one frame per exchange, as the Session stream is. Bounded: every phase runs for --seconds, then it
all stops. Figures depend on the machine (the clients share its CPUs with the server); compare the
columns of one run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from kms import paths
from kms.attestation import AttestationPolicy, TrustAnchor
from kms.client import Credentials, KmsClient
from tests.auditor import auditor_public

ECHO = "/bench.Echo/Stream"
MESSAGE = b"a 32-byte message to be signed!!"


# --- the bare echo server (its own process) -----------------------------------------------------------


def _echo_server(port_queue: Any) -> None:
    async def serve() -> None:
        async def echo(requests: Any, context: Any) -> Any:
            async for frame in requests:
                yield frame

        server = grpc.aio.server()
        handler = grpc.stream_stream_rpc_method_handler(echo)
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("bench.Echo", {"Stream": handler}),))
        port_queue.put(server.add_insecure_port("127.0.0.1:0"))
        await server.start()
        await server.wait_for_termination()

    asyncio.run(serve())


class _EchoSession:
    """The same transport shape as SessionStream: one frame written, one frame read."""

    def __init__(self, target: str) -> None:
        self._channel = grpc.insecure_channel(target)
        self._q: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._call = self._channel.stream_stream(ECHO)(iter(self._q.get, None))

    def exchange(self, data: bytes) -> bytes:
        self._q.put(data)
        return next(self._call)

    def close(self) -> None:
        self._q.put(None)
        self._call.cancel()
        self._channel.close()


# --- load workers (spawned processes, each running threads) ----------------------------------------


def _kms_op(client: KmsClient, spec: dict[str, Any], op: str) -> Callable[[], object]:
    if op == "encrypt":
        data = os.urandom(1024)
        return lambda: client.encrypt(spec["aes"], data)
    key = spec["ed25519" if op == "sign-ed25519" else "p256"]
    algorithm = "ED25519_PURE" if op == "sign-ed25519" else "ECDSA_SHA_256"
    return lambda: client.sign(key, MESSAGE, algorithm=algorithm)


def _worker(spec: dict[str, Any], threads: int, results: Any) -> None:
    """Run `threads` sessions for warm-up + seconds; report (ops in window, latencies ns)."""
    barrier = threading.Barrier(threads)
    out: list[tuple[int, list[int]]] = []
    lock = threading.Lock()

    def run() -> None:
        if spec["kind"] == "echo":
            session = _EchoSession(spec["target"])
            payload = os.urandom(spec["payload"])
            fn: Callable[[], object] = lambda: session.exchange(payload)  # noqa: E731
            close = session.close
        else:
            policy = AttestationPolicy.build(mrsigner=spec["mrsigner"], allow_simulation_insecure=True)
            client = KmsClient(spec["target"], credentials=Credentials(spec["cert"], spec["key"]), policy=policy,
                               trust_anchor=TrustAnchor.load(spec["root"], simulated=True))
            fn, close = _kms_op(client, spec, spec["kind"]), client.close
        barrier.wait()
        start = time.monotonic()
        warm_end, end = start + spec["warmup"], start + spec["warmup"] + spec["seconds"]
        lat: list[int] = []
        calls = 0
        while (now := time.monotonic()) < end:
            t = time.perf_counter_ns()
            fn()
            calls += 1
            if now >= warm_end:
                lat.append(time.perf_counter_ns() - t)
        close()
        with lock:
            out.append((calls, lat))

    pool = [threading.Thread(target=run) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    results.put((sum(calls for calls, _ in out), [lat for _, lat in out]))


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its live descendants (and its waited-for children), /proc."""
    tick, total, parents = os.sysconf("SC_CLK_TCK"), 0.0, {pid}
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # exited meanwhile
            stats[int(entry.name)] = (int(fields[1]), fields)
    while parents:
        for p in parents:
            if p in stats:
                f = stats[p][1]
                total += sum(int(x) for x in f[11:15 if p == pid else 13]) / tick  # utime stime (cutime cstime)
        parents = {c for c, (ppid, _) in stats.items() if ppid in parents}
    return total


def ctx_switches(pid: int) -> int:
    """Voluntary + involuntary context switches of a process's live threads and its live children's, /proc
    (less noisy on a shared machine than ops/s: each is a thread crossing, a GIL handoff or a preemption)."""
    total, pids = 0, {pid} | {int(c) for c in _children(pid)}
    for p in pids:
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{p}/task").iterdir():
                with contextlib.suppress(OSError):
                    for line in (task / "status").read_text().splitlines():
                        if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
                            total += int(line.split()[1])
    return total


def _children(pid: int) -> list[str]:
    with contextlib.suppress(OSError):
        return [c for task in Path(f"/proc/{pid}/task").iterdir()
                for c in (task / "children").read_text().split()]
    return []


def _phase(ctx: Any, spec: dict[str, Any], concurrency: int, processes: int) -> tuple[float, float, float, int]:
    """(ops/s, p50 µs, p99 µs, calls with the warm-up's) with `concurrency` sessions over `processes` processes."""
    results = ctx.Queue()
    per = [concurrency // processes + (1 if i < concurrency % processes else 0) for i in range(processes)]
    procs = [ctx.Process(target=_worker, args=(spec, n, results)) for n in per if n]
    for p in procs:
        p.start()
    lat: list[int] = []
    calls, deadline, pending = 0, time.monotonic() + spec["warmup"] + spec["seconds"] + 120, len(procs)
    while pending:
        try:
            n, sessions = results.get(timeout=1)
            calls += n
            lat.extend(x for session in sessions for x in session)
            pending -= 1
        except queue.Empty:
            dead = [p for p in procs if p.exitcode not in (None, 0)]
            if dead or time.monotonic() > deadline:
                for p in procs:
                    p.kill()
                raise RuntimeError(f"a {spec['kind']} load process failed (exit {dead[0].exitcode if dead else '?'})")
    for p in procs:
        p.join(30)
    q = statistics.quantiles(lat, n=100)
    return len(lat) / spec["seconds"], q[49] / 1000, q[98] / 1000, calls


def _measured(ctx: Any, spec: dict[str, Any], args: argparse.Namespace,
              pid: int) -> tuple[tuple[float, float, float, int], float, float]:
    """A phase, the CPU-seconds per 1,000 calls and the context switches per call the server process `pid` spent
    on it."""
    cpu, switches = cpu_seconds(pid), ctx_switches(pid)
    result = _phase(ctx, spec, args.concurrency, args.processes)
    calls = max(1, result[3])
    return result, 1000 * (cpu_seconds(pid) - cpu) / calls, (ctx_switches(pid) - switches) / calls


# --- session set-up --------------------------------------------------------------------------------

SETUP_ROUNDS = 3


def _setup_run(src: Path, server: Any, creds: Credentials, n: int) -> dict[str, list[float]]:
    """tests/bench/setup_times.py with the `kms` package of `src` (a tree), against `server`, in a subprocess."""
    spec = {"api": server.api, "collateral_url": server.info["collateral_url"], "cert": creds.certificate_pem.decode(),
            "key": creds.private_key_pem.decode(), "mrsigner": server.mrsigner.hex(),
            "root": server.root_pem.read_text(), "n": n}
    env = {**os.environ, "PYTHONPATH": str(src), "GLIBC_TUNABLES": "glibc.rtld.optional_static_tls=262144"}
    script = Path(__file__).with_name("setup_times.py")
    out = subprocess.run([sys.executable, str(script)], input=json.dumps(spec), capture_output=True, text=True,
                         env=env, cwd=src, timeout=600, check=True)
    return json.loads(out.stdout)


def _setup_table(after: Any, before: Any, reference: Path, creds: Credentials, n: int) -> None:
    """Session set-up before (the reference tree's SDK and `kms serve`) and after (this tree's), alternating rounds."""
    sides: dict[str, dict[str, list[float]]] = {"before": {}, "after": {}}
    here = Path(__file__).resolve().parents[2]
    per_round = max(2, -(-n // SETUP_ROUNDS))
    for _ in range(SETUP_ROUNDS):
        runs = [("after", here, after)] + ([("before", reference / "src", before)] if before is not None else [])
        for side, src, server in runs:
            for stage, values in _setup_run(src, server, creds, per_round).items():
                sides[side].setdefault(stage, []).extend(values)

    def p(values: list[float], q: int) -> float:
        return statistics.quantiles(values, n=100)[q - 1] * 1000 if len(values) > 1 else float("nan")

    print(f"\nsession set-up, {SETUP_ROUNDS} alternating rounds of {per_round} per side, one at a time, cached "
          "collateral (ms; before = the reference's SDK and `kms serve`; target: p50 <= 10 ms)")
    print(f"  {'stage':32} {'before p50':>10} {'p99':>7}  {'after p50':>9} {'p99':>7}  {'change':>7}")
    for stage, values in sides["after"].items():
        old = sides["before"].get(stage, [])
        b50, a50 = p(old, 50), p(values, 50)
        change = f"{(a50 / b50 - 1) * 100:+6.1f}%" if old else "       "
        print(f"  {stage:32} {b50:10.2f} {p(old, 99):7.2f}  {a50:9.2f} {p(values, 99):7.2f}  {change}")
    print("  (the sum is per set-up: evidence + verification + handshake with the identity probe; KmsClient() "
          "also pins the domain and saves its state; change = after p50 / before p50 - 1)")


def main(argv: list[str] | None = None) -> int:
    from tests.e2e.server import ServerProcess

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per phase (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=16, help="sessions / streams in flight (default 16)")
    parser.add_argument("--processes", type=int, default=min(4, max(1, (os.cpu_count() or 2) // 2)),
                        help="client processes the sessions are spread over")
    parser.add_argument("--setups", type=int, default=30, help="session set-ups to time (default 30; 0: none)")
    parser.add_argument("--no-reference", action="store_true", help="skip the reference revision's server")
    parser.add_argument("--setup-only", action="store_true", help="only the session set-up table")
    args = parser.parse_args(argv)
    ctx = mp.get_context("spawn")
    reference = paths.build_dir() / "reference"
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        server = ServerProcess(Path(tmp) / "data", log_level="info")  # the default level
        stack.callback(server.stop)
        before = None
        if not args.no_reference and (reference / "src" / "build" / "kms_enclave.sigstruct").exists():
            before = ServerProcess(Path(tmp) / "reference", log_level="info", repo=reference / "src")
            stack.callback(before.stop)
        echo_ports = ctx.Queue()
        echo = ctx.Process(target=_echo_server, args=(echo_ports,), daemon=True)
        echo.start()
        stack.callback(echo.terminate)
        echo_target = f"127.0.0.1:{echo_ports.get(timeout=30)}"
        creds = Credentials.generate("bench")
        base = _domain(server, creds, args)
        old = _domain(before, creds, args) if before is not None else None
        revision = (reference / "revision").read_text()[:12] if old is not None else "(none: make reference)"
        if args.setup_only:
            print(f"before = the reference revision {revision}, after = this tree")
            _setup_table(server, before if old is not None else None, reference, creds, args.setups)
            return 0
        print(f"kms serve over loopback, attested sessions vs bare grpc.aio echo; {args.concurrency} sessions "
              f"over {args.processes} client processes, one request in flight per session, "
              f"{args.seconds:g} s per phase, {os.cpu_count()} CPUs shared by clients and servers; before = "
              f"`kms serve` of the reference revision {revision}, after = this tree")
        print(f"{'operation':17} {'before ops/s':>12} {'p50 µs':>7} {'p99 µs':>7} {'CPU s/1k':>8} {'cs/req':>6}  "
              f"{'after ops/s':>11} {'p50 µs':>7} {'p99 µs':>7} {'CPU s/1k':>8} {'cs/req':>6}  "
              f"{'echo ops/s':>10} {'p50 µs':>7} {'CPU s/1k':>8} {'cs/req':>6}  {'before/echo':>11} {'after/echo':>10}")
        for name, kind, payload in (("encrypt 1 KiB", "encrypt", 1024), ("sign Ed25519", "sign-ed25519", 32),
                                    ("sign ECDSA P-256", "sign-p256", 32)):
            b, b_cpu, b_cs = (_measured(ctx, {**old, "kind": kind}, args, before.pid) if old and before
                              else ((0, 0, 0, 0), 0, 0))
            k, k_cpu, k_cs = _measured(ctx, {**base, "kind": kind}, args, server.pid)
            e, e_cpu, e_cs = _measured(ctx, {**base, "kind": "echo", "target": echo_target, "payload": payload}, args,
                                       echo.pid)
            print(f"{name:17} {b[0]:12.0f} {b[1]:7.0f} {b[2]:7.0f} {b_cpu:8.3f} {b_cs:6.1f}  {k[0]:11.0f} {k[1]:7.0f} "
                  f"{k[2]:7.0f} {k_cpu:8.3f} {k_cs:6.1f}  {e[0]:10.0f} {e[1]:7.0f} {e_cpu:8.3f} {e_cs:6.1f}  "
                  f"{b[0] / e[0]:11.2f} {k[0] / e[0]:10.2f}")
        print("(x/echo = ops/s against the echo's; echo payload = the operation's data size; CPU s/1k = the server "
              "process's user+system CPU-seconds per 1,000 requests, cs/req = its threads' context switches "
              "(voluntary + involuntary) per request, both with warm-up and session set-up; "
              "targets: after/echo >= 0.7, p99 <= 3x p50)")
        if args.setups > 0:
            _setup_table(server, before if old is not None else None, reference, creds, args.setups)
    return 0


def _domain(server: Any, creds: Credentials, args: argparse.Namespace) -> dict[str, Any]:
    """Initialize a domain on server with creds as its admin; the load workers' spec (target, keys)."""
    policy = AttestationPolicy.build(mrsigner=server.mrsigner, allow_simulation_insecure=True)
    anchor = TrustAnchor.load(server.root_pem.read_bytes(), simulated=True)
    with KmsClient(server.api, credentials=creds, policy=policy, trust_anchor=anchor, new_domain=True) as admin:
        admin.init([os.urandom(32)], 1, auditor_public_keys=auditor_public())
        keys = {"aes": admin.create_key().key_id, "ed25519": admin.create_key("ED25519").key_id,
                "p256": admin.create_key("ECC_NIST_P256").key_id}
    return {"target": server.api, "cert": creds.certificate_pem, "key": creds.private_key_pem,
            "mrsigner": server.mrsigner, "root": server.root_pem.read_bytes(), "seconds": args.seconds,
            "warmup": args.warmup, **keys}


if __name__ == "__main__":
    raise SystemExit(main())
