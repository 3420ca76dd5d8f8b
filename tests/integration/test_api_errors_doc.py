"""docs/api.md §3 "Which error for which bad argument", held to the real enclave: every row of the table runs
here, through an attested session, and must get the error the row names; a row without a case fails."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519

from kms import errors
from kms.client.channel import SessionChannel
from kms.client.credentials import Credentials
from kms.enclave.bridge import Enclave, MemoryStore
from kms.proto.enclave.v1 import boundary_pb2 as pb
from kms.service.evidence import install_evidence
from kms.sim.qe import SimQuotingEnclave
from tests.auditor import auditor_public

API_MD = Path(__file__).resolve().parents[2] / "docs" / "api.md"
Case = Callable[[SimpleNamespace], pb.Request]


def doc_rows() -> dict[tuple[str, str], str]:
    """(operation, invalid argument) -> error name, from the marked table."""
    text = API_MD.read_text()
    table = text[text.index("<!-- invalid arguments -->"):text.index("<!-- end invalid arguments -->")]
    rows = {}
    for line in table.splitlines()[3:]:
        operation, argument, error = (cell.strip() for cell in line.strip("|").split(" | "))
        rows[operation, argument] = error.strip("`")
    return rows


def _raw() -> bytes:
    return x25519.X25519PrivateKey.generate().public_key().public_bytes(serialization.Encoding.Raw,
                                                                         serialization.PublicFormat.Raw)


def _init(**kw) -> pb.Request:
    args = {"admin_name": "alice", "recovery_public_keys": [_raw()], "threshold": 1,
            "auditor_public_keys": auditor_public(), **kw}
    return pb.Request(init=pb.InitRequest(**args))


def _create(spec: int, usage: int, **kw) -> pb.Request:
    return pb.Request(create_key=pb.CreateKeyRequest(spec=spec, usage=usage, **kw))


def _encrypt(k: SimpleNamespace, **kw) -> pb.Request:
    return pb.Request(encrypt=pb.EncryptRequest(**{"key_id": k.aes, "plaintext": b"x", **kw}))


def _ctx(*keys: bytes) -> list[pb.ContextEntry]:
    return [pb.ContextEntry(key=key, value=b"v") for key in keys]


def _sign_verify(args: Callable[[SimpleNamespace], dict]) -> list[Case]:
    """The same arguments to sign and to verify."""
    return [lambda k: pb.Request(sign=pb.SignRequest(**{"message": b"m", **args(k)})),
            lambda k: pb.Request(verify=pb.VerifyRequest(**{"message": b"m", "signature": b"s" * 64, **args(k)}))]


def _update(k: SimpleNamespace, **kw) -> pb.Request:
    return pb.Request(update_key=pb.UpdateKeyRequest(key_id=k.aes, **kw))


def _gdkp(spec: int) -> Case:
    return lambda k: pb.Request(generate_data_key_pair=pb.GenerateDataKeyPairRequest(key_id=k.aes, pair_spec=spec))


def _alias(name: str) -> Case:
    return lambda k: pb.Request(create_alias=pb.AliasRequest(alias=name, key_id=k.aes))


def _principal(**kw) -> Case:
    return lambda k: pb.Request(add_principal=pb.AddPrincipalRequest(**{"principal_id": b"p" * 32, "name": "bob",
                                                                        "role": pb.USER, **kw}))


CASES: dict[tuple[str, str], list[Case]] = {
    ("any", "no operation set in `op`"): [lambda k: pb.Request()],
    ("`create_key`", "`spec` or `usage` `UNSPECIFIED`"): [
        lambda k: _create(0, pb.ENCRYPT_DECRYPT), lambda k: _create(pb.SYMMETRIC_DEFAULT, 0)],
    ("`create_key`", "a spec/usage pair not listed in §4 (e.g. `SYMMETRIC_DEFAULT` with `SIGN_VERIFY`, "
                     "`ECC_NIST_P256` with `VALIDATOR`)"): [
        lambda k: _create(pb.SYMMETRIC_DEFAULT, pb.SIGN_VERIFY), lambda k: _create(pb.ECC_NIST_P256, pb.VALIDATOR),
        lambda k: _create(pb.X25519, pb.SIGN_VERIFY)],
    ("`create_key`", "`description` over 256 bytes"): [
        lambda k: _create(pb.SYMMETRIC_DEFAULT, pb.ENCRYPT_DECRYPT, description="d" * 257)],
    ("`list_keys`", "`limit` over 32"): [lambda k: pb.Request(list_keys=pb.ListKeysRequest(limit=33))],
    ("`set_key_state`", "`state` other than `ENABLED` or `DISABLED`"): [
        lambda k, state=state: pb.Request(set_key_state=pb.SetKeyStateRequest(key_id=k.aes, state=state))
        for state in (0, pb.PENDING_DELETION, pb.DESTROYED)],
    ("`update_key`", "`min_decrypt_version` above the current version"): [
        lambda k: _update(k, set_min_decrypt_version=True, min_decrypt_version=2)],
    ("`update_key`", "`rotation_period_days` over 3650, or a rotation period on a key that is not "
                     "`SYMMETRIC_DEFAULT`"): [
        lambda k: _update(k, set_rotation_period=True, rotation_period_days=3651),
        lambda k: pb.Request(update_key=pb.UpdateKeyRequest(key_id=k.ed, set_rotation_period=True,
                                                            rotation_period_days=30))],
    ("`schedule_key_deletion`", "`pending_window_days` outside 7..30 (0 means 30)"): [
        lambda k, days=days: pb.Request(schedule_key_deletion=pb.ScheduleKeyDeletionRequest(
            key_id=k.aes, pending_window_days=days))
        for days in (6, 31)],
    ("`get_public_key`", "a symmetric key"): [
        lambda k: pb.Request(get_public_key=pb.GetPublicKeyRequest(key_id=k.aes)),
        lambda k: pb.Request(get_public_key=pb.GetPublicKeyRequest(key_id=k.hmac))],
    ("`create_alias`", "an alias that is not `alias/` and `[A-Za-z0-9/_-]`"): [
        _alias("notalias"), _alias("alias/a b"), _alias("alias/é")],
    ("`create_alias`", "an alias over 40 characters"): [_alias("alias/" + "a" * 35)],
    ("`encrypt`", "a `key_id` that is neither a UUID nor an alias"): [lambda k: _encrypt(k, key_id="nope")],
    ("`encrypt`", "a key that is not `SYMMETRIC_DEFAULT`"): [
        lambda k: _encrypt(k, key_id=k.ed), lambda k: _encrypt(k, key_id=k.hmac)],
    ("`encrypt`", "two context pairs with the same key"): [lambda k: _encrypt(k, context=_ctx(b"a", b"a"))],
    ("`encrypt`", "`plaintext` over 32768 bytes, more than 16 context pairs, a context key over 128 bytes"): [
        lambda k: _encrypt(k, plaintext=b"x" * 32769),
        lambda k: _encrypt(k, context=_ctx(*(bytes([i]) for i in range(17)))),
        lambda k: _encrypt(k, context=_ctx(b"k" * 129))],
    ("`generate_data_key`", "`number_of_bytes` outside 16..64 (0 means 32)"): [
        lambda k, n=n: pb.Request(generate_data_key=pb.GenerateDataKeyRequest(key_id=k.aes, number_of_bytes=n))
        for n in (15, 65)],
    ("`generate_data_key_pair`", "`pair_spec` `UNSPECIFIED` or outside the enum"): [_gdkp(0), _gdkp(99)],
    ("`generate_data_key_pair`", "a `pair_spec` not offered for pairs (`SYMMETRIC_DEFAULT`, `HMAC_*`, "
                                 "`RSA_3072`, `RSA_4096`)"): [
        _gdkp(pb.SYMMETRIC_DEFAULT), _gdkp(pb.HMAC_SHA_256), _gdkp(pb.RSA_3072), _gdkp(pb.RSA_4096)],
    ("`batch`", "`operation` `UNSPECIFIED`, no `items`, or `BATCH_SIGN` with `algorithm` `UNSPECIFIED`"): [
        lambda k: pb.Request(batch=pb.BatchRequest(key_id=k.aes, items=[b"x"])),
        lambda k: pb.Request(batch=pb.BatchRequest(operation=pb.BATCH_ENCRYPT, key_id=k.aes)),
        lambda k: pb.Request(batch=pb.BatchRequest(operation=pb.BATCH_SIGN, key_id=k.p256, items=[b"x"]))],
    ("`batch`", "more than 256 items"): [
        lambda k: pb.Request(batch=pb.BatchRequest(operation=pb.BATCH_ENCRYPT, key_id=k.aes, items=[b"x"] * 257))],
    ("`batch`", "`BATCH_SIGN` with a key that is not `SIGN_VERIFY` (the request fails, not its items)"): [
        lambda k: pb.Request(batch=pb.BatchRequest(operation=pb.BATCH_SIGN, key_id=k.aes, algorithm=pb.ECDSA_SHA_256,
                                                   items=[b"x"]))],
    ("`sign`, `verify`", "`algorithm` `UNSPECIFIED` or outside the enum, whatever the key"): [
        *_sign_verify(lambda k: {"key_id": k.ed}), *_sign_verify(lambda k: {"key_id": k.p256}),
        *_sign_verify(lambda k: {"key_id": k.p256, "algorithm": 99})],
    ("`sign`, `verify`", "an `algorithm` the key's spec does not take (e.g. `ECDSA_SHA_256` with an Ed25519 key)"): [
        *_sign_verify(lambda k: {"key_id": k.ed, "algorithm": pb.ECDSA_SHA_256}),
        *_sign_verify(lambda k: {"key_id": k.p256, "algorithm": pb.ECDSA_SHA_384})],
    ("`sign`, `verify`", "a key that is not `SIGN_VERIFY`"): [
        *_sign_verify(lambda k: {"key_id": k.aes, "algorithm": pb.ECDSA_SHA_256})],
    ("`sign`, `verify`", "`message_type` or `format` outside its enum"): [
        *_sign_verify(lambda k: {"key_id": k.p256, "algorithm": pb.ECDSA_SHA_256, "format": 5}),
        *_sign_verify(lambda k: {"key_id": k.p256, "algorithm": pb.ECDSA_SHA_256, "message_type": 5})],
    ("`sign`, `verify`", "a `DIGEST` whose length is not the algorithm's hash length"): [
        *_sign_verify(lambda k: {"key_id": k.p256, "algorithm": pb.ECDSA_SHA_256, "message_type": pb.DIGEST,
                                 "message": b"d" * 31})],
    ("`sign`, `verify`", "a `DIGEST` with `ED25519_PURE`"): [
        *_sign_verify(lambda k: {"key_id": k.ed, "algorithm": pb.ED25519_PURE, "message_type": pb.DIGEST,
                                 "message": b"d" * 32})],
    ("`generate_mac`", "a key that is not `HMAC_*`"): [
        lambda k: pb.Request(generate_mac=pb.GenerateMacRequest(key_id=k.aes, message=b"m"))],
    ("`verify_mac`", "a truncated `mac`"): [
        lambda k: pb.Request(verify_mac=pb.VerifyMacRequest(key_id=k.hmac, message=b"m", mac=b"x" * 16))],
    ("`asymmetric_decrypt`", "`algorithm` other than `RSAES_OAEP_SHA_1` or `RSAES_OAEP_SHA_256`"): [
        lambda k, alg=alg: pb.Request(asymmetric_decrypt=pb.AsymmetricDecryptRequest(
            key_id=k.rsa, ciphertext=b"c" * 256, algorithm=alg))
        for alg in (0, pb.SYMMETRIC_DEFAULT_ALGORITHM)],
    ("`derive_shared_secret`", "a `peer_public_key` that is not an SPKI of the key's curve"): [
        lambda k: pb.Request(derive_shared_secret=pb.DeriveSharedSecretRequest(key_id=k.x25519,
                                                                               peer_public_key=b"x" * 32))],
    ("`generate_random`", "`length` outside 1..1024"): [
        lambda k, n=n: pb.Request(generate_random=pb.GenerateRandomRequest(length=n)) for n in (0, 1025)],
    ("`init`", "no recovery key, `threshold` outside 1..n, no auditor key (without "
               "`audit_bodies_in_clear_insecure`), an auditor key twice"): [
        lambda k: _init(recovery_public_keys=[]), lambda k: _init(threshold=0), lambda k: _init(threshold=2),
        lambda k: _init(auditor_public_keys=[]), lambda k: _init(auditor_public_keys=auditor_public() * 2)],
    ("`init`", "more than 10 recovery keys"): [lambda k: _init(recovery_public_keys=[_raw() for _ in range(11)])],
    ("`init`", "a recovery key that is not 32 bytes"): [lambda k: _init(recovery_public_keys=[_raw()[:31]])],
    ("`add_principal`", "`principal_id` not 32 bytes, `role` `UNSPECIFIED`"): [
        _principal(principal_id=b"p" * 31), _principal(role=0)],
    ("`add_principal`", "`name` over 64 bytes"): [_principal(name="n" * 65)],
    ("`set_auditors`", "no key, a key twice"): [
        lambda k: pb.Request(set_auditors=pb.SetAuditorsRequest()),
        lambda k: pb.Request(set_auditors=pb.SetAuditorsRequest(auditor_public_keys=auditor_public() * 2))],
    ("`set_auditors`", "more than 8 keys"): [
        lambda k: pb.Request(set_auditors=pb.SetAuditorsRequest(auditor_public_keys=[_raw() for _ in range(9)]))],
    ("`put_key_policy`", "more than 8 statements"): [
        lambda k: pb.Request(put_key_policy=pb.PutKeyPolicyRequest(
            key_id=k.aes, statements=[pb.PolicyStatement(operations=pb.OP_ENCRYPT)] * 9))],
    ("`create_grant`", "no `operations`"): [
        lambda k: pb.Request(create_grant=pb.CreateGrantRequest(key_id=k.aes, grantee=b"g" * 32))],
    ("`get_parameters_for_import`", "`algorithm` `UNSPECIFIED`"): [
        lambda k: pb.Request(get_parameters_for_import=pb.GetParametersForImportRequest(
            spec=pb.SYMMETRIC_DEFAULT, usage=pb.ENCRYPT_DECRYPT))],
}


def _session(enclave: Enclave, certificate: bytes, creds: Credentials) -> SessionChannel:
    sid = enclave.session_open()
    return SessionChannel(lambda data: enclave.session_feed(sid, data)[0], creds, certificate)


@pytest.fixture(scope="module")
def enclaves(build, tmp_path_factory):
    """A fresh enclave (for init's rows) and one with a domain and a key of each kind the rows use."""
    opened = []

    def open_one(name: str) -> SessionChannel:
        data = tmp_path_factory.mktemp(name) / "data"
        enclave = Enclave(data, store=MemoryStore())
        opened.append(enclave)
        certificate = install_evidence(enclave, SimQuotingEnclave.open(data)).certificate
        return _session(enclave, certificate, Credentials.generate("alice"))

    fresh, admin = open_one("fresh"), open_one("domain")
    admin.call(_init())
    kinds = {"aes": (pb.SYMMETRIC_DEFAULT, pb.ENCRYPT_DECRYPT), "hmac": (pb.HMAC_SHA_256, pb.GENERATE_VERIFY_MAC),
             "ed": (pb.ED25519, pb.SIGN_VERIFY), "p256": (pb.ECC_NIST_P256, pb.SIGN_VERIFY),
             "rsa": (pb.RSA_2048, pb.ENCRYPT_DECRYPT), "x25519": (pb.X25519, pb.KEY_AGREEMENT)}
    keys = SimpleNamespace(**{name: admin.call(_create(*pair)).key_metadata.key_id for name, pair in kinds.items()})
    yield fresh, admin, keys
    for enclave in opened:
        enclave.close()


def test_every_documented_row_has_a_case_and_every_case_a_row() -> None:
    rows = doc_rows()
    assert set(rows) - set(CASES) == set(), "rows of docs/api.md without a case here"
    assert set(CASES) - set(rows) == set(), "cases here without a row in docs/api.md"


@pytest.mark.parametrize("row", sorted(doc_rows()), ids=lambda row: f"{row[0]}: {row[1][:40]}")
def test_the_documented_error_is_the_enclaves(enclaves, row: tuple[str, str]) -> None:
    fresh, admin, keys = enclaves
    expected = doc_rows()[row]
    assert re.fullmatch(r"[A-Z_]+", expected), expected
    session = fresh if row[0] == "`init`" else admin
    for case in CASES[row]:
        request = case(keys)
        with pytest.raises(errors.KmsError) as info:
            session.call(request)
        assert info.value.code_name == "KMS_ERR_" + expected, (row, request)
