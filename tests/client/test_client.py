"""KmsClient against the in-process fake server over the real enclave: verification first, typed
operations, authorization, pipelining of concurrent callers, reconnects and their limits."""

from __future__ import annotations

import threading

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kms import errors
from kms.attestation import AttestationPolicy, Step, TrustAnchor
from kms.client import (
    ClientClosed,
    Credentials,
    DomainMismatch,
    KmsClient,
    OutcomeUnknown,
    TransportError,
    VerificationFailed,
)
from kms.client.errors import CollateralUnavailable
from tests.auditor import auditor_public
from tests.client.conftest import recovery_public


def connect(server, policy, creds, **kw) -> KmsClient:
    return KmsClient(server.target, credentials=creds, policy=policy, trust_anchor=server.platform.trust_anchor(),
                     **kw)


def test_walkthrough(admin: KmsClient) -> None:
    key = admin.create_key("SYMMETRIC_DEFAULT", description="walk")
    assert key.spec == "SYMMETRIC_DEFAULT" and key.usage == "ENCRYPT_DECRYPT" and key.state == "ENABLED"
    ct = admin.encrypt(key.key_id, b"hello", {"app": "x"})
    assert ct.key_version == 1
    assert admin.decrypt(ct.ciphertext, {"app": "x"}).plaintext == b"hello"
    with pytest.raises(errors.InvalidCiphertext):
        admin.decrypt(ct.ciphertext, {"app": "y"})
    rotated = admin.rotate_key(key.key_id)
    assert rotated.current_version == 2 and rotated.version_count == 2
    assert admin.decrypt(ct.ciphertext, {"app": "x"}).plaintext == b"hello"
    assert admin.encrypt(key.key_id, b"again").key_version == 2
    assert admin.disable_key(key.key_id).state == "DISABLED"
    with pytest.raises(errors.KeyStateError):
        admin.encrypt(key.key_id, b"x")
    assert admin.enable_key(key.key_id).state == "ENABLED"
    assert len(admin.generate_random(32)) == 32


@pytest.mark.parametrize("spec", ["ED25519", "ECC_NIST_P256", "ECC_SECG_P256K1", "RSA_2048"])
def test_sign_verify_and_public_key(admin: KmsClient, spec: str) -> None:
    key = admin.create_key(spec)
    sig = admin.sign(key.key_id, b"message")
    assert admin.verify(key.key_id, signature=sig.signature, message=b"message")
    with pytest.raises(errors.InvalidSignature):
        admin.verify(key.key_id, signature=sig.signature, message=b"other")
    with pytest.raises(TypeError):  # message and signature by keyword only: a swapped pair is no crypto verdict
        admin.verify(key.key_id, b"message", sig.signature)  # type: ignore[misc]
    with pytest.raises(TypeError):
        admin.verify(key.key_id, signature="not bytes", message=b"message")  # type: ignore[arg-type]
    pub = serialization.load_der_public_key(admin.get_public_key(key.key_id).public_key)
    assert admin.get_public_key(key.key_id, pem=True).public_key.startswith(b"-----BEGIN PUBLIC KEY")
    if spec == "ECC_NIST_P256":
        assert isinstance(pub, ec.EllipticCurvePublicKey)
        pub.verify(sig.signature, b"message", ec.ECDSA(hashes.SHA256()))  # DER, checked locally too
        digest = admin.digest_for("ECDSA_SHA_256", b"message")
        by_digest = admin.sign(key.key_id, digest=digest)
        pub.verify(by_digest.signature, b"message", ec.ECDSA(hashes.SHA256()))
        assert len(admin.sign(key.key_id, b"m", p1363=True).signature) == 64


def test_list_keys_pages(admin: KmsClient) -> None:
    ids = {admin.create_key().key_id for _ in range(5)}
    pages, token = [], ""
    while True:
        keys, token = admin.list_keys_page(token, limit=2)
        pages.append(keys)
        if not token:
            break
    assert len(pages) >= 3
    assert {k.key_id for k in admin.list_keys(page_size=2)} == ids


