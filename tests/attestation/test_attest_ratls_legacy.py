"""rats-tls 2021 (enclave-tls) legacy RA-TLS certificates: an RSA key, a raw quote in the correctly encoded
1.2.840.113741.1337.6 extension, REPORTDATA = SHA-256(PKCS#1 RSAPublicKey) || 0^32, a sha1WithRSAEncryption
self-signature (reference dcap-ratls.md §3.4).

../shared/vectors has no such certificate, so each test builds one with the real OpenSSL command line (`openssl
req` for the extension, `openssl ca -selfsign -md sha1` for the signature and a pinned validity), around a quote of
the synthetic platform whose REPORTDATA binds the key."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import cbor2
import pytest
from attest_testpki import MRENCLAVE, NOW, SynthPlatform, pem
from cryptography import x509

from kms import cli
from kms.attestation import AttestationPolicy, Step, dump_collateral_json, verify_ratls_certificate

POLICY = AttestationPolicy(mrenclaves=frozenset({MRENCLAVE}))
LEGACY_OID = "1.2.840.113741.1337.6"
GRAMINE_MALFORMED_OID = "0.6.9.42.840.113741.1337.6"
DICE_OID = "2.23.133.5.4.9"
CA_CONFIG = """[ca]
default_ca = ratls
[ratls]
database = index.txt
new_certs_dir = .
serial = serial
policy = any
copy_extensions = copy
unique_subject = no
[any]
commonName = supplied
organizationName = optional
"""


def openssl(cwd: Path, *args: str) -> bytes:
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command line is required (Debian package openssl)")
    return subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True).stdout


class OpenSslKey:
    """An RSA key made by OpenSSL, its PKCS#1 and SubjectPublicKeyInfo DER, and certificates signed by it."""

    def __init__(self, directory: Path, bits: int = 3072) -> None:
        self.dir = directory
        directory.mkdir()
        openssl(directory, "genpkey", "-algorithm", "RSA", "-pkeyopt", f"rsa_keygen_bits:{bits}", "-out", "key.pem")
        self.pkcs1 = openssl(directory, "rsa", "-in", "key.pem", "-RSAPublicKey_out", "-outform", "DER")
        self.spki = openssl(directory, "pkey", "-in", "key.pem", "-pubout", "-outform", "DER")
        self.count = 0

    def certificate(self, extensions: dict[str, bytes], digest: str = "sha1") -> bytes:
        """A self-signed certificate, valid 2024-2030, carrying each extension's raw value (non-critical)."""
        self.count += 1
        work = self.dir / f"cert-{self.count}"
        work.mkdir()
        (work / "ca.cnf").write_text(CA_CONFIG)
        (work / "index.txt").write_text("")
        (work / "serial").write_text("01\n")
        addext = [a for oid, value in extensions.items() for a in ("-addext", f"{oid}=DER:{value.hex()}")]
        openssl(work, "req", "-new", "-key", "../key.pem", "-subj", "/O=Inclavare Containers/CN=RATS-TLS",
                *addext, "-out", "req.csr")
        openssl(work, "ca", "-batch", "-config", "ca.cnf", "-selfsign", "-keyfile", "../key.pem", "-in", "req.csr",
                "-startdate", "20240101000000Z", "-enddate", "20300101000000Z", "-md", digest, "-notext",
                "-out", "cert.pem")
        return openssl(work, "x509", "-in", "cert.pem", "-outform", "DER")


@pytest.fixture(scope="module")
def platform() -> SynthPlatform:
    return SynthPlatform()


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> OpenSslKey:
    return OpenSslKey(tmp_path_factory.mktemp("rats-tls") / "rsa3072")


def check(p: SynthPlatform, cert: bytes, **kwargs: object):
    return verify_ratls_certificate(cert, p.collateral(), POLICY, at=NOW, trust_anchor=p.anchor, **kwargs)


def rats_tls_quote(p: SynthPlatform, key: OpenSslKey) -> bytes:
    return p.quote(report_data=hashlib.sha256(key.pkcs1).digest())


def test_the_certificate_is_what_rats_tls_wrote(key: OpenSslKey, platform: SynthPlatform) -> None:
    cert = key.certificate({LEGACY_OID: rats_tls_quote(platform, key)})
    parsed = x509.load_der_x509_certificate(cert)
    assert parsed.signature_algorithm_oid.dotted_string == "1.2.840.113549.1.1.5"  # sha1WithRSAEncryption
    assert parsed.public_key().key_size == 3072
    ext = parsed.extensions.get_extension_for_oid(x509.ObjectIdentifier(LEGACY_OID))
    assert ext.critical is False and ext.value.value[:2] == b"\x03\x00"  # a raw v3 quote
    assert key.spki.endswith(key.pkcs1) and key.spki != key.pkcs1  # the two encodings the bindings hash


def test_rats_tls_legacy_certificate_binds_its_key(key: OpenSslKey, platform: SynthPlatform) -> None:
    cert = key.certificate({LEGACY_OID: rats_tls_quote(platform, key)})
    result = check(platform, cert)
    assert result.ok, result.message
    assert result.ratls.format == "rats-tls-legacy"
    assert result.ratls.subject_public_key_info == key.spki
    assert result.identity.report_data == hashlib.sha256(key.pkcs1).digest() + bytes(32)


