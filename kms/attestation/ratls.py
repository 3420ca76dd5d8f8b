"""RA-TLS certificates: the interoperable DICE evidence (2.23.133.5.4.9) and the legacy formats of Gramine
and rats-tls 2021 (a raw quote in 1.2.840.113741.1337.6)."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import cbor2
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import constant_time, hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from kms.attestation import der
from kms.attestation.anchor import INTEL_SGX_ROOT, TrustAnchor
from kms.attestation.chain import digest, iso
from kms.attestation.collateral import Collateral, CollateralSource
from kms.attestation.errors import AttestationError, RaTlsError, Step
from kms.attestation.policy import AttestationPolicy
from kms.attestation.quote import Quote, parse_quote
from kms.attestation.result import RaTlsEvidence, VerificationResult
from kms.attestation.verify import verification_time, verify_quote

# OID content bytes, compared raw: Gramine writes its legacy OID with the 06 09 tag and length
# inside the content by mistake, so parsers see 0.6.9.42.840.113741.1337.6 (reference §3.1).
DICE_EVIDENCE_OID = bytes.fromhex("678105050409")  # 2.23.133.5.4.9
LEGACY_OID = bytes.fromhex("2a864886f84d8a3906")  # 1.2.840.113741.1337.6, correctly encoded (rats-tls 2021)
GRAMINE_LEGACY_OIDS = (bytes.fromhex("06092a864886f84d8a3906"), LEGACY_OID)  # first: as Gramine emits it
CBOR_TAG_INTEL_TEE_QUOTE = 60000
PUBKEY_HASH_ALGORITHMS: dict[int, type[hashes.HashAlgorithm]] = {1: hashes.SHA256, 7: hashes.SHA384, 8: hashes.SHA512}
_SIGNATURE_HASHES = {
    "1.2.840.10045.4.3.2": hashes.SHA256, "1.2.840.10045.4.3.3": hashes.SHA384,
    "1.2.840.10045.4.3.4": hashes.SHA512, "1.2.840.113549.1.1.11": hashes.SHA256,
    "1.2.840.113549.1.1.12": hashes.SHA384, "1.2.840.113549.1.1.13": hashes.SHA512,
}
_ED25519 = "1.3.101.112"
_SHA1_WITH_RSA = "1.2.840.113549.1.1.5"  # rats-tls 2021 self-signatures only
_RSA_ENCRYPTION = "1.2.840.113549.1.1.1"
_LEGACY_RSA_MIN_BITS = 2048
_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE-----")


@dataclass(frozen=True)
class RaTlsCertificate:
    """The parts of an RA-TLS certificate the binding needs, read with a strict DER walker
    (not pyca, which rejects some foreign RA-TLS certificates, e.g. Gramine's NULL parameters)."""

    spki: bytes
    not_before: datetime
    not_after: datetime
    extensions: tuple[tuple[bytes, bytes], ...]

    def extension(self, oids: Sequence[bytes]) -> bytes | None:
        found = [value for oid, value in self.extensions if oid in oids]
        return found[0] if found else None


def _cert_error(message: str) -> RaTlsError:
    return RaTlsError(Step.RATLS_CERTIFICATE, message)


def _check_self_signature(spki: bytes, alg: der.Tlv, bit_string: der.Tlv, tbs: bytes, allow_sha1_rsa: bool) -> None:
    oid = der.decode_oid(der.expect(der.children(der.expect(alg, der.TAG_SEQUENCE))[0], der.TAG_OID).content)
    sig = der.expect(bit_string, der.TAG_BIT_STRING).content
    if not sig or sig[0] != 0:
        raise der.DerError("signature BIT STRING has unused bits")
    signature = sig[1:]
    try:
        key = serialization.load_der_public_key(spki)
        if oid == _ED25519 and isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, tbs)
        elif oid in _SIGNATURE_HASHES and isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, tbs, ec.ECDSA(_SIGNATURE_HASHES[oid]()))
        elif oid in _SIGNATURE_HASHES and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, tbs, padding.PKCS1v15(), _SIGNATURE_HASHES[oid]())
        elif oid == _SHA1_WITH_RSA and allow_sha1_rsa and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, tbs, padding.PKCS1v15(), hashes.SHA1())  # noqa: S303 - see parse_ratls_certificate
        else:
            raise _cert_error(f"unsupported signature algorithm {oid} for the certificate's key")
    except (InvalidSignature, ValueError, UnsupportedAlgorithm) as exc:
        raise _cert_error("the certificate's self-signature does not verify") from exc


