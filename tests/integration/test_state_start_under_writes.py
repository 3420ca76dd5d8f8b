"""A replica restarting while other replicas write to the shared store (issue 14, docs/cluster.md): the start-up
check reads the state log first and the records after, so records written in between are ahead of the log it
read. The enclave follows the log to its head (as a running replica does) and holds each such record against
that: the start succeeds, at the head the store has by then. A store whose records are ahead of its whole log
(the host withholds the log's tail) is still refused, naming the record.

The writes of "the other replicas" are played back deterministically: the domain's store is copied after each
of three rounds of changes made through the enclave, and the restarting enclave is shown the first copy while it
reads the log and lists the records, the second for the first records it reads after the listing, and the third
from the moment it follows the log."""

from __future__ import annotations

import pytest

from kms import errors
from kms.enclave.bridge import Enclave, MemoryStore
from kms.proto.enclave.v1 import boundary_pb2 as pb
from tests.integration.test_state_rollback import World


def copy(store: MemoryStore) -> MemoryStore:
    out = MemoryStore(store)
    out.state_log.extend(store.state_log)
    out.audit.extend(store.audit)
    return out


class WrittenMeanwhile:
    """The shared store as a restarting replica sees it while others write: views[0] until its listing is
    taken, views[1] after that, the last one from its first read of the log's head after the listing."""

    def __init__(self, *views: MemoryStore) -> None:
        self.views, self.at, self.listed = views, 0, False

    def __getattr__(self, name: str):   # put, commit, audit_append, audit_head: the store as it is now
        return getattr(self.views[self.at], name)

    def get(self, key_id: str) -> bytes | None:
        return self.views[self.at].get(key_id)

    def list(self, after: str, limit: int) -> list[str]:
        names = self.views[self.at].list(after, limit)
        self.listed, self.at = True, max(self.at, 1)
        return names

    def state_log_get(self, seq: int) -> bytes | None:
        if seq == 0 and self.listed:
            self.at = len(self.views) - 1
        return self.views[self.at].state_log_get(seq)


def create_key(w: World) -> str:
    return w.admin.call(pb.Request(create_key=pb.CreateKeyRequest(
        spec=pb.SYMMETRIC_DEFAULT, usage=pb.ENCRYPT_DECRYPT))).key_metadata.key_id


def describe(w: World, kid: str) -> str:
    return w.admin.call(pb.Request(describe_key=pb.DescribeKeyRequest(key_id=kid))).key_metadata.description


def update(w: World, kid: str, text: str) -> None:
    w.admin.call(pb.Request(update_key=pb.UpdateKeyRequest(key_id=kid, set_description=True, description=text)))


def start(w: World, store) -> pb.Response:
    """Restart the domain's enclave on store; the answer of its load_domain_key."""
    sealed = w.store["sealed-domain-key"][1]
    w.enclave.close()
    w.enclave = Enclave(w.data, store=store)
    return w.enclave.call(pb.Request(load_domain_key=pb.LoadDomainKeyRequest(sealed_domain_key=sealed)))


@pytest.fixture
def world(build, tmp_path):
    w = World(build, tmp_path)
    yield w
    w.enclave.close()


def test_a_restart_follows_the_log_past_records_written_during_its_check(world: World) -> None:
    w = world
    old = [create_key(w) for _ in range(4)]
    first = copy(w.store)
    for kid in old:
        update(w, kid, "second")
    new_second = [create_key(w) for _ in range(8)]   # not in the listing the restart reads
    second = copy(w.store)
    for kid in old + new_second:
        update(w, kid, "third")
    new_third = [create_key(w) for _ in range(8)]
    third = copy(w.store)
    head = len(third.state_log)
    assert head > len(second.state_log) > len(first.state_log)

    moving = WrittenMeanwhile(first, second, third)
    loaded = start(w, moving)
    assert moving.listed and moving.at == 2   # it listed the first copy and followed the log into the third
    assert loaded.state_head.seq == head and loaded.error_detail == ""   # no word left of the records it followed
    w.admin = w.channel(w.alice)
    assert all(describe(w, kid) == "third" for kid in old + new_second)
    assert all(describe(w, kid) == "" for kid in new_third)


def test_records_ahead_of_the_whole_log_are_still_refused(world: World) -> None:
    w = world
    kid = create_key(w)
    log = list(w.store.state_log)
    update(w, kid, "after")
    changed = copy(w.store)
    changed.state_log[:] = log           # the host keeps the changed record and drops its log entry
    log = list(w.store.state_log)
    created = create_key(w)
    added = copy(w.store)
    added.state_log[:] = log             # and a new record without its log entry
    with pytest.raises(errors.StaleRecord) as refused:
        start(w, changed)
    assert f"record {kid} is at revision 2, the state log says revision 1" in str(refused.value)
    with pytest.raises(errors.StaleRecord) as refused:
        start(w, added)
    assert f"record {created} is not in the state log" in str(refused.value)
    assert start(w, w.store).state_head.seq == len(w.store.state_log)   # the whole store starts
