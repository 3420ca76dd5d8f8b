"""The SDK's domain pin and freshness check against the fake server over the real enclave: another domain is
refused before any Session; a known head the enclave's log does not hold (ahead, forked) is refused after the
identity probe and before any request of the caller; heads follow every response and are saved with the
credentials; init pins its domain there."""

from __future__ import annotations

from pathlib import Path

import pytest

from kms.client import (
    ClientState,
    ClientStateError,
    Credentials,
    DomainMismatch,
    KmsClient,
    RollbackDetected,
    StateHead,
)
from kms.client.state import STATE_FILE
from tests.auditor import auditor_public
from tests.client.conftest import recovery_public
from tests.client.fakeserver import FakeServer


def connect(server: FakeServer, policy, creds: Credentials, **kw) -> KmsClient:
    return KmsClient(server.target, credentials=creds, policy=policy, trust_anchor=server.platform.trust_anchor(),
                     retries=2, backoff=0.01, **kw)


def test_first_connection_pins_for_the_object_and_every_response_moves_the_head(server, policy, admin) -> None:
    domain = admin.domain_id
    assert domain is not None and admin.evidence.domain_id is None  # its session was opened before init
    assert admin.verify_evidence().domain_id == domain  # the server quoted again: the certificate claims it now
    before = admin.state_head
    admin.create_key()
    assert admin.state_head is not None and before is not None and admin.state_head.seq > before.seq
    with connect(server, policy, Credentials.generate("bob")) as bob:  # unpinned, in memory: first use
        assert bob.domain_id == domain and bob.state_head == admin.state_head
        assert bob.state.path is None


def test_another_domain_is_refused_before_any_session(build, tmp_path, server, policy, admin) -> None:
    sessions, frames = server.session_rpcs, server.frames_in
    with pytest.raises(DomainMismatch) as refused:
        connect(server, policy, Credentials.generate("eve"), domain_id=bytes(16))
    assert refused.value.expected == bytes(16) and refused.value.actual == admin.domain_id
    assert (server.session_rpcs, server.frames_in) == (sessions, frames)  # nothing was sent, not even a handshake
    # The same signed enclave, another instance with its own domain (a swap at the host's will): refused too.
    other = FakeServer(tmp_path / "other")
    try:
        with connect(other, policy, Credentials.generate("host"), new_domain=True) as host:
            host.init(recovery_public(1), threshold=1, auditor_public_keys=auditor_public())
        with pytest.raises(DomainMismatch) as swapped:
            connect(other, policy, Credentials.generate("alice"), domain_id=admin.domain_id)
        assert swapped.value.actual not in (None, admin.domain_id)
        assert other.session_rpcs == 1 and other.evidence_rpcs == 2  # the host's session only
    finally:
        other.stop()


@pytest.mark.parametrize("case", ["ahead", "forked"])
def test_a_head_the_enclave_does_not_hold_is_a_rollback(server, policy, admin, case: str) -> None:
    domain, known = admin.domain_id, admin.state_head
    assert domain is not None and known is not None
    stale = StateHead(known.seq + 5, known.hash) if case == "ahead" else StateHead(known.seq, bytes(32))
    state = ClientState(domain_id=domain, heads={domain: stale})
    sessions, frames, evidence = server.session_rpcs, server.frames_in, server.evidence_rpcs
    with pytest.raises(RollbackDetected) as refused:
        connect(server, policy, admin._credentials, state=state)
    assert refused.value.check == ("HEAD_AHEAD" if case == "ahead" else "HEAD_FORKED")
    assert refused.value.known == (stale.seq, stale.hash) and refused.value.server[0] == known.seq
    # What crossed: one evidence fetch (never retried), one Session with the handshake's first frame and the probe
    # (which carries the client's last handshake flight)
    assert server.evidence_rpcs == evidence + 1 and server.session_rpcs == sessions + 1
    assert server.frames_in == frames + 2
    assert state.head(domain) == stale  # a refused server teaches nothing
    assert admin.identity().domain_loaded and admin.state_head == known  # the probe changed nothing


def test_loaded_credentials_keep_pin_and_head_in_their_directory(server, policy, tmp_path: Path) -> None:
    creds_dir = tmp_path / "alice"
    Credentials.generate("alice").save(creds_dir)
    alice = Credentials.load(creds_dir)
    with connect(server, policy, alice, new_domain=True) as client:
        result = client.init(recovery_public(1), threshold=1, auditor_public_keys=auditor_public())
        saved = ClientState.load(creds_dir / STATE_FILE)  # init pinned and saved at once
        assert saved.domain_id == result.domain_id and saved.head(result.domain_id) is not None
        client.create_key()
        head = client.state_head
    assert ClientState.load(creds_dir / STATE_FILE).head(result.domain_id) == head  # saved on close
    with connect(server, policy, Credentials.load(creds_dir)) as again:
        assert again.domain_id == result.domain_id and again.state_head == head
    with pytest.raises(DomainMismatch):  # pinned: a client that means to create a domain finds one already
        connect(server, policy, Credentials.load(creds_dir), new_domain=True)
    with pytest.raises(DomainMismatch):  # an explicit pin wins over the credentials' own
        connect(server, policy, Credentials.load(creds_dir), domain_id=bytes(16))


def test_init_keeps_its_answer_when_the_pin_cannot_be_saved(server, policy, tmp_path: Path) -> None:
    state = ClientState(tmp_path / "gone" / STATE_FILE)  # a directory that does not exist: nothing can be written
    client = connect(server, policy, Credentials.generate("alice"), new_domain=True, state=state)
    # the shares are not lost to the state file
    result = client.init(recovery_public(2), threshold=1, auditor_public_keys=auditor_public())
    assert len(result.shares) == 2 and client.domain_id == result.domain_id
    client.create_key()  # pinned in memory: the client goes on
    with pytest.raises(ClientStateError):  # and says so when it closes, as the state could not be kept
        client.close()
