"""`kms sim`: provision the simulated platform, set its TCB, revoke, write collateral, run the PCCS."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from kms import paths
from kms.commands.flags import add_output, checked, uint16
from kms.sim.collateral import build_collateral
from kms.sim.errors import SimError
from kms.sim.levels import TCB_LEVELS
from kms.sim.pki import CA_TYPES, CRL_NAMES
from kms.sim.platform import SimPlatform

EXIT_OK, EXIT_LOCAL = 0, 1
WARNING = "SIMULATED SGX platform services: for development and CI only, they protect nothing"


def register(group: argparse.ArgumentParser) -> None:
    """Add init, set-tcb, revoke, collateral and pccs to the `kms sim` group."""
    subparsers = group.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str, func: Any) -> argparse.ArgumentParser:
        parser = subparsers.add_parser(name, help=help_text, description=help_text)
        parser.add_argument("--data-dir", type=Path, default=paths.server_data_dir(),
                            help="data directory; the platform lives in DIR/sgx-sim (default: %(default)s)")
        parser.set_defaults(func=func)
        return parser

    init = command("init", "provision the simulated PKI (idempotent) and show the platform", run_init)
    init.add_argument("--pck-ca", choices=CA_TYPES, help="CA that issues the PCK leaf (default: processor)")
    add_output(init)
    tcb = command("set-tcb", "move the simulated platform to a TCB level (restart enclaves afterwards)",
                  run_set_tcb)
    tcb.add_argument("level", choices=[level.status for level in TCB_LEVELS], metavar="LEVEL",
                     help=", ".join(level.status for level in TCB_LEVELS))
    tcb.add_argument("--qe-svn", type=int, help="ISVSVN of the simulated QE (8 UpToDate, 6 and 4 OutOfDate, 2 Revoked)")
    revoke = command("revoke", "revoke a certificate on the simulated CRLs", run_revoke)
    what = revoke.add_mutually_exclusive_group(required=True)
    what.add_argument("--pck", action="store_true", help="the current PCK leaf (on its CA's CRL)")
    what.add_argument("--ca", choices=CA_TYPES, help="an intermediate CA (on the root CA CRL)")
    what.add_argument("--serial", metavar="HEX", type=checked(_serial),
                      help="any serial number, on the CRL named by --crl")
    what.add_argument("--clear", action="store_true", help="empty every CRL")
    revoke.add_argument("--crl", choices=CRL_NAMES, help="the CRL for --serial")
    coll = command("collateral", "write collateral JSON (the dcap-qvl sgx_quote_collateral.json format)",
                   run_collateral)
    coll.add_argument("--out", type=Path, required=True, metavar="FILE", help="the collateral JSON file to write")
    coll.add_argument("--ca", choices=CA_TYPES, help="PCK CRL of this CA (default: the platform's PCK CA)")
    pccs = command("pccs", "serve collateral at the PCS v3/v4 paths on loopback until SIGINT/SIGTERM", run_pccs)
    pccs.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    pccs.add_argument("--port", type=checked(uint16), default=8081, help="port (default 8081, as a PCCS; 0 picks one)")


def _fail(exc: BaseException | str) -> int:
    print(f"error: {exc}", file=sys.stderr)
    return EXIT_LOCAL


def _describe(platform: SimPlatform) -> dict[str, Any]:
    leaf = platform.pck_chain()[0]
    level = platform.tcb_level()
    return {
        "directory": str(platform.directory),
        "root_certificate": str(platform.directory / "root-ca.pem"),
        "root_subject": platform.root.subject.rfc4514_string(),
        "fmspc": platform.fmspc.hex().upper(),
        "pce_id": platform.pce_id.hex().upper(),
        "pck_ca": platform.pck_ca(),
        "pck_serial": f"{leaf.serial_number:x}",
        "cpusvn": platform.cpusvn().hex(),
        "pcesvn": platform.pcesvn(),
        "qe_isvsvn": platform.qe_isvsvn(),
        "tcb_level": level.status if level else "below every level (TCB not supported)",
    }


def run_init(args: argparse.Namespace) -> int:
    try:
        info = _describe(SimPlatform(args.data_dir, pck_ca=args.pck_ca))
    except SimError as exc:
        return _fail(exc)
    print(f"WARNING: {WARNING}", file=sys.stderr)
    if args.output == "json":
        print(json.dumps(info, indent=2))
    else:
        print("\n".join(f"{k}: {v}" for k, v in info.items()))
    return EXIT_OK


def run_set_tcb(args: argparse.Namespace) -> int:
    try:
        platform = SimPlatform(args.data_dir)
        level = platform.set_tcb(args.level, qe_isvsvn=args.qe_svn)
        platform.pck_chain()
    except SimError as exc:
        return _fail(exc)
    print(f"TCB level {level.status}: CPUSVN {level.cpusvn.hex()}, PCESVN {level.pcesvn}"
          + (f", QE ISVSVN {args.qe_svn}" if args.qe_svn is not None else ""))
    print("restart enclaves on this data directory: they read the CPUSVN when they start")
    return EXIT_OK


def run_revoke(args: argparse.Namespace) -> int:
    if args.serial is not None and args.crl is None:
        print("error: --serial needs --crl root|processor|platform", file=sys.stderr)
        return EXIT_LOCAL
    try:
        platform = SimPlatform(args.data_dir)
        if args.clear:
            platform.clear_revocations()
            print("every simulated CRL is empty")
            return EXIT_OK
        if args.pck:
            crl, serial = platform.pck_ca(), platform.revoke_pck()
        elif args.ca is not None:
            crl, serial = "root", platform.revoke_intermediate(args.ca)
        else:
            crl, serial = args.crl, args.serial
            platform.revoke(crl, serial)
    except (ValueError, SimError) as exc:
        return _fail(exc)
    print(f"revoked serial {serial:x} on the {crl} CRL")
    return EXIT_OK


def run_collateral(args: argparse.Namespace) -> int:
    try:
        build_collateral(SimPlatform(args.data_dir), ca=args.ca).write_json(args.out)
    except SimError as exc:
        return _fail(exc)
    print(f"wrote {args.out} (valid 30 days)")
    return EXIT_OK


def _serial(value: str) -> int:
    try:
        return int(value, 16)
    except ValueError:
        raise ValueError(f"expected a hex serial number, got {value!r}") from None


def run_pccs(args: argparse.Namespace) -> int:
    from kms.sim.pccs import serve

    try:
        server = serve(args.data_dir, args.host, args.port)
    except SimError as exc:
        return _fail(f"--host/--port: {exc}")
    except OSError as exc:
        return _fail(f"--host {args.host} --port {args.port}: {exc.strerror or exc}")
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    print(f"WARNING: {WARNING}", file=sys.stderr)
    print(f"simulated PCCS at {server.api_url(4)} (and {server.api_url(3)})", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return EXIT_OK

