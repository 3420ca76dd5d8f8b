"""The enclave's HPKE (enclave/src/crypto_hpke.c: RFC 9180 base mode, DHKEM(X25519, HKDF-SHA256),
HKDF-SHA256, AES-256-GCM), through enclave/tests/test_hpke.c built with ASan + UBSan:

- the CFRG's published test vector for exactly this suite and mode (kem 0x0020, kdf 0x0001, aead
  0x0002, mode 0), read at test time from pyca's `cryptography-vectors` package (a test dependency;
  the vectors are never copied into this repository): the enclave's seal with the vector's
  ephemeral key gives the vector's enc and ciphertext;
- interoperability: what the enclave seals with a fresh ephemeral key opens with pyca/cryptography's
  own HPKE (`hpke.Suite(...).decrypt`), for the info layout the audit epochs use, and not with a
  wrong key or info.

Without the vectors package the known-answer test skips, except under CI=true, where it fails.
"""

from __future__ import annotations

import json
import os
import subprocess
from importlib import resources
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric import x25519

REPO = Path(__file__).resolve().parents[2]
BINARY = REPO / "build" / "test" / "test_hpke"
SUITE = (0x0020, 0x0001, 0x0002)


@pytest.fixture(scope="module")
def binary() -> Path:
    proc = subprocess.run(["make", str(BINARY.relative_to(REPO))], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, f"make failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return BINARY


def _vectors() -> list[dict]:
    try:
        text = resources.files("cryptography_vectors").joinpath("HPKE/test-vectors.json").read_text()
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        reason = f"the HPKE test vectors (pip package cryptography-vectors) are not installed: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " (CI=true: they are required)")
        pytest.skip(reason)
    return [v for v in json.loads(text) if v["mode"] == 0 and (v["kem_id"], v["kdf_id"], v["aead_id"]) == SUITE]


def test_rfc9180_vector_for_our_suite(binary: Path) -> None:
    vectors = _vectors()
    assert vectors, "the vector file has no base-mode DHKEM(X25519)/HKDF-SHA256/AES-256-GCM vector"
    for v in vectors:
        first = v["encryptions"][0]  # single-shot SealBase is the context's first message (sequence 0)
        assert first["nonce"] == v["base_nonce"]
        proc = subprocess.run([str(binary), "--kat", v["skEm"], v["pkRm"], v["info"], first["aad"], first["pt"],
                               v["enc"], first["ct"]], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout.strip().endswith("4 passed, 0 failed")


def _raw(key: x25519.X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _seal(binary: Path, pub: bytes, info: bytes, pt: bytes, aad: bytes = b"") -> bytes:
    proc = subprocess.run([str(binary), "--seal", pub.hex(), info.hex(), aad.hex(), pt.hex()], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    return bytes.fromhex(proc.stdout.strip())


def test_pyca_opens_what_the_enclave_seals(binary: Path) -> None:
    suite = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
    auditor = x25519.X25519PrivateKey.generate()
    # The audit epoch layout: label || domain id || epoch seq (docs/formats.md), a 32-byte epoch key.
    info = b"enclave-kms audit epoch v1" + bytes(range(16)) + (7).to_bytes(8, "big")
    secret = os.urandom(32)
    sealed = _seal(binary, _raw(auditor), info, secret)
    assert len(sealed) == 32 + 32 + 16
    assert suite.decrypt(sealed, auditor, info=info) == secret
    again = _seal(binary, _raw(auditor), info, secret)
    assert again[:32] != sealed[:32] and suite.decrypt(again, auditor, info=info) == secret  # fresh ephemeral key
    for pt in (b"", os.urandom(1), os.urandom(300)):
        assert suite.decrypt(_seal(binary, _raw(auditor), b"", pt), auditor) == pt
    with pytest.raises(Exception):  # another info (another domain or epoch) does not open
        suite.decrypt(sealed, auditor, info=info[:-1] + b"\x08")
    with pytest.raises(Exception):  # nor does another key
        suite.decrypt(sealed, x25519.X25519PrivateKey.generate(), info=info)
