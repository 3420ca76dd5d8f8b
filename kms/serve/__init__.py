"""The server's start: the gRPC front end on one data directory, reported to people and to the log.

`kms serve` (kms.commands.serve) turns flags, KMS_* variables and the TOML file into Settings and calls run().
With `processes` above 1, run() is the supervisor of that many workers (kms.serve.supervisor), each of which
is a `kms serve` run() again, told by the supervisor that it is a worker.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
from typing import TYPE_CHECKING

from kms import paths
from kms.config import Settings

if TYPE_CHECKING:
    from kms.api.server import KmsServer


def describe(server: KmsServer) -> list[str]:
    """The start-up summary for people (stdout); the same facts are logged as structured fields (stderr)."""
    ident, addr = server.identity, server.addresses
    assert ident is not None and addr is not None
    lines = [
        f"Enclave KMS {ident.version} serving the gRPC API on {addr.api} (sessions are TLS 1.3 terminated "
        "inside the enclave)",
        f"  health    {addr.health} (plaintext gRPC health; also on the API port)",
        f"  metrics   {'http://' + addr.metrics + '/metrics' if addr.metrics else 'off'}",
        f"  PCCS      {addr.collateral_url or 'none advertised'}{' (simulated)' if addr.sim_pccs else ''}",
        f"  quoting   {server.settings.quoting}",
        f"  MRENCLAVE {ident.mrenclave.hex()}",
        f"  MRSIGNER  {ident.mrsigner.hex()}",
        f"  ISVPRODID {ident.isv_prod_id}  ISVSVN {ident.isv_svn}  debug {str(ident.debug).lower()}",
        f"  data      {server.settings.data_dir}",
    ]
    if ident.simulated:
        lines.append("WARNING: the SGX platform is SIMULATED: it protects NOTHING (development, CI and demos only).")
    verify = f"--server {addr.api} --mrsigner {ident.mrsigner.hex()}"
    if ident.simulated:
        from kms.sim.platform import sim_dir

        verify += f" --simulated-root {sim_dir(server.settings.data_dir) / 'root-ca.pem'} --allow-simulation-insecure"
    if ident.domain_loaded:
        lines += [f"Domain {ident.domain_id.hex()} is initialized and unsealed. For example:",
                  f"  kms key list {verify} [--credentials NAME|DIR]"]
    else:
        lines += ["The domain is NOT initialized. Next, as the first admin (verifies this enclave first; files go to",
                  f"the KMS home {paths.home()}):",
                  "  kms credentials new",
                  "  kms audit keygen   (the auditor's key pair: auditor.key stays with the auditor)",
                  f"  kms admin init {verify} --recovery-keys 3 --auditor-key {paths.auditor_dir() / 'auditor.pub'}"]
    return lines


def serving_fields(server: KmsServer) -> dict[str, object]:
    """The facts of the "serving" log line (a worker hands them to its supervisor)."""
    ident, addr = server.identity, server.addresses
    assert ident is not None and addr is not None
    return dict(listen=addr.api, health_listen=addr.health, metrics_listen=addr.metrics,
                collateral_url=addr.collateral_url, quoting=server.settings.quoting, simulated=ident.simulated,
                initialized=ident.domain_loaded,
                mrenclave=ident.mrenclave.hex(), mrsigner=ident.mrsigner.hex(), isv_prod_id=ident.isv_prod_id,
                isv_svn=ident.isv_svn, enclave_version=ident.version,
                warning="simulated SGX platform: nothing is protected" if ident.simulated else None)


def _started(server: KmsServer) -> None:
    from kms.log import get_logger

    get_logger("kms.serve").info("serving", **serving_fields(server))
    print("\n".join(describe(server)), flush=True)  # for people, on stdout: the JSON log stays on stderr


def _worker_started(server: KmsServer) -> None:
    """A worker: its facts on stdout for the supervisor (one JSON line), and stop when the supervisor is gone."""
    from kms.log import get_logger
    from kms.serve.supervisor import READY_KEY

    fields = serving_fields(server)
    get_logger("kms.serve").info("worker serving", **fields)
    print(json.dumps({READY_KEY: fields}), flush=True)
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            threading.Event().wait(1.0)
        server.request_stop("supervisor gone")

    threading.Thread(target=watch, name="supervisor-watch", daemon=True).start()


def run(settings: Settings) -> int:
    """Serve until SIGTERM/SIGINT: 0 after a clean shutdown, 2 when the server cannot start, 128 + N when a second
    signal N (130: Ctrl-C) stopped it without draining."""
    from kms.serve.supervisor import supervise, worker_index

    worker = worker_index()
    if settings.processes > 1 and worker is None:
        return supervise(settings)
    from kms.enclave.runtime import ensure_static_tls

    ensure_static_tls()  # before any thread: may re-execute this process (docs/simulation.md)
    from kms import log
    from kms.api.server import StartupError
    from kms.api.server import run as serve
    from kms.errors import KmsError

    log.configure(settings.log_level, fields=None if worker is None else {"worker": worker, "pid": os.getpid()})
    log.get_logger("kms.serve").info("starting", settings=settings.public())
    try:
        if worker is not None:
            code = asyncio.run(serve(settings, on_started=_worker_started, reuse_port=True))
        else:
            code = asyncio.run(serve(settings, on_started=_started))
    except (StartupError, KmsError, OSError) as exc:
        log.get_logger("kms.serve").error("start-up failed", error=str(exc), error_type=type(exc).__name__)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if code:
        print("kms serve: stopped at once on the second signal: requests still in flight were cancelled", flush=True)
    return code
