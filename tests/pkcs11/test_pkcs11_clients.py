"""The PKCS#11 module driven by clients nobody here wrote, against the real agent and the real server: OpenSC's
pkcs11-tool, GnuTLS's p11tool, OpenSSL through libp11's engine, python-pkcs11 and Java's SunPKCS11. Every
signature is checked by a verifier outside the module (OpenSSL, cryptography, Java's own provider)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from tests.pkcs11.harness import MODULE, PIN, Token, need, need_engine, start_token

pkcs11 = pytest.importorskip("pkcs11", reason="python-pkcs11 is a test dependency (./dev setup)")
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass  # noqa: E402
from pkcs11.mechanisms import GCMParams  # noqa: E402
from pkcs11.util.ec import encode_named_curve_parameters  # noqa: E402

pytestmark = pytest.mark.timeout(600)


def run(token: Token, *cmd: str, cwd: Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=token.env, capture_output=True, text=True, timeout=180)
    if ok:
        assert proc.returncode == 0, f"{cmd}: {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def token(build: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Token]:
    """A token with keys made through the module by python-pkcs11: P-256 and RSA-2048 signing keys, an RSA-2048
    decryption key, an AES key."""
    tok = start_token(tmp_path_factory.mktemp("p11"))
    try:
        with session(tok) as s:
            p256 = s.create_domain_parameters(KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters(
                "secp256r1")}, local=True)
            p256.generate_keypair(store=True, label="ec-sign")
            s.generate_keypair(KeyType.RSA, 2048, store=True, label="rsa-sign")
            s.generate_keypair(KeyType.RSA, 2048, store=True, label="rsa-dec",
                               capabilities=MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT)
            s.generate_key(KeyType.AES, 256, store=True, label="aes")
        yield tok
    finally:
        tok.stop()


def session(tok: Token, pin: str = PIN):
    import os

    os.environ["KMS_PKCS11_SOCKET"] = tok.socket  # python-pkcs11 loads the module into this process
    return pkcs11.lib(str(MODULE)).get_token(token_label="Enclave KMS").open(user_pin=pin, rw=True)


def key_id(tok: Token, label: str) -> str:
    """The key's CKA_ID in hex: pkcs11-tool 0.23 picks the key to use by --id only."""
    with session(tok) as s:
        return s.get_key(object_class=ObjectClass.PRIVATE_KEY, label=label)[Attribute.ID].hex()


def export_pubkey(tok: Token, label: str, cwd: Path) -> Path:
    """p11tool --export-pubkey: the public key in PEM, as GnuTLS reads it from the token."""
    need("p11tool")
    out = cwd / f"{label}.pub.pem"
    run(tok, "p11tool", f"--provider={MODULE}", "--login", f"--set-pin={PIN}", "--export-pubkey",
        f"--outfile={out}", f"pkcs11:object={label};type=public", cwd=cwd)
    return out


# ---- OpenSC pkcs11-tool ----

def test_pkcs11_tool_lists_the_slot_and_mechanisms(token: Token, tmp_path: Path) -> None:
    tool = need("pkcs11-tool")
    slots = run(token, tool, f"--module={MODULE}", "--list-slots", cwd=tmp_path).stdout
    assert "Enclave KMS agent" in slots and "login required" in slots
    assert token.agent.info["domain_id"][:16] in slots  # the serial: the domain id's first 8 bytes
    mechs = run(token, tool, f"--module={MODULE}", "--list-mechanisms", cwd=tmp_path).stdout
    for name in ("ECDSA-SHA256", "EDDSA", "SHA256-RSA-PKCS-PSS", "RSA-PKCS-OAEP", "AES-GCM", "SHA256-HMAC"):
        assert name in mechs, name


