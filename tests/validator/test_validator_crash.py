"""Crash and rollback test: while a (byzantine-tempted) node drives heights through `kms validator run`, a hostile
KMS host SIGKILLs the server, replays older guard rows, restarts the server on older consistent prefixes of its
store, and kills the signer, all at random points. No two conflicting signatures for one height/round/step ever
reach the node: the enclave's guard alone would sign again what it forgot, the validator's watermark stops it.
(The signer's KMS client refuses a rolled-back store by itself; the test then plays the operator who accepts
the restore, so that the watermark is what is tested.)

Reproduce a run with KMS_CRASH_SEED=<seed> (every failure message starts with the seed)."""

from __future__ import annotations

import os
import random
import time
from collections import defaultdict
from pathlib import Path

from kms.validator import canonical
from kms.validator.kms_link import ValidatorLink
from kms.validator.protoio import ProtocolError
from tests.validator.checks import verify
from tests.validator.harness import Domain, SignerProcess
from tests.validator.hostile import HostileHost
from tests.validator.node_peer import PRECOMMIT, PREVOTE, NodeConnection, NodePeer, proposal, vote

C = "chain-crash"
PLAN = ["kill"] * 7 + ["replay"] * 6 + ["prefix"] * 6 + ["signer"] * 2


class Node:
    """Drives heights like a (byzantine-tempted) node, reconnects when the signer dies, keeps every signature."""

    def __init__(self, peer: NodePeer, pub: bytes, rng: random.Random) -> None:
        self.peer, self.pub, self.rng = peer, pub, rng
        self.conn: NodeConnection = peer.accept()
        self.received: dict[tuple[int, int, int], set[tuple[bytes, bytes]]] = defaultdict(set)
        self.outcomes: dict[str, int] = defaultdict(int)

    def _request(self, h: int, r: int, step: int, tag: int, ts: int):
        if step == 1:
            resp = self.conn.sign_proposal(C, proposal(h, r, tag, ts=ts))
            return resp, resp.proposal, canonical.proposal_sign_bytes
        vtype = PREVOTE if step == 2 else PRECOMMIT
        ext = b"e" if vtype == PRECOMMIT and tag else b""
        resp = self.conn.sign_vote(C, vote(h, r, vtype, tag, ts=ts, extension=ext))
        return resp, resp.vote, canonical.vote_sign_bytes

    def ask(self, h: int, r: int, step: int, tag: int, ts: int) -> bool:
        try:
            resp, msg, sign_bytes_of = self._request(h, r, step, tag, ts)
        except (OSError, ConnectionError, ProtocolError):  # the signer died: the node waits for it to dial again
            self.outcomes["unavailable"] += 1
            self.conn.close()
            self.conn = self.peer.accept(timeout=60)
            return False
        if resp.HasField("error"):
            self.outcomes["refused" if resp.error.code == 2 else "unavailable"] += 1
            return False
        sign_bytes = sign_bytes_of(C, msg)
        verify(self.pub, msg.signature, sign_bytes)
        self.received[(h, r, step)].add((sign_bytes, bytes(msg.signature)))
        self.outcomes["signed"] += 1
        return True

    def height(self, h: int) -> None:
        """Each step: the honest block (retried through outages), a conflicting one now and then, re-signs."""
        for r in range(self.rng.choice((1, 1, 2))):
            for step in (1, 2, 3):
                honest, other = (h * 10 + r) % 199 + 1, self.rng.choice((0, 200 + r))  # 0: a nil vote
                if step == 1 and other == 0:
                    other = 201
                order = [honest, other] if self.rng.random() < 0.7 else [other, honest]
                for tag in order if self.rng.random() < 0.5 else [honest]:
                    for _ in range(40):
                        if self.ask(h, r, step, tag, ts=1_700_000_000 + self.rng.randrange(3)):
                            break
                        if self.outcomes["unavailable"] and self.rng.random() < 0.5:
                            time.sleep(0.05)
                        if self.received.get((h, r, step)) is not None:
                            break  # something was signed here already: a refusal is the answer
                        if self.rng.random() < 0.2:
                            break
        if self.received and self.rng.random() < 0.5:
            self.revisit()

    def revisit(self) -> None:
        """Ask again, with another block, for a position signed earlier: exactly what a guard rolled back below it
        would sign. Only a refusal (or an outage) may come back."""
        h, r, step = self.rng.choice(sorted(self.received)[-8:])  # recent ones: what a rollback makes it forget
        self.outcomes["revisits"] += 1
        self.ask(h, r, step, 240 + self.rng.randrange(10), ts=1_700_000_000)


def test_hostile_host_rollbacks_and_crashes_never_release_conflicting_signatures(domain: Domain,
                                                                                 tmp_path: Path) -> None:
    seed = int(os.environ.get("KMS_CRASH_SEED", time.time_ns() % 2**32))
    print(f"crash test seed {seed} (KMS_CRASH_SEED={seed} replays this run)")  # shown by pytest on any failure
    rng = random.Random(seed)
    plan = PLAN[:]
    rng.shuffle(plan)
    key = domain.create_key(C)
    with domain.server.client(domain.signer) as c:
        pub = ValidatorLink(c).public_key(key).raw
    peer = NodePeer()
    config = domain.config(tmp_path / "v.toml", [{"chain_id": C, "key_id": key, "addr": peer.addr}])
    signers = [SignerProcess(config)]

    def restart_signer() -> None:
        signers[-1].kill()
        signers.append(SignerProcess(config))

    def accept_restore() -> None:  # the operator: `kms credentials forget-head`, then start the signer again
        signers[-1].kill()
        domain.forget_signer_head()
        signers.append(SignerProcess(config))

    node: Node | None = None
    started = time.monotonic()
    try:
        node = Node(peer, pub, rng)
        host = HostileHost(domain, key, tmp_path, seed + 1, plan, lambda: len(node.received), restart_signer,
                           accept_restore)
        host.start()
        h = 1
        deadline = time.monotonic() + 240
        while not host.finished.is_set() and time.monotonic() < deadline:
            node.height(h)
            h += 1
        host.join(60)
        for _ in range(3):  # the server is up again: signing goes on
            node.height(h)
            h += 1
    finally:
        assert signers[-1].stop() == 0
        peer.close()
    where = f"seed {seed}, host did {host.done} ({host.refused_starts} starts refused), node {dict(node.outcomes)}"
    print(f"crash test: {where}, {len(node.received)} positions signed in {time.monotonic() - started:.1f} s")
    assert host.done == plan, where
    conflicts = {hrs: sigs for hrs, sigs in node.received.items() if len({s for _, s in sigs}) != 1}
    assert not conflicts, f"{where}: conflicting signatures released at {sorted(conflicts)}"
    for (height, rnd, step), sigs in node.received.items():  # one signature: same block, only timestamps may differ
        blocks = {canonical.replace_timestamp(sb, canonical.timestamp_from_sign_bytes(next(iter(sigs))[0], step == 1),
                                              step == 1) for sb, _ in sigs}
        assert len(blocks) == 1, (where, height, rnd, step)
    assert node.outcomes["refused"] > 0 and node.outcomes["unavailable"] > 0, where
    assert node.outcomes["revisits"] > 0 and len(node.received) > 2 * len(plan), where
    assert any("validator watermark" in line and "refused" in line for s in signers for line in s.lines), where