def test_rats_tls_legacy_can_be_refused(key: OpenSslKey, platform: SynthPlatform) -> None:
    cert = key.certificate({LEGACY_OID: rats_tls_quote(platform, key)})
    refused = check(platform, cert, accept_legacy_rats_tls=False)
    assert refused.failed_step is Step.RATLS_CERTIFICATE  # sha1WithRSA is then refused like any unknown algorithm
    sha256_signed = key.certificate({LEGACY_OID: rats_tls_quote(platform, key)}, digest="sha256")
    refused = check(platform, sha256_signed, accept_legacy_rats_tls=False)
    # only Gramine's binding (SHA-256 of the SPKI) is then tried under this OID, and it does not hold
    assert refused.failed_step is Step.RATLS_BINDING and "rats-tls-legacy" not in refused.message
    assert check(platform, sha256_signed).ok


def test_spki_hash_under_the_same_oid_is_gramine_legacy(key: OpenSslKey, platform: SynthPlatform) -> None:
    quote = platform.quote(report_data=hashlib.sha256(key.spki).digest())
    result = check(platform, key.certificate({LEGACY_OID: quote}, digest="sha256"))
    assert result.ok and result.ratls.format == "gramine-legacy"


def test_a_quote_for_another_key_is_refused(key: OpenSslKey, platform: SynthPlatform, tmp_path: Path) -> None:
    other = OpenSslKey(tmp_path / "other", bits=2048)
    result = check(platform, key.certificate({LEGACY_OID: rats_tls_quote(platform, other)}))
    assert result.failed_step is Step.RATLS_BINDING
    assert "rats-tls-legacy: expected" in result.message and "gramine-legacy: expected" in result.message
    upper = platform.quote(report_data=hashlib.sha256(key.pkcs1).digest() + b"\x01" * 32)
    assert check(platform, key.certificate({LEGACY_OID: upper})).failed_step is Step.RATLS_BINDING


def test_sha1_is_accepted_only_for_the_rats_tls_shape(key: OpenSslKey, platform: SynthPlatform) -> None:
    quote = rats_tls_quote(platform, key)
    gramine_oid = key.certificate({GRAMINE_MALFORMED_OID: quote})
    result = check(platform, gramine_oid)
    assert result.failed_step is Step.RATLS_CERTIFICATE and "unsupported signature algorithm" in result.message
    claims = cbor2.dumps({"pubkey-hash": cbor2.dumps([1, hashlib.sha256(key.spki).digest()])})
    dice = cbor2.dumps(cbor2.CBORTag(60000, [platform.quote(report_data=hashlib.sha256(claims).digest()), claims]))
    with_dice = key.certificate({DICE_OID: dice, LEGACY_OID: quote})
    assert check(platform, with_dice).failed_step is Step.RATLS_CERTIFICATE
    assert check(platform, key.certificate({DICE_OID: dice, LEGACY_OID: quote}, digest="sha256")).ok


def test_small_rsa_keys_are_refused(platform: SynthPlatform, tmp_path: Path) -> None:
    small = OpenSslKey(tmp_path / "rsa1024", bits=1024)
    result = check(platform, small.certificate({LEGACY_OID: rats_tls_quote(platform, small)}))
    assert result.failed_step is Step.RATLS_CERTIFICATE and "at least 2048 bits" in result.message


def test_a_damaged_sha1_signature_is_refused(key: OpenSslKey, platform: SynthPlatform) -> None:
    cert = bytearray(key.certificate({LEGACY_OID: rats_tls_quote(platform, key)}))
    cert[-5] ^= 0x01
    result = check(platform, bytes(cert))
    assert result.failed_step is Step.RATLS_CERTIFICATE and "self-signature" in result.message


def test_verify_cert_command(key: OpenSslKey, platform: SynthPlatform, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    cert = tmp_path / "cert.der"
    cert.write_bytes(key.certificate({LEGACY_OID: rats_tls_quote(platform, key)}))
    (tmp_path / "collateral.json").write_text(dump_collateral_json(platform.collateral()))
    (tmp_path / "root.pem").write_bytes(pem(platform.root))
    args = ["attest", "verify-cert", "--cert", str(cert), "--collateral", str(tmp_path / "collateral.json"),
            "--root", str(tmp_path / "root.pem"), "--mrenclave", MRENCLAVE.hex(), "--at", "2025-03-01T00:00:00Z",
            "--output", "json"]
    assert cli.main(args) == 0
    assert '"ratls_format": "rats-tls-legacy"' in capsys.readouterr().out
    assert cli.main([*args, "--no-legacy-rats-tls"]) == 2
    capsys.readouterr()
    no_collateral = [a for a in args if a not in ("--collateral", str(tmp_path / "collateral.json"))]
    assert cli.main([*no_collateral, "--no-collateral"]) == 2
    assert '"failed_step": "tcb_not_evaluated"' in capsys.readouterr().out
