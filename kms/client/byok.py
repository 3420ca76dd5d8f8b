"""Bring your own key: import parameters from the verified enclave, wrapping with pyca, and the import itself."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

from kms.client.errors import VerificationFailed
from kms.client.evidence import VerifiedEvidence
from kms.client.operations import Operations
from kms.client.types import DEFAULT_USAGE, SPEC_ALIASES, KeyInfo, enum_value
from kms.proto.enclave.v1 import boundary_pb2 as pb

WRAPPING_KEY_BITS = 3072
OAEP_MAX = WRAPPING_KEY_BITS // 8 - 2 * 32 - 2   # 318 bytes: larger material goes through RSA + AES key wrap
_OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


@dataclass(frozen=True)
class ImportParameters:
    """What get_parameters_for_import returned, and the verified evidence of the session that carried it."""

    spec: str
    usage: str
    algorithm: str
    wrapping_public_key: bytes   # SubjectPublicKeyInfo DER, RSA-3072, generated in the enclave
    import_token: bytes          # one use, bound to the wrapping key
    valid_to: datetime
    evidence: VerifiedEvidence


def key_material(material: bytes | PrivateKeyTypes) -> bytes:
    """Raw bytes as they are (AES/HMAC), a pyca private key as PKCS#8 DER."""
    if isinstance(material, bytes | bytearray | memoryview):
        return bytes(material)
    return material.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())


def wrap_key_material(wrapping_public_key: bytes, material: bytes, algorithm: str | int) -> bytes:
    """Wrap material for the enclave: RSA-OAEP-SHA-256, or an ephemeral AES-256 key under RSA-OAEP-SHA-256
    followed by the material under that key with AES key wrap with padding (RFC 5649)."""
    key = serialization.load_der_public_key(wrapping_public_key)
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size != WRAPPING_KEY_BITS:
        raise ValueError(f"the wrapping key is not RSA-{WRAPPING_KEY_BITS}")
    alg = enum_value(pb.WrappingAlgorithm, algorithm)
    if alg == pb.RSAES_OAEP_SHA_256_WRAP:
        if len(material) > OAEP_MAX:
            raise ValueError(f"RSA-OAEP wraps at most {OAEP_MAX} bytes: use RSA_AES_KEY_WRAP_SHA_256")
        return key.encrypt(material, _OAEP)
    kek = os.urandom(32)
    return key.encrypt(kek, _OAEP) + aes_key_wrap_with_padding(kek, material)


class ImportOperations(Operations):
    """Mixin: get_parameters_for_import, import_key_material and the one-call import_key (admins)."""

    def _call_with_evidence(self, request: pb.Request) -> tuple[pb.Response, VerifiedEvidence]:  # pragma: no cover
        raise NotImplementedError

    def get_parameters_for_import(self, spec: str | int, usage: str | int | None = None,
                                  algorithm: str | int = "RSAES_OAEP_SHA_256_WRAP") -> ImportParameters:
        """A wrapping key and a 24-hour, one-use import token from the enclave, over the verified session."""
        spec_n = enum_value(pb.KeySpec, spec, SPEC_ALIASES)
        usage_n = DEFAULT_USAGE[spec_n] if usage is None else enum_value(pb.KeyUsage, usage)
        alg = enum_value(pb.WrappingAlgorithm, algorithm)
        req = pb.GetParametersForImportRequest(spec=spec_n, usage=usage_n, algorithm=alg)
        response, evidence = self._call_with_evidence(pb.Request(get_parameters_for_import=req))
        r = response.get_parameters_for_import
        return ImportParameters(pb.KeySpec.Name(spec_n), pb.KeyUsage.Name(usage_n), pb.WrappingAlgorithm.Name(alg),
                                bytes(r.wrapping_public_key), bytes(r.import_token),
                                datetime.fromtimestamp(r.valid_to, UTC), evidence)

    def import_key_material(self, import_token: bytes, encrypted_key_material: bytes,
                            description: str = "") -> KeyInfo:
        """Import wrapped material with its token; the new key's origin is IMPORTED. Not idempotent."""
        req = pb.ImportKeyMaterialRequest(import_token=import_token, encrypted_key_material=encrypted_key_material,
                                          description=description)
        r = self._call(pb.Request(import_key_material=req))
        return self._remember(KeyInfo.from_pb(r.key_metadata))

    def import_key(self, spec: str | int, material: bytes | PrivateKeyTypes, usage: str | int | None = None, *,
                   description: str = "", algorithm: str | int | None = None) -> KeyInfo:
        """BYOK in one call: parameters from the verified enclave, wrap locally (pyca), import.

        material: 32 raw bytes (AES), the HMAC key (32/48/64 bytes), or an asymmetric private key
        (a pyca key, or PKCS#8 DER). The algorithm defaults to RSA-OAEP-SHA-256 when the material
        fits, else RSA + AES key wrap.
        """
        raw = key_material(material)
        if algorithm is None:
            algorithm = "RSAES_OAEP_SHA_256_WRAP" if len(raw) <= OAEP_MAX else "RSA_AES_KEY_WRAP_SHA_256"
        with self.one_replica():   # the import token is the enclave's own (per boot): one replica for both steps
            params = self.get_parameters_for_import(spec, usage, algorithm)
            # The wrapping key is trusted only because it came over a session pinned to verified evidence.
            if not params.evidence.result.ok:
                raise VerificationFailed("the import parameters did not come from a verified enclave: nothing "
                                         "wrapped", result=params.evidence.result)
            wrapped = wrap_key_material(params.wrapping_public_key, raw, params.algorithm)
            return self.import_key_material(params.import_token, wrapped, description)
