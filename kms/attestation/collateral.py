"""Collateral: types, the collateral JSON file format, and PCS response decoding."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from kms.attestation.errors import CollateralError, CollateralFetchError, Step
from kms.attestation.pck import PckCa

_FORMAT = Step.COLLATERAL_FORMAT
_HEX = re.compile(r"^(?:[0-9a-fA-F]{2})+$")
_FIELDS = (
    "pck_crl_issuer_chain", "root_ca_crl", "pck_crl", "tcb_info_issuer_chain", "tcb_info",
    "tcb_info_signature", "qe_identity_issuer_chain", "qe_identity", "qe_identity_signature",
)


@dataclass(frozen=True)
class SignedDocument:
    """A TCB Info or QE Identity: the exact signed JSON object text and its raw r||s signature."""

    body: bytes
    signature: bytes


@dataclass(frozen=True)
class Collateral:
    """The verification collateral of `sgx_ql_qve_collateral_t`, parsed but NOT yet verified."""

    pck_crl_issuer_chain: tuple[x509.Certificate, ...]
    root_ca_crl: x509.CertificateRevocationList
    pck_crl: x509.CertificateRevocationList
    tcb_info_issuer_chain: tuple[x509.Certificate, ...]
    tcb_info: SignedDocument
    qe_identity_issuer_chain: tuple[x509.Certificate, ...]
    qe_identity: SignedDocument

    def collateral_for(self, fmspc: bytes, ca: PckCa, *, at: datetime) -> Collateral:
        """A fixed collateral set serves every request; the verifier checks that it fits."""
        return self

    def next_update(self) -> datetime | None:
        """Earliest nextUpdate of the CRLs and JSON documents (unverified: a cache hint only)."""
        dates = [d for d in (self.root_ca_crl.next_update_utc, self.pck_crl.next_update_utc) if d]
        for doc in (self.tcb_info, self.qe_identity):
            try:
                dates.append(datetime.fromisoformat(json.loads(doc.body)["nextUpdate"]))
            except (ValueError, KeyError, TypeError):
                return None
        return min(dates) if len(dates) == 4 else None


class CollateralSource(Protocol):
    """Anything that yields collateral for a platform: a Collateral, a PCCS client, a cache."""

    def collateral_for(self, fmspc: bytes, ca: PckCa, *, at: datetime) -> Collateral: ...


def _error(message: str) -> CollateralError:
    return CollateralError(_FORMAT, message)


def decode_chain(pem: str | bytes, what: str) -> tuple[x509.Certificate, ...]:
    """PEM certificates (issuer chains come URL-decoded from headers or as file text)."""
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        certs = tuple(x509.load_pem_x509_certificates(data))
    except ValueError as exc:
        raise _error(f"{what} is not a PEM certificate chain: {exc}") from exc
    return certs


def decode_crl(data: str | bytes, what: str) -> x509.CertificateRevocationList:
    """A CRL given as DER, PEM, or hex text of DER (PCCS rootcacrl; collateral file v3.0)."""
    raw = data.encode() if isinstance(data, str) else bytes(data)
    stripped = raw.strip()
    try:
        if stripped.startswith(b"-----BEGIN"):
            return x509.load_pem_x509_crl(stripped)
        if _HEX.match(stripped.decode("ascii", "replace")):
            return x509.load_der_x509_crl(bytes.fromhex(stripped.decode("ascii")))
        return x509.load_der_x509_crl(raw)
    except ValueError as exc:
        raise _error(f"{what} is not a CRL in DER, PEM or hex: {exc}") from exc


def decode_signature(text: str, what: str) -> bytes:
    if not isinstance(text, str) or not _HEX.match(text) or len(text) != 128:
        raise _error(f"{what} is not 128 hex digits (r||s)")
    return bytes.fromhex(text)


def split_signed_response(body: bytes, key: str) -> SignedDocument:
    """From a PCS response `{"<key>":{...},"signature":"..."}`, keep the exact bytes of the object."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _error(f"{key} response is not UTF-8") from exc
    decoder = json.JSONDecoder()
    members: dict[str, tuple[int, int, Any]] = {}
    pos = _skip(text, 0)
    if text[pos : pos + 1] != "{":
        raise _error(f"{key} response is not a JSON object")
    pos = _skip(text, pos + 1)
    try:
        while text[pos : pos + 1] != "}":
            name, pos = decoder.raw_decode(text, pos)
            pos = _skip(text, pos)
            if not isinstance(name, str) or text[pos : pos + 1] != ":" or name in members:
                raise ValueError("bad or repeated member name")
            start = _skip(text, pos + 1)
            value, pos = decoder.raw_decode(text, start)
            members[name] = (start, pos, value)
            pos = _skip(text, pos)
            if text[pos : pos + 1] == ",":
                pos = _skip(text, pos + 1)
            elif text[pos : pos + 1] != "}":
                raise ValueError("expected ',' or '}'")
    except (ValueError, IndexError) as exc:
        raise _error(f"{key} response is not valid JSON: {exc}") from exc
    if _skip(text, pos + 1) != len(text) or set(members) != {key, "signature"}:
        raise _error(f"{key} response must hold exactly {key!r} and 'signature'")
    start, end, _ = members[key]
    if text[start] != "{":
        raise _error(f"{key} is not a JSON object")
    return SignedDocument(text[start:end].encode("utf-8"), decode_signature(members["signature"][2], key))


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def collateral_from_parts(
    *,
    pck_crl_issuer_chain: str | bytes,
    root_ca_crl: str | bytes,
    pck_crl: str | bytes,
    tcb_info_issuer_chain: str | bytes,
    tcb_info: SignedDocument,
    qe_identity_issuer_chain: str | bytes,
    qe_identity: SignedDocument,
) -> Collateral:
    """Build Collateral from PCS/PCCS-style pieces (chains PEM; CRLs DER, PEM or hex)."""
    return Collateral(
        pck_crl_issuer_chain=decode_chain(pck_crl_issuer_chain, "pck_crl_issuer_chain"),
        root_ca_crl=decode_crl(root_ca_crl, "root_ca_crl"),
        pck_crl=decode_crl(pck_crl, "pck_crl"),
        tcb_info_issuer_chain=decode_chain(tcb_info_issuer_chain, "tcb_info_issuer_chain"),
        tcb_info=tcb_info,
        qe_identity_issuer_chain=decode_chain(qe_identity_issuer_chain, "qe_identity_issuer_chain"),
        qe_identity=qe_identity,
    )