def test_users_and_grants(server, policy, admin: KmsClient) -> None:
    key = admin.create_key()
    ct = admin.encrypt(key.key_id, b"s").ciphertext
    bob = Credentials.generate("bob")
    with connect(server, policy, bob) as user:
        with pytest.raises(errors.PermissionDenied):  # not a principal yet
            user.decrypt(ct)
        names = [p.name for p in admin.add_principal(bob.principal_id, "bob", "USER")]
        assert names == ["alice", "bob"]
        with pytest.raises(errors.PermissionDenied):  # no grant
            user.decrypt(ct)
        grant = admin.create_grant(key.key_id, bob.principal_id, ["*"])  # full use: a grant of every operation
        assert [g.grant_id for g in admin.list_grants(key.key_id)] == [grant.grant_id]
        assert user.decrypt(ct).plaintext == b"s"
        assert [k.key_id for k in user.list_keys()] == [key.key_id]
        for admin_only in (lambda: user.create_key(), lambda: user.list_principals(),
                           lambda: user.rotate_key(key.key_id),
                           lambda: user.create_grant(key.key_id, bob.principal_id, ["*"]),
                           lambda: user.list_grants(key.key_id)):
            with pytest.raises(errors.PermissionDenied):
                admin_only()
        assert admin.revoke_grant(key.key_id, grant.grant_id) == []
        with pytest.raises(errors.PermissionDenied):
            user.decrypt(ct)
    assert {p.role for p in admin.list_principals()} == {"ADMIN", "USER"}


def test_uninitialized_server_accepts_only_init(server, policy, alice) -> None:
    with pytest.raises(DomainMismatch) as refused:  # a client that is not creating a domain wants one
        connect(server, policy, alice)
    assert refused.value.actual is None and server.session_rpcs == 0
    with connect(server, policy, alice, connect=False) as client:
        with pytest.raises(ValueError, match="new_domain=True"):
            client.init(recovery_public(1), threshold=1)
    assert server.session_rpcs == 0
    with connect(server, policy, alice, new_domain=True) as client:
        assert client.evidence.initialized is False and client.domain_id is None
        with pytest.raises(errors.NotInitialized):
            client.create_key()
        result = client.init(recovery_public(3), threshold=2, auditor_public_keys=auditor_public())
        assert result.admin_principal_id == alice.principal_id and len(result.shares) == 3
        assert sorted(s.index for s in result.shares) == [0, 1, 2]
        assert client.domain_id == result.domain_id and client.state_head is not None
        with pytest.raises(ValueError, match="new_domain=True"):  # it made its domain: refused here already
            client.init(recovery_public(1), threshold=1, auditor_public_keys=auditor_public())
    with pytest.raises(DomainMismatch) as refused:  # the server has a domain now: no second one from here
        connect(server, policy, alice, new_domain=True)
    assert refused.value.actual == result.domain_id


@pytest.mark.parametrize("case", ["mrsigner", "simulation", "anchor", "mrenclave"])
def test_policy_mismatch_refuses_before_any_session(server, alice, case: str) -> None:
    anchor = server.platform.trust_anchor()
    policy = AttestationPolicy.build(mrsigner=server.mrsigner, allow_simulation_insecure=True)
    expected = {"mrsigner": Step.POLICY_MRSIGNER, "simulation": Step.POLICY_SIMULATION,
                "anchor": Step.PCK_CHAIN, "mrenclave": Step.POLICY_MRENCLAVE}[case]
    if case == "mrsigner":
        policy = AttestationPolicy.build(mrsigner=bytes(32), allow_simulation_insecure=True)
    elif case == "simulation":
        policy = AttestationPolicy.build(mrsigner=server.mrsigner)
    elif case == "mrenclave":
        policy = AttestationPolicy.build(mrenclave=bytes(32), allow_simulation_insecure=True)
    else:
        other = ec.generate_private_key(ec.SECP256R1()).public_key()
        anchor = TrustAnchor.from_public_key(other, simulated=True)
    with pytest.raises(VerificationFailed) as info:
        KmsClient(server.target, credentials=alice, policy=policy, trust_anchor=anchor, retries=3)
    assert info.value.step == expected, info.value
    assert server.evidence_rpcs == 1  # never retried
    assert server.session_rpcs == 0 and server.frames_in == 0  # nothing was sent


def test_intel_anchor_by_default_refuses_simulated_evidence(server, policy, alice) -> None:
    with pytest.raises(VerificationFailed):
        KmsClient(server.target, credentials=alice, policy=policy)
    assert server.session_rpcs == 0


def test_concurrent_callers_share_one_pipelined_session(admin: KmsClient, server) -> None:
    key = admin.create_key()
    sessions_before, frames_before = server.session_rpcs, server.frames_in
    failures: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(20):
                data = f"{n}:{i}".encode()
                assert admin.decrypt(admin.encrypt(key.key_id, data).ciphertext).plaintext == data
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    assert server.session_rpcs == sessions_before  # one session for all callers
    assert server.frames_in - frames_before <= 16 * 20 * 2  # batching never costs more than one frame per request


def test_transient_evidence_failure_is_retried(server, policy, alice) -> None:
    server.fail_evidence = 2
    with connect(server, policy, alice, backoff=0.01, new_domain=True) as client:
        assert client.connects == 1
    assert server.evidence_rpcs == 3