def parse_ratls_certificate(data: bytes | x509.Certificate, *, accept_legacy_rats_tls: bool = True) -> RaTlsCertificate:
    """Parse a DER or PEM certificate; check its structure and self-signature.

    sha1WithRSAEncryption is accepted only for what rats-tls 2021 wrote: an RSA key, the correctly encoded
    legacy extension and no DICE evidence. The self-signature proves nothing there (the quote binds the key,
    and the TLS handshake proves possession of it); it is checked so a damaged certificate is refused."""
    if isinstance(data, x509.Certificate):
        data = data.public_bytes(serialization.Encoding.DER)
    if data.lstrip().startswith(b"-----BEGIN"):
        match = _PEM.fullmatch(data.strip())
        try:
            if match is None:
                raise ValueError("not a single PEM certificate")
            data = base64.b64decode(b"".join(match.group(1).split()), validate=True)
        except (ValueError, binascii.Error) as exc:
            raise _cert_error(f"certificate PEM does not decode: {exc}") from exc
    try:
        outer = der.children(der.parse(data, der.TAG_SEQUENCE))
        if len(outer) != 3:
            raise der.DerError("certificate is not (tbs, algorithm, signature)")
        tbs = der.children(der.expect(outer[0], der.TAG_SEQUENCE))
        if tbs and tbs[0].tag == 0xA0:
            tbs = tbs[1:]
        if len(tbs) < 6:
            raise der.DerError("TBSCertificate is too short")
        if tbs[1].raw != outer[1].raw:
            raise der.DerError("inner and outer signature algorithms differ")
        validity = der.children(der.expect(tbs[3], der.TAG_SEQUENCE))
        if len(validity) != 2:
            raise der.DerError("bad validity")
        spki = der.expect(tbs[5], der.TAG_SEQUENCE).raw
        extensions: list[tuple[bytes, bytes]] = []
        for item in tbs[6:]:
            if item.tag != 0xA3:
                continue
            for ext in der.children(der.expect(der.parse(item.content), der.TAG_SEQUENCE)):
                parts = der.children(der.expect(ext, der.TAG_SEQUENCE))
                if len(parts) == 3:
                    der.decode_bool(der.expect(parts[1], der.TAG_BOOLEAN).content)
                elif len(parts) != 2:
                    raise der.DerError("bad extension")
                oid = der.expect(parts[0], der.TAG_OID).content
                if any(oid == seen for seen, _ in extensions):
                    raise der.DerError("an extension appears twice")
                extensions.append((oid, der.expect(parts[-1], der.TAG_OCTET_STRING).content))
        oids = {oid for oid, _ in extensions}
        rats_tls = accept_legacy_rats_tls and LEGACY_OID in oids and DICE_EVIDENCE_OID not in oids
        _check_self_signature(spki, outer[1], outer[2], outer[0].raw, rats_tls)
        return RaTlsCertificate(spki, der.decode_time(validity[0]), der.decode_time(validity[1]),
                                tuple(extensions))
    except der.DerError as exc:
        raise _cert_error(f"certificate does not parse: {exc}") from exc


