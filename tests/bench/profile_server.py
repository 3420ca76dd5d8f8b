"""`./dev profile --server`: where the server's CPU goes under a bounded load (py-spy samples of `kms serve`).

Run: `./dev profile --server` or `.venv/bin/python -m tests.bench.profile_server [--seconds S] [--concurrency C]`.
Starts `kms serve` on loopback, initializes a domain, and drives Encrypt 1 KiB from C attested sessions (the
harness of tests/bench/bench_service.py, one request in flight per session) for S seconds while py-spy samples
every thread of the server that is on a CPU (`py-spy record --format raw`, idle threads left out). Each sample
is charged to the first phase (RULES, innermost frame first) one of its frames belongs to; the enclave's own
share (TLS records and the request path, inside session_feed) is split further by `./dev profile` in process.
Also prints the server's CPU-seconds and context switches per request over the same window (/proc, the process
tree), by kind of thread.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from kms.attestation import AttestationPolicy, TrustAnchor
from kms.client import Credentials, KmsClient
from tests.auditor import auditor_public
from tests.bench.bench_service import _phase, cpu_seconds

# (phase, substrings of a frame that put a sample in it), innermost match wins
RULES: list[tuple[str, tuple[str, ...]]] = [
    ("persistence: audit and state log (OCALLs, flusher, SQLite)", ("kms/enclave/ocalls.py", "kms/enclave/records.py",
                                                                    "kms/service/store/", "_flush_audit", "sqlite3")),
    ("ECALL: the enclave (TLS records, request path)", ("session_feed (kms/enclave/bridge.py",)),
    ("executor hop (thread pool, contextvars)", ("concurrent/futures/thread.py", "ecall_pool.py", "relay.py")),
    ("gRPC (cygrpc, aio, HTTP/2)", ("grpc/", "cygrpc", "_cython")),
    ("servicer, interceptors, metrics, logging", ("kms/api/", "kms/log.py", "structlog", "prometheus")),
    ("event loop (asyncio)", ("asyncio/",)),
]


def thread_cpu(pid: int) -> tuple[Counter[str], Counter[str]]:
    """CPU-seconds and context switches (voluntary + involuntary) of the server's live threads by kind: the main
    thread runs the event loop, the other Python threads are the ECALL pool, the audit flusher and gRPC's poller,
    the rest are gRPC's own (event_engine, timers)."""
    tick, cpu, switches = os.sysconf("SC_CLK_TCK"), Counter[str](), Counter[str]()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            comm = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            status = (task / "status").read_text().splitlines()
        except OSError:
            continue
        kind = ("main thread: event loop, gRPC aio" if int(task.name) == pid
                else "other Python threads: ECALLs, audit, gRPC poller" if comm.startswith("python")
                else "gRPC core threads (event_engine, timers)")
        cpu[kind] += (int(fields[11]) + int(fields[12])) / tick
        switches[kind] += sum(int(line.split()[1]) for line in status if line.startswith(
            ("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")))
    return cpu, switches


def classify(stack: str) -> str:
    frames = stack.split(";")
    for frame in reversed(frames):  # innermost first
        for phase, needles in RULES:
            if any(n in frame for n in needles):
                return phase
    return "other (interpreter, threads, start-up)"


def main(argv: list[str] | None = None) -> int:
    from tests.e2e.server import ServerProcess

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="sampled seconds (default 10)")
    parser.add_argument("--concurrency", type=int, default=16, help="sessions, one request in flight each")
    parser.add_argument("--processes", type=int, default=2, help="client processes the sessions are spread over")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    args = parser.parse_args(argv)
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        print("py-spy is missing: `.venv/bin/pip install -e '.[test]'` (pinned in pyproject.toml)")
        return 1
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(Path(tmp) / "data", log_level="info")
        try:
            creds = Credentials.generate("profile")
            policy = AttestationPolicy.build(mrsigner=server.mrsigner, allow_simulation_insecure=True)
            anchor = TrustAnchor.load(server.root_pem.read_bytes(), simulated=True)
            with KmsClient(server.api, credentials=creds, policy=policy, trust_anchor=anchor,
                           new_domain=True) as admin:
                admin.init([os.urandom(32)], 1, auditor_public_keys=auditor_public())
                aes = admin.create_key().key_id
            warmup = 2.0
            spec = {"target": server.api, "cert": creds.certificate_pem, "key": creds.private_key_pem,
                    "mrsigner": server.mrsigner, "root": server.root_pem.read_bytes(), "seconds": args.seconds,
                    "warmup": warmup, "aes": aes, "kind": "encrypt"}
            out = Path(tmp) / "pyspy.txt"
            # py-spy starts after the clients' warm-up (sessions set up, caches warm) and samples the window.
            spy_cmd = ["sh", "-c", f"sleep {warmup + 1} && exec {spy} record --pid {server.pid} --rate {args.rate} "
                       f"--duration {int(args.seconds) - 1} --format raw --output {out} --nonblocking"]
            sampler = subprocess.Popen(spy_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            cpu0, (threads0, switches0) = cpu_seconds(server.pid), thread_cpu(server.pid)
            ops, p50, p99, calls = _phase(ctx, spec, args.concurrency, args.processes)
            cpu, (threads, switches) = cpu_seconds(server.pid) - cpu0, thread_cpu(server.pid)
            threads.subtract(threads0)
            switches.subtract(switches0)
            _, err = sampler.communicate(timeout=60)

            if not out.exists():
                print(f"py-spy recorded nothing: {err.strip()[-400:]}")
                return 1
        finally:
            server.stop()
        samples: Counter[str] = Counter()
        for line in out.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if stack and count.isdigit():
                samples[classify(stack)] += int(count)
    total = sum(samples.values()) or 1
    print(f"kms serve, Encrypt 1 KiB, {args.concurrency} sessions over {args.processes} client processes, "
          f"{args.seconds:g} s: {ops:.0f} requests/s, p50 {p50 / 1000:.2f} ms, p99 {p99 / 1000:.2f} ms, "
          f"{os.cpu_count()} CPUs shared by clients and server")
    window = calls  # the CPU window: warm-up, session set-up and the measured seconds
    print(f"server CPU {cpu:.2f} s over the run: {1000 * cpu / window:.3f} CPU-seconds per 1,000 requests, "
          f"{sum(switches.values()) / window:.1f} context switches per request; by thread (CPU, switches/request):")
    for kind, seconds in threads.most_common():
        print(f"  {kind:52} {100 * seconds / (sum(threads.values()) or 1):5.1f} %  {switches[kind] / window:5.1f}")
    print(f"py-spy: {total} samples of the server's busy threads at {args.rate}/s; share per phase:")
    for phase, n in samples.most_common():
        print(f"  {phase:52} {100 * n / total:5.1f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
