"""`python -m kms.validator COMMAND`: the validator commands without the rest of the CLI."""

from __future__ import annotations

import sys

from kms.cli import _Parser
from kms.commands.common import connection_parent
from kms.validator import cli


def main(argv: list[str] | None = None) -> int:
    """Parse and run one validator command; returns the exit code."""
    parser = _Parser(prog="kms validator", description="CometBFT validator signing through the Enclave KMS")
    cli.register(parser, connection_parent())
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
