"""Command-line entry point: `kms <group> <command>`; each group registers its own subcommands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 1 (argparse's default 2 means "server or verification error" here)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """Assemble the parser from the groups; imports stay local so one group's deps never block another."""
    parser = _Parser(prog="kms", description="Enclave KMS")
    groups = parser.add_subparsers(dest="group", required=True, metavar="GROUP", parser_class=_Parser)

    from kms.enclave import cli as enclave_cli

    enclave_cli.register(groups.add_parser("enclave", help="build, sign, measure and load the enclave"))
    from kms import serve

    serve.register(groups.add_parser("serve", help="start the enclave on a data directory and report it"))
    from kms.commands import attest

    attest.register(groups.add_parser("attest", help="verify DCAP quotes and RA-TLS certificates"))
    from kms import audit

    audit.register(groups.add_parser("audit", help="export and verify the signed audit chain"))
    from kms.sim import cli as sim_cli

    sim_cli.register(groups.add_parser("sim", help="simulated SGX platform services: PKI, QE, collateral, PCCS"))
    from kms import commands

    commands.register(groups)
    from kms.commands.common import connection_parent
    from kms.validator import cli as validator_cli

    validator_group = groups.add_parser("validator", help="CometBFT validator signing: run, status, create, import")
    validator_cli.register(validator_group, connection_parent())
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
