"""Every operation that names a key leaves an audit record that names it: one test per such
operation of the table (enclave/src/operations.def), run through the real enclave in an attested
session (or on the host's path where the host is the caller), reading back the signed record.
The list of cases must cover exactly the operations the table says name a key, so a new one
cannot be added without its test. (The import operations once recorded garbage: audit.c read a
field of another message.)"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, x25519
from cryptography.hazmat.primitives.hashes import SHA256

from kms import errors
from kms.audit import verify_chain
from kms.proto.enclave.v1 import boundary_pb2 as pb
from tests.auditor import AUDITOR
from tests.integration.test_byok import NOW, wrap
from tests.integration.test_key_transfer import domain, exportable_key, named, transfer
from tests.integration.test_validator_guard import CHAIN, vote

REPO = Path(__file__).resolve().parents[2]
DAY = 86400


def ops_naming_a_key() -> set[str]:
    text = (REPO / "enclave/src/operations.def").read_text()
    body = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    named = set()
    for m in re.finditer(r"KMS_OP\((\w+),(.*?)\)\s*(?=KMS_OP|\Z)", body, flags=re.S):
        if "KEY(" in m.group(2):
            named.add(m.group(1))
    return named


class World:
    """One domain: an enclave instance, its admin session, and keys of every kind."""

    def __init__(self, build: Path, tmp: Path) -> None:
        self.enclave, self.admin = domain(build, tmp, "audit-a", tmp / "platform")
        self.peer_enclave, self.peer = domain(build, tmp, "audit-b", tmp / "platform")
        self.aes = self.create(pb.SYMMETRIC_DEFAULT, pb.ENCRYPT_DECRYPT)
        self.aes2 = self.create(pb.SYMMETRIC_DEFAULT, pb.ENCRYPT_DECRYPT)
        self.ed = self.create(pb.ED25519, pb.SIGN_VERIFY)
        self.hmac = self.create(pb.HMAC_SHA_256, pb.GENERATE_VERIFY_MAC)
        self.rsa = self.create(pb.RSA_2048, pb.ENCRYPT_DECRYPT)
        self.x = self.create(pb.X25519, pb.KEY_AGREEMENT)
        self.validator = self.admin.call(pb.Request(create_key=pb.CreateKeyRequest(
            spec=pb.ED25519, usage=pb.VALIDATOR, chain_id=CHAIN))).key_metadata.key_id

    def create(self, spec: int, usage: int) -> str:
        req = pb.CreateKeyRequest(spec=spec, usage=usage)
        return self.admin.call(pb.Request(create_key=req)).key_metadata.key_id

    def call(self, **op) -> pb.Response:
        return self.admin.call(pb.Request(**op))

    def host(self, at: int, **op) -> pb.Response:
        return self.enclave.call(pb.Request(host_time=at, **op))

    def last_record(self) -> pb.AuditBody:
        """What the last record says, read as the domain's auditor reads it."""
        entries = self.enclave_store().audit
        report = verify_chain(entries, self.enclave.identity().audit_public_key, auditor_key=AUDITOR)
        assert report.ok and report.bodies[-1] is not None
        return report.bodies[-1]

    def enclave_store(self):
        return self.enclave._store  # the test's own MemoryStore


@pytest.fixture(scope="module")
def world(build, tmp_path_factory) -> World:
    w = World(build, tmp_path_factory.mktemp("audit-ids"))
    yield w
    w.enclave.close()
    w.peer_enclave.close()


def _ct(w: World, kid: str, pt: bytes = b"x", **ctx) -> bytes:
    return w.call(encrypt=pb.EncryptRequest(key_id=kid, plaintext=pt)).encrypt.ciphertext


def c_create_key(w):
    return w.call(create_key=pb.CreateKeyRequest(spec=pb.SYMMETRIC_DEFAULT, usage=pb.ENCRYPT_DECRYPT)
                  ).key_metadata.key_id, ""


def c_rotate_key(w):
    kid = w.create(pb.SYMMETRIC_DEFAULT, pb.ENCRYPT_DECRYPT)
    w.call(rotate_key=pb.RotateKeyRequest(key_id=kid))
    return kid, ""


