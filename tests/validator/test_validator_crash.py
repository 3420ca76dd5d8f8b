"""Crash test: SIGKILL the KMS server at random points of signing; no conflicting signatures are ever released."""

from __future__ import annotations

import os
import random
import threading
import time
from collections import defaultdict
from pathlib import Path

from kms.validator import canonical
from kms.validator.kms_link import ValidatorLink
from tests.validator.checks import verify
from tests.validator.harness import Domain, SignerProcess
from tests.validator.node_peer import PRECOMMIT, PREVOTE, NodeConnection, NodePeer, proposal, vote

C = "chain-crash"
KILLS = 20
STEP = {PREVOTE: 2, PRECOMMIT: 3}


class Node:
    """Drives heights like a (byzantine-tempted) node and keeps every signature it receives."""

    def __init__(self, conn: NodeConnection, pub: bytes, rng: random.Random) -> None:
        self.conn, self.pub, self.rng = conn, pub, rng
        self.received: dict[tuple[int, int, int], set[tuple[bytes, bytes]]] = defaultdict(set)
        self.outcomes: dict[str, int] = defaultdict(int)

    def ask(self, h: int, r: int, step: int, tag: int, ts: int) -> bool:
        if step == 1:
            resp = self.conn.sign_proposal(C, proposal(h, r, tag, ts=ts))
            msg, sign_bytes_of = resp.proposal, canonical.proposal_sign_bytes
        else:
            vtype = PREVOTE if step == 2 else PRECOMMIT
            ext = b"e" if vtype == PRECOMMIT and tag else b""
            resp = self.conn.sign_vote(C, vote(h, r, vtype, tag, ts=ts, extension=ext))
            msg, sign_bytes_of = resp.vote, canonical.vote_sign_bytes
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
                honest, other = h * 10 + r, self.rng.choice((0, 200 + r))  # 0: a nil vote
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


def test_sigkill_during_signing_never_releases_conflicting_signatures(domain: Domain, tmp_path: Path) -> None:
    seed = int(os.environ.get("KMS_CRASH_SEED", time.time_ns() % 2**32))
    rng = random.Random(seed)
    key = domain.create_key(C)
    with domain.server.client(domain.signer) as c:
        pub = ValidatorLink(c).public_key(key).raw
    peer = NodePeer()
    config = domain.config(tmp_path / "v.toml", [{"chain_id": C, "key_id": key, "addr": peer.addr}])
    signer = SignerProcess(config)
    kills: list[float] = []
    done = threading.Event()
    node: Node | None = None

    def killer() -> None:
        krng = random.Random(seed + 1)
        try:
            for _ in range(KILLS):
                assert node is not None
                signed = node.outcomes["signed"]
                wait_until = time.monotonic() + 30
                while node.outcomes["signed"] == signed and time.monotonic() < wait_until:
                    time.sleep(0.002)  # signing is going on again ...
                time.sleep(krng.uniform(0, 0.03))  # ... kill at a random point of it
                domain.server.kill()
                kills.append(time.monotonic())
                if krng.random() < 0.3:
                    time.sleep(krng.uniform(0.05, 0.5))  # stay down a while: requests fail meanwhile
                domain.server.start()
        finally:
            done.set()

    try:
        node = Node(peer.accept(), pub, rng)
        thread = threading.Thread(target=killer, daemon=True)
        thread.start()
        h = 1
        deadline = time.monotonic() + 240
        while not done.is_set() and time.monotonic() < deadline:
            node.height(h)
            h += 1
        thread.join(60)
        for _ in range(3):  # the server is up again: signing goes on
            node.height(h)
            h += 1
    finally:
        assert signer.stop() == 0
        peer.close()
    assert len(kills) == KILLS, f"seed {seed}"
    conflicts = {hrs: sigs for hrs, sigs in node.received.items() if len({s for _, s in sigs}) != 1}
    assert not conflicts, f"seed {seed}: conflicting signatures released at {sorted(conflicts)}"
    for (height, rnd, step), sigs in node.received.items():  # one signature: same block, only timestamps may differ
        blocks = {canonical.replace_timestamp(sb, canonical.timestamp_from_sign_bytes(next(iter(sigs))[0], step == 1),
                                              step == 1) for sb, _ in sigs}
        assert len(blocks) == 1, (seed, height, rnd, step)
    assert node.outcomes["refused"] > 0 and node.outcomes["unavailable"] > 0, (seed, dict(node.outcomes))
    assert len(node.received) > 2 * KILLS, (seed, len(node.received))
