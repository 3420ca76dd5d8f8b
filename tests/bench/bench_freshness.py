"""What the domain pin and the freshness check cost, per connection and per request, next to the same client with
them switched off (in this process only), in one run against `kms serve` over loopback.

Per connection the check is: the certificate's domain claim against the pin (a comparison), one get_identity
round trip with the known head, and the state file written (temporary file, fsync, rename, directory fsync)
after the check and on close when the head moved (here it does not: nothing changes between connections; the
write is timed on its own). Per request it is keeping the highest head of the response (in memory).
Rounds alternate (with, without, with, ...) so that the load of the shared machine spreads over both.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from kms.attestation import AttestationPolicy, TrustAnchor
from kms.attestation.pccs import PccsClient
from kms.client import Credentials, KmsClient
from kms.client.pinning import DomainGuard
from kms.client.state import ClientState, StateHead
from kms.proto.enclave.v1 import boundary_pb2 as pb
from tests.auditor import auditor_public


@contextlib.contextmanager
def checks_off() -> Iterator[None]:
    """The client as it was before pinning and freshness: no claim check, no probe, no head kept, no file."""
    saved = (DomainGuard.check_certificate, DomainGuard.check_session, DomainGuard.observe, ClientState.save)
    DomainGuard.check_certificate = lambda self, evidence: evidence.domain_id  # type: ignore[method-assign]
    DomainGuard.check_session = lambda self, domain, call: None  # type: ignore[method-assign]
    DomainGuard.observe = lambda self, response: None  # type: ignore[method-assign]
    ClientState.save = lambda self: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        (DomainGuard.check_certificate, DomainGuard.check_session, DomainGuard.observe, ClientState.save) = saved


def _alternate(rounds: int, per_round: int, fn: Callable[[], object]) -> tuple[list[float], list[float]]:
    """(with, without) durations in seconds, measured in alternating rounds."""
    on: list[float] = []
    off: list[float] = []
    for r in range(2 * rounds):
        target = on if r % 2 == 0 else off
        with contextlib.nullcontext() if r % 2 == 0 else checks_off():
            for _ in range(per_round):
                t = time.perf_counter()
                fn()
                target.append(time.perf_counter() - t)
    return on, off


def _p50(values: list[float], scale: float) -> float:
    return statistics.median(values) * scale


def main(argv: list[str] | None = None) -> int:
    from tests.e2e.server import ServerProcess

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=40, help="connections per side (default 40)")
    parser.add_argument("--requests", type=int, default=2000, help="requests per side (default 2000)")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds per side (default 4)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(Path(tmp) / "data", log_level="info")
        try:
            Credentials.generate("bench").save(Path(tmp) / "creds")
            creds = Credentials.load(Path(tmp) / "creds")  # file-backed state: <creds>/state.json
            policy = AttestationPolicy.build(mrsigner=server.mrsigner, allow_simulation_insecure=True)
            anchor = TrustAnchor.load(server.root_pem.read_bytes(), simulated=True)
            pccs = PccsClient(server.info["collateral_url"])

            def client(**kw: object) -> KmsClient:
                return KmsClient(server.api, credentials=creds, policy=policy, trust_anchor=anchor, collateral=pccs,
                                 **kw)  # type: ignore[arg-type]

            with client(new_domain=True) as admin:
                admin.init([os.urandom(32)], 1, auditor_public_keys=auditor_public())
                key = admin.create_key().key_id
            print(f"kms serve over loopback, one client at a time, {os.cpu_count()} CPUs shared by client and "
                  f"server; state file on {Path(tmp)} (fsync)")
            conn_on, conn_off = _alternate(args.rounds, max(1, args.connections // args.rounds),
                                           lambda: client().close())
            data = os.urandom(1024)
            with client() as c:
                c.encrypt(key, data)
                req_on, req_off = _alternate(args.rounds, max(1, args.requests // args.rounds),
                                             lambda: c.encrypt(key, data))
                known = c.state_head
                assert known is not None
                probe = pb.Request(get_identity=pb.GetIdentityRequest(known_head=known.to_pb()))
                probes = []
                for _ in range(200):
                    t = time.perf_counter()
                    response = c._call(probe)
                    probes.append(time.perf_counter() - t)
                guard = DomainGuard(ClientState())
                t = time.perf_counter()
                for _ in range(100_000):
                    guard.observe(response)
                observe_us = (time.perf_counter() - t) / 100_000 * 1e6
            state, saves = ClientState.load(Path(tmp) / "creds" / "bench-state.json"), []
            for i in range(50):  # a head that moved each time: every save writes
                state.observe(bytes(16), StateHead(i + 1, bytes(32)))
                t = time.perf_counter()
                state.save()
                saves.append(time.perf_counter() - t)
            on, off = _p50(conn_on, 1e3), _p50(conn_off, 1e3)
            print(f"{'':44} {'with':>9} {'without':>9} {'cost':>9}")
            print(f"{'per connection: KmsClient() + close, p50 ms':44} {on:9.2f} {off:9.2f} {on - off:+9.2f}"
                  f"   ({len(conn_on)} + {len(conn_off)} connections)")
            on, off = _p50(req_on, 1e6), _p50(req_off, 1e6)
            print(f"{'per request: encrypt 1 KiB, p50 µs':44} {on:9.0f} {off:9.0f} {on - off:+9.0f}"
                  f"   ({len(req_on)} + {len(req_off)} requests)")
            print(f"  of which, per connection: the get_identity probe p50 {_p50(probes, 1e3):.2f} ms; and when the "
                  f"head moved, a state.json write p50 {_p50(saves, 1e3):.2f} ms (after the check, on close)")
            print(f"  of which, per request: keeping the response's head {observe_us:.1f} µs (in process; the "
                  "end-to-end difference above is mostly the machine's noise)")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    from kms.enclave.runtime import ensure_static_tls

    ensure_static_tls()
    raise SystemExit(main())
