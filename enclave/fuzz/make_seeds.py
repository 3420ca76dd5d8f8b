"""Write the fuzz seeds of enclave/fuzz/fuzz_ecall.c: encoded boundary Requests, never committed.

    .venv/bin/python enclave/fuzz/make_seeds.py build/fuzz/seeds

One valid Request per operation of kms.enclave.v1 (several for operations with modes), plus a
few deliberately wrong envelopes. Key ids are placeholders PLACEHOLDER_PREFIX + two hex digits;
the harness replaces each with the real id of the key it created at that index (see k_keys in
fuzz_ecall.c), so the seeds reach the handlers with keys that exist. Ciphertexts, signatures
and MACs are well-formed but not valid under those keys (the keys are generated per run).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519

from kms.proto.enclave.v1 import boundary_pb2 as pb

PLACEHOLDER_PREFIX = "f0220000-0000-4000-8000-0000000000"
AES, ED25519, P256_SIGN, HMAC, P256_ECDH, X25519, RSA, AES_DISABLED, K1_SIGN = range(1, 10)


def kid(index: int) -> str:
    """The placeholder key id of the harness's key number `index` (1-based)."""
    return f"{PLACEHOLDER_PREFIX}{index:02x}"


def spki(public_key: object) -> bytes:
    return public_key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def fake_ciphertext(index: int, body: bytes) -> bytes:
    """The enclave's self-describing ciphertext layout with a wrong tag."""
    key_id = kid(index).encode()
    return bytes([1, len(key_id)]) + key_id + (1).to_bytes(4, "big") + bytes(12) + body + bytes(16)


def fake_sealed_blob() -> bytes:
    """An sgx_sealed_data_t of the right shape (MRSIGNER seal key request, 32+32 payload)."""
    header = bytearray(560)
    header[0:2] = (4).to_bytes(2, "little")  # SEAL key name
    header[2:4] = (2).to_bytes(2, "little")  # MRSIGNER policy
    header[4:6] = (1).to_bytes(2, "little")
    header[512:516] = (32).to_bytes(4, "little")
    header[528:532] = (64).to_bytes(4, "little")
    return bytes(header) + bytes(32) + b"KMS-DOMAIN-KEY1\x00" + bytes(16)


def fake_quote() -> bytes:
    """A quote v3 of the minimum shape (header, report body at 48, empty signature data)."""
    header = (3).to_bytes(2, "little") + (2).to_bytes(2, "little") + bytes(44)
    return header + bytes(384) + (588).to_bytes(4, "little") + bytes(588)


