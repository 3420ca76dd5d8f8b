"""The two-sided guard in the real enclave: the signer's watermark as a second lower bound.

The host's attack (issue 11, item 3): keep an older, authentic `vstate-<key>` record, or a copy of the
whole store, let the validator sign on, put the old record (or the whole old store) back and restart
the enclave on it. The old record alone is refused by the enclave's state log (StaleRecord, live and
at restart). The whole older store is a consistent prefix the enclave cannot tell from the latest:
its guard has then forgotten the newer signatures, and without a watermark it signs a conflicting
vote (shown here, so the test proves the attack is real); with the validator's watermark it refuses
every position at or below it and adopts the watermark as its state.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from kms import errors
from kms.proto.enclave.v1 import boundary_pb2 as pb
from tests.integration.rollback_host import Host, Snapshot
from tests.integration.test_validator_guard import create, proposal, public_key, sign, vote

A, B = b"\x11" * 32, b"\x77" * 32  # the honest block and the attacker's


@pytest.fixture
def host(build: Path, tmp_path: Path):
    h = Host(Path(build), tmp_path)
    yield h
    h.close()


def mark(height: int, rnd: int, step: int, signed: bytes = b"") -> pb.ValidatorWatermark:
    """The validator's watermark: its last signed position and SHA-256 of the bytes signed there."""
    return pb.ValidatorWatermark(height=height, round=rnd, step=step,
                                 sign_bytes_hash=hashlib.sha256(signed).digest() if signed else b"")


def history(host: Host, kid: str) -> tuple[Snapshot, dict[str, tuple[int, bytes]], pb.ValidatorWatermark, bytes]:
    """Sign height 10 (prevote, precommit for A) and 11 (prevote). Returns what the host kept from before
    height 10's precommit (the whole store: a consistent older prefix, and the `vstate-<key>` row alone), the
    validator's watermark after the last signature, and the signature of that precommit."""
    sign(host.enclave, kid, vote(10, 0, 1, block=A))
    saved, row = host.snapshot(), {f"vstate-{kid}": host.store[f"vstate-{kid}"]}
    signed = sign(host.enclave, kid, vote(10, 0, 2, block=A)).signature
    sign(host.enclave, kid, vote(11, 0, 1, block=A))
    return saved, row, mark(11, 0, 2, vote(11, 0, 1, block=A)), signed


def test_a_replayed_guard_row_is_refused_by_the_state_log(host: Host) -> None:
    kid = create(host.enclave)
    _, row, _, _ = history(host, kid)
    current = {f"vstate-{kid}": host.store[f"vstate-{kid}"]}
    host.store.update(row)
    with pytest.raises(errors.StaleRecord):
        sign(host.enclave, kid, vote(10, 0, 2, block=B))
    with pytest.raises(errors.StaleRecord):  # and a restart on it stops
        host.roll_back(row)
    host.roll_back(current)
    assert sign(host.enclave, kid, vote(11, 0, 2, block=A)).height == 11


def test_replayed_guard_state_double_signs_without_watermark_and_is_refused_with_it(host: Host) -> None:
    kid = create(host.enclave)
    pub = public_key(host.enclave, kid)
    saved, _, wm, honest = history(host, kid)
    host.restore(saved)
    conflicting = sign(host.enclave, kid, vote(10, 0, 2, block=B))  # the attack, without a watermark
    pub.verify(honest, vote(10, 0, 2, block=A))
    pub.verify(conflicting.signature, vote(10, 0, 2, block=B))  # two precommits at 10/0: a double sign

    # The same attack against a signer that sends its watermark: every conflicting position at or
    # below the watermark is refused, each time from a freshly rolled-back enclave; at the
    # watermark's own position even the identical bytes (the enclave has no signature to return).
    at_or_below = [vote(10, 0, 2, block=B), vote(10, 0, 2, block=None), vote(10, 0, 1, block=B),
                   vote(10, 1, 1, block=B), vote(10, 5, 2, block=B), vote(11, 0, 1, block=B),
                   vote(11, 0, 1, block=None), vote(11, 0, 1, block=A)]
    for data in at_or_below:
        host.restore(saved)
        with pytest.raises(errors.DoubleSignRefused):
            sign(host.enclave, kid, data, watermark=wm)
    host.restore(saved)
    with pytest.raises(errors.DoubleSignRefused):
        sign(host.enclave, kid, proposal(11, 0), kind=pb.PROPOSAL, watermark=wm)
    # Above the watermark it signs, and its state moves past the watermark.
    host.restore(saved)
    for data, step in ((vote(11, 0, 2, block=A), 3), (vote(12, 0, 1, block=A), 2)):
        above = sign(host.enclave, kid, data, watermark=wm)
        pub.verify(above.signature, data)
        assert (above.step, above.reused) == (step, False)
        wm = mark(above.height, above.round, above.step, data)


