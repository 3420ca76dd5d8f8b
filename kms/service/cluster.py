"""The host's side of the cluster (docs/cluster.md): relaying joins through the shared store.

Every `cluster_poll_s` a replica looks at the join board. Without a domain key, and with a domain in the
store, it asks to join (its enclave's join key, quoted by its QE, with the quote's collateral) and, once a
grant is posted for it, hands the grant to its enclave, which checks the sponsor and seals the key on this
node. With a domain key it is a sponsor: it hands each posted request to its enclave, which verifies the
joiner and records it, and posts the grant the enclave makes once an admin (or the auto-join policy)
approved the joiner, with its own quote's collateral. The host decides nothing: both enclaves check
everything the other wrote, collateral included.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from kms.errors import KmsError, ReplicaNotApproved
from kms.log import get_logger
from kms.proto.enclave.v1 import boundary_pb2 as pb
from kms.service.evidence import QuotingEnclave, quote_collateral
from kms.service.joins import JoinBoard
from kms.service.relay import Relay

_log = get_logger("kms.cluster")


class Replication:
    """The join relay of one replica (joiner until it has the domain key, sponsor from then on)."""

    def __init__(self, relay: Relay, board: JoinBoard, qe: QuotingEnclave, *, name: str, poll_s: float,
                 store_has_domain: Callable[[], bool], sealed_path: Path | None = None) -> None:
        self.relay, self.board, self.qe = relay, board, qe
        self.sealed_path = sealed_path  # this node's sealed domain key: another process on the node may write it
        self.name, self.poll_s = name, poll_s
        self._store_has_domain = store_has_domain
        self._posted: bytes | None = None          # our replica id, once our request is on the board
        self._reported: dict[bytes, str] = {}      # what we last logged per joiner (no log spam)
        self.joined = asyncio.Event()

    async def _call(self, request: pb.Request) -> pb.Response:
        return await self.relay.run("cluster", self.relay.enclave.call, request, admit=False)

    async def run(self) -> None:
        while True:
            try:
                await self.round()
            except (KmsError, OSError) as exc:
                _log.warning("cluster round failed", error=str(exc), error_type=type(exc).__name__)
            await asyncio.sleep(self.poll_s)

    async def round(self) -> None:
        if (await self.relay.identity()).domain_loaded:
            await self._sponsor()
        elif await asyncio.to_thread(self._store_has_domain):
            if not await self._load_sealed():
                await self._join()

    async def _load_sealed(self) -> bool:
        """Load the domain key that another process on this node sealed (`kms serve --processes`: one worker
        initialized, recovered or joined the domain): the same CPU, so the same replica; no join needed."""
        if self.sealed_path is None or not await asyncio.to_thread(self.sealed_path.exists):
            return False
        blob = await asyncio.to_thread(self.sealed_path.read_bytes)
        await self._call(pb.Request(load_domain_key=pb.LoadDomainKeyRequest(sealed_domain_key=blob)))
        _log.info("loaded the domain key another process on this node sealed", path=str(self.sealed_path))
        self.joined.set()
        return True

    async def _join(self) -> None:
        if self._posted is None:
            r = (await self._call(pb.Request(replica_join=pb.ReplicaJoinRequest(
                qe_target_info=self.qe.target_info())))).replica_join
            quote = await asyncio.to_thread(self.qe.quote, r.report)
            collateral = quote_collateral(await asyncio.to_thread(self.qe.collateral, quote))
            request = pb.ReplicaAdmitRequest(quote=quote, join_public_key=r.join_public_key, name=self.name,
                                             collateral=collateral)
            await asyncio.to_thread(self.board.post, r.replica_id, request.SerializeToString())
            self._posted = bytes(r.replica_id)
            _log.info("asked to join the domain: an admin approves it with `kms cluster approve`",
                      replica_id=self._posted.hex())
            return
        grant = await asyncio.to_thread(self.board.granted, self._posted)
        if grant is None:
            return
        try:
            await self._call(pb.Request(replica_join_complete=pb.ReplicaGrant.FromString(grant)))
        except KmsError as exc:  # a grant our enclave refuses: ask again (the sponsor's enclave decides anew)
            _log.warning("join grant refused by this enclave", error=str(exc), replica_id=self._posted.hex())
            self._posted = None
            return
        await asyncio.to_thread(self.board.done, self._posted)
        _log.info("joined the domain: the domain key is sealed on this node", replica_id=self._posted.hex())
        self.joined.set()

    async def _sponsor(self) -> None:
        for replica_id, raw in await asyncio.to_thread(self.board.requests):
            request = pb.ReplicaAdmitRequest.FromString(raw)
            request.qe_target_info = self.qe.target_info()
            try:
                r = (await self._call(pb.Request(replica_admit=request))).replica_admit
            except ReplicaNotApproved:
                self._note(replica_id, "waiting", "a replica waits for approval (or was removed)")
                continue
            except KmsError as exc:
                self._note(replica_id, exc.code_name, "join refused by this enclave", error=str(exc))
                continue
            if r.status != pb.REPLICA_APPROVED:
                self._note(replica_id, "pending", "a replica asks to join: `kms cluster approve` it")
                continue
            r.grant.sponsor_quote = await asyncio.to_thread(self.qe.quote, r.report)
            collateral = await asyncio.to_thread(self.qe.collateral, r.grant.sponsor_quote)
            r.grant.sponsor_collateral.CopyFrom(quote_collateral(collateral))
            await asyncio.to_thread(self.board.grant, replica_id, r.grant.SerializeToString())
            self._note(replica_id, "granted", "the domain key was granted to an approved replica")

    def _note(self, replica_id: bytes, what: str, message: str, **fields: object) -> None:
        if self._reported.get(replica_id) != what:
            self._reported[replica_id] = what
            _log.info(message, replica_id=replica_id.hex(), **fields)