def _cbor(data: bytes, what: str) -> object:
    stream = io.BytesIO(data)
    try:
        decoder = cbor2.CBORDecoder(stream, allow_indefinite=False, allow_duplicate_keys=False, read_size=1)
        value = decoder.decode()
    except (cbor2.CBORError, ValueError, TypeError, EOFError) as exc:
        raise _cert_error(f"{what} is not valid CBOR: {exc}") from exc
    if stream.tell() != len(data):
        raise _cert_error(f"{what} has trailing bytes")
    return value


def _binding_error(message: str) -> RaTlsError:
    return RaTlsError(Step.RATLS_BINDING, message)


def _dice(value: bytes, spki: bytes, expected_nonce: bytes | None) -> tuple[bytes, bytes, RaTlsEvidence]:
    """Decode 60000([quote, claims]); check pubkey-hash and nonce; return quote, REPORTDATA, info."""
    evidence = _cbor(value, "DICE evidence")
    if not isinstance(evidence, cbor2.CBORTag) or evidence.tag != CBOR_TAG_INTEL_TEE_QUOTE:
        raise _cert_error(f"DICE evidence is not CBOR tag {CBOR_TAG_INTEL_TEE_QUOTE} (Intel TEE quote)")
    items = evidence.value
    if not isinstance(items, (list, tuple)) or len(items) != 2 or not all(isinstance(i, bytes) for i in items):
        raise _cert_error("DICE evidence is not [bstr quote, bstr claims]")
    quote, claims_bytes = items
    claims = _cbor(claims_bytes, "claims")
    if not isinstance(claims, dict) or not all(isinstance(k, str) and isinstance(v, bytes) for k, v in claims.items()):
        raise _cert_error("claims are not a map of text keys to byte strings")
    if "pubkey-hash" not in claims:
        raise _cert_error("claims lack the required 'pubkey-hash'")
    entry = _cbor(claims["pubkey-hash"], "pubkey-hash")
    if not isinstance(entry, (list, tuple)) or len(entry) != 2 or not isinstance(entry[1], bytes):
        raise _cert_error("pubkey-hash is not [hash-alg-id, bstr hash]")
    algorithm = PUBKEY_HASH_ALGORITHMS.get(entry[0]) if isinstance(entry[0], int) else None
    if algorithm is None:
        raise _cert_error(f"pubkey-hash algorithm {entry[0]!r} is not sha-256, sha-384 or sha-512")
    if not constant_time.bytes_eq(digest(algorithm(), spki), entry[1]):
        raise _binding_error("pubkey-hash does not match the certificate's SubjectPublicKeyInfo")
    if expected_nonce is not None and not constant_time.bytes_eq(claims.get("nonce", b""), expected_nonce):
        raise _binding_error("the claims' nonce is not the expected one")
    report_data = digest(hashes.SHA256(), claims_bytes) + bytes(32)
    info = RaTlsEvidence("dice", spki, tuple(sorted(claims.items())))
    return quote, report_data, info


def _rsa_pkcs1(spki: bytes) -> bytes | None:
    """The PKCS#1 RSAPublicKey inside an RSA SubjectPublicKeyInfo (as written, not re-encoded); None for other keys."""
    alg, key = der.children(der.parse(spki, der.TAG_SEQUENCE))
    oid = der.decode_oid(der.expect(der.children(der.expect(alg, der.TAG_SEQUENCE))[0], der.TAG_OID).content)
    if oid != _RSA_ENCRYPTION:
        return None
    bits = der.expect(key, der.TAG_BIT_STRING).content
    public = serialization.load_der_public_key(spki)
    if bits[:1] != b"\x00" or not isinstance(public, rsa.RSAPublicKey) or public.key_size < _LEGACY_RSA_MIN_BITS:
        raise _cert_error(f"rats-tls legacy certificate needs an RSA key of at least {_LEGACY_RSA_MIN_BITS} bits")
    return bits[1:]


