"""Every KMS-completeness operation through the SDK against the real server (on SQLite and PostgreSQL),
and each refusal: wrong state (disabled, pending deletion), wrong principal, context mismatch (policy
condition), expired and revoked grants, altered import token, wrong wrapping, retired version; batches
with per-item errors."""

from __future__ import annotations

import json
import os
import time

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kms import errors
from kms.client import Credentials, KeyPolicy, Statement
from kms.client.byok import wrap_key_material
from kms.proto.enclave.v1 import errors_pb2 as codes
from tests.e2e.conftest import client_for


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def store_backend(request) -> str:
    """Every operation on both record stores."""
    return request.param


@pytest.fixture(scope="module")
def user_creds(server, admin_creds) -> Credentials:
    """A USER principal with no grants of its own."""
    creds = Credentials.generate("svc")
    with client_for(server, admin_creds) as admin:
        admin.add_principal(creds.principal_id, "svc", "USER")
    return creds


@pytest.fixture
def user(server, user_creds):
    with client_for(server, user_creds) as client:
        yield client


def code(exc: pytest.ExceptionInfo) -> int:
    return exc.value.code


def refusal(call) -> errors.EnclaveFailure:
    """The refusal of a call, raised or (batches: a key's state is reported per item) in its only item."""
    try:
        result = call()
    except errors.EnclaveFailure as exc:
        return exc
    assert isinstance(result, list) and len(result) == 1 and result[0].error is not None, result
    return result[0].error


def test_update_key_and_retired_version(admin) -> None:
    key = admin.create_key()
    v1 = admin.encrypt(key.key_id, b"one").ciphertext
    admin.rotate_key(key.key_id)
    v2 = admin.encrypt(key.key_id, b"two").ciphertext
    info = admin.update_key(key.key_id, min_decrypt_version=2, rotation_period_days=90, description="retired v1")
    assert (info.min_decrypt_version, info.rotation_period_days, info.description) == (2, 90, "retired v1")
    assert admin.describe_key(key.key_id).min_decrypt_version == 2
    with pytest.raises(errors.KeyStateError) as exc:
        admin.decrypt(v1)
    assert code(exc) == codes.KMS_ERR_KEY_VERSION_RETIRED
    assert admin.decrypt(v2).plaintext == b"two"
    with pytest.raises(errors.InvalidRequest):  # the current version can never be retired
        admin.update_key(key.key_id, min_decrypt_version=3)
    with pytest.raises(errors.InvalidRequest) as due:  # scheduled rotation: 90 days are not up
        admin.rotate_if_due(key.key_id)
    assert code(due) == codes.KMS_ERR_NOT_DUE
    with pytest.raises(ValueError):
        admin.update_key(key.key_id)


def test_deletion_schedule_cancel_and_pending_key_refuses_use(admin) -> None:
    key = admin.create_key()
    ct = admin.encrypt(key.key_id, b"keep me").ciphertext
    with pytest.raises(errors.InvalidRequest):
        admin.schedule_key_deletion(key.key_id, 6)
    pending = admin.schedule_key_deletion(key.key_id, 7)
    assert pending.state == "PENDING_DELETION" and pending.deletion_date is not None
    assert 7 * 86400 - 60 <= (pending.deletion_date.timestamp() - time.time()) <= 7 * 86400 + 60
    for use in (lambda: admin.decrypt(ct), lambda: admin.encrypt(key.key_id, b"x"),
                lambda: admin.generate_data_key(key.key_id), lambda: admin.batch_encrypt(key.key_id, [b"x"]),
                lambda: admin.batch_decrypt([ct])):
        error = refusal(use)
        assert isinstance(error, errors.KeyStateError) and error.code == codes.KMS_ERR_KEY_PENDING_DELETION
    with pytest.raises(errors.InvalidRequest) as early:  # the window has not passed
        admin.destroy_key(key.key_id)
    assert code(early) == codes.KMS_ERR_NOT_DUE
    assert admin.cancel_key_deletion(key.key_id).state == "DISABLED"
    with pytest.raises(errors.KeyStateError) as disabled:
        admin.decrypt(ct)
    assert code(disabled) == codes.KMS_ERR_KEY_DISABLED
    admin.enable_key(key.key_id)
    assert admin.decrypt(ct).plaintext == b"keep me"


