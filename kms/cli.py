"""Command-line entry point: `kms <group> <command>`; every group's front end lives in kms.commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from kms import commands
from kms.commands import attest, audit, enclave, serve, sim, validator
from kms.commands.common import connection_parent


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 1 (argparse's default 2 means "server or verification error" here).

    Every group's and command's parser is of this class: argparse's subparsers take their parent's class.
    """

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """Assemble the parser from the groups, in the order `kms --help` lists them."""
    parser = _Parser(prog="kms", description="Enclave KMS")
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
        return 130
    except BrokenPipeError:
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
