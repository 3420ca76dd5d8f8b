"""The validator's watermark: its file (durable, strict, locked) and the signer-side guard, alone and in front of the
real enclave rolled back by its host (and in front of an enclave that ignores the watermark, like an older build)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from kms.proto.cometbft.v038 import privval_pb2 as pv
from kms.proto.enclave.v1 import boundary_pb2 as pb
from kms.validator.kms_link import ValidatorLink
from kms.validator.privval import Decision, PrivvalHandler
from kms.validator.watermark import FORMAT, Regression, SignerGuard, Watermark, WatermarkError, WatermarkFile
from kms.validator.watermark import file_name as watermark_file_name
from tests.integration.rollback_host import Host
from tests.validator.checks import verify_vote
from tests.validator.node_peer import PRECOMMIT, PREVOTE, vote
from tests.validator.test_validator_handler import EnclaveClient

C = "chain-wm"
H = hashlib.sha256(b"signed").digest()


def test_file_round_trip_is_strict_json_0600(tmp_path: Path) -> None:
    f = WatermarkFile(tmp_path / "state", C, "key-1")
    assert f.load() is None and f.path.name == "chain-wm@key-1.json"
    f.write(Watermark(12, 3, 2, H))
    assert f.load() == Watermark(12, 3, 2, H)
    assert oct(f.path.stat().st_mode & 0o777) == "0o600" and oct(f.dir.stat().st_mode & 0o777) == "0o700"
    assert json.loads(f.path.read_text()) == {"format": FORMAT, "version": 1, "chain_id": C, "key_id": "key-1",
                                              "height": 12, "round": 3, "step": 2, "sign_bytes_sha256": H.hex()}
    assert not list(f.dir.glob("*.tmp"))
    assert watermark_file_name("a/b@c", "k@1") == "a%2Fb%40c@k%401.json"  # no path separators, one unquoted '@'
    f.close()


def _doc(**change: object) -> str:
    doc = {"format": FORMAT, "version": 1, "chain_id": C, "key_id": "key-1", "height": 5, "round": 0, "step": 3,
           "sign_bytes_sha256": H.hex()}
    doc.update(change)
    return json.dumps({k: v for k, v in doc.items() if v is not None})


@pytest.mark.parametrize("text", [
    "", "{", _doc()[:-5], "[]", _doc(extra=1), _doc(round=None), _doc(height=-1), _doc(height="5"),
    _doc(height=True), _doc(round=2**31), _doc(step=4), _doc(sign_bytes_sha256="ab"),
    _doc(sign_bytes_sha256=H.hex().upper()), _doc(key_id="key-2"), _doc(chain_id="other"), _doc(version=2),
    _doc(format="priv_validator_state"),
])
def test_a_corrupt_file_is_refused_never_reset(tmp_path: Path, text: str) -> None:
    f = WatermarkFile(tmp_path, C, "key-1")
    f.path.write_text(text)
    with pytest.raises(WatermarkError, match="is corrupt") as exc:
        SignerGuard(f)
    assert str(f.path) in str(exc.value) and "docs/validators.md" in str(exc.value)
    assert f.path.read_text() == text  # left as it was, for the operator
    f.path.write_bytes(b"\xff\xfe")
    with pytest.raises(WatermarkError, match="cannot read"):
        f.load()
    f.close()


def test_one_signer_per_watermark_file(tmp_path: Path) -> None:
    first = WatermarkFile(tmp_path, C, "key-1")
    with pytest.raises(WatermarkError, match="in use by another signer"):
        WatermarkFile(tmp_path, C, "key-1")
    other_key = WatermarkFile(tmp_path, C, "key-2")
    first.close()
    WatermarkFile(tmp_path, C, "key-1").close()
    other_key.close()


def test_signer_guard_rules(tmp_path: Path) -> None:
    f = WatermarkFile(tmp_path, C, "key-1")
    guard = SignerGuard(f)
    with pytest.raises(WatermarkError, match="not seeded"):
        guard.check((1, 0, 1))
    assert guard.seed(pb.ValidatorStateExport(height=4, round=0, step=3)) == Watermark(4, 0, 3, b"")
    assert guard.seed(pb.ValidatorStateExport(height=9)).height == 4  # seeds once only
    for below_or_at in ((3, 9, 3), (4, 0, 2), (4, 0, 3)):  # at it too: no hash, nothing to compare with
        with pytest.raises(Regression):
            guard.check(below_or_at)
    assert guard.check((4, 1, 1)) == pb.ValidatorWatermark(height=4, step=3)
    guard.record((4, 1, 1), b"signed")
    assert SignerGuard(WatermarkFile(tmp_path, C, "key-other")).current is None
    assert f.load() == guard.current == Watermark(4, 1, 1, H)  # written through before record() returns
    guard.check((4, 1, 1))  # at the watermark with its hash: the KMS may answer with the stored signature ...
    guard.record((4, 1, 1), b"signed")
    with pytest.raises(Regression, match="other bytes"):  # ... but only one over the watermark's bytes
        guard.record((4, 1, 1), b"signed another block")
    (f.path.with_suffix(".tmp")).mkdir()  # the next write fails (a real EISDIR): nothing moves
    with pytest.raises(WatermarkError, match="cannot write"):
        guard.record((5, 0, 1), b"next")
    assert guard.current == f.load() == Watermark(4, 1, 1, H)
    f.close()


class CountingClient(EnclaveClient):
    """The in-process enclave as the KMS; counts sign requests; `ignore_watermark` plays an older enclave build."""

    def __init__(self, enclave) -> None:
        super().__init__(enclave)
        self.signs, self.ignore_watermark = 0, False

    def _call(self, request: pb.Request) -> pb.Response:
        if request.WhichOneof("op") == "validator_sign":
            self.signs += 1
            if self.ignore_watermark:
                request.validator_sign.ClearField("watermark")
        return super()._call(request)


def _sign(handler: PrivvalHandler, v) -> pv.SignedVoteResponse:
    return handler.handle(pv.Message(sign_vote_request=pv.SignVoteRequest(vote=v, chain_id=C))).signed_vote_response


@pytest.mark.parametrize("enclave_honours_watermark", [True, False])
def test_the_signer_side_stops_the_double_sign_of_a_rolled_back_kms(build, tmp_path: Path,
                                                                    enclave_honours_watermark: bool) -> None:
    host = Host(Path(build), tmp_path / "kms")
    try:
        client = CountingClient(host.enclave)
        link = ValidatorLink(client)  # type: ignore[arg-type]
        key = link.create(C).key_id
        seen: list[Decision] = []
        guard = SignerGuard(WatermarkFile(tmp_path / "state", C, key))
        handler = PrivvalHandler(link, key, C, observe=seen.append, guard=guard)
        pub = handler.public_key().raw
        verify_vote(pub, C, _sign(handler, vote(1, 0, PREVOTE, 1)).vote)
        kept = host.snapshot()  # the host keeps the whole store (and the guard) as it is now
        for v in (vote(1, 0, PRECOMMIT, 1), vote(2, 0, PREVOTE, 2), vote(2, 0, PRECOMMIT, 2)):
            verify_vote(pub, C, _sign(handler, v).vote)
        assert guard.current is not None and guard.current.position == (2, 0, 3)
        host.restore(kept)
        client.enclave, client.ignore_watermark = host.enclave, not enclave_honours_watermark
        signs = client.signs
        for below in (vote(1, 0, PRECOMMIT, 9), vote(2, 0, PREVOTE, 9), vote(1, 5, PREVOTE, 9)):
            r = _sign(handler, below)  # refused here: the KMS is not even asked
            assert r.error.code == 2 and not r.vote.signature
            assert seen[-1].outcome == "refused" and seen[-1].reason.startswith("validator watermark")
        assert client.signs == signs
        r = _sign(handler, vote(2, 0, PRECOMMIT, 9))  # at the watermark, another block
        assert r.error.code == 2 and not r.vote.signature and client.signs == signs + 1
        assert seen[-1].reason == ("double-sign guard" if enclave_honours_watermark else
                                   "validator watermark: the KMS's signature at (2, 0, 3) is over other bytes than "
                                   "this validator handed out there")
        assert guard.current.position == (2, 0, 3)
        verify_vote(pub, C, _sign(handler, vote(3, 0, PREVOTE, 3)).vote)  # above it: signing goes on
        assert guard.current.position == (3, 0, 2) and seen[-1].outcome == "signed"
    finally:
        guard.file.close()
        host.close()
