"""Unit tests of the replica set's pure parts: address lists, DNS names with several records (an injected
resolver), the choice of replica, and the one idempotency table every operation is classified in."""

from __future__ import annotations

import socket

import pytest

from kms.client.idempotency import IDEMPOTENT, NOT_IDEMPOTENT, is_idempotent
from kms.client.replicas import Chooser, ReplicaState, expand, resolve, split_targets
from kms.proto.enclave.v1 import boundary_pb2 as pb


def fake_resolver(records: dict[str, list[str]]):
    calls: list[tuple[str, int]] = []

    def resolver(host: str, port: int, type: int = 0) -> list[tuple]:
        calls.append((host, port))
        if host not in records:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        out = []
        for ip in records[host]:
            family = socket.AF_INET6 if ":" in ip else socket.AF_INET
            sockaddr = (ip, port, 0, 0) if family == socket.AF_INET6 else (ip, port)
            out += [(family, socket.SOCK_STREAM, 6, "", sockaddr)] * 2   # getaddrinfo repeats records
        return out

    resolver.calls = calls   # type: ignore[attr-defined]
    return resolver


def test_every_operation_is_classified_once() -> None:
    ops = {f.name for f in pb.Request.DESCRIPTOR.oneofs_by_name["op"].fields}
    assert IDEMPOTENT | NOT_IDEMPOTENT == ops and not IDEMPOTENT & NOT_IDEMPOTENT
    assert not is_idempotent("create_key") and is_idempotent("encrypt") and not is_idempotent(None)
    assert not is_idempotent("no_such_operation")   # unknown: never retried once sent


def test_address_lists() -> None:
    assert split_targets(" a:1, b:2 ,,a:1") == ["a:1", "b:2"]
    assert split_targets(["x:1", "y:2"]) == ["x:1", "y:2"]
    with pytest.raises(ValueError, match="no server address"):
        split_targets(" , ")
    with pytest.raises(ValueError, match="host:port"):
        resolve("no-port")


def test_a_name_with_several_records_is_several_replicas() -> None:
    resolver = fake_resolver({"kms.example": ["10.0.0.1", "10.0.0.2", "fd00::3"]})
    assert expand("kms.example:7443,10.0.0.9:7443", resolver) == [
        ("10.0.0.1:7443", "kms.example"), ("10.0.0.2:7443", "kms.example"), ("[fd00::3]:7443", "kms.example"),
        ("10.0.0.9:7443", None)]
    assert resolver.calls == [("kms.example", 7443)]   # IP literals are not looked up


def test_literals_and_other_targets_are_not_resolved() -> None:
    resolver = fake_resolver({})
    assert expand("[::1]:7443,127.0.0.1:1,unix:/run/kms.sock", resolver) == [
        ("[::1]:7443", None), ("127.0.0.1:1", None), ("unix:/run/kms.sock", None)]
    assert resolver.calls == []
    with pytest.raises(OSError):
        expand("nowhere.example:1", resolver)


def chooser(n: int, recheck_s: float = 60.0) -> Chooser:
    return Chooser([ReplicaState(f"r{i}:1") for i in range(n)], recheck_s)


def test_round_robin_and_least_in_flight() -> None:
    c = chooser(3)
    assert [c.pick(set()) for _ in range(6)] == [0, 1, 2, 0, 1, 2]
    with c.busy(1), c.busy(2):
        assert {c.pick(set()) for _ in range(3)} == {0}   # the others have requests in flight
    assert c.pick({0, 1}) == 2 and c.pick({0, 1, 2}) is None


def test_refused_replicas_are_not_used_and_down_ones_last() -> None:
    events: list[tuple[str, str, str]] = []
    c = chooser(3)
    c.observer = lambda *e: events.append(e)
    c.mark(0, "refused", "another domain")
    c.mark(1, "down", "connection refused")
    assert {c.pick(set()) for _ in range(4)} == {2}
    assert c.pick({2}) == 1   # a replica that was down is still tried before giving up
    assert c.pick({1, 2}) is None   # a refused one never, within recheck_s
    assert c.all_refused() == []
    c.mark(1, "refused", "rolled back")
    c.mark(2, "refused", "debug build")
    assert c.all_refused() == ["r0:1: another domain", "r1:1: rolled back", "r2:1: debug build"]
    assert ("refused", "r0:1", "another domain") in events and ("down", "r1:1", "connection refused") in events
    c.mark(2, "up")
    assert c.states[2].refused == "" and c.states[2].served == 1 and c.pick(set()) == 2


def test_a_refusal_is_rechecked_after_recheck_s() -> None:
    c = chooser(2, recheck_s=0.0)
    c.mark(0, "refused", "x")
    assert {c.pick(set()) for _ in range(2)} == {0, 1}


def test_one_replica_is_always_tried() -> None:
    c = chooser(1)
    c.mark(0, "refused", "x")
    assert c.pick(set()) == 0 and c.pick({0}) is None
