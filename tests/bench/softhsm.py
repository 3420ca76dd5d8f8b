"""SoftHSM2 through PKCS#11 (python-pkcs11), the software HSM baseline of tests/bench/bench_enclave.py.

A throwaway token in a temporary directory (SOFTHSM2_CONF set before the library is loaded, the token
initialized with Debian's `softhsm2-util`), session keys generated in it, and the same operations the
enclave is measured on: AES-256-GCM of 1 KiB with a fresh 12-byte IV, Ed25519 (CKM_EDDSA), ECDSA P-256
over SHA-256 (CKM_ECDSA of a hashlib digest: SoftHSM 2.6 has no CKM_ECDSA_SHA256), and their
verifications. `./dev bench` installs `softhsm2` when root.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")
PIN = "1234"


def missing() -> str | None:
    """Why SoftHSM2 cannot be measured here, or None."""
    if not MODULE.exists() or shutil.which("softhsm2-util") is None:
        return "SoftHSM2 is not installed (Debian package softhsm2)"
    try:
        import pkcs11  # noqa: F401
    except ImportError:
        return "python-pkcs11 is not installed (.venv: pip install -e '.[test]')"
    return None


@contextmanager
def softhsm_ops(tmp: Path, data: bytes, msg: bytes) -> Iterator[dict[str, Callable[[], object]]]:
    """The operations, by bench_enclave's names, on keys in a fresh token under tmp."""
    import pkcs11
    from pkcs11 import Attribute, KeyType, Mechanism
    from pkcs11.mechanisms import GCMParams
    from pkcs11.util.ec import encode_named_curve_parameters

    (tmp / "tokens").mkdir()
    conf = tmp / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tmp / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "bench", "--so-pin", PIN, "--pin", PIN],
                   check=True, capture_output=True)
    token = pkcs11.lib(str(MODULE)).get_token(token_label="bench")
    with token.open(user_pin=PIN, rw=True) as session:
        aes = session.generate_key(KeyType.AES, 256)
        p256_pub, p256 = session.create_domain_parameters(
            KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")}, local=True
        ).generate_keypair()
        ed_pub, ed = session.create_domain_parameters(
            KeyType.EC_EDWARDS, {Attribute.EC_PARAMS: encode_named_curve_parameters("1.3.101.112")}, local=True
        ).generate_keypair(mechanism=Mechanism.EC_EDWARDS_KEY_PAIR_GEN)
        sig_ed = ed.sign(msg, mechanism=Mechanism.EDDSA)
        digest = hashlib.sha256(msg).digest
        sig_p = p256.sign(digest(), mechanism=Mechanism.ECDSA)
        yield {
            "encrypt 1KiB AES-256-GCM": lambda: aes.encrypt(data, mechanism=Mechanism.AES_GCM,
                                                            mechanism_param=GCMParams(os.urandom(12))),
            "sign Ed25519": lambda: ed.sign(msg, mechanism=Mechanism.EDDSA),
            "sign ECDSA P-256": lambda: p256.sign(digest(), mechanism=Mechanism.ECDSA),
            "verify Ed25519": lambda: ed_pub.verify(msg, sig_ed, mechanism=Mechanism.EDDSA),
            "verify ECDSA P-256": lambda: p256_pub.verify(digest(), sig_p, mechanism=Mechanism.ECDSA),
        }