def test_unreachable_collateral_is_retried_not_a_verdict(server, policy, alice) -> None:
    """A PCCS that cannot be reached (say, a server restarting) says nothing about the evidence:
    nothing is sent, and the client retries instead of failing verification for good."""
    server.dead_collateral = 2
    with connect(server, policy, alice, backoff=0.01, new_domain=True) as client:
        assert client.connects == 1
    assert server.evidence_rpcs == 3
    server.dead_collateral = 10
    with pytest.raises(CollateralUnavailable):
        connect(server, policy, alice, retries=1, backoff=0.01)
    assert server.dead_collateral == 8


def test_transient_failures_exhaust_retries(server, policy, alice) -> None:
    server.fail_evidence = 10
    with pytest.raises(TransportError):
        connect(server, policy, alice, retries=2, backoff=0.01)
    assert server.evidence_rpcs == 3 and server.session_rpcs == 0


def drop_session(client: KmsClient) -> None:
    (link,) = client._links   # one address: one replica
    link.drop(link.current)


def test_dropped_stream_reconnects_and_reverifies(admin: KmsClient, server) -> None:
    key = admin.create_key()
    evidence_before = server.evidence_rpcs
    server.drop_after_frames = 0  # the next session dies on its first frame
    drop_session(admin)
    ct = admin.encrypt(key.key_id, b"x")  # handshake fails, reconnect, succeed
    assert admin.decrypt(ct.ciphertext).plaintext == b"x"
    assert server.evidence_rpcs >= evidence_before + 2  # evidence re-verified on every reconnect


def test_dropped_stream_mid_request(admin: KmsClient, server) -> None:
    key = admin.create_key()
    drop_session(admin)
    # the handshake's first frame and the identity probe (which carries the client's last handshake flight) pass,
    # the request's frame is dropped
    server.drop_after_frames = 2
    connects = admin.connects
    assert admin.decrypt(admin.encrypt(key.key_id, b"x").ciphertext).plaintext == b"x"  # idempotent: retried
    assert admin.connects == connects + 2
    drop_session(admin)
    server.drop_after_frames = 1  # the identity probe is lost: the caller's request was never sent, so retried
    assert admin.rotate_key(key.key_id).current_version == 2
    drop_session(admin)
    server.drop_after_frames = 2
    with pytest.raises(OutcomeUnknown):
        admin.rotate_key(key.key_id)  # not idempotent: the outcome is unknown, not retried


def test_closed_client(admin: KmsClient) -> None:
    admin.close()
    with pytest.raises(ClientClosed):
        admin.generate_random(8)


def test_lifecycle_aliases_data_keys_and_re_encrypt(admin: KmsClient) -> None:
    a, b = admin.create_key(), admin.create_key()
    aliases = admin.create_alias("alias/billing", a.key_id)
    assert aliases == {"alias/billing": a.key_id}
    ct = admin.encrypt("alias/billing", b"via alias", {"t": "1"})
    assert ct.key_id == a.key_id
    assert admin.update_alias("alias/billing", b.key_id) == {"alias/billing": b.key_id}
    moved = admin.re_encrypt(ct.ciphertext, "alias/billing", {"t": "1"}, {"t": "2"})
    assert moved.key_id == b.key_id
    assert admin.decrypt(moved.ciphertext, {"t": "2"}).plaintext == b"via alias"
    kept = admin.re_encrypt(moved.ciphertext, a.key_id, {"t": "2"})  # no destination context: the source's is kept
    assert admin.decrypt(kept.ciphertext, {"t": "2"}).plaintext == b"via alias"
    with pytest.raises(errors.InvalidCiphertext):
        admin.decrypt(kept.ciphertext)
    cleared = admin.re_encrypt(kept.ciphertext, a.key_id, {"t": "2"}, {})  # {}: told to drop it
    assert admin.decrypt(cleared.ciphertext).plaintext == b"via alias"
    assert admin.delete_alias("alias/billing") == {} and admin.list_aliases() == {}
    dk = admin.generate_data_key(a.key_id, 32, {"file": "x"})
    assert len(dk.plaintext) == 32 and admin.decrypt(dk.ciphertext, {"file": "x"}).plaintext == dk.plaintext
    assert admin.generate_data_key(a.key_id, with_plaintext=False).plaintext == b""
    pending = admin.schedule_key_deletion(a.key_id, 7)
    assert pending.state == "PENDING_DELETION"
    with pytest.raises(errors.KeyStateError):
        admin.decrypt(dk.ciphertext, {"file": "x"})
    assert admin.cancel_key_deletion(a.key_id).state == "DISABLED"
    assert admin.enable_key(a.key_id).state == "ENABLED"
    assert admin.decrypt(dk.ciphertext, {"file": "x"}).plaintext == dk.plaintext
