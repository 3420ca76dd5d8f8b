"""Ethereum validator file formats on the client: EIP-2335 keystores (parsed into the structured request the
enclave decrypts; the password normalised here) and EIP-3076 slashing-protection interchange (v5) JSON.

Nothing secret is derived here: the KDF, checksum and decryption run in the enclave (docs/ethereum-keys.md).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from kms.client.errors import EthFormatError
from kms.proto.enclave.v1 import boundary_pb2 as pb

INTERCHANGE_VERSION = "5"


def normalize_password(password: str) -> bytes:
    """EIP-2335: NFKD, then drop the C0 (U+0000-U+001F), Delete (U+007F) and C1 (U+0080-U+009F) code points;
    the UTF-8 bytes of what is left are the KDF's password."""
    text = unicodedata.normalize("NFKD", password)
    return "".join(c for c in text if not (ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F)).encode("utf-8")


def _get(obj: Any, *path: str) -> Any:
    for name in path:
        if not isinstance(obj, Mapping) or name not in obj:
            raise EthFormatError(f"keystore: missing {'.'.join(path)}")
        obj = obj[name]
    return obj


def _hex(value: Any, what: str, size: int | None = None) -> bytes:
    if not isinstance(value, str):
        raise EthFormatError(f"{what}: not a hex string")
    text = value[2:] if value.startswith(("0x", "0X")) else value
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise EthFormatError(f"{what}: not a hex string") from None
    if size is not None and len(raw) != size:
        raise EthFormatError(f"{what}: {len(raw)} bytes, expected {size}")
    return raw