def test_a_refused_request_moves_the_guard_up_to_the_watermark_for_every_client(host: Host) -> None:
    kid = create(host.enclave)
    saved, _, wm, _ = history(host, kid)
    host.restore(saved)
    with pytest.raises(errors.DoubleSignRefused):  # even the identical bytes: there is no stored signature
        sign(host.enclave, kid, vote(11, 0, 1, block=A), watermark=wm)
    host.restart()  # the adopted watermark was persisted
    state = host.enclave.call(pb.Request(validator_state=pb.ValidatorStateRequest(key_id=kid))).validator_state
    assert (state.height, state.round, state.step, state.sign_bytes, state.signature) == (11, 0, 2, b"", b"")
    for data in (vote(10, 0, 2, block=B), vote(11, 0, 1, block=B), vote(11, 0, 1, block=A)):
        with pytest.raises(errors.DoubleSignRefused):  # a client without a watermark is bound by it now
            sign(host.enclave, kid, data)
    assert sign(host.enclave, kid, vote(11, 0, 2, block=A)).height == 11  # the next step signs


def test_watermark_at_and_below_the_stored_position(host: Host) -> None:
    kid = create(host.enclave)
    first = sign(host.enclave, kid, vote(5, 0, 2, block=A))
    same = mark(5, 0, 3, vote(5, 0, 2, block=A))
    # At the stored position with the matching hash: the stored signature, also for a new timestamp.
    again = sign(host.enclave, kid, vote(5, 0, 2, block=A), watermark=same)
    later = sign(host.enclave, kid, vote(5, 0, 2, block=A, ts=1700000099), watermark=same)
    assert again.reused and later.reused and again.signature == later.signature == first.signature
    assert later.sign_bytes == vote(5, 0, 2, block=A)
    # The validator says it handed out a signature over other bytes here: nothing at this position.
    for other in (mark(5, 0, 3, vote(5, 0, 2, block=B)), mark(5, 0, 3, b"not these bytes")):
        with pytest.raises(errors.DoubleSignRefused):
            sign(host.enclave, kid, vote(5, 0, 2, block=A), watermark=other)
    # A watermark without a hash, or below the stored state, leaves the enclave's own rules.
    assert sign(host.enclave, kid, vote(5, 0, 2, block=A), watermark=mark(5, 0, 3)).reused
    assert sign(host.enclave, kid, vote(5, 0, 2, block=A), watermark=mark(4, 0, 3, b"x")).reused
    with pytest.raises(errors.DoubleSignRefused):
        sign(host.enclave, kid, vote(5, 0, 2, block=B), watermark=mark(1, 0, 1))
    assert not sign(host.enclave, kid, vote(6, 0, 1, block=A), watermark=same).reused
    state = host.enclave.call(pb.Request(validator_state=pb.ValidatorStateRequest(key_id=kid))).validator_state
    assert (state.height, state.step) == (6, 2)  # the watermarks (all at or below) moved nothing


def test_malformed_watermarks_are_refused(host: Host) -> None:
    kid = create(host.enclave)
    bad = [pb.ValidatorWatermark(height=-1), pb.ValidatorWatermark(round=-1), pb.ValidatorWatermark(step=4),
           pb.ValidatorWatermark(height=1, sign_bytes_hash=b"\x00" * 31)]
    for wm in bad:
        with pytest.raises(errors.InvalidRequest):
            sign(host.enclave, kid, vote(1, 0, 1), watermark=wm)
    assert sign(host.enclave, kid, vote(1, 0, 1), watermark=pb.ValidatorWatermark()).height == 1