def test_pkcs11_tool_generates_keys_signs_and_verifies(token: Token, tmp_path: Path) -> None:
    tool = need("pkcs11-tool")
    base = (tool, f"--module={MODULE}", "--login", f"--pin={PIN}")
    pair = run(token, *base, "--keypairgen", "--key-type=EC:prime256v1", "--label=tool-ec", cwd=tmp_path).stdout
    assert "never extractable" in pair and "sensitive" in pair
    ec_id = re.search(r"ID:\s+([0-9a-f]+)", pair).group(1)
    assert ec_id == key_id(token, "tool-ec") and len(ec_id) == 72  # the KMS key id, 36 characters
    secret = run(token, *base, "--keygen", "--key-type=AES:32", "--sensitive", "--label=tool-aes", cwd=tmp_path)
    assert "Secret Key Object" in secret.stdout
    # a key that would be readable (pkcs11-tool's default CKA_SENSITIVE false) is refused, not faked
    refused = run(token, *base, "--keygen", "--key-type=AES:32", "--label=tool-aes2", cwd=tmp_path, ok=False)
    assert refused.returncode != 0 and "CKR_ATTRIBUTE_VALUE_INVALID" in refused.stdout + refused.stderr
    msg = tmp_path / "msg"
    msg.write_bytes(b"signed through pkcs11-tool\n")
    run(token, *base, "--sign", "--mechanism=ECDSA-SHA256", f"--id={ec_id}", f"--input-file={msg}",
        "--output-file=sig.raw", cwd=tmp_path)
    ok = run(token, *base, "--verify", "--mechanism=ECDSA-SHA256", f"--id={ec_id}", f"--input-file={msg}",
             "--signature-file=sig.raw", cwd=tmp_path)
    assert "Signature is valid" in ok.stdout
    run(token, *base, "--sign", "--mechanism=ECDSA-SHA256", f"--id={ec_id}", f"--input-file={msg}",
        "--output-file=sig.der", "--signature-format=openssl", cwd=tmp_path)
    pub = export_pubkey(token, "tool-ec", tmp_path)
    verified = run(token, "openssl", "dgst", "-sha256", "-verify", str(pub), "-signature", "sig.der", str(msg),
                   cwd=tmp_path)
    assert "Verified OK" in verified.stdout
    # RSA-PSS with the fixture's signing key, verified by plain OpenSSL
    run(token, *base, "--sign", "--mechanism=SHA256-RSA-PKCS-PSS", "--mgf=MGF1-SHA256",
        "--salt-len=32", f"--id={key_id(token, 'rsa-sign')}", f"--input-file={msg}", "--output-file=pss.sig",
        cwd=tmp_path)
    rsa_pub = export_pubkey(token, "rsa-sign", tmp_path)
    verified = run(token, "openssl", "dgst", "-sha256", "-sigopt", "rsa_padding_mode:pss", "-sigopt",
                   "rsa_pss_saltlen:32", "-verify", str(rsa_pub), "-signature", "pss.sig", str(msg), cwd=tmp_path)
    assert "Verified OK" in verified.stdout


def test_pkcs11_tool_decrypts_what_openssl_encrypted(token: Token, tmp_path: Path) -> None:
    """pkcs11-tool 0.23's --encrypt knows AES-ECB/CBC/CTR only, which the enclave does not offer: the encryption
    is OpenSSL's (RSA-OAEP to the exported public key), the decryption the module's. AES-GCM both ways is
    python-pkcs11's below."""
    tool = need("pkcs11-tool")
    pub = export_pubkey(token, "rsa-dec", tmp_path)
    (tmp_path / "plain").write_bytes(b"for the enclave's eyes")
    run(token, "openssl", "pkeyutl", "-encrypt", "-pubin", "-inkey", str(pub), "-pkeyopt", "rsa_padding_mode:oaep",
        "-pkeyopt", "rsa_oaep_md:sha256", "-pkeyopt", "rsa_mgf1_md:sha256", "-in", "plain", "-out", "ct", cwd=tmp_path)
    run(token, tool, f"--module={MODULE}", "--login", f"--pin={PIN}", "--decrypt", "--mechanism=RSA-PKCS-OAEP",
        "--hash-algorithm=SHA256", "--mgf=MGF1-SHA256", f"--id={key_id(token, 'rsa-dec')}", "--input-file=ct",
        "--output-file=out", cwd=tmp_path)
    assert (tmp_path / "out").read_bytes() == b"for the enclave's eyes"