def c_describe_key(w):
    w.call(describe_key=pb.DescribeKeyRequest(key_id=w.aes))
    return w.aes, ""


def c_set_key_state(w):
    kid = w.create(pb.SYMMETRIC_DEFAULT, pb.ENCRYPT_DECRYPT)
    w.call(set_key_state=pb.SetKeyStateRequest(key_id=kid, state=pb.DISABLED))
    return kid, ""


def c_schedule_key_deletion(w):
    kid = w.create(pb.SYMMETRIC_DEFAULT, pb.ENCRYPT_DECRYPT)
    w.call(schedule_key_deletion=pb.ScheduleKeyDeletionRequest(key_id=kid, pending_window_days=7))
    return kid, ""


def c_cancel_key_deletion(w):
    kid, _ = c_schedule_key_deletion(w)
    w.call(cancel_key_deletion=pb.CancelKeyDeletionRequest(key_id=kid))
    return kid, ""


def c_destroy_key(w):  # the host's housekeeping, once the window has passed
    kid, _ = c_schedule_key_deletion(w)
    w.host(NOW + 40 * DAY, destroy_key=pb.DestroyKeyRequest(key_id=kid))
    return kid, ""


def c_update_key(w):
    w.call(update_key=pb.UpdateKeyRequest(key_id=w.aes2, set_description=True, description="d"))
    return w.aes2, ""


def c_rotate_if_due(w):
    kid = w.create(pb.SYMMETRIC_DEFAULT, pb.ENCRYPT_DECRYPT)
    w.call(update_key=pb.UpdateKeyRequest(key_id=kid, set_rotation_period=True, rotation_period_days=1))
    # The enclave's time only moves forward: the housekeeping call comes after every earlier one.
    w.host(NOW + 400 * DAY, rotate_if_due=pb.RotateIfDueRequest(key_id=kid))
    return kid, ""


def c_create_alias(w):
    w.call(create_alias=pb.AliasRequest(alias="alias/audit-one", key_id=w.aes))
    return w.aes, ""


def c_update_alias(w):
    w.call(create_alias=pb.AliasRequest(alias="alias/audit-two", key_id=w.aes))
    w.call(update_alias=pb.AliasRequest(alias="alias/audit-two", key_id=w.aes2))
    return w.aes2, ""


def c_put_key_policy(w):
    w.call(put_key_policy=pb.PutKeyPolicyRequest(key_id=w.aes2, statements=[
        pb.PolicyStatement(operations=pb.OP_ENCRYPT)]))
    return w.aes2, ""


def c_create_grant(w):
    w.call(create_grant=pb.CreateGrantRequest(key_id=w.aes, grantee=b"\x08" * 32, operations=pb.OP_DECRYPT))
    return w.aes, ""


def c_list_grants(w):
    w.call(list_grants=pb.ListGrantsRequest(key_id=w.aes))
    return w.aes, ""


def c_revoke_grant(w):
    grants = w.call(create_grant=pb.CreateGrantRequest(key_id=w.aes, grantee=b"\x09" * 32,
                                                       operations=pb.OP_DECRYPT)).grants.grants
    w.call(revoke_grant=pb.RevokeGrantRequest(key_id=w.aes, grant_id=grants[-1].grant_id))
    return w.aes, ""


def c_import_key_material(w):
    p = w.call(get_parameters_for_import=pb.GetParametersForImportRequest(
        spec=pb.SYMMETRIC_DEFAULT, usage=pb.ENCRYPT_DECRYPT, algorithm=pb.RSAES_OAEP_SHA_256_WRAP)
    ).get_parameters_for_import
    md = w.call(import_key_material=pb.ImportKeyMaterialRequest(
        import_token=p.import_token, encrypted_key_material=wrap(p, b"\x05" * 32, pb.RSAES_OAEP_SHA_256_WRAP))
    ).key_metadata
    return md.key_id, ""


