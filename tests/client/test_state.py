"""The client state file (pinned domain, highest head per domain): format, atomic merge under a lock across
processes, and corruption, which is an error and never a silent reset."""

from __future__ import annotations

import json
import multiprocessing
import stat
from pathlib import Path

import pytest

from kms.client import ClientState, ClientStateError, StateHead
from kms.client.state import STATE_FILE, STATE_FORMAT

D1, D2 = bytes(range(16)), bytes(range(16, 32))


def head(seq: int, fill: int = 1) -> StateHead:
    return StateHead(seq, bytes([fill]) * 32)


def test_round_trip_and_format(tmp_path: Path) -> None:
    path = tmp_path / STATE_FILE
    state = ClientState.load(path)
    assert state.domain_id is None and state.heads() == {} and not path.exists()
    state.pin(D1)
    state.observe(D1, head(3))
    state.observe(D1, head(2, 9))  # lower: ignored
    state.observe(D2, head(7))
    state.save()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_text())
    assert doc == {"format": STATE_FORMAT, "domain_id": D1.hex(),
                   "heads": {D1.hex(): {"seq": 3, "hash": "01" * 32}, D2.hex(): {"seq": 7, "hash": "01" * 32}}}
    again = ClientState.load(path)
    assert again.domain_id == D1 and again.head(D1) == head(3) and again.head(D2) == head(7)
    assert str(head(3)) == "3:" + "01" * 32
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []  # no temporary file left


def test_writers_merge_higher_heads_win_and_a_pin_changes_only_when_set(tmp_path: Path) -> None:
    path = tmp_path / STATE_FILE
    a, b = ClientState.load(path), ClientState.load(path)
    a.observe(D1, head(5))
    b.observe(D1, head(7, 2))
    b.observe(D2, head(1))
    b.pin(D2)
    b.save()
    a.save()  # a never saw 7, and never pinned: the file keeps b's head and pin
    merged = ClientState.load(path)
    assert merged.head(D1) == head(7, 2) and merged.head(D2) == head(1) and merged.domain_id == D2
    assert a.head(D1) == head(7, 2) and a.domain_id == D2  # a learned what b wrote
    a.forget_head(D1)  # an admin accepting a restore: the file's head goes too
    a.observe(D1, head(4, 3))
    a.save()
    assert ClientState.load(path).head(D1) == head(4, 3)


def _writer(path: str, base: int) -> None:
    state = ClientState.load(path)
    for i in range(25):
        state.observe(D1, head(base + i, base % 250))
        state.save()


def test_concurrent_processes_keep_the_highest_head(tmp_path: Path) -> None:
    path = tmp_path / STATE_FILE
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(path), base)) for base in (0, 100, 200, 300)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert ClientState.load(path).head(D1) == head(324, 300 % 250)


@pytest.mark.parametrize("text", [
    "", "{", "[]", json.dumps({"format": "enclave-kms client state v2", "domain_id": None, "heads": {}}),
    json.dumps({"format": STATE_FORMAT, "domain_id": None}),
    json.dumps({"format": STATE_FORMAT, "domain_id": None, "heads": {}, "extra": 1}),
    json.dumps({"format": STATE_FORMAT, "domain_id": "00" * 15, "heads": {}}),
    json.dumps({"format": STATE_FORMAT, "domain_id": "zz" * 16, "heads": {}}),
    json.dumps({"format": STATE_FORMAT, "domain_id": None, "heads": {"00" * 16: {"seq": -1, "hash": "00" * 32}}}),
    json.dumps({"format": STATE_FORMAT, "domain_id": None, "heads": {"00" * 16: {"seq": True, "hash": "00" * 32}}}),
    json.dumps({"format": STATE_FORMAT, "domain_id": None, "heads": {"00" * 16: {"seq": 1, "hash": "00" * 31}}}),
    json.dumps({"format": STATE_FORMAT, "domain_id": None, "heads": {"00" * 16: {"seq": 1}}}),
    json.dumps({"format": STATE_FORMAT, "domain_id": None, "heads": {"00" * 16: {"seq": 2**64, "hash": "00" * 32}}}),
])
def test_a_corrupt_file_is_an_error_and_is_left_alone(tmp_path: Path, text: str) -> None:
    path = tmp_path / STATE_FILE
    path.write_text(text)
    with pytest.raises(ClientStateError, match="corrupt"):
        ClientState.load(path)
    assert path.read_text() == text


def test_a_file_damaged_after_loading_stops_the_save(tmp_path: Path) -> None:
    path = tmp_path / STATE_FILE
    state = ClientState.load(path)
    state.observe(D1, head(1))
    state.save()
    path.write_bytes(b"\xff\xfe")
    state.observe(D1, head(2))
    with pytest.raises(ClientStateError, match="corrupt"):
        state.save()
    assert path.read_bytes() == b"\xff\xfe"


def test_in_memory_state_saves_nothing(tmp_path: Path) -> None:
    state = ClientState.for_credentials(None)
    state.pin(D1)
    state.save()
    assert state.path is None and state.domain_id == D1
    with pytest.raises(ValueError):
        state.pin(b"short")