def test_pkcs11_tool_self_test(tmp_path: Path, build: Path) -> None:
    """pkcs11-tool --test on a token of its own. Its RSA signature checks sign SHA-1 DigestInfos (and raw
    blocks), which the enclave refuses by design (docs/pkcs11.md), so the token holds EC signing keys, an RSA
    decryption key and an AES key: the tool runs its random, session, verify and OAEP decryption checks."""
    tool = need("pkcs11-tool")
    (tmp_path / "t").mkdir()
    tok = start_token(tmp_path / "t")
    try:
        base = (tool, f"--module={MODULE}", "--login", f"--pin={PIN}")
        run(tok, *base, "--keypairgen", "--key-type=EC:secp384r1", "--label=t-ec", cwd=tmp_path)
        run(tok, *base, "--keypairgen", "--key-type=rsa:2048", "--usage-decrypt", "--label=t-dec", cwd=tmp_path)
        run(tok, *base, "--keygen", "--key-type=AES:32", "--sensitive", "--label=t-aes", cwd=tmp_path)
        out = run(tok, *base, "--test", cwd=tmp_path).stdout
        assert "No errors" in out, out
        assert "C_GenerateRandom" in out and "seems to be OK" in out
        assert "(t-dec)" in out and "RSA-PKCS-OAEP" in out and "\nOK\n" in out  # the OAEP decryption check ran
    finally:
        tok.stop()


# ---- GnuTLS p11tool ----

def test_p11tool_lists_objects_and_exports_public_keys(token: Token, tmp_path: Path) -> None:
    need("p11tool")
    listing = run(token, "p11tool", f"--provider={MODULE}", "--login", f"--set-pin={PIN}", "--list-all",
                  "pkcs11:token=Enclave%20KMS", cwd=tmp_path).stdout
    for label in ("ec-sign", "rsa-sign", "rsa-dec", "aes"):
        assert f"Label: {label}" in listing, label
    assert "CKA_SENSITIVE" in listing and "CKA_NEVER_EXTRACTABLE" in listing
    ec_pub = serialization.load_pem_public_key(export_pubkey(token, "ec-sign", tmp_path).read_bytes())
    with session(token) as s:
        priv = s.get_key(object_class=ObjectClass.PRIVATE_KEY, label="ec-sign")
        raw = priv.sign(b"exported", mechanism=Mechanism.ECDSA_SHA256)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    ec_pub.verify(der, b"exported", ec.ECDSA(hashes.SHA256()))  # raises if the exported key is not the signer


# ---- OpenSSL through libp11's engine ----

@pytest.mark.parametrize("label", ["ec-sign", "rsa-sign"])
def test_openssl_engine_signs_a_csr_and_a_certificate(token: Token, tmp_path: Path, label: str) -> None:
    need_engine()
    key = f"pkcs11:token=Enclave%20KMS;object={label};type=private;pin-value={PIN}"
    run(token, "openssl", "req", "-new", "-engine", "pkcs11", "-keyform", "engine", "-key", key,
        "-subj", f"/CN={label}", "-out", "req.csr", cwd=tmp_path)
    checked = run(token, "openssl", "req", "-in", "req.csr", "-verify", "-noout", cwd=tmp_path)
    assert "verify OK" in checked.stdout + checked.stderr
    run(token, "openssl", "req", "-x509", "-new", "-engine", "pkcs11", "-keyform", "engine", "-key", key,
        "-subj", f"/CN={label}", "-days", "1", "-out", "cert.pem", cwd=tmp_path)
    assert "cert.pem: OK" in run(token, "openssl", "verify", "-CAfile", "cert.pem", "cert.pem", cwd=tmp_path).stdout
    cert_key = run(token, "openssl", "x509", "-in", "cert.pem", "-noout", "-pubkey", cwd=tmp_path).stdout
    assert cert_key.strip() == export_pubkey(token, label, tmp_path).read_text().strip()


