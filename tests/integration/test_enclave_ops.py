"""Key operations through the real enclave build (cffi bridge -> simulated CPU -> enclave), each
result checked independently with pyca/cryptography where one exists."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidSignature as PycaInvalidSignature
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils, x25519

from kms import errors
from kms.proto.enclave.v1 import boundary_pb2 as pb

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def create(enclave, store, spec, usage, description: str = "") -> str:
    r = enclave.call(pb.Request(create_key=pb.CreateKeyRequest(spec=spec, usage=usage, description=description)))
    r
    assert r.key_metadata.state == pb.ENABLED and r.key_metadata.current_version == 1
    return r.key_metadata.key_id


def public_key(enclave, key_id: str):
    der = enclave.call(pb.Request(get_public_key=pb.GetPublicKeyRequest(key_id=key_id))).get_public_key.public_key
    pem = enclave.call(
        pb.Request(get_public_key=pb.GetPublicKeyRequest(key_id=key_id, format=pb.PUBLIC_KEY_PEM))
    ).get_public_key.public_key
    key = serialization.load_der_public_key(der)
    assert serialization.load_pem_public_key(pem).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == der
    return key


def ctx(**pairs: str) -> list[pb.ContextEntry]:
    return [pb.ContextEntry(key=k.encode(), value=v.encode()) for k, v in pairs.items()]


def encrypt(enclave, key_id, plaintext, context=()):
    return enclave.call(pb.Request(encrypt=pb.EncryptRequest(key_id=key_id, plaintext=plaintext, context=context)))


def decrypt(enclave, ciphertext, context=()):
    return enclave.call(pb.Request(decrypt=pb.DecryptRequest(ciphertext=ciphertext, context=context))).decrypt


def sign(enclave, key_id, message, alg, *, digest=False, fmt=pb.SIGNATURE_FORMAT_DER) -> bytes:
    req = pb.SignRequest(key_id=key_id, message=message, algorithm=alg, format=fmt,
                         message_type=pb.DIGEST if digest else pb.RAW)
    return enclave.call(pb.Request(sign=req)).sign.signature


def verify(enclave, key_id, message, alg, signature, *, digest=False, fmt=pb.SIGNATURE_FORMAT_DER) -> bool:
    req = pb.VerifyRequest(key_id=key_id, message=message, algorithm=alg, format=fmt, signature=signature,
                           message_type=pb.DIGEST if digest else pb.RAW)
    return enclave.call(pb.Request(verify=req)).verify.valid


def test_identity_comes_from_the_platform(enclave) -> None:
    ident = enclave.identity()
    assert ident.simulated and not ident.debug
    assert len(ident.mrenclave) == 32 and len(ident.mrsigner) == 32
    assert ident.isv_prod_id == 1 and ident.isv_svn == 1 and ident.domain_loaded


def test_aes_gcm_round_trip_with_context(enclave, store) -> None:
    kid = create(enclave, store, pb.SYMMETRIC_DEFAULT, pb.ENCRYPT_DECRYPT)
    context = ctx(tenant="a", purpose="test")
    r = encrypt(enclave, kid, b"attack at dawn", context)
    assert r.encrypt.key_id == kid and r.encrypt.key_version == 1
    assert b"attack at dawn" not in r.encrypt.ciphertext
    out = decrypt(enclave, r.encrypt.ciphertext, list(reversed(context)))  # order does not matter
    assert out.plaintext == b"attack at dawn" and out.key_id == kid
    for bad in ([], ctx(tenant="b", purpose="test"), ctx(tenant="a")):
        with pytest.raises(errors.InvalidCiphertext):
            decrypt(enclave, r.encrypt.ciphertext, bad)
    for i in range(len(r.encrypt.ciphertext)):
        tampered = bytearray(r.encrypt.ciphertext)
        tampered[i] ^= 0x01
        with pytest.raises(errors.InvalidCiphertext):
            decrypt(enclave, bytes(tampered), context)
    with pytest.raises(errors.InvalidRequest):
        encrypt(enclave, kid, b"x", ctx(a="1") + ctx(a="2"))  # duplicate context key


def test_rotation_keeps_old_versions_decryptable(enclave, store) -> None:
    kid = create(enclave, store, pb.SYMMETRIC_DEFAULT, pb.ENCRYPT_DECRYPT)
    old = encrypt(enclave, kid, b"v1").encrypt.ciphertext
    r = enclave.call(pb.Request(rotate_key=pb.RotateKeyRequest(key_id=kid)))
    r
    assert r.key_metadata.current_version == 2 and r.key_metadata.revision == 2
    new = encrypt(enclave, kid, b"v2").encrypt
    assert new.key_version == 2
    assert decrypt(enclave, old).plaintext == b"v1" and decrypt(enclave, old).key_version == 1
    assert decrypt(enclave, new.ciphertext).plaintext == b"v2"


def test_a_change_the_store_refuses_is_not_made(enclave, store, monkeypatch) -> None:
    """Persist, then answer: a failed write fails the request and the old version stays current."""
    kid = create(enclave, store, pb.SYMMETRIC_DEFAULT, pb.ENCRYPT_DECRYPT)

    def broken(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(store, "commit", broken)
    with pytest.raises(errors.StoreError):
        enclave.call(pb.Request(rotate_key=pb.RotateKeyRequest(key_id=kid)))
    monkeypatch.undo()
    assert encrypt(enclave, kid, b"x").encrypt.key_version == 1


def test_concurrent_change_conflicts(enclave, store) -> None:
    """Writes are conditional on the revision they replace: a lost race is a typed, retryable error."""
    kid = create(enclave, store, pb.SYMMETRIC_DEFAULT, pb.ENCRYPT_DECRYPT)
    enclave.call(pb.Request(describe_key=pb.DescribeKeyRequest(key_id=kid)))  # cache revision 1
    revision, blob = store[kid]
    store[kid] = (revision + 1, blob)  # another replica moved the stored revision on
    with pytest.raises(errors.Conflict):
        enclave.call(pb.Request(rotate_key=pb.RotateKeyRequest(key_id=kid)))


def test_disabled_key_refuses_and_reenables(enclave, store) -> None:
    kid = create(enclave, store, pb.SYMMETRIC_DEFAULT, pb.ENCRYPT_DECRYPT)
    enclave.call(pb.Request(set_key_state=pb.SetKeyStateRequest(key_id=kid, state=pb.DISABLED)))
    with pytest.raises(errors.KeyStateError):
        encrypt(enclave, kid, b"x")
    enclave.call(pb.Request(set_key_state=pb.SetKeyStateRequest(key_id=kid, state=pb.ENABLED)))
    assert encrypt(enclave, kid, b"x").encrypt.key_version == 1


@pytest.mark.parametrize(
    ("spec", "alg", "hash_alg"),
    [
        (pb.ECC_NIST_P256, pb.ECDSA_SHA_256, hashes.SHA256()),
        (pb.ECC_NIST_P384, pb.ECDSA_SHA_384, hashes.SHA384()),
        (pb.ECC_SECG_P256K1, pb.ECDSA_SHA_256, hashes.SHA256()),
    ],
)
def test_ecdsa_sign_checked_by_pyca(enclave, store, spec, alg, hash_alg) -> None:
    kid = create(enclave, store, spec, pb.SIGN_VERIFY)
    pub = public_key(enclave, kid)
    msg = b"message to sign"
    der = sign(enclave, kid, msg, alg)
    pub.verify(der, msg, ec.ECDSA(hash_alg))
    h = hashes.Hash(hash_alg)
    h.update(msg)
    digest = h.finalize()
    der2 = sign(enclave, kid, digest, alg, digest=True)
    pub.verify(der2, digest, ec.ECDSA(utils.Prehashed(hash_alg)))
    raw = sign(enclave, kid, msg, alg, fmt=pb.SIGNATURE_FORMAT_P1363)
    assert len(raw) == 2 * ((pub.curve.key_size + 7) // 8)
    assert verify(enclave, kid, msg, alg, raw, fmt=pb.SIGNATURE_FORMAT_P1363)
    assert verify(enclave, kid, msg, alg, der)
    with pytest.raises(errors.InvalidSignature):
        verify(enclave, kid, b"other message", alg, der)
    with pytest.raises(errors.InvalidRequest):
        sign(enclave, kid, b"short digest", alg, digest=True)


def test_secp256k1_signatures_are_low_s(enclave, store) -> None:
    kid = create(enclave, store, pb.ECC_SECG_P256K1, pb.SIGN_VERIFY)
    for i in range(40):
        _, s = utils.decode_dss_signature(sign(enclave, kid, b"m%d" % i, pb.ECDSA_SHA_256))
        assert s <= SECP256K1_N // 2


def test_ed25519_sign_checked_by_pyca(enclave, store) -> None:
    kid = create(enclave, store, pb.ED25519, pb.SIGN_VERIFY)
    pub = public_key(enclave, kid)
    assert isinstance(pub, ed25519.Ed25519PublicKey)
    sig = sign(enclave, kid, b"block 42", pb.ED25519_PURE)
    pub.verify(sig, b"block 42")
    with pytest.raises(PycaInvalidSignature):
        pub.verify(sig, b"block 43")
    with pytest.raises(errors.Unsupported):
        sign(enclave, kid, b"\x00" * 32, pb.ED25519_PURE, digest=True)
    with pytest.raises(errors.KeyStateError):
        sign(enclave, kid, b"m", pb.ECDSA_SHA_256)  # algorithm does not fit the key


@pytest.mark.parametrize("spec", [pb.RSA_2048, pb.RSA_3072])
def test_rsa_sign_and_oaep_checked_by_pyca(enclave, store, spec) -> None:
    kid = create(enclave, store, spec, pb.SIGN_VERIFY)
    pub = public_key(enclave, kid)
    assert isinstance(pub, rsa.RSAPublicKey)
    msg = b"rsa message"
    pss = sign(enclave, kid, msg, pb.RSASSA_PSS_SHA_256)
    pub.verify(pss, msg, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
    pkcs1 = sign(enclave, kid, msg, pb.RSASSA_PKCS1_V1_5_SHA_384)
    pub.verify(pkcs1, msg, padding.PKCS1v15(), hashes.SHA384())
    enc = create(enclave, store, spec, pb.ENCRYPT_DECRYPT)
    ct = public_key(enclave, enc).encrypt(
        b"wrapped secret", padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)
    )
    req = pb.AsymmetricDecryptRequest(key_id=enc, ciphertext=ct, algorithm=pb.RSAES_OAEP_SHA_256)
    assert enclave.call(pb.Request(asymmetric_decrypt=req)).asymmetric_decrypt.plaintext == b"wrapped secret"
    req.ciphertext = ct[:-1] + bytes([ct[-1] ^ 1])
    with pytest.raises(errors.InvalidCiphertext):
        enclave.call(pb.Request(asymmetric_decrypt=req))
    with pytest.raises(errors.KeyStateError):  # a signing key does not decrypt
        enclave.call(pb.Request(asymmetric_decrypt=pb.AsymmetricDecryptRequest(
            key_id=kid, ciphertext=ct, algorithm=pb.RSAES_OAEP_SHA_256)))


@pytest.mark.parametrize("spec,md", [(pb.HMAC_SHA_256, hashes.SHA256()), (pb.HMAC_SHA_512, hashes.SHA512())])
def test_hmac(enclave, store, spec, md) -> None:
    kid = create(enclave, store, spec, pb.GENERATE_VERIFY_MAC)
    mac = enclave.call(pb.Request(generate_mac=pb.GenerateMacRequest(key_id=kid, message=b"data"))).generate_mac.mac
    assert len(mac) == md.digest_size
    ok = pb.VerifyMacRequest(key_id=kid, message=b"data", mac=mac)
    assert enclave.call(pb.Request(verify_mac=ok)).verify_mac.valid
    for bad in (pb.VerifyMacRequest(key_id=kid, message=b"datA", mac=mac),
                pb.VerifyMacRequest(key_id=kid, message=b"data", mac=mac[:16]),
                pb.VerifyMacRequest(key_id=kid, message=b"data", mac=bytes(len(mac)))):
        with pytest.raises(errors.InvalidSignature):
            enclave.call(pb.Request(verify_mac=bad))
    # the key never leaves: an HMAC with a random key of ours does not match
    h = hmac.HMAC(b"\x00" * md.digest_size, md)
    h.update(b"data")
    assert h.finalize() != mac


def test_key_agreement_matches_pyca_peer(enclave, store) -> None:
    kid = create(enclave, store, pb.ECC_NIST_P256, pb.KEY_AGREEMENT)
    peer = ec.generate_private_key(ec.SECP256R1())
    spki = peer.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    shared = enclave.call(pb.Request(derive_shared_secret=pb.DeriveSharedSecretRequest(
        key_id=kid, peer_public_key=spki))).derive_shared_secret.shared_secret
    assert shared == peer.exchange(ec.ECDH(), public_key(enclave, kid))
    xid = create(enclave, store, pb.X25519, pb.KEY_AGREEMENT)
    xpeer = x25519.X25519PrivateKey.generate()
    xspki = xpeer.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    xs = enclave.call(pb.Request(derive_shared_secret=pb.DeriveSharedSecretRequest(
        key_id=xid, peer_public_key=xspki))).derive_shared_secret.shared_secret
    assert xs == xpeer.exchange(public_key(enclave, xid))
    with pytest.raises(errors.InvalidKey):  # an X25519 peer for a P-256 key
        enclave.call(pb.Request(derive_shared_secret=pb.DeriveSharedSecretRequest(key_id=kid, peer_public_key=xspki)))


def test_random_bytes(enclave) -> None:
    a = enclave.call(pb.Request(generate_random=pb.GenerateRandomRequest(length=64))).generate_random.random
    b = enclave.call(pb.Request(generate_random=pb.GenerateRandomRequest(length=64))).generate_random.random
    assert len(a) == 64 and a != b
    for n in (0, 1025):
        with pytest.raises(errors.InvalidRequest):
            enclave.call(pb.Request(generate_random=pb.GenerateRandomRequest(length=n)))


@pytest.mark.parametrize("spec,usage", [(pb.ED25519, pb.ENCRYPT_DECRYPT), (pb.SYMMETRIC_DEFAULT, pb.SIGN_VERIFY),
                                        (pb.X25519, pb.SIGN_VERIFY), (pb.KEY_SPEC_UNSPECIFIED, pb.SIGN_VERIFY)])
def test_create_refuses_spec_usage_mismatch(enclave, spec, usage) -> None:
    with pytest.raises(errors.InvalidRequest):
        enclave.call(pb.Request(create_key=pb.CreateKeyRequest(spec=spec, usage=usage)))


def test_every_spec_can_be_created_and_described(enclave, store) -> None:
    for spec in (pb.SYMMETRIC_DEFAULT, pb.HMAC_SHA_256, pb.HMAC_SHA_384, pb.HMAC_SHA_512, pb.ECC_NIST_P256,
                 pb.ECC_NIST_P384, pb.ECC_SECG_P256K1, pb.ED25519, pb.X25519, pb.RSA_2048, pb.RSA_3072,
                 pb.RSA_4096):
        usage = {pb.SYMMETRIC_DEFAULT: pb.ENCRYPT_DECRYPT, pb.X25519: pb.KEY_AGREEMENT}.get(
            spec, pb.GENERATE_VERIFY_MAC if spec in (pb.HMAC_SHA_256, pb.HMAC_SHA_384, pb.HMAC_SHA_512)
            else pb.SIGN_VERIFY)
        kid = create(enclave, store, spec, usage, description=f"spec {spec}")
        meta = enclave.call(pb.Request(describe_key=pb.DescribeKeyRequest(key_id=kid))).key_metadata
        assert (meta.spec, meta.usage, meta.description) == (spec, usage, f"spec {spec}")


def test_unknown_and_malformed_key_ids(enclave) -> None:
    with pytest.raises(errors.NotFound):
        enclave.call(pb.Request(describe_key=pb.DescribeKeyRequest(key_id="00000000-0000-4000-8000-000000000000")))
    with pytest.raises(errors.InvalidRequest):
        enclave.call(pb.Request(describe_key=pb.DescribeKeyRequest(key_id="../../etc/passwd")))