def requests() -> dict[str, pb.Request]:
    """Name -> Request for every operation."""
    ctx = [pb.ContextEntry(key=b"tenant", value=b"acme"), pb.ContextEntry(key=b"purpose", value=b"fuzz")]
    digest = hashlib.sha256(b"message").digest()
    p256_peer = spki(ec.generate_private_key(ec.SECP256R1()).public_key())
    x_peer = spki(x25519.X25519PrivateKey.generate().public_key())
    r: dict[str, pb.Request] = {
        "get_identity": pb.Request(get_identity=pb.GetIdentityRequest()),
        "generate_domain_key": pb.Request(generate_domain_key=pb.GenerateDomainKeyRequest()),
        "load_domain_key": pb.Request(load_domain_key=pb.LoadDomainKeyRequest(sealed_domain_key=fake_sealed_blob())),
        "rotate_key": pb.Request(rotate_key=pb.RotateKeyRequest(key_id=kid(HMAC))),
        "describe_key": pb.Request(describe_key=pb.DescribeKeyRequest(key_id=kid(AES))),
        "set_key_state": pb.Request(set_key_state=pb.SetKeyStateRequest(key_id=kid(AES), state=pb.DISABLED)),
        "enable_key": pb.Request(set_key_state=pb.SetKeyStateRequest(key_id=kid(AES_DISABLED), state=pb.ENABLED)),
        "get_public_key_der": pb.Request(get_public_key=pb.GetPublicKeyRequest(key_id=kid(P256_SIGN))),
        "get_public_key_pem": pb.Request(
            get_public_key=pb.GetPublicKeyRequest(key_id=kid(ED25519), format=pb.PUBLIC_KEY_PEM)
        ),
        "encrypt": pb.Request(encrypt=pb.EncryptRequest(key_id=kid(AES), plaintext=b"attack at dawn", context=ctx)),
        "encrypt_disabled": pb.Request(encrypt=pb.EncryptRequest(key_id=kid(AES_DISABLED), plaintext=b"x")),
        "decrypt": pb.Request(decrypt=pb.DecryptRequest(ciphertext=fake_ciphertext(AES, b"0123456789"), context=ctx)),
        "sign_ed25519": pb.Request(
            sign=pb.SignRequest(key_id=kid(ED25519), message=b"message", algorithm=pb.ED25519_PURE)
        ),
        "sign_p256_digest_p1363": pb.Request(
            sign=pb.SignRequest(key_id=kid(P256_SIGN), message=digest, message_type=pb.DIGEST,
                                algorithm=pb.ECDSA_SHA_256, format=pb.SIGNATURE_FORMAT_P1363)
        ),
        "sign_k1": pb.Request(sign=pb.SignRequest(key_id=kid(K1_SIGN), message=b"m", algorithm=pb.ECDSA_SHA_256)),
        "verify_p256": pb.Request(
            verify=pb.VerifyRequest(key_id=kid(P256_SIGN), message=b"message", algorithm=pb.ECDSA_SHA_256,
                                    signature=bytes.fromhex("3006020101020101"))
        ),
        "verify_ed25519": pb.Request(
            verify=pb.VerifyRequest(key_id=kid(ED25519), message=b"message", algorithm=pb.ED25519_PURE,
                                    signature=bytes(64), key_version=1)
        ),
        "generate_mac": pb.Request(generate_mac=pb.GenerateMacRequest(key_id=kid(HMAC), message=b"message")),
        "verify_mac": pb.Request(verify_mac=pb.VerifyMacRequest(key_id=kid(HMAC), message=b"message", mac=bytes(32))),
        "asymmetric_decrypt": pb.Request(
            asymmetric_decrypt=pb.AsymmetricDecryptRequest(key_id=kid(RSA), ciphertext=bytes(256),
                                                           algorithm=pb.RSAES_OAEP_SHA_256)
        ),
        "derive_p256": pb.Request(
            derive_shared_secret=pb.DeriveSharedSecretRequest(key_id=kid(P256_ECDH), peer_public_key=p256_peer)
        ),
        "derive_x25519": pb.Request(
            derive_shared_secret=pb.DeriveSharedSecretRequest(key_id=kid(X25519), peer_public_key=x_peer)
        ),
        "generate_random": pb.Request(generate_random=pb.GenerateRandomRequest(length=32)),
        "install_quote": pb.Request(install_quote=pb.InstallQuoteRequest(quote=fake_quote())),
        "get_evidence": pb.Request(get_evidence=pb.GetEvidenceRequest()),
        "list_keys": pb.Request(list_keys=pb.ListKeysRequest(limit=4)),
        "list_keys_page": pb.Request(list_keys=pb.ListKeysRequest(page_token=kid(AES))),
        "init": pb.Request(
            init=pb.InitRequest(admin_name="admin", threshold=2,
                                recovery_public_keys=[spki(x25519.X25519PrivateKey.generate().public_key())[-32:]
                                                      for _ in range(3)],
                                auditor_public_keys=[spki(x25519.X25519PrivateKey.generate().public_key())[-32:]])
        ),
        "set_auditors": pb.Request(
            set_auditors=pb.SetAuditorsRequest(auditor_public_keys=[
                spki(x25519.X25519PrivateKey.generate().public_key())[-32:] for _ in range(2)])
        ),
        "add_principal": pb.Request(
            add_principal=pb.AddPrincipalRequest(principal_id=bytes(32), name="alice", role=pb.USER)
        ),
        "list_principals": pb.Request(list_principals=pb.ListPrincipalsRequest()),
        "create_key_bls12_381": pb.Request(create_key=pb.CreateKeyRequest(
            spec=pb.BLS12_381, usage=pb.VALIDATOR, chain_id="0x" + "00" * 32, allow_voluntary_exit=True)),
        "eth_sign_attestation": pb.Request(eth_sign=pb.EthSignRequest(
            key_id=kid(ED25519), type=pb.ETH_ATTESTATION, ssz=bytes(128), fork_version=bytes(4),
            genesis_validators_root=bytes(32), watermark=pb.EthWatermark(min_target_epoch=1))),
        "eth_sign_aggregate": pb.Request(eth_sign=pb.EthSignRequest(
            key_id=kid(ED25519), type=pb.ETH_AGGREGATE_AND_PROOF_V2,
            ssz=bytes(8) + (108).to_bytes(4, "little") + bytes(96) + (236).to_bytes(4, "little") + bytes(232) + b"\x01",
            fork_version=bytes(4), genesis_validators_root=bytes(32))),
        "eth_slashing_check": pb.Request(eth_slashing_check=pb.EthSlashingCheckRequest(
            key_id=kid(ED25519), type=pb.ETH_BLOCK_V2, slot=5, signing_root=bytes(32))),
        "eth_import_keystore": pb.Request(eth_import_keystore=pb.EthImportKeystoreRequest(
            kdf_function="pbkdf2", dklen=32, salt=bytes(32), pbkdf2_c=2, pbkdf2_prf="hmac-sha256",
            checksum_function="sha256", checksum_message=bytes(32), cipher_function="aes-128-ctr",
            cipher_iv=bytes(16), cipher_message=bytes(32), password=b"pw", chain_id="0x" + "00" * 32)),
    }
    for spec, usage in [(pb.SYMMETRIC_DEFAULT, pb.ENCRYPT_DECRYPT), (pb.HMAC_SHA_512, pb.GENERATE_VERIFY_MAC),
                        (pb.ECC_NIST_P384, pb.SIGN_VERIFY), (pb.ED25519, pb.SIGN_VERIFY),
                        (pb.X25519, pb.KEY_AGREEMENT)]:
        name = f"create_key_{pb.KeySpec.Name(spec).lower()}"
        r[name] = pb.Request(create_key=pb.CreateKeyRequest(spec=spec, usage=usage, description="fuzz"))
    # Any operation added to the proto later still gets a seed: its empty request.
    covered = {req.WhichOneof("op") for req in r.values()}
    for field in pb.Request.DESCRIPTOR.oneofs_by_name["op"].fields:
        if field.name not in covered:
            req = pb.Request()
            getattr(req, field.name).SetInParent()
            r[f"{field.name}_empty"] = req
    for i, req in enumerate(r.values(), start=1):
        req.version = pb.BOUNDARY_VERSION_1
        req.request_id = i
        req.host_time = 1_700_000_000
    return r