def test_aliases_resolve_everywhere(admin) -> None:
    a, b = admin.create_key(), admin.create_key()
    assert admin.create_alias("alias/e2e/orders", a.key_id)["alias/e2e/orders"] == a.key_id
    with pytest.raises(errors.Conflict):
        admin.create_alias("alias/e2e/orders", b.key_id)
    old = admin.encrypt("alias/e2e/orders", b"x")
    assert old.key_id == a.key_id
    admin.update_alias("alias/e2e/orders", b.key_id)
    assert admin.generate_data_key("alias/e2e/orders").key_id == b.key_id
    assert admin.decrypt(old.ciphertext).plaintext == b"x"
    assert admin.list_aliases()["alias/e2e/orders"] == b.key_id
    assert "alias/e2e/orders" not in admin.delete_alias("alias/e2e/orders")
    with pytest.raises(errors.NotFound):
        admin.encrypt("alias/e2e/orders", b"x")


def test_data_keys_pairs_and_re_encrypt(admin) -> None:
    a, b = admin.create_key(), admin.create_key()
    ctx = {"bucket": "invoices"}
    dk = admin.generate_data_key(a.key_id, 48, ctx)
    assert len(dk.plaintext) == 48 and admin.decrypt(dk.ciphertext, ctx).plaintext == dk.plaintext
    assert admin.generate_data_key(a.key_id, with_plaintext=False).plaintext == b""
    pair = admin.generate_data_key_pair(a.key_id, "ECC_NIST_P256", ctx)
    private = serialization.load_der_private_key(pair.private_key, None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert admin.decrypt(pair.private_key_ciphertext, ctx).plaintext == pair.private_key
    serialization.load_der_public_key(pair.public_key).verify(
        private.sign(b"m", ec.ECDSA(hashes.SHA256())), b"m", ec.ECDSA(hashes.SHA256()))
    bare = admin.generate_data_key_pair(a.key_id, "ED25519", with_plaintext=False)
    assert bare.private_key == b"" and isinstance(
        serialization.load_der_private_key(admin.decrypt(bare.private_key_ciphertext).plaintext, None),
        ed25519.Ed25519PrivateKey)
    moved = admin.re_encrypt(dk.ciphertext, b.key_id, ctx, {"bucket": "archive"})
    assert moved.key_id == b.key_id and admin.decrypt(moved.ciphertext, {"bucket": "archive"}).plaintext == dk.plaintext
    with pytest.raises(errors.InvalidCiphertext):
        admin.re_encrypt(dk.ciphertext, b.key_id, {"bucket": "wrong"})


def test_batches_with_per_item_errors(admin) -> None:
    aes, p256, ed = admin.create_key(), admin.create_key("ECC_NIST_P256"), admin.create_key("ED25519")
    items = [os.urandom(1 + i % 64) for i in range(256)]
    enc = admin.batch_encrypt(aes.key_id, items)
    assert len(enc) == 256 and all(i.ok for i in enc)
    cts = [i.data for i in enc]
    cts[5] = cts[5][:-1] + bytes([cts[5][-1] ^ 1])
    dec = admin.batch_decrypt(cts)
    assert [d.data for n, d in enumerate(dec) if n != 5] == [x for n, x in enumerate(items) if n != 5]
    assert isinstance(dec[5].error, errors.InvalidCiphertext) and not dec[5].ok
    with pytest.raises(errors.InvalidCiphertext):
        dec[5].unwrap()
    assert admin.decrypt(cts[0]).plaintext == items[0]  # a batch ciphertext is an ordinary ciphertext
    digests = [admin.digest_for("ECDSA_SHA_256", b"m%d" % i) for i in range(16)] + [b"short"]
    sigs = admin.batch_sign(p256.key_id, digests=digests)
    public = serialization.load_der_public_key(admin.get_public_key(p256.key_id).public_key)
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    for i in range(16):
        public.verify(sigs[i].unwrap(), digests[i], ec.ECDSA(Prehashed(hashes.SHA256())))
    assert isinstance(sigs[16].error, errors.InvalidRequest)
    ed_sigs = admin.batch_sign(ed.key_id, [b"vote-1", b"vote-2"])
    assert admin.verify(ed.key_id, signature=ed_sigs[1].unwrap(), message=b"vote-2")
    with pytest.raises(ValueError):
        admin.batch_encrypt(aes.key_id, [b"x"] * 257)
    assert isinstance(refusal(lambda: admin.batch_encrypt(p256.key_id, [b"x"])), errors.KeyStateError)  # usage


def test_wrong_principal_is_refused_everywhere(admin, user) -> None:
    key, other = admin.create_key(), admin.create_key()
    ct = admin.encrypt(key.key_id, b"not yours").ciphertext
    refused = [lambda: user.decrypt(ct), lambda: user.generate_data_key(key.key_id),
               lambda: user.generate_data_key_pair(key.key_id), lambda: user.batch_encrypt(key.key_id, [b"x"]),
               lambda: user.re_encrypt(ct, other.key_id), lambda: user.update_key(key.key_id, description="x"),
               lambda: user.schedule_key_deletion(key.key_id, 7), lambda: user.create_alias("alias/mine", key.key_id),
               lambda: user.put_key_policy(key.key_id, KeyPolicy()), lambda: user.list_grants(key.key_id),
               lambda: user.create_grant(key.key_id, user.principal_id, ["decrypt"]),
               lambda: user.import_key("SYMMETRIC_DEFAULT", os.urandom(32))]
    for n, call in enumerate(refused):
        assert isinstance(refusal(call), errors.PermissionDenied), n
    assert isinstance(refusal(lambda: user.batch_decrypt([admin.batch_encrypt(key.key_id, [b"b"])[0].data])),
                      errors.PermissionDenied)


def test_policy_with_context_condition(admin, user, user_creds) -> None:
    key = admin.create_key()
    before = admin.describe_key(key.key_id).policy_hash
    policy = KeyPolicy.from_document({"statements": [
        {"principal": user_creds.principal_id.hex(), "operations": ["encrypt", "describe"],
         "conditions": {"tenant": "a"}},
        {"principal": "*", "operations": ["describe"]}]})
    info = admin.put_key_policy(key.key_id, policy)
    assert len(info.policy_hash) == 32 and info.policy_hash != before
    assert admin.describe_key(key.key_id).policy_hash == info.policy_hash
    ct = user.encrypt(key.key_id, b"tenant a", {"tenant": "a", "app": "x"})
    for bad in ({}, {"tenant": "b"}):
        with pytest.raises(errors.PermissionDenied):  # context mismatch
            user.encrypt(key.key_id, b"x", bad)
    with pytest.raises(errors.PermissionDenied):  # no decrypt in the statement
        user.decrypt(ct.ciphertext, {"tenant": "a", "app": "x"})
    admin.put_key_policy(key.key_id, KeyPolicy((Statement.build(None, ["describe"]),)))
    with pytest.raises(errors.PermissionDenied):  # the policy was replaced
        user.encrypt(key.key_id, b"x", {"tenant": "a"})


def test_grants_expire_and_are_revoked(admin, user, user_creds) -> None:
    key = admin.create_key()
    ct = admin.encrypt(key.key_id, b"granted", {"env": "prod"}).ciphertext
    grant = admin.create_grant(key.key_id, user_creds.principal_id, ["decrypt"], conditions={"env": "prod"})
    assert len(grant.grant_id) == 16 and grant.expires_at is None
    assert user.decrypt(ct, {"env": "prod"}).plaintext == b"granted"
    assert [g.grant_id for g in admin.list_grants(key.key_id)] == [grant.grant_id]
    assert admin.revoke_grant(key.key_id, grant.grant_id) == []
    with pytest.raises(errors.PermissionDenied):  # lost grant
        user.decrypt(ct, {"env": "prod"})
    with pytest.raises(ValueError):  # a principal id is not a grant id
        admin.revoke_grant(key.key_id, user_creds.principal_id)
    short = admin.create_grant(key.key_id, user_creds.principal_id, ["decrypt"], expires_at=int(time.time()) + 2)
    assert short.expires_at is not None
    assert user.decrypt(ct, {"env": "prod"}).plaintext == b"granted"
    time.sleep(3)  # the server passes its wall clock to the enclave
    with pytest.raises(errors.PermissionDenied):  # expired grant
        user.decrypt(ct, {"env": "prod"})
    with pytest.raises(errors.InvalidRequest):  # an expiry in the past
        admin.create_grant(key.key_id, user_creds.principal_id, ["decrypt"], expires_at=int(time.time()) - 10)


def test_byok_import_and_refusals(admin) -> None:
    material = os.urandom(32)
    key = admin.import_key("SYMMETRIC_DEFAULT", material, description="byok")
    assert key.origin == "ORIGIN_IMPORTED" and key.description == "byok"
    ct = admin.encrypt(key.key_id, b"byok").ciphertext
    header, body = ct[:54], ct[54:]  # the enclave really uses our material (formats.md)
    assert AESGCM(material).decrypt(header[42:54], body, header + b"\x00") == b"byok"
    signer = ec.generate_private_key(ec.SECP256R1())
    imported = admin.import_key("ECC_NIST_P256", signer, algorithm="RSA_AES_KEY_WRAP_SHA_256")
    signer.public_key().verify(admin.sign(imported.key_id, b"m").signature, b"m", ec.ECDSA(hashes.SHA256()))

    params = admin.get_parameters_for_import("SYMMETRIC_DEFAULT")
    assert params.evidence.result.ok and params.valid_to.timestamp() > time.time() + 23 * 3600
    wrapped = wrap_key_material(params.wrapping_public_key, os.urandom(32), params.algorithm)
    altered = bytearray(params.import_token)
    altered[20] ^= 1
    with pytest.raises(errors.InvalidRequest):  # altered (e.g. extended) token
        admin.import_key_material(bytes(altered), wrapped)
    with pytest.raises((errors.InvalidRequest, errors.InvalidCiphertext)):  # wrong wrapping
        admin.import_key_material(params.import_token, wrapped[:-1] + bytes([wrapped[-1] ^ 1]))
    other = admin.get_parameters_for_import("SYMMETRIC_DEFAULT")
    with pytest.raises((errors.InvalidRequest, errors.InvalidCiphertext)):  # wrapped for another import
        admin.import_key_material(params.import_token,
                                  wrap_key_material(other.wrapping_public_key, os.urandom(32), other.algorithm))
    with pytest.raises((errors.InvalidRequest, errors.InvalidKey)):  # wrong size for the spec
        admin.import_key_material(other.import_token,
                                  wrap_key_material(other.wrapping_public_key, os.urandom(16), other.algorithm))


def test_identity_carries_the_audit_key(admin) -> None:
    ident = admin.identity()
    assert ident.domain_loaded and len(ident.domain_id) == 16 and len(ident.audit_public_key) == 32
    assert ident.mrsigner == admin.evidence.identity.mrsigner


def test_the_server_runs_on_the_store_asked_for(server, store_backend) -> None:
    (line,) = [json.loads(line) for line in server.lines if '"record store"' in line]
    assert line["backend"] == {"sqlite": "SqliteStore", "postgres": "PostgresStore"}[store_backend]
