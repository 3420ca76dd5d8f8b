"""`kms validator run` and its watermark file, end to end (real server, real signer process, the node peer):
a restarted signer refuses a KMS whose store was rolled back (its credentials remember a newer state head), and
once the operator accepts the restore it still keeps its watermark; a corrupt file stops it with a clear
message; a second signer on the same file is refused; the operator's re-seed works."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from kms.validator.kms_link import ValidatorLink
from kms.validator.watermark import file_name
from tests.validator.checks import verify_vote
from tests.validator.harness import Domain, SignerProcess
from tests.validator.node_peer import PRECOMMIT, PREVOTE, NodeConnection, NodePeer, vote

C = "chain-wm-e2e"


def _signs(conn: NodeConnection, pub: bytes, v) -> None:
    r = conn.sign_vote(C, v)
    assert not r.HasField("error"), r.error
    verify_vote(pub, C, r.vote)


def _refused(conn: NodeConnection, v) -> None:
    r = conn.sign_vote(C, v)
    assert r.error.code == 2 and not r.vote.signature, r


def _setup(domain: Domain, tmp_path: Path) -> tuple[str, bytes, NodePeer, Path, Path]:
    key = domain.create_key(C)
    with domain.server.client(domain.signer) as c:
        pub = ValidatorLink(c).public_key(key).raw
    peer = NodePeer()
    config = domain.config(tmp_path / "v.toml", [{"chain_id": C, "key_id": key, "addr": peer.addr}],
                           state_dir="signer-state")
    return key, pub, peer, config, tmp_path / "signer-state" / file_name(C, key)


def test_restarted_signer_keeps_its_watermark_over_a_rolled_back_kms(domain: Domain, tmp_path: Path) -> None:
    key, pub, peer, config, watermark = _setup(domain, tmp_path)
    signer = SignerProcess(config)
    try:
        conn = peer.accept()
        _signs(conn, pub, vote(1, 0, PREVOTE, 1))
        domain.server.snapshot(tmp_path / "old-store.sqlite3")  # the KMS host keeps a copy of its store
        for v in (vote(1, 0, PRECOMMIT, 1), vote(2, 0, PREVOTE, 2), vote(2, 0, PRECOMMIT, 2)):
            _signs(conn, pub, v)
    finally:
        assert signer.stop() == 0
    assert json.loads(watermark.read_text())["height"] == 2
    domain.server.restore(tmp_path / "old-store.sqlite3")  # ... and restarts the KMS on it
    signer = SignerProcess(config)
    assert signer.proc.wait(60) == 2  # the KMS client saw a newer state head: not trusted, nothing sent
    assert signer.wait_for("NOT trusted") and signer.wait_for("rolled back")
    domain.forget_signer_head()  # the operator accepts the restore (`kms credentials forget-head`) ...
    signer = SignerProcess(config)  # ... and the watermark is what still holds
    try:
        conn = peer.accept()
        assert signer.wait_for("BEHIND this validator's watermark")
        for v in (vote(1, 0, PRECOMMIT, 9), vote(2, 0, PREVOTE, 9), vote(2, 0, PRECOMMIT, 9),
                  vote(2, 0, PRECOMMIT, 2)):  # at the watermark even the same block: no stored signature
            _refused(conn, v)
        _signs(conn, pub, vote(3, 0, PREVOTE, 3))
        with domain.server.client(domain.signer) as c:
            state = ValidatorLink(c).state(key)
        assert (state.height, state.round, state.step) == (3, 0, 2)
    finally:
        assert signer.stop() == 0
        peer.close()
    assert any("validator watermark" in line and "refused" in line for line in signer.lines)


def test_corrupt_watermark_file_stops_the_signer_until_the_operator_reseeds(domain: Domain, tmp_path: Path) -> None:
    _, pub, peer, config, watermark = _setup(domain, tmp_path)
    signer = SignerProcess(config)
    try:
        conn = peer.accept()
        _signs(conn, pub, vote(1, 0, PREVOTE, 1))
        second = SignerProcess(config)  # a second signer for the same key and state directory
        assert second.proc.wait(30) == 1 and second.wait_for("in use by another signer process")
    finally:
        assert signer.stop() == 0
    good = watermark.read_text()
    watermark.write_text(good.replace('"height": 1', '"height": "1"'))  # damaged (a hand edit, a bad disk)
    signer = SignerProcess(config)
    assert signer.proc.wait(30) == 1
    assert signer.wait_for(f"the watermark file {watermark} is corrupt")
    assert signer.wait_for("the signer will not start with it") and signer.wait_for("docs/validators.md")
    peer.listener.settimeout(1)
    with pytest.raises(socket.timeout):  # it never dialled the node: nothing was signed
        peer.listener.accept()
    assert watermark.read_text() != good  # left for the operator, not reset
    # The operator's procedure: move the file aside and let the signer seed it from the KMS's guard (or write
    # one by hand at the last height the validator signed): it starts again at that position.
    watermark.rename(watermark.with_suffix(".damaged"))
    signer = SignerProcess(config)
    try:
        conn = peer.accept()
        assert signer.wait_for("seeded from the KMS's guard state")
        _refused(conn, vote(1, 0, PREVOTE, 9))
        _signs(conn, pub, vote(1, 0, PRECOMMIT, 1))
    finally:
        assert signer.stop() == 0
        peer.close()
    assert json.loads(watermark.read_text())["step"] == 3