def c_export_key(w):
    kid, _ = exportable_key(w.admin)
    w.call(put_key_policy=pb.PutKeyPolicyRequest(key_id=kid, export_policy=pb.EXPORT_TO_ATTESTED_ENCLAVE))
    transfer(w.admin, w.peer, w.enclave, kid, peer=named(w.peer_enclave))
    return kid, ""  # the exporter's last record is export_key


def c_import_transferred_key(w):
    kid = w.peer.call(pb.Request(create_key=pb.CreateKeyRequest(
        spec=pb.SYMMETRIC_DEFAULT, usage=pb.ENCRYPT_DECRYPT))).key_metadata.key_id
    w.peer.call(pb.Request(put_key_policy=pb.PutKeyPolicyRequest(
        key_id=kid, export_policy=pb.EXPORT_TO_ATTESTED_ENCLAVE)))
    transfer(w.peer, w.admin, w.peer_enclave, kid, peer=named(w.enclave))  # into this world's enclave
    return kid, ""


def c_encrypt(w):
    w.call(encrypt=pb.EncryptRequest(key_id="alias/audit-one", plaintext=b"p"))
    return w.aes, ""  # the alias resolved


def c_decrypt(w):
    ct = _ct(w, w.aes)
    w.call(decrypt=pb.DecryptRequest(ciphertext=ct))
    return w.aes, ""


def c_re_encrypt(w):
    ct = _ct(w, w.aes)
    w.call(re_encrypt=pb.ReEncryptRequest(ciphertext=ct, destination_key_id=w.aes2))
    return w.aes2, w.aes


def c_generate_data_key(w):
    w.call(generate_data_key=pb.GenerateDataKeyRequest(key_id=w.aes))
    return w.aes, ""


def c_generate_data_key_pair(w):
    w.call(generate_data_key_pair=pb.GenerateDataKeyPairRequest(key_id=w.aes, pair_spec=pb.ED25519))
    return w.aes, ""


def c_batch(w):
    w.call(batch=pb.BatchRequest(operation=pb.BATCH_ENCRYPT, key_id=w.aes, items=[b"a", b"b"]))
    return w.aes, ""


def c_sign(w):
    w.call(sign=pb.SignRequest(key_id=w.ed, message=b"m", algorithm=pb.ED25519_PURE))
    return w.ed, ""


def c_verify(w):
    sig = w.call(sign=pb.SignRequest(key_id=w.ed, message=b"m", algorithm=pb.ED25519_PURE)).sign.signature
    w.call(verify=pb.VerifyRequest(key_id=w.ed, message=b"m", algorithm=pb.ED25519_PURE, signature=sig))
    return w.ed, ""


def c_get_public_key(w):
    w.call(get_public_key=pb.GetPublicKeyRequest(key_id=w.ed))
    return w.ed, ""


def c_generate_mac(w):
    w.call(generate_mac=pb.GenerateMacRequest(key_id=w.hmac, message=b"m"))
    return w.hmac, ""


def c_verify_mac(w):
    mac = w.call(generate_mac=pb.GenerateMacRequest(key_id=w.hmac, message=b"m")).generate_mac.mac
    w.call(verify_mac=pb.VerifyMacRequest(key_id=w.hmac, message=b"m", mac=mac))
    return w.hmac, ""


def c_asymmetric_decrypt(w):
    der = w.call(get_public_key=pb.GetPublicKeyRequest(key_id=w.rsa)).get_public_key.public_key
    pub = serialization.load_der_public_key(der)
    ct = pub.encrypt(b"secret", padding.OAEP(padding.MGF1(SHA256()), SHA256(), None))
    w.call(asymmetric_decrypt=pb.AsymmetricDecryptRequest(key_id=w.rsa, ciphertext=ct,
                                                          algorithm=pb.RSAES_OAEP_SHA_256))
    return w.rsa, ""


def c_derive_shared_secret(w):
    peer = x25519.X25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    w.call(derive_shared_secret=pb.DeriveSharedSecretRequest(key_id=w.x, peer_public_key=peer))
    return w.x, ""


