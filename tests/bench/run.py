"""`./dev bench`: run every benchmark of the project, one after the other."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ["tests.bench.bench_enclave", "tests.bench.bench_audit", "tests.bench.bench_verify",
              "tests.bench.bench_service", "tests.bench.bench_validator", "tests.bench.bench_eth",
              "tests.bench.bench_eth_http", "tests.bench.bench_kms_ops",
              "tests.bench.bench_state", "tests.bench.bench_freshness",
              "tests.bench.bench_envelope", "tests.bench.bench_agent", "tests.bench.bench_pkcs11",
              "tests.bench.bench_store", "tests.bench.bench_cluster"]


def main() -> int:
    from kms.enclave.runtime import ensure_static_tls

    ensure_static_tls()  # enclave images need static TLS sized at process start
    for name in BENCHMARKS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError:
            continue
        print(f"\n== {name}")
        module.main([])
    return 0


if __name__ == "__main__":
    sys.exit(main())
