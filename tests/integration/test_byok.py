"""Bring your own key through the real enclave: the wrapping key comes from the enclave, the
material is wrapped by pyca (RSA-OAEP-SHA-256, or RSA + AES key wrap with padding), and the
imported key then works; expired, altered or reused tokens and wrong wrappings are refused."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

from kms import errors
from kms.proto.enclave.v1 import boundary_pb2 as pb

NOW = 1_800_000_000
OAEP = padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)


def params(enclave, spec, usage, algorithm=pb.RSAES_OAEP_SHA_256_WRAP, at=NOW):
    req = pb.GetParametersForImportRequest(spec=spec, usage=usage, algorithm=algorithm)
    return enclave.call(pb.Request(host_time=at, get_parameters_for_import=req)).get_parameters_for_import


def wrap(p, material: bytes, algorithm) -> bytes:
    wrapping = serialization.load_der_public_key(p.wrapping_public_key)
    assert wrapping.key_size == 3072
    if algorithm == pb.RSAES_OAEP_SHA_256_WRAP:
        return wrapping.encrypt(material, OAEP)
    kek = os.urandom(32)
    return wrapping.encrypt(kek, OAEP) + aes_key_wrap_with_padding(kek, material)


def import_(enclave, p, blob, at=NOW):
    req = pb.ImportKeyMaterialRequest(import_token=p.import_token, encrypted_key_material=blob)
    return enclave.call(pb.Request(host_time=at, import_key_material=req)).key_metadata


def test_import_aes_key_then_use_it(enclave) -> None:
    material = os.urandom(32)
    p = params(enclave, pb.SYMMETRIC_DEFAULT, pb.ENCRYPT_DECRYPT)
    assert p.valid_to == NOW + 24 * 3600
    meta = import_(enclave, p, wrap(p, material, pb.RSAES_OAEP_SHA_256_WRAP))
    assert meta.origin == pb.ORIGIN_IMPORTED
    ct = enclave.call(pb.Request(encrypt=pb.EncryptRequest(key_id=meta.key_id, plaintext=b"byok"))).encrypt.ciphertext
    # the enclave really uses our material: the ciphertext opens with it outside
    header, body = ct[:54], ct[54:]
    assert AESGCM(material).decrypt(header[42:54], body, header + b"\x00") == b"byok"
    with pytest.raises(errors.InvalidRequest):  # a token is good for one import
        import_(enclave, p, wrap(p, material, pb.RSAES_OAEP_SHA_256_WRAP))


def test_import_ec_key_with_rsa_aes_key_wrap(enclave) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    pkcs8 = private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    p = params(enclave, pb.ECC_NIST_P256, pb.SIGN_VERIFY, pb.RSA_AES_KEY_WRAP_SHA_256)
    meta = import_(enclave, p, wrap(p, pkcs8, pb.RSA_AES_KEY_WRAP_SHA_256))
    sig = enclave.call(pb.Request(sign=pb.SignRequest(key_id=meta.key_id, message=b"m",
                                                      algorithm=pb.ECDSA_SHA_256))).sign.signature
    private.public_key().verify(sig, b"m", ec.ECDSA(hashes.SHA256()))


@pytest.mark.parametrize("case", ["expired", "altered_token", "wrong_wrapping", "wrong_size", "other_key"])
def test_refusals(enclave, case) -> None:
    p = params(enclave, pb.SYMMETRIC_DEFAULT, pb.ENCRYPT_DECRYPT)
    blob, at = wrap(p, os.urandom(32), pb.RSAES_OAEP_SHA_256_WRAP), NOW
    if case == "expired":
        at = NOW + 24 * 3600 + 1
    elif case == "altered_token":
        token = bytearray(p.import_token)
        token[20] ^= 1  # the expiry, which the MAC covers
        p.import_token = bytes(token)
    elif case == "wrong_wrapping":
        blob = blob[:-1] + bytes([blob[-1] ^ 1])
    elif case == "wrong_size":
        blob = wrap(p, os.urandom(16), pb.RSAES_OAEP_SHA_256_WRAP)
    else:
        other = params(enclave, pb.SYMMETRIC_DEFAULT, pb.ENCRYPT_DECRYPT)
        blob = wrap(other, os.urandom(32), pb.RSAES_OAEP_SHA_256_WRAP)
    with pytest.raises((errors.InvalidRequest, errors.InvalidCiphertext, errors.InvalidKey)):
        import_(enclave, p, blob, at)
