"""Key lifecycle and envelope operations through the real enclave (host path; the same handlers
serve sessions): deletion windows, destruction, retired versions, scheduled rotation, aliases,
data keys, ReEncrypt and batches with per-item status."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kms import errors
from kms.proto.enclave.v1 import boundary_pb2 as pb
from kms.proto.enclave.v1 import errors_pb2 as codes

DAY = 86400
NOW = 1_800_000_000


def call(enclave, at: int = NOW, **op):
    return enclave.call(pb.Request(host_time=at, **op))


def aes(enclave) -> str:
    return call(enclave, create_key=pb.CreateKeyRequest(spec=pb.SYMMETRIC_DEFAULT, usage=pb.ENCRYPT_DECRYPT)
                ).key_metadata.key_id


def encrypt(enclave, key_id, data=b"p", at=NOW):
    return call(enclave, at, encrypt=pb.EncryptRequest(key_id=key_id, plaintext=data)).encrypt.ciphertext


def decrypt(enclave, ct, at=NOW):
    return call(enclave, at, decrypt=pb.DecryptRequest(ciphertext=ct)).decrypt


def test_deletion_window_cancel_and_destroy(enclave) -> None:
    kid = aes(enclave)
    ct = encrypt(enclave, kid)
    for days in (6, 31):
        with pytest.raises(errors.InvalidRequest):
            call(enclave, schedule_key_deletion=pb.ScheduleKeyDeletionRequest(key_id=kid, pending_window_days=days))
    meta = call(enclave, schedule_key_deletion=pb.ScheduleKeyDeletionRequest(key_id=kid)).key_metadata
    assert meta.state == pb.PENDING_DELETION and meta.deletion_date == NOW + 30 * DAY
    with pytest.raises(errors.KeyStateError) as exc:
        decrypt(enclave, ct)
    assert exc.value.code == codes.KMS_ERR_KEY_PENDING_DELETION
    assert call(enclave, cancel_key_deletion=pb.CancelKeyDeletionRequest(key_id=kid)).key_metadata.state == pb.DISABLED
    call(enclave, set_key_state=pb.SetKeyStateRequest(key_id=kid, state=pb.ENABLED))
    assert decrypt(enclave, ct).plaintext == b"p"
    call(enclave, schedule_key_deletion=pb.ScheduleKeyDeletionRequest(key_id=kid, pending_window_days=7))
    with pytest.raises(errors.InvalidRequest) as early:
        call(enclave, NOW + 7 * DAY - 1, destroy_key=pb.DestroyKeyRequest(key_id=kid))
    assert early.value.code == codes.KMS_ERR_NOT_DUE
    gone = call(enclave, NOW + 7 * DAY, destroy_key=pb.DestroyKeyRequest(key_id=kid)).key_metadata
    assert gone.state == pb.DESTROYED and gone.version_count == 0
    with pytest.raises(errors.KeyDestroyed):
        decrypt(enclave, ct)
    with pytest.raises(errors.KeyStateError):  # no way back from destruction
        call(enclave, set_key_state=pb.SetKeyStateRequest(key_id=kid, state=pb.ENABLED))


def test_destroyed_material_is_gone_from_the_store(enclave, store) -> None:
    kid = aes(enclave)
    call(enclave, schedule_key_deletion=pb.ScheduleKeyDeletionRequest(key_id=kid, pending_window_days=7))
    before = len(store[kid][1])
    call(enclave, NOW + 8 * DAY, destroy_key=pb.DestroyKeyRequest(key_id=kid))
    assert len(store[kid][1]) < before - 32  # the 32-byte key (and its version entry) left the record


def test_minimum_decryption_version_retires_old_ciphertexts(enclave) -> None:
    kid = aes(enclave)
    v1 = encrypt(enclave, kid, b"one")
    call(enclave, rotate_key=pb.RotateKeyRequest(key_id=kid))
    v2 = encrypt(enclave, kid, b"two")
    with pytest.raises(errors.InvalidRequest):  # the current version can never be retired
        call(enclave, update_key=pb.UpdateKeyRequest(key_id=kid, set_min_decrypt_version=True, min_decrypt_version=3))
    call(enclave, update_key=pb.UpdateKeyRequest(key_id=kid, set_min_decrypt_version=True, min_decrypt_version=2))
    with pytest.raises(errors.KeyStateError) as exc:
        decrypt(enclave, v1)
    assert exc.value.code == codes.KMS_ERR_KEY_VERSION_RETIRED
    assert decrypt(enclave, v2).plaintext == b"two"


def test_scheduled_rotation(enclave) -> None:
    kid = aes(enclave)
    with pytest.raises(errors.InvalidRequest):
        call(enclave, rotate_if_due=pb.RotateIfDueRequest(key_id=kid))  # no period set
    meta = call(enclave, update_key=pb.UpdateKeyRequest(key_id=kid, set_rotation_period=True,
                                                        rotation_period_days=90)).key_metadata
    assert meta.rotation_period_days == 90
    with pytest.raises(errors.InvalidRequest):
        call(enclave, NOW + 89 * DAY, rotate_if_due=pb.RotateIfDueRequest(key_id=kid))
    rotated = call(enclave, NOW + 90 * DAY, rotate_if_due=pb.RotateIfDueRequest(key_id=kid)).key_metadata
    assert rotated.current_version == 2 and rotated.last_rotated_at == NOW + 90 * DAY


def test_aliases_work_wherever_a_key_id_does(enclave) -> None:
    a, b = aes(enclave), aes(enclave)
    assert [(x.alias, x.key_id) for x in call(enclave, create_alias=pb.AliasRequest(
        alias="alias/app/orders", key_id=a)).aliases.aliases] == [("alias/app/orders", a)]
    with pytest.raises(errors.Conflict):
        call(enclave, create_alias=pb.AliasRequest(alias="alias/app/orders", key_id=b))
    via_alias = call(enclave, encrypt=pb.EncryptRequest(key_id="alias/app/orders", plaintext=b"x")).encrypt
    assert via_alias.key_id == a and decrypt(enclave, via_alias.ciphertext).key_id == a
    call(enclave, update_alias=pb.AliasRequest(alias="alias/app/orders", key_id=b))
    assert call(enclave, encrypt=pb.EncryptRequest(key_id="alias/app/orders", plaintext=b"x")).encrypt.key_id == b
    assert decrypt(enclave, via_alias.ciphertext).plaintext == b"x"  # old ciphertexts name the key, not the alias
    call(enclave, delete_alias=pb.AliasRequest(alias="alias/app/orders"))
    with pytest.raises(errors.NotFound):
        call(enclave, encrypt=pb.EncryptRequest(key_id="alias/app/orders", plaintext=b"x"))
    for bad in ("alias/", "alias/has space", "orders"):
        with pytest.raises(errors.InvalidRequest):
            call(enclave, create_alias=pb.AliasRequest(alias=bad, key_id=a))


def test_data_keys(enclave) -> None:
    kid = aes(enclave)
    ctx = [pb.ContextEntry(key=b"bucket", value=b"invoices")]
    dk = call(enclave, generate_data_key=pb.GenerateDataKeyRequest(key_id=kid, context=ctx)).generate_data_key
    assert len(dk.plaintext) == 32
    opened = call(enclave, decrypt=pb.DecryptRequest(ciphertext=dk.ciphertext, context=ctx)).decrypt
    assert opened.plaintext == dk.plaintext
    bare = call(enclave, generate_data_key=pb.GenerateDataKeyRequest(key_id=kid, without_plaintext=True,
                                                                     number_of_bytes=16)).generate_data_key
    assert bare.plaintext == b"" and len(decrypt(enclave, bare.ciphertext).plaintext) == 16
    pair = call(enclave, generate_data_key_pair=pb.GenerateDataKeyPairRequest(
        key_id=kid, pair_spec=pb.ECC_NIST_P256)).generate_data_key_pair
    private = serialization.load_der_private_key(pair.private_key_plaintext, None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert private.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo) == pair.public_key
    assert decrypt(enclave, pair.private_key_ciphertext).plaintext == pair.private_key_plaintext


def test_re_encrypt_moves_a_ciphertext_between_keys(enclave) -> None:
    a, b = aes(enclave), aes(enclave)
    ct = call(enclave, encrypt=pb.EncryptRequest(key_id=a, plaintext=b"secret",
                                                 context=[pb.ContextEntry(key=b"k", value=b"1")])).encrypt.ciphertext
    source = [pb.ContextEntry(key=b"k", value=b"1")]
    r = call(enclave, re_encrypt=pb.ReEncryptRequest(ciphertext=ct, source_context=source,
                                                     destination_key_id=b)).re_encrypt
    assert (r.source_key_id, r.key_id) == (a, b) and b"secret" not in r.ciphertext
    assert decrypt(enclave, r.ciphertext).plaintext == b"secret"
    with pytest.raises(errors.InvalidCiphertext):
        call(enclave, re_encrypt=pb.ReEncryptRequest(ciphertext=ct, destination_key_id=b))  # context missing


def test_batches_report_per_item_status(enclave) -> None:
    kid = aes(enclave)
    items = [b"item-%d" % i for i in range(256)]
    enc = call(enclave, batch=pb.BatchRequest(operation=pb.BATCH_ENCRYPT, key_id=kid, items=items)).batch.results
    assert len(enc) == 256 and all(r.error == 0 for r in enc)
    cts = [r.data for r in enc]
    cts[7] = cts[7][:-1] + bytes([cts[7][-1] ^ 1])
    dec = call(enclave, batch=pb.BatchRequest(operation=pb.BATCH_DECRYPT, items=cts)).batch.results
    assert [r.data for i, r in enumerate(dec) if i != 7] == [x for i, x in enumerate(items) if i != 7]
    assert dec[7].error == codes.KMS_ERR_INVALID_CIPHERTEXT and dec[7].data == b""
    signer = call(enclave, create_key=pb.CreateKeyRequest(spec=pb.ECC_NIST_P256,
                                                          usage=pb.SIGN_VERIFY)).key_metadata.key_id
    sigs = call(enclave, batch=pb.BatchRequest(operation=pb.BATCH_SIGN, key_id=signer, algorithm=pb.ECDSA_SHA_256,
                                               message_type=pb.DIGEST, items=[b"\x01" * 32, b"short"])).batch.results
    assert sigs[0].error == 0 and sigs[1].error == codes.KMS_ERR_INVALID_ARGUMENT


def test_listing_pages_through_aliases_and_validator_state(enclave) -> None:
    """The store also holds alias and validator-state records: pages must step over them."""
    made = {aes(enclave) for _ in range(40)}
    for i in range(12):
        call(enclave, create_alias=pb.AliasRequest(alias=f"alias/a{i}", key_id=sorted(made)[i]))
    made.add(call(enclave, create_key=pb.CreateKeyRequest(spec=pb.ED25519, usage=pb.VALIDATOR,
                                                          chain_id="c")).key_metadata.key_id)
    seen, token = [], ""
    for _ in range(20):
        page = call(enclave, list_keys=pb.ListKeysRequest(page_token=token, limit=7)).list_keys
        seen += [k.key_id for k in page.keys]
        token = page.next_page_token
        if not token:
            break
    assert set(seen) == made and len(seen) == len(made)
    aliases = call(enclave, list_aliases=pb.ListAliasesRequest()).aliases.aliases
    assert len(aliases) == 12
