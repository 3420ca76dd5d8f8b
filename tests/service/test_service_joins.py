"""The join board (kms.service.joins, docs/cluster.md) on both record stores: a request is posted, seen by
another replica's store on the same database, granted, taken and removed; a new post drops an old grant."""

from __future__ import annotations

from pathlib import Path

from kms.service.joins import JoinBoard


def test_post_grant_take(opener, tmp_path: Path) -> None:
    shared = {"db_dir": tmp_path / "joiner"} if opener.backend == "sqlite" else {}  # SQLite: store_dir
    joiner = JoinBoard(opener(tmp_path / "joiner"))
    sponsor = JoinBoard(opener(tmp_path / "sponsor", **shared))  # another node, the same database
    rid, other = b"\x01" * 32, b"\x02" * 32
    assert sponsor.requests() == [] and joiner.granted(rid) is None
    joiner.post(rid, b"request \x00 bytes")
    joiner.post(other, b"second")
    assert sponsor.requests() == [(rid, b"request \x00 bytes"), (other, b"second")]
    sponsor.grant(rid, b"grant")
    assert joiner.granted(rid) == b"grant" and sponsor.requests() == [(other, b"second")]
    joiner.post(rid, b"asked again")  # a fresh request drops the grant it replaces
    assert joiner.granted(rid) is None and (rid, b"asked again") in sponsor.requests()
    joiner.done(rid)
    assert sponsor.requests() == [(other, b"second")]
    for board in (joiner, sponsor):
        board.store.close()