def _uint(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise EthFormatError(f"{what}: not an unsigned integer")
    try:
        n = int(value, 10) if isinstance(value, str) else value
    except ValueError:
        raise EthFormatError(f"{what}: not a decimal integer") from None
    if not 0 <= n < 2**64:
        raise EthFormatError(f"{what}: out of range")
    return n


def keystore_request(keystore: Mapping[str, Any], password: str) -> pb.EthImportKeystoreRequest:
    """The structured import request of an EIP-2335 (version 4) keystore. EthFormatError when a field is missing
    or not what EIP-2335 allows; the enclave checks the values again (and the KDF cost bound)."""
    if not isinstance(keystore, Mapping):
        raise EthFormatError("keystore: not a JSON object")
    version = _get(keystore, "version")
    if version != 4:
        raise EthFormatError(f"keystore: version {version!r} is not supported (EIP-2335 version 4)")
    kdf, checksum, cipher = (_get(keystore, "crypto", part) for part in ("kdf", "checksum", "cipher"))
    function = _get(kdf, "function")
    params = _get(kdf, "params")
    req = pb.EthImportKeystoreRequest(kdf_function=str(function), password=normalize_password(password))
    req.dklen = _uint(_get(params, "dklen"), "kdf dklen")
    req.salt = _hex(_get(params, "salt"), "kdf salt")
    if function == "scrypt":
        req.scrypt_n = _uint(_get(params, "n"), "scrypt n")
        req.scrypt_r = _uint(_get(params, "r"), "scrypt r")
        req.scrypt_p = _uint(_get(params, "p"), "scrypt p")
    elif function == "pbkdf2":
        req.pbkdf2_c = _uint(_get(params, "c"), "pbkdf2 c")
        req.pbkdf2_prf = str(_get(params, "prf"))
    else:
        raise EthFormatError(f"keystore: kdf function {function!r} is not supported (scrypt, pbkdf2)")
    req.checksum_function = str(_get(checksum, "function"))
    req.checksum_message = _hex(_get(checksum, "message"), "checksum message")
    req.cipher_function = str(_get(cipher, "function"))
    req.cipher_iv = _hex(_get(cipher, "params", "iv"), "cipher iv")
    req.cipher_message = _hex(_get(cipher, "message"), "cipher message")
    if keystore.get("pubkey"):
        req.pubkey = _hex(keystore["pubkey"], "pubkey", 48)
    return req


# --- EIP-3076 interchange ------------------------------------------------------------------------------------


def _root(value: Any, what: str) -> bytes:
    return _hex(value, what, 32)


def parse_interchange(interchange: Mapping[str, Any]) -> tuple[bytes, list[tuple[bytes, pb.EthSlashingRecord]]]:
    """(genesis_validators_root, [(pubkey, record)]) of an EIP-3076 v5 interchange, minified per key: the highest
    block slot, the highest source and the highest target epoch (EIP-3076's minimal strategy: the enclave only
    raises its watermarks with them). Records of one pubkey listed twice are merged. EthFormatError when
    malformed."""
    try:
        meta = interchange["metadata"]
        version, gvr = meta["interchange_format_version"], _root(meta["genesis_validators_root"], "metadata root")
        data = interchange["data"]
    except (KeyError, TypeError):
        raise EthFormatError("interchange: missing metadata or data") from None
    if version != INTERCHANGE_VERSION:
        raise EthFormatError(f"interchange: format version {version!r} is not {INTERCHANGE_VERSION!r}")
    if not isinstance(data, list):
        raise EthFormatError("interchange: data is not a list")
    maxima: dict[bytes, list[int | None]] = {}
    for entry in data:
        try:
            pubkey = _hex(entry["pubkey"], "pubkey", 48)
            blocks, atts = entry["signed_blocks"], entry["signed_attestations"]
        except (KeyError, TypeError):
            raise EthFormatError("interchange: an entry lacks pubkey, signed_blocks or signed_attestations") from None
        if not isinstance(blocks, list) or not isinstance(atts, list):
            raise EthFormatError("interchange: signed_blocks and signed_attestations must be lists")
        m = maxima.setdefault(pubkey, [None, None, None])
        for b in blocks:
            slot = _uint(_get_field(b, "slot"), "block slot")
            if "signing_root" in b:
                _root(b["signing_root"], "block signing_root")
            m[0] = slot if m[0] is None else max(m[0], slot)
        for a in atts:
            source = _uint(_get_field(a, "source_epoch"), "source_epoch")
            target = _uint(_get_field(a, "target_epoch"), "target_epoch")
            if "signing_root" in a:
                _root(a["signing_root"], "attestation signing_root")
            m[1] = source if m[1] is None else max(m[1], source)
            m[2] = target if m[2] is None else max(m[2], target)
    out = []
    for pubkey, (slot, source, target) in maxima.items():
        rec = pb.EthSlashingRecord(pubkey=pubkey)
        if slot is not None:
            rec.blocks.add(slot=slot)
        if source is not None and target is not None:
            rec.attestations.add(source_epoch=source, target_epoch=target)
        out.append((pubkey, rec))
    return gvr, out


def _get_field(obj: Any, name: str) -> Any:
    if not isinstance(obj, Mapping) or name not in obj:
        raise EthFormatError(f"interchange: an entry lacks {name}")
    return obj[name]


def build_interchange(gvr: bytes, records: Iterable[pb.EthSlashingRecord]) -> dict[str, Any]:
    """EIP-3076 v5 JSON of the enclave's records: the stored recent signatures (with their signing roots) and, where
    the watermark is above them, one entry at the watermark without a signing root (what a minimal importer
    needs to refuse everything the enclave would refuse)."""
    data = []
    for rec in records:
        blocks = [{"slot": str(b.slot), "signing_root": "0x" + b.signing_root.hex()} if b.signing_root
                  else {"slot": str(b.slot)} for b in rec.blocks]
        atts = [{"source_epoch": str(a.source_epoch), "target_epoch": str(a.target_epoch),
                 **({"signing_root": "0x" + a.signing_root.hex()} if a.signing_root else {})}
                for a in rec.attestations]
        w = rec.watermark
        if w.min_block_slot > 0 and all(b.slot < w.min_block_slot - 1 for b in rec.blocks):
            blocks.append({"slot": str(w.min_block_slot - 1)})
        top = (w.min_source_epoch, w.min_target_epoch - 1)
        if w.min_target_epoch > 0 and all(a.target_epoch < top[1] for a in rec.attestations):
            atts.append({"source_epoch": str(top[0]), "target_epoch": str(top[1])})
        data.append({"pubkey": "0x" + rec.pubkey.hex(), "signed_blocks": blocks, "signed_attestations": atts})
    return {"metadata": {"interchange_format_version": INTERCHANGE_VERSION,
                         "genesis_validators_root": "0x" + gvr.hex()}, "data": data}