def invalid() -> dict[str, bytes]:
    """Envelopes the boundary must refuse with a typed code."""
    no_version = pb.Request(request_id=7, get_identity=pb.GetIdentityRequest()).SerializeToString()
    no_op = pb.Request(version=pb.BOUNDARY_VERSION_1, request_id=8).SerializeToString()
    unknown_field = no_op + bytes([0xF8, 0x06, 0x01])  # field 111, varint 1
    return {"invalid_no_version": no_version, "invalid_no_op": no_op, "invalid_unknown_field": unknown_field,
            "invalid_garbage": bytes(range(256))}


def tls_records() -> dict[str, bytes]:
    """Session-mode seeds (first byte is a TLS record type): real ClientHellos from Python's ssl,
    and a few records of the other types. fuzz_ecall feeds these to a fresh session."""
    import ssl

    seeds = {}
    for name, version in (("tls13", ssl.TLSVersion.TLSv1_3), ("tls12", ssl.TLSVersion.TLSv1_2)):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version = ctx.maximum_version = version
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        conn = ctx.wrap_bio(incoming, outgoing, server_side=False)
        try:
            conn.do_handshake()
        except ssl.SSLWantReadError:
            pass
        seeds[f"session_client_hello_{name}"] = outgoing.read()
    seeds["session_alert"] = bytes([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28])
    seeds["session_app_data"] = bytes([0x17, 0x03, 0x03, 0x00, 0x20]) + bytes(32)
    seeds["session_ccs"] = bytes([0x14, 0x03, 0x03, 0x00, 0x01, 0x01])
    return seeds


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} OUTPUT_DIR", file=sys.stderr)
        return 1
    out = Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    seeds = {name: req.SerializeToString() for name, req in requests().items()} | invalid() | tls_records()
    for name, data in seeds.items():
        (out / name).write_bytes(data)
    print(f"wrote {len(seeds)} seeds to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
