"""Command-line entry point: `kms <group> <command>`; every group's front end lives in kms.commands."""

from __future__ import annotations

import os

# gRPC's C core writes its own log lines (E1203 12:00:00 ... add_port.cc] ...) straight to the terminal; what they
# say reaches the user as the command's one-line error instead. Read once, when grpc loads: so before any import
# below. GRPC_VERBOSITY=ERROR (or DEBUG) in the environment brings them back.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from kms import __version__, commands
from kms.commands import attest, audit, enclave, serve, sim, validator
from kms.commands.common import connection_parent


class _Parser(argparse.ArgumentParser):
    """Usage errors are one line on stderr and exit 1 (argparse's default 2 means "server or verification
    error" here, and its usage block buries the message).

    Every group's and command's parser is of this class: argparse's subparsers take their parent's class.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(1, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    """Assemble the parser from the groups, in the order `kms --help` lists them."""
    parser = _Parser(prog="kms", description="Enclave KMS")
    parser.add_argument("--version", action="version", version=f"kms (Enclave KMS) {__version__}",
                        help="print the version and exit")
    groups = parser.add_subparsers(dest="group", required=True, metavar="GROUP", parser_class=_Parser)
    enclave.register(groups.add_parser("enclave", help="build, sign, measure and load the enclave"))
    serve.register(groups.add_parser("serve", help="start the enclave on a data directory and report it"))
    attest.register(groups.add_parser("attest", help="verify DCAP quotes and RA-TLS certificates"))
    audit.register(groups.add_parser("audit", help="export and verify the signed audit chain"))
    sim.register(groups.add_parser("sim", help="simulated SGX platform services: PKI, QE, collateral, PCCS"))
    commands.register(groups)
    validator.register(groups.add_parser("validator", help="CometBFT validator signing: run, status, create, import"),
                       connection_parent())
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse argv and run the chosen command; the exit code is 0 ok, 1 usage/local, 2 server/verification."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("kms: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`kms key list | head`): no second error when stdout is flushed
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:  # a file the command was given: one line that names it, never a traceback
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"kms: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # the last resort of every command (KMS_DEBUG=1 shows the traceback)
        if os.environ.get("KMS_DEBUG"):
            raise
        print(f"kms: error: unexpected {type(exc).__name__}: {exc} (set KMS_DEBUG=1 for details)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
