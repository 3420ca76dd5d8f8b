"""A damaged or missing guard state in the server's store stops signing, with a clear message, until restored."""

from __future__ import annotations

from pathlib import Path

from kms.validator.kms_link import ValidatorLink
from tests.validator.checks import verify_vote
from tests.validator.harness import Domain, SignerProcess
from tests.validator.node_peer import PRECOMMIT, PREVOTE, NodeConnection, NodePeer, vote

C = "chain-damage"
CLEAR_MESSAGE = "guard state is missing or corrupt: signing is stopped for this key until an operator restores it"


def _sign_ok(conn: NodeConnection, pub: bytes, h: int) -> None:
    for vtype in (PREVOTE, PRECOMMIT):
        r = conn.sign_vote(C, vote(h, 0, vtype, h))
        assert not r.HasField("error"), r.error
        verify_vote(pub, C, r.vote)


def _refused_as_corrupt(conn: NodeConnection, v, message: str = CLEAR_MESSAGE) -> None:
    r = conn.sign_vote(C, v)
    assert r.HasField("error") and r.error.code == 1 and not r.vote.signature, r
    assert message in r.error.description


def test_damaged_state_record_stops_signing_until_restored(domain: Domain, tmp_path: Path) -> None:
    key = domain.create_key(C)
    with domain.server.client(domain.signer) as c:
        pub = ValidatorLink(c).public_key(key).raw
    peer = NodePeer()
    config = domain.config(tmp_path / "v.toml", [{"chain_id": C, "key_id": key, "addr": peer.addr}])
    signer = SignerProcess(config)
    try:
        conn = peer.accept()
        _sign_ok(conn, pub, 1)
        record = f"vstate-{key}"
        revision, good = domain.server.record(record)
        flipped = good[:-1] + bytes([good[-1] ^ 1])
        for damaged in (flipped, good[: len(good) // 2], b"", good[:1]):
            domain.server.put_record(record, revision, damaged)
            _refused_as_corrupt(conn, vote(2, 0, PREVOTE, 2))
            _refused_as_corrupt(conn, vote(1, 0, PRECOMMIT, 1))  # not even the stored signature is given out
            assert conn.ping() and conn.pub_key(C).pub_key.ed25519 == pub
        # the authentic record under another row revision: read fine, but the conditional write of the next
        # state fails, so no signature leaves the enclave
        domain.server.put_record(record, revision + 1, good)
        _refused_as_corrupt(conn, vote(2, 0, PREVOTE, 2), message="KMS_ERR_CONFLICT")
        domain.server.delete_record(record)  # missing: no signing from scratch either
        _refused_as_corrupt(conn, vote(2, 0, PREVOTE, 2))
        assert signer.wait_for(CLEAR_MESSAGE)
    finally:
        assert signer.stop() == 0
    # a signer that starts while the state is damaged says so at once, and still does not sign
    signer = SignerProcess(config)
    try:
        conn = peer.accept()
        assert signer.wait_for("it will NOT sign until an operator restores it")
        _refused_as_corrupt(conn, vote(2, 0, PREVOTE, 2))
        # the operator restores the record (from a backup): signing resumes where the guard was
        domain.server.put_record(record, revision, good)
        r = conn.sign_vote(C, vote(1, 0, PRECOMMIT, 77))
        assert r.error.code == 2
        _sign_ok(conn, pub, 2)
    finally:
        assert signer.stop() == 0
    peer.close()
    lines = [line for line in signer.lines if '"outcome"' in line]
    assert lines and all(good.hex()[:16] not in line for line in lines)
