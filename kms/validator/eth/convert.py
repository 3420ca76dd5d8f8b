"""Web3Signer JSON values -> remerkleable SSZ values, strictly: a malformed field is a RequestError naming it.

The JSON forms are the beacon API's: uintN as a decimal string (a JSON integer is accepted too, as Web3Signer's
parser does), byte vectors and lists as 0x-hex of exactly their length, bitfields as 0x-hex of their SSZ
encoding, containers as objects with exactly their (snake_case) fields.
"""

from __future__ import annotations

from typing import Any

from remerkleable.basic import uint
from remerkleable.bitfields import Bitlist, Bitvector
from remerkleable.byte_arrays import ByteList, ByteVector
from remerkleable.complex import Container, List, Vector
from remerkleable.core import View

from kms.errors import KmsError

_HEX = frozenset("0123456789abcdefABCDEF")


class RequestError(KmsError):
    """The HTTP request is malformed (HTTP 400); nothing was sent to the KMS. The message names the field."""


def hex_bytes(value: Any, where: str, length: int | None = None, limit: int | None = None) -> bytes:
    """0x-prefixed hex, of exactly `length` bytes or at most `limit`."""
    if not isinstance(value, str) or not value.startswith("0x") or len(value) % 2 or not _HEX.issuperset(value[2:]):
        raise RequestError(f"{where}: expected 0x-prefixed hex with an even number of digits")
    data = bytes.fromhex(value[2:])
    if length is not None and len(data) != length:
        raise RequestError(f"{where}: expected {length} bytes, got {len(data)}")
    if limit is not None and len(data) > limit:
        raise RequestError(f"{where}: at most {limit} bytes, got {len(data)}")
    return data


def integer(value: Any, where: str, bits: int = 64) -> int:
    """A uintN as a decimal string (or a JSON integer), in range."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise RequestError(f"{where}: expected an unsigned integer as a decimal string")
    if isinstance(value, str) and not (value.isascii() and value.isdigit() and len(value) <= 20):
        raise RequestError(f"{where}: expected an unsigned integer as a decimal string")
    number = int(value)
    if not 0 <= number < 2**bits:
        raise RequestError(f"{where}: out of range for uint{bits}")
    return number


def fields(value: Any, where: str, names: set[str] | frozenset[str], optional: frozenset[str] = frozenset()) -> dict:
    """A JSON object with exactly `names` (plus any of `optional`)."""
    if not isinstance(value, dict):
        raise RequestError(f"{where}: expected a JSON object")
    missing = set(names) - set(value)
    unknown = set(value) - set(names) - optional
    if missing:
        raise RequestError(f"{where}: missing field(s) {', '.join(sorted(missing))}")
    if unknown:
        raise RequestError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    return value


def from_json(typ: type[View], value: Any, where: str) -> View:
    """The SSZ value of type `typ` that `value` denotes; RequestError otherwise."""
    if issubclass(typ, uint):
        return typ(integer(value, where, typ.type_byte_length() * 8))
    if issubclass(typ, ByteVector):
        return typ(hex_bytes(value, where, length=typ.type_byte_length()))
    if issubclass(typ, ByteList):
        return typ(hex_bytes(value, where, limit=typ.limit()))
    if issubclass(typ, Bitlist | Bitvector):
        try:
            return typ.decode_bytes(hex_bytes(value, where))
        except Exception as exc:  # remerkleable raises a plain Exception for a bad delimiter or length
            raise RequestError(f"{where}: not an SSZ {typ.type_repr()}: {exc}") from None
    if issubclass(typ, Container):
        obj = fields(value, where, frozenset(typ.fields()))
        return typ(**{name: from_json(t, obj[name], f"{where}.{name}") for name, t in typ.fields().items()})
    if issubclass(typ, List | Vector):
        if not isinstance(value, list):
            raise RequestError(f"{where}: expected a JSON array")
        count = typ.limit() if issubclass(typ, List) else typ.vector_length()
        if len(value) > count or (issubclass(typ, Vector) and len(value) != count):
            raise RequestError(f"{where}: expected {'at most ' if issubclass(typ, List) else ''}{count} items")
        element = typ.element_cls()
        return typ(*(from_json(element, v, f"{where}[{i}]") for i, v in enumerate(value)))
    raise TypeError(f"no JSON form for {typ}")  # pragma: no cover - a type this module does not declare
