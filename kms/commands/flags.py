"""Checked flag values: argparse types whose errors name the flag, or the KMS_* variable a default came from.

argparse runs a flag's `type` on a string default too, but never checks `choices` against it: a default read
from the environment is a FromEnv string, so that a bad value is refused like the flag's, naming the variable.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
from collections.abc import Callable, Mapping
from typing import TypeVar

_T = TypeVar("_T")
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")
OUTPUTS = ("table", "json")


class FromEnv(str):
    """A default taken from the environment variable `env`."""

    env: str

    def __new__(cls, value: str, env: str) -> FromEnv:
        obj = super().__new__(cls, value)
        obj.env = env
        return obj


def env_default(name: str, default: str | bool | None = None,
                env: Mapping[str, str] | None = None) -> str | bool | None:
    """The environment's value of `name` as a FromEnv default, else `default`."""
    value = (os.environ if env is None else env).get(name)
    return default if value is None else FromEnv(value, name)


def checked(check: Callable[[str], _T]) -> Callable[[str], _T]:
    """An argparse type: check(value), or a usage error that names the variable a default came from
    (argparse names the flag: "argument --output: KMS_OUTPUT='yaml': expected table or json")."""

    def convert(value: str) -> _T:
        try:
            return check(value)
        except ValueError as exc:
            where = f"{value.env}={str(value)!r}: " if isinstance(value, FromEnv) else ""
            raise argparse.ArgumentTypeError(f"{where}{exc}") from None

    convert.__name__ = check.__name__  # argparse's "invalid <name> value" when a check raises something else
    return convert


def truth(value: str) -> bool:
    """A yes/no setting's text: 1/true/yes/on, or 0/false/no/off (or empty)."""
    text = value.strip().lower()
    if text in TRUE or text in FALSE:
        return text in TRUE
    raise ValueError(f"expected 1, true, yes or on (or 0, false, no, off), got {value!r}")


def env_truth(value: bool | str, flag: str) -> bool:
    """A store_true flag whose default came from the environment (a FromEnv string until parsed here)."""
    if isinstance(value, bool):
        return value
    try:
        return truth(value)
    except ValueError as exc:
        where = value.env if isinstance(value, FromEnv) else flag
        raise ValueError(f"{where} (the default of {flag}): {exc}") from None


def output_format(value: str) -> str:
    if value not in OUTPUTS:
        raise ValueError(f"expected {' or '.join(OUTPUTS)}, got {value!r}")
    return value


def server_address(value: str) -> str:
    """A gRPC target: HOST:PORT ([v6]:PORT), port 1..65535; `unix:` and `dns:` targets pass as they are. A
    comma-separated list (`kms agent`'s servers of one domain) has each of its addresses checked."""
    if "," in value:
        for part in value.split(","):
            if part.strip():
                server_address(part.strip())
        return value
    if value.startswith(("unix:", "unix-abstract:", "dns:", "ipv4:", "ipv6:")):
        return value
    host, sep, port = value.rpartition(":")
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not bare or not port.isdigit() or not 1 <= int(port) <= 65535 or (":" in bare and host == bare):
        raise ValueError(f"expected HOST:PORT (port 1..65535), got {value!r}")
    if ":" in bare:
        try:
            ipaddress.IPv6Address(bare)
        except ValueError:
            raise ValueError(f"{bare!r} is not an IPv6 address") from None
    return value


def positive_number(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = 0.0
    if not number > 0 or number == float("inf"):
        raise ValueError(f"expected a positive number of seconds, got {value!r}")
    return number


def uint16(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = -1
    if not 0 <= number <= 65535:
        raise ValueError(f"expected 0..65535, got {value!r}")
    return number


def hex_bytes(size: int) -> Callable[[str], bytes]:
    """Exactly `size` bytes as 2*size hex digits."""

    def parse(value: str) -> bytes:
        try:
            data = bytes.fromhex(value)
        except ValueError:
            data = b""
        if len(data) != size:
            raise ValueError(f"expected {2 * size} hex digits, got {value!r}")
        return data

    parse.__name__ = "hex"
    return parse


def add_output(parser: argparse.ArgumentParser, choices: tuple[str, ...] = OUTPUTS, default: str = "table", *,
               env: bool = True) -> None:
    """--output, with KMS_OUTPUT as its default (checked like the flag) where `env`."""
    if env and choices == OUTPUTS:
        parser.add_argument("--output", type=checked(output_format), choices=choices,
                            default=env_default("KMS_OUTPUT", default),
                            help=f"output format: {' or '.join(choices)} (env KMS_OUTPUT; default {default})")
    else:
        parser.add_argument("--output", choices=choices, default=default,
                            help=f"output format: {' or '.join(choices)} (default {default})")


def one_of(values: tuple[str, ...] | list[str], what: str,
           aliases: Mapping[str, str] | None = None) -> Callable[[str], str]:
    """A name from `values` (or an alias of one), in any case (an enum of the API: key specs, usages, ...)."""

    def parse(value: str) -> str:
        if value.upper() not in values and value.upper() not in (aliases or {}):
            raise ValueError(f"unknown {what} {value!r} (one of: {', '.join(values)})")
        return value.upper()

    parse.__name__ = what
    return parse


def int_range(low: int, high: int) -> Callable[[str], int]:
    """An integer in low..high."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            number = low - 1
        if not low <= number <= high:
            raise ValueError(f"expected {low}..{high}, got {value!r}")
        return number

    parse.__name__ = "int"
    return parse


def hex_text(value: str) -> str:
    """Hex digits (an even number), kept as text."""
    try:
        bytes.fromhex(value)
    except ValueError:
        raise ValueError(f"expected hex digits, got {value!r}") from None
    return value
