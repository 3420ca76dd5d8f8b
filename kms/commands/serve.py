"""`kms serve`: one flag per setting (kms.config), then the server on one data directory (kms.serve)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Mapping

from kms import serve
from kms.config import CONFIG_ENV, ENV_PREFIX, FIELDS, ConfigError, Settings, load_settings, setting_type


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per setting (default None: not given), plus --config."""
    parser.add_argument("--config", metavar="FILE", help=f"TOML settings file (env {CONFIG_ENV})")
    for name, f in FIELDS.items():
        flag = "--" + name.replace("_", "-")
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]
        text = f"{f.metadata['help']} (env {ENV_PREFIX}{name.upper()}; default {default!s})"
        if setting_type(name) is bool:
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            parser.add_argument(flag, dest=name, default=None, metavar=name.upper(), help=text)


def settings_from_args(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> Settings:
    """The Settings for parsed `kms serve` arguments."""
    return load_settings(args.config, env, {name: getattr(args, name, None) for name in FIELDS})


def register(parser: argparse.ArgumentParser) -> None:
    """Add the serve flags (one per setting, see docs/operations.md) to its parser."""
    add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Validate the settings (exit 1 naming the bad one), then serve: 0 after a clean shutdown, 2 on a failure."""
    try:
        settings = settings_from_args(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return serve.run(settings)