def _legacy(cert: RaTlsCertificate, gramine: bool, rats_tls: bool) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The raw quote of a legacy extension and the bindings it may carry, each (format, REPORTDATA):
    Gramine's SHA-256(SPKI) under either OID; rats-tls 2021's SHA-256(PKCS#1 RSAPublicKey) under the
    correctly encoded OID, for an RSA key."""
    malformed, proper = cert.extension(GRAMINE_LEGACY_OIDS[:1]), cert.extension((LEGACY_OID,))
    if malformed is not None and proper is not None:
        raise _cert_error("certificate carries both legacy RA-TLS extensions")
    quote = malformed if malformed is not None else proper
    bindings: list[tuple[str, bytes]] = []
    if quote is not None and gramine:
        bindings.append(("gramine-legacy", digest(hashes.SHA256(), cert.spki) + bytes(32)))
    if proper is not None and rats_tls:
        try:
            pkcs1 = _rsa_pkcs1(cert.spki)
        except (der.DerError, ValueError, UnsupportedAlgorithm) as exc:
            raise _cert_error(f"certificate key does not parse: {exc}") from exc
        if pkcs1 is not None:
            bindings.append(("rats-tls-legacy", digest(hashes.SHA256(), pkcs1) + bytes(32)))
    if quote is None or not bindings:
        raise _cert_error("certificate carries no accepted RA-TLS evidence extension")
    return quote, bindings


def verify_ratls_certificate(
    certificate: bytes | x509.Certificate,
    collateral: Collateral | CollateralSource | None,
    policy: AttestationPolicy,
    *,
    at: datetime,
    trust_anchor: TrustAnchor = INTEL_SGX_ROOT,
    accept_legacy_gramine: bool = True,
    expected_nonce: bytes | None = None,
    accept_legacy_rats_tls: bool = True,
) -> VerificationResult:
    """Check the certificate, the key-to-quote binding, then the quote and the policy.

    DICE evidence is preferred; when the certificate has it, any failure rejects (no fallback).
    Otherwise a legacy extension is read: Gramine's (REPORTDATA = SHA-256(SPKI) || 0^32) unless
    `accept_legacy_gramine` is False, rats-tls 2021's (an RSA key, REPORTDATA = SHA-256(PKCS#1
    RSAPublicKey) || 0^32) unless `accept_legacy_rats_tls` is False. `collateral=None`: see verify_quote
    (never an acceptance).
    """
    at = verification_time(at)
    if policy.report_data is not None:
        raise ValueError("the RA-TLS binding determines REPORTDATA: leave policy.report_data unset")
    quote: Quote | None = None
    info: RaTlsEvidence | None = None
    try:
        cert = parse_ratls_certificate(certificate, accept_legacy_rats_tls=accept_legacy_rats_tls)
        if not cert.not_before <= at <= cert.not_after:
            raise _cert_error(f"certificate is valid {iso(cert.not_before)} to {iso(cert.not_after)}, "
                              f"not at {iso(at)}")
        dice = cert.extension((DICE_EVIDENCE_OID,))
        if dice is not None:
            quote_bytes, expected, info = _dice(dice, cert.spki, expected_nonce)
            bindings = [(info.format, expected)]
        else:
            quote_bytes, bindings = _legacy(cert, accept_legacy_gramine, accept_legacy_rats_tls)
            if expected_nonce is not None:
                raise _binding_error("the legacy RA-TLS formats carry no nonce")
        quote = parse_quote(quote_bytes)
        found = [name for name, value in bindings if constant_time.bytes_eq(quote.body.report_data, value)]
        if not found:
            wanted = "; ".join(f"{name}: expected {value.hex()}" for name, value in bindings)
            raise _binding_error(f"quote REPORTDATA {quote.body.report_data.hex()} does not bind this "
                                 f"certificate ({wanted})")
        if info is None:
            info = RaTlsEvidence(found[0], cert.spki)
    except AttestationError as exc:
        return VerificationResult.rejected(at, exc, quote, None, info)
    result = verify_quote(quote, collateral, policy, at=at, trust_anchor=trust_anchor)
    return dataclasses.replace(result, ratls_evidence=info)
