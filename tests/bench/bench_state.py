"""Benchmark: what state integrity costs, in one run.

- The enclave's own work (build/bench/bench_state, `make bench-state`: the enclave sources with the
  production flags over an in-memory store): a record write through the state log next to the same
  write as a plain put, a read with the index check next to the same read without it, and the
  index's memory (per record and for 1 M records).
- The store's: SQLite `put` (a record, one durable transaction) next to `commit` (the record and its
  state log entry in one durable transaction), both with synchronous=FULL.

Run: `./dev bench` or `.venv/bin/python -m tests.bench.bench_state [--iterations N]`. Figures depend on
the machine and its load; compare the lines of one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from kms.service.store import SqliteStore

REPO = Path(__file__).resolve().parents[2]


def _lat(fn, n: int) -> tuple[float, float]:
    lat = []
    for i in range(n):
        t = time.perf_counter_ns()
        fn(i)
        lat.append((time.perf_counter_ns() - t) / 1e3)
    lat.sort()
    return statistics.median(lat), lat[int(len(lat) * 0.99) - 1]


def store_figures(n: int) -> None:
    blob, entry = os.urandom(600), os.urandom(180)  # a key record and a log entry of typical sizes
    with tempfile.TemporaryDirectory() as tmp, SqliteStore(Path(tmp) / "data") as store:
        put = _lat(lambda i: store.put(f"p{i:08d}", 0, 1, blob), n)
        commit = _lat(lambda i: store.commit(f"c{i:08d}", 0, 1, blob, i + 1, entry), n)
    print(f"{'SQLite, per record (synchronous=FULL)':52} {'p50 us':>9} {'p99 us':>9}")
    print(f"{'put: the record alone':52} {put[0]:9.1f} {put[1]:9.1f}")
    print(f"{'commit: the record and its state log entry':52} {commit[0]:9.1f} {commit[1]:9.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=300)
    args = parser.parse_args(argv)
    subprocess.run(["make", "-s", "bench-state"], cwd=REPO, check=True)
    store_figures(args.iterations)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