def c_validator_sign(w):
    w.call(validator_sign=pb.ValidatorSignRequest(key_id=w.validator, chain_id=CHAIN, kind=pb.VOTE,
                                                  sign_bytes=vote(5, 0, 1)))
    return w.validator, ""


def c_validator_state(w):
    w.call(validator_state=pb.ValidatorStateRequest(key_id=w.validator))
    return w.validator, ""


def c_validator_state_import(w):
    state = w.call(validator_state=pb.ValidatorStateRequest(key_id=w.validator)).validator_state
    w.call(validator_state_import=pb.ValidatorStateImport(state=state))
    return w.validator, ""


def c_import_validator(w):
    seed = ec.generate_private_key(ec.SECP256K1()).private_numbers().private_value.to_bytes(32, "big")
    md = w.call(import_validator=pb.ImportValidatorRequest(spec=pb.ECC_SECG_P256K1, private_key=seed,
                                                           chain_id=CHAIN)).key_metadata
    return md.key_id, ""


def _bls_key(w: World) -> str:
    return w.call(create_key=pb.CreateKeyRequest(spec=pb.BLS12_381, usage=pb.VALIDATOR,
                                                 chain_id="0x" + "00" * 32)).key_metadata.key_id


def c_eth_sign(w):
    kid = _bls_key(w)
    w.call(eth_sign=pb.EthSignRequest(key_id=kid, type=pb.ETH_RANDAO_REVEAL, ssz=bytes(8), fork_version=bytes(4),
                                      genesis_validators_root=bytes(32)))
    return kid, ""


def c_eth_slashing_check(w):
    kid = _bls_key(w)
    w.call(eth_slashing_check=pb.EthSlashingCheckRequest(key_id=kid, type=pb.ETH_BLOCK_V2, slot=3,
                                                         signing_root=b"\x01" * 32))
    return kid, ""


def c_eth_import_keystore(w):
    """The ERC-2335 PBKDF2 vector (c lowered: the test's own keystore, its checksum computed here)."""
    import hashlib

    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    salt, iv, password = b"\x11" * 32, b"\x22" * 16, b"testpassword"
    dk = hashlib.pbkdf2_hmac("sha256", password, salt, 2, 32)
    secret = (7).to_bytes(32, "big")
    enc = Cipher(algorithms.AES(dk[:16]), modes.CTR(iv)).encryptor()
    message = enc.update(secret) + enc.finalize()
    md = w.call(eth_import_keystore=pb.EthImportKeystoreRequest(
        kdf_function="pbkdf2", dklen=32, salt=salt, pbkdf2_c=2, pbkdf2_prf="hmac-sha256", checksum_function="sha256",
        checksum_message=hashlib.sha256(dk[16:32] + message).digest(), cipher_function="aes-128-ctr", cipher_iv=iv,
        cipher_message=message, password=password, chain_id="0x" + "00" * 32)).key_metadata
    return md.key_id, ""


CASES: dict[str, Callable[[World], tuple[str, str]]] = {
    name[2:]: fn for name, fn in globals().items() if name.startswith("c_") and callable(fn)}


def test_every_operation_that_names_a_key_has_a_case() -> None:
    assert set(CASES) == ops_naming_a_key()


@pytest.mark.parametrize("op", sorted(CASES))
def test_the_record_names_the_key(world: World, op: str) -> None:
    kid, source = CASES[op](world)
    rec = world.last_record()
    assert rec.operation == op
    assert rec.outcome == 0
    assert rec.key_id == kid
    assert rec.source_key_id == source
    if op not in ("destroy_key", "rotate_if_due"):  # those were the host's housekeeping
        assert len(rec.principal) == 32


def test_a_refused_use_names_the_key_too(world: World) -> None:
    with pytest.raises(errors.KeyStateError):
        world.call(sign=pb.SignRequest(key_id=world.aes, message=b"m", algorithm=pb.ED25519_PURE))
    rec = world.last_record()
    assert (rec.operation, rec.key_id, rec.outcome) == ("sign", world.aes, errors.E.KMS_ERR_INVALID_KEY_USAGE)
