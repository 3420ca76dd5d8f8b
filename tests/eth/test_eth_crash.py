"""Crash and rollback test for Ethereum slashing protection, as tests/validator/test_validator_crash.py for CometBFT:
while a (byzantine-tempted) validator client signs blocks and attestations through eth_sign, the hostile KMS host
(tests/validator/hostile.py, on the key's `ethstate-<key>` row) SIGKILLs the server at random points of signing,
replays older guard rows, restarts the server on older consistent prefixes of its store, and the validator side
restarts (keeping its watermark, as the signer keeps it durably). No slashable pair is ever released: no two block
signatures for one slot, no double vote, no surround vote. Reproduce a run with KMS_CRASH_SEED=<seed>."""

import os
import random
import time
from pathlib import Path

from py_ecc.bls import G2ProofOfPossession as bls

from kms import errors
from kms.client import ClientError, Credentials, EthWatermark, KmsClient
from tests.eth.test_eth_slashing import FORK, GVR, header, new_key, vote
from tests.validator.harness import Domain
from tests.validator.hostile import HostileHost

PLAN = ["kill"] * 5 + ["replay"] * 4 + ["prefix"] * 4 + ["signer"] * 2


class Validator:
    """Signs a block and an attestation per epoch, tries conflicting ones now and then, keeps every signature."""

    def __init__(self, domain: Domain, key: str, pk: bytes, rng: random.Random) -> None:
        self.domain, self.key, self.pk, self.rng = domain, key, pk, rng
        self.creds = Credentials.load(domain.signer_dir)
        self.client: KmsClient | None = None
        self.watermark = EthWatermark()  # the signer's, kept across its restarts
        self.blocks: dict[int, set[bytes]] = {}
        self.votes: dict[tuple[int, int], set[bytes]] = {}
        self.outcomes: dict[str, int] = {}
        self.rolled_back = False  # set when the operator accepted a restore: revisit what it may have forgotten

    def restart(self) -> None:
        if self.client is not None:
            self.client.close()
        self.client = None

    def _count(self, what: str) -> None:
        self.outcomes[what] = self.outcomes.get(what, 0) + 1

    def _sign(self, kind: str, data: bytes) -> bytes | None:
        try:
            if self.client is None:
                self.client = self.domain.server.client(self.creds, retries=1)
            res = self.client.eth_sign(self.key, kind, data, FORK, GVR, watermark=self.watermark)
        except errors.SlashingProtectionRefused:
            self._count("refused")
            return None
        except (ClientError, errors.KmsError):  # down, restarting, rolled back (until the operator accepts it)
            self._count("unavailable")
            self.restart()
            time.sleep(0.05)
            return None
        assert bls.Verify(self.pk, res.signing_root, res.signature)
        self.watermark = self.watermark.merge(res.watermark)
        self._count("signed")
        return res.signing_root

    def epoch(self, e: int) -> None:
        tags = [0, 1] if self.rng.random() < 0.3 else [0]
        for tag in tags:
            root = self._sign("BLOCK_V2", header(e * 32, tag))
            if root is not None:
                self.blocks.setdefault(e * 32, set()).add(root)
        source = max(0, e - self.rng.choice((1, 1, 2)))
        for s in ([source, max(0, source - 1)] if self.rng.random() < 0.3 else [source]):
            root = self._sign("ATTESTATION", vote(s, e, tag=self.rng.randrange(2)))
            if root is not None:
                self.votes.setdefault((s, e), set()).add(root)
        if self.blocks and (self.rng.random() < 0.3 or self.rolled_back):
            self.revisit(4 if self.rolled_back else 1)
            self.rolled_back = False

    def revisit(self, n: int) -> None:
        """Ask again, with other contents, for recent positions: what a guard rolled back below them would sign."""
        for slot in sorted(self.blocks)[-n:]:
            root = self._sign("BLOCK_V2", header(slot, 7))
            if root is not None:
                self.blocks[slot].add(root)
        for s, e in sorted(self.votes, key=lambda v: v[1])[-n:]:
            for data, pos in ((vote(s, e, tag=9), (s, e)), (vote(max(0, s - 1), e + 1, tag=9), (max(0, s - 1), e + 1))):
                root = self._sign("ATTESTATION", data)
                if root is not None:
                    self.votes.setdefault(pos, set()).add(root)

    def signed(self) -> int:
        return sum(len(r) for r in self.blocks.values()) + sum(len(r) for r in self.votes.values())


def slashable(blocks: dict[int, set[bytes]], votes: dict[tuple[int, int], set[bytes]]) -> list[str]:
    found = [f"two blocks at slot {s}" for s, roots in blocks.items() if len(roots) > 1]
    pairs = [(s, t, r) for (s, t), roots in votes.items() for r in roots]
    for i, (s1, t1, r1) in enumerate(pairs):
        for s2, t2, r2 in pairs[i + 1:]:
            if t1 == t2 and r1 != r2:
                found.append(f"double vote at target {t1}")
            if (s1 < s2 and t2 < t1) or (s2 < s1 and t1 < t2):
                found.append(f"surround ({s1}, {t1}) / ({s2}, {t2})")
    return found


def test_crashes_and_rollbacks_never_release_a_slashable_pair(domain: Domain, tmp_path: Path) -> None:
    seed = int(os.environ.get("KMS_CRASH_SEED", time.time_ns() % 2**32))
    print(f"eth crash test seed {seed} (KMS_CRASH_SEED={seed} replays this run)")
    rng = random.Random(seed)
    plan = PLAN[:]
    rng.shuffle(plan)
    with domain.server.client(domain.admin) as admin:
        key, pk = new_key(admin)
        admin.create_grant(key, domain.signer.principal_id, ["*"])
    node = Validator(domain, key, pk, rng)

    def accept_restore() -> None:  # the operator: `kms credentials forget-head`, then the signer reconnects
        domain.forget_signer_head()
        node.restart()
        node.rolled_back = True

    host = HostileHost(domain, key, tmp_path, seed + 1, plan, node.signed, node.restart, accept_restore)
    host.record = f"ethstate-{key}"
    host.start()
    e, deadline = 1, time.monotonic() + 240
    while not host.finished.is_set() and time.monotonic() < deadline:
        node.epoch(e)
        e += 1
    host.join(60)
    for _ in range(3):
        node.epoch(e)
        e += 1
    where = f"seed {seed}, host did {host.done}, validator {node.outcomes}"
    print(f"eth crash test: {where}, {node.signed()} signatures")
    assert host.done == plan, where
    assert node.outcomes.get("signed", 0) > 20, where
    assert not slashable(node.blocks, node.votes), where