def parse_collateral_json(text: str | bytes) -> Collateral:
    """Read the collateral JSON format of vectors/dcap/dcap-qvl/sgx_quote_collateral.json."""
    try:
        obj = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _error(f"collateral file is not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise _error("collateral file is not a JSON object")
    missing = [f for f in _FIELDS if not isinstance(obj.get(f), str)]
    if missing:
        raise _error(f"collateral file lacks string fields: {', '.join(missing)}")
    return collateral_from_parts(
        pck_crl_issuer_chain=obj["pck_crl_issuer_chain"],
        root_ca_crl=obj["root_ca_crl"],
        pck_crl=obj["pck_crl"],
        tcb_info_issuer_chain=obj["tcb_info_issuer_chain"],
        tcb_info=SignedDocument(
            obj["tcb_info"].encode("utf-8"), decode_signature(obj["tcb_info_signature"], "tcb_info_signature")
        ),
        qe_identity_issuer_chain=obj["qe_identity_issuer_chain"],
        qe_identity=SignedDocument(
            obj["qe_identity"].encode("utf-8"),
            decode_signature(obj["qe_identity_signature"], "qe_identity_signature"),
        ),
    )


def load_collateral_json(path: str | Path) -> Collateral:
    """Read a collateral JSON file (see parse_collateral_json)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CollateralFetchError(f"cannot read collateral file {path}: {exc}") from exc
    return parse_collateral_json(data)


def _pem(chain: tuple[x509.Certificate, ...]) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in chain)


def dump_collateral_json(collateral: Collateral) -> str:
    """Write collateral in the same JSON format (CRLs as hex DER, signatures as hex r||s)."""
    der = serialization.Encoding.DER
    obj = {
        "pck_crl_issuer_chain": _pem(collateral.pck_crl_issuer_chain),
        "root_ca_crl": collateral.root_ca_crl.public_bytes(der).hex(),
        "pck_crl": collateral.pck_crl.public_bytes(der).hex(),
        "tcb_info_issuer_chain": _pem(collateral.tcb_info_issuer_chain),
        "tcb_info": collateral.tcb_info.body.decode("utf-8"),
        "tcb_info_signature": collateral.tcb_info.signature.hex(),
        "qe_identity_issuer_chain": _pem(collateral.qe_identity_issuer_chain),
        "qe_identity": collateral.qe_identity.body.decode("utf-8"),
        "qe_identity_signature": collateral.qe_identity.signature.hex(),
    }
    return json.dumps(obj, indent=2) + "\n"