# ---- python-pkcs11 ----

def test_python_pkcs11_signs_encrypts_and_refuses(token: Token) -> None:
    with pytest.raises(pkcs11.exceptions.PinIncorrect):
        session(token, "wrong-pin").__enter__()
    with session(token) as s:
        priv = s.get_key(object_class=ObjectClass.PRIVATE_KEY, label="rsa-sign")
        pub = s.get_key(object_class=ObjectClass.PUBLIC_KEY, label="rsa-sign")
        with pytest.raises(pkcs11.exceptions.AttributeSensitive):
            priv[Attribute.PRIVATE_EXPONENT]
        assert priv[Attribute.SENSITIVE] and not priv[Attribute.EXTRACTABLE] and priv[Attribute.ID] == pub[Attribute.ID]
        sig = priv.sign(b"m", mechanism=Mechanism.SHA256_RSA_PKCS)
        from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers

        numbers = RSAPublicNumbers(int.from_bytes(pub[Attribute.PUBLIC_EXPONENT], "big"),
                                   int.from_bytes(pub[Attribute.MODULUS], "big"))
        numbers.public_key().verify(sig, b"m", padding.PKCS1v15(), hashes.SHA256())
        assert pub.verify(b"m", sig, mechanism=Mechanism.SHA256_RSA_PKCS)
        assert not pub.verify(b"n", sig, mechanism=Mechanism.SHA256_RSA_PKCS)
        ed_pub, ed_priv = s.generate_keypair(KeyType.EC_EDWARDS, 255, store=True, label="ed",
                                             public_template={Attribute.EC_PARAMS: bytes.fromhex("06032b6570")})
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        Ed25519PublicKey.from_public_bytes(ed_pub[Attribute.EC_POINT][2:]).verify(
            ed_priv.sign(b"pure", mechanism=Mechanism.EDDSA), b"pure")
        aes = s.get_key(object_class=ObjectClass.SECRET_KEY, label="aes")
        params = GCMParams(b"", b"header", 128)
        ct = aes.encrypt(b"x" * 1024, mechanism=Mechanism.AES_GCM, mechanism_param=params)
        assert len(ct) == 1024 + 70
        assert aes.decrypt(ct, mechanism=Mechanism.AES_GCM, mechanism_param=params) == b"x" * 1024
        with pytest.raises(pkcs11.exceptions.EncryptedDataInvalid):
            aes.decrypt(ct, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(b"", b"other", 128))
        with pytest.raises(pkcs11.exceptions.MechanismParamInvalid):  # the enclave picks the nonce
            aes.encrypt(b"x", mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(b"\0" * 12, None, 128))
        with pytest.raises(pkcs11.exceptions.MechanismInvalid):
            aes.encrypt(b"x" * 16, mechanism=Mechanism.AES_CBC, mechanism_param=b"\0" * 16)


# ---- Java SunPKCS11 ----

JAVA_CONFIG = """name = KMS
library = {module}
slot = 1
attributes(generate, *, *) = {{
  CKA_TOKEN = true
}}
attributes(generate, CKO_PRIVATE_KEY, *) = {{
  CKA_SENSITIVE = true
  CKA_EXTRACTABLE = false
}}
"""


def test_java_sunpkcs11_signs(token: Token, tmp_path: Path) -> None:
    java = need("java")
    (tmp_path / "Sign.java").write_text((Path(__file__).parent / "Sign.java").read_text())
    (tmp_path / "kms.cfg").write_text(JAVA_CONFIG.format(module=MODULE))
    out = run(token, java, "Sign.java", "kms.cfg", PIN, cwd=tmp_path).stdout
    assert "VERIFIED by SunEC, signed by SunPKCS11-KMS" in out, out
