"""privval end to end: test peer (node) <-> `kms validator run` <-> real `kms serve`; restarts keep the guard."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from kms.validator.kms_link import ValidatorLink
from tests.validator.checks import verify_proposal, verify_vote
from tests.validator.harness import REPO, Domain, SignerProcess, free_port
from tests.validator.node_peer import PRECOMMIT, PREVOTE, NodeConnection, NodePeer, proposal, vote

A, B = "chain-a", "chain-b"


def _public(domain: Domain, key_id: str) -> bytes:
    with domain.server.client(domain.signer) as c:
        return ValidatorLink(c).public_key(key_id).raw


def _height(conn: NodeConnection, pub: bytes, chain: str, h: int, tag: int) -> None:
    """A full height as the node drives it: proposal, prevote, precommit (with an extension)."""
    p = conn.sign_proposal(chain, proposal(h, 0, tag))
    assert not p.HasField("error"), p.error
    verify_proposal(pub, chain, p.proposal)
    for vtype in (PREVOTE, PRECOMMIT):
        ext = f"ext-{h}".encode() if vtype == PRECOMMIT else b""
        r = conn.sign_vote(chain, vote(h, 0, vtype, tag, extension=ext))
        assert not r.HasField("error"), r.error
        verify_vote(pub, chain, r.vote)


def _refused(r, height: int) -> None:
    assert r.HasField("error") and r.error.code == 2, r
    assert r.error.description == f"double signing requested at height: {height}"


def _status(domain: Domain, key_id: str) -> dict:
    assert domain.server.proc is not None
    out = subprocess.run(
        [sys.executable, "-m", "kms", "validator", "status", "--key-id", key_id, "--server", domain.server.api,
         "--credentials", str(domain.signer_dir), "--mrsigner", domain.server.proc.mrsigner.hex(),
         "--simulated-root", str(domain.server.data_dir / "sgx-sim" / "root-ca.pem"),
         "--allow-simulation-insecure", "--output", "json"],
        cwd=REPO, capture_output=True, text=True, timeout=60, env={k: v for k, v in os.environ.items()
                                                                    if not k.startswith("KMS_")})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _metric(port: int, outcome: str, chain: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith("kms_validator_signatures_total{") and f'chain="{chain}"' in line \
                and f'outcome="{outcome}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_privval_against_the_real_server(domain: Domain, tmp_path: Path) -> None:
    key_a, key_b = domain.create_key(A), domain.create_key(B, "secp256k1")
    pub_a, pub_b = _public(domain, key_a), _public(domain, key_b)
    assert len(pub_a) == 32 and len(pub_b) == 33
    sock_dir = Path(tempfile.mkdtemp(prefix="pv-", dir="/tmp"))
    tcp, unix = NodePeer(), NodePeer(sock_dir / "privval.sock")
    metrics = free_port()
    config = domain.config(tmp_path / "validator.toml", [
        {"chain_id": A, "key_id": key_a, "addr": tcp.addr},
        {"chain_id": B, "key_id": key_b, "addr": unix.addr}], metrics_listen=f"127.0.0.1:{metrics}")
    signer = SignerProcess(config)
    try:
        conn_a, conn_b = tcp.accept(), unix.accept()
        identity = tmp_path / "identity.key"
        assert stat.S_IMODE(identity.stat().st_mode) == 0o600  # generated on first start
        assert conn_a.ping() and conn_b.ping()
        # PubKey, and a request for another chain
        assert conn_a.pub_key(A).pub_key.ed25519 == pub_a and conn_b.pub_key(B).pub_key.secp256k1 == pub_b
        wrong = conn_a.pub_key(B)
        assert wrong.HasField("error") and not wrong.pub_key.WhichOneof("sum")
        wrong_vote = conn_a.sign_vote(B, vote(1, 0, PREVOTE, 1))
        assert wrong_vote.error.code == 1 and not wrong_vote.vote.signature
        # a run of heights over SecretConnection (Ed25519) and over the unix socket (secp256k1)
        for h in range(1, 7):
            _height(conn_a, pub_a, A, h, tag=h)
            _height(conn_b, pub_b, B, h, tag=h)
        # same-block re-sign: the same signature; with another timestamp: the same signature and the stored time
        again = conn_a.sign_vote(A, vote(6, 0, PRECOMMIT, 6, extension=b"ext-6"))
        later = conn_a.sign_vote(A, vote(6, 0, PRECOMMIT, 6, ts=1_700_000_099, extension=b"ext-6"))
        assert again.vote.signature == later.vote.signature
        assert later.vote.timestamp.seconds == 1_700_000_000
        verify_vote(pub_a, A, later.vote)
        # conflicting vote at the same height/round/step, and regressions: refused, the node gets the error
        _refused(conn_a.sign_vote(A, vote(6, 0, PRECOMMIT, 99, extension=b"ext-6")), 6)
        _refused(conn_a.sign_vote(A, vote(6, 0, PRECOMMIT, 0)), 6)  # nil after a block
        _refused(conn_a.sign_vote(A, vote(5, 3, PREVOTE, 5)), 5)  # height regression
        _refused(conn_a.sign_proposal(A, proposal(6, 0, 6)), 6)  # step regression
        _refused(conn_b.sign_vote(B, vote(6, 0, PREVOTE, 42)), 6)
        bad_ext = conn_a.sign_vote(A, vote(7, 0, PREVOTE, 7, extension=b"not allowed"))
        assert bad_ext.error.code == 1 and "extension" in bad_ext.error.description
        nil_prevote = conn_a.sign_vote(A, vote(6, 1, PREVOTE, 0))  # a later round may vote nil
        verify_vote(pub_a, A, nil_prevote.vote)
        assert _metric(metrics, "refused", A) == 4 and _metric(metrics, "signed", A) >= 19
        assert _metric(metrics, "reused", A) == 2
        pinned = {"h": 6, "sig": again.vote.signature}
    finally:
        assert signer.stop() == 0  # SIGTERM: graceful
    log = "\n".join(signer.lines)
    assert '"outcome": "refused"' in log and '"height": 6' in log and "ext-6" not in log
    assert pinned["sig"].hex() not in log and pub_a.hex() not in log

    # restart the signer: it dials again; the guard (in the server) still knows height 6
    signer = SignerProcess(config)
    try:
        conn_a, conn_b = tcp.accept(), unix.accept()
        _refused(conn_a.sign_vote(A, vote(6, 0, PRECOMMIT, 98)), 6)
        _refused(conn_a.sign_vote(A, vote(6, 0, PREVOTE, 6)), 6)
        _height(conn_a, pub_a, A, 7, tag=7)
        _height(conn_b, pub_b, B, 7, tag=7)
        # restart the KMS server under the running signer: its session reconnects and re-verifies
        domain.server.restart()
        _refused(conn_a.sign_vote(A, vote(7, 0, PRECOMMIT, 97)), 7)
        same = conn_a.sign_vote(A, vote(7, 0, PRECOMMIT, 7, extension=b"ext-7"))
        verify_vote(pub_a, A, same.vote)
        _height(conn_a, pub_a, A, 8, tag=8)
        _height(conn_b, pub_b, B, 8, tag=8)
    finally:
        assert signer.stop() == 0
    status = _status(domain, key_a)
    assert (status["chain_id"], status["height"], status["round"], status["step"]) == (A, 8, 0, "precommit")
    tcp.close()
    unix.close()


def test_signer_redials_with_backoff_until_the_node_listens(domain: Domain, tmp_path: Path) -> None:
    chain = "chain-redial"
    key = domain.create_key(chain)
    pub = _public(domain, key)
    port = free_port()
    config = domain.config(tmp_path / "v.toml", [{"chain_id": chain, "key_id": key,
                                                   "addr": f"tcp://127.0.0.1:{port}"}])
    signer = SignerProcess(config)
    try:
        assert signer.wait_for("node not reachable, retrying")  # nobody listens yet
        peer = NodePeer(port=port)
        conn = peer.accept()
        _height(conn, pub, chain, 1, tag=1)
        conn.close()  # the node drops the connection (as on a timeout, or a restart)
        conn = peer.accept()
        _height(conn, pub, chain, 2, tag=2)
        assert signer.wait_for("connection to the node lost")
        peer.close()
    finally:
        assert signer.stop() == 0
