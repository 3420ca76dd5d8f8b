"""Refusals against the real server: a client whose policy does not match refuses before it sends a
request (no Session is ever opened: counted by a recording proxy and by the server's own metrics),
and a user principal cannot use a key it was not granted nor call admin operations."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from kms import errors
from kms.attestation import INTEL_SGX_ROOT, AttestationPolicy, Step, TrustAnchor
from kms.client import Credentials, KmsClient, TransportError, VerificationFailed
from kms.sim import SimPlatform
from tests.e2e.conftest import anchor_for, client_for, policy_for


def _case(server, tmp_path: Path, case: str) -> tuple[AttestationPolicy, TrustAnchor, Step]:
    policy, anchor = policy_for(server), anchor_for(server)
    if case == "wrong-mrsigner":
        return AttestationPolicy.build(mrsigner=bytes(range(32)), allow_simulation_insecure=True), anchor, \
            Step.POLICY_MRSIGNER
    if case == "wrong-mrenclave":
        return AttestationPolicy.build(mrenclave=bytes(32), mrsigner=server.mrsigner,
                                       allow_simulation_insecure=True), anchor, Step.POLICY_MRENCLAVE
    if case == "simulation-not-allowed":
        return AttestationPolicy.build(mrsigner=server.mrsigner), anchor, Step.POLICY_SIMULATION
    if case == "min-isvsvn":
        return AttestationPolicy.build(mrsigner=server.mrsigner, min_isvsvn=99, allow_simulation_insecure=True), \
            anchor, Step.POLICY_ISVSVN
    if case == "other-simulated-root":
        return policy, SimPlatform(tmp_path / "other").trust_anchor(), Step.PCK_CHAIN
    if case == "random-root":
        key = ec.generate_private_key(ec.SECP256R1()).public_key()
        return policy, TrustAnchor.from_public_key(key, simulated=True), Step.PCK_CHAIN
    if case == "intel-root":
        return policy, INTEL_SGX_ROOT, Step.PCK_CHAIN
    raise AssertionError(case)


CASES = ["wrong-mrsigner", "wrong-mrenclave", "simulation-not-allowed", "min-isvsvn", "other-simulated-root",
         "random-root", "intel-root"]


@pytest.mark.parametrize("case", CASES)
def test_policy_mismatch_refuses_before_sending(server, proxy, tmp_path: Path, case: str) -> None:
    policy, anchor, step = _case(server, tmp_path, case)
    sessions_before = server.session_rpcs()
    with pytest.raises(VerificationFailed) as info:
        KmsClient(proxy.target, credentials=Credentials.generate("eve"), policy=policy, trust_anchor=anchor,
                  retries=3, backoff=0.01)
    assert info.value.step == step, info.value
    assert proxy.rpcs["GetEvidence"] == 1  # fetched once, never retried
    assert proxy.rpcs["Session"] == 0 and not proxy.session_frames()  # no session, not one byte of TLS
    assert sum(proxy.rpcs.values()) == 1
    assert server.session_rpcs() == sessions_before  # the server agrees: no Session RPC started


def test_matching_policy_through_the_proxy_does_open_a_session(server, admin_creds, proxy) -> None:
    """The control for the test above: the same counting sees a session when the policy matches."""
    before = server.session_rpcs()
    with client_for(server, admin_creds, target=proxy.target) as client:
        assert len(client.generate_random(16)) == 16
    assert proxy.rpcs["Session"] == 1 and proxy.session_frames()
    assert server.session_rpcs() == before + 1


def test_user_without_grant_and_admin_operations(server, admin) -> None:
    key = admin.create_key()
    other = admin.create_key("ED25519")
    ct = admin.encrypt(key.key_id, b"for the user").ciphertext
    stranger, user = Credentials.generate("stranger"), Credentials.generate("svc")
    with client_for(server, stranger) as client:  # attested, but not a principal
        for call in (lambda: client.decrypt(ct), lambda: client.list_keys_page(), lambda: client.create_key()):
            with pytest.raises(errors.PermissionDenied):
                call()
    admin.add_principal(user.principal_id, "svc", "USER")
    grant = admin.create_grant(key.key_id, user.principal_id, ["*"])
    with client_for(server, user) as client:
        assert client.decrypt(ct).plaintext == b"for the user"
        assert client.encrypt(key.key_id, b"ok").key_version >= 1
        denied = [
            lambda: client.sign(other.key_id, b"m", algorithm="ED25519_PURE"),  # a key not granted
            lambda: client.get_public_key(other.key_id),
            lambda: client.describe_key(other.key_id),
            lambda: client.create_key(),  # admin operations
            lambda: client.rotate_key(key.key_id),
            lambda: client.disable_key(key.key_id),
            lambda: client.create_grant(other.key_id, user.principal_id, ["*"]),
            lambda: client.revoke_grant(key.key_id, grant.grant_id),
            lambda: client.list_grants(key.key_id),
            lambda: client.add_principal(user.principal_id, "me", "ADMIN"),
            lambda: client.list_principals(),
        ]
        for call in denied:
            with pytest.raises((errors.PermissionDenied, errors.InvalidRequest)):
                call()
        with pytest.raises(ValueError, match="new_domain"):  # not a client that creates a domain: refused here
            client.init([bytes(32)], 1)
        assert [k.key_id for k in client.list_keys()] == [key.key_id]
    roles = {p.name: p.role for p in admin.list_principals()}
    assert roles["svc"] == "USER" and roles["alice"] == "ADMIN"


def test_flipped_byte_ends_that_session_only(server, admin_creds, proxy) -> None:
    """A byte flipped by the host in one session's record ends that session with a clear error; a
    concurrent session and the server carry on; a retrying client recovers on a fresh, re-verified session."""
    with client_for(server, admin_creds) as bystander:
        key = bystander.create_key()
        victim = client_for(server, admin_creds, target=proxy.target, retries=0)
        proxy.tamper = lambda session, frame, data: (data[:-1] + bytes([data[-1] ^ 1])
                                                     if session == 1 and frame == 3 else data)
        with pytest.raises(TransportError) as info:
            victim.encrypt(key.key_id, b"x")  # frame 3: the first request after the ClientHello and the frame with
            # the client's last handshake flight and the probe
        assert info.value.grpc_code == "ABORTED", info.value
        victim.close()
        assert bystander.decrypt(bystander.encrypt(key.key_id, b"y").ciphertext).plaintext == b"y"
        proxy.tamper = lambda session, frame, data: (data[:-1] + bytes([data[-1] ^ 1])
                                                     if session == 2 and frame == 3 else data)
        with client_for(server, admin_creds, target=proxy.target) as retrying:
            assert retrying.decrypt(retrying.encrypt(key.key_id, b"z").ciphertext).plaintext == b"z"
            assert retrying.connects == 2 and proxy.rpcs["GetEvidence"] == 3  # re-verified before reconnecting
