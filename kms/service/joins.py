"""The join board: how the hosts relay a replica's join through the shared store (docs/cluster.md).

A joining replica's host posts its enclave's join request (an encoded ReplicaAdmitRequest: its quote and
join key); a running replica's host hands it to its enclave and posts back the grant its enclave made (an
encoded ReplicaGrant, with the sponsor's quote); the joiner's host takes it to its own enclave. Nothing
here is trusted: both enclaves verify what the other wrote, and a host that drops or alters rows only
delays or stops a join. One table of the store (migration 3, both backends), outside the record protocol.
"""

from __future__ import annotations

import time

from kms.service.store import BaseStore

MAX_BLOB = 64 * 1024


class JoinBoard:
    """The replica_joins table of a record store."""

    def __init__(self, store: BaseStore) -> None:
        self.store = store

    def post(self, replica_id: bytes, request: bytes) -> None:
        """Post (or replace) a join request; any earlier grant for it is dropped."""
        if len(request) > MAX_BLOB:
            raise ValueError("join request too large")
        self.store.execute("INSERT INTO replica_joins (replica_id, request, grant_blob, posted) "
                           "VALUES (%s, %s, NULL, %s) ON CONFLICT (replica_id) DO UPDATE SET "
                           "request = excluded.request, grant_blob = NULL, posted = excluded.posted",
                           (replica_id, request, time.time()))

    def requests(self) -> list[tuple[bytes, bytes]]:
        """(replica id, request) of every join that has no grant yet (oldest first, at most 64)."""
        rows = self.store.execute("SELECT replica_id, request FROM replica_joins WHERE grant_blob IS NULL "
                                  "ORDER BY posted LIMIT 64")
        return [(bytes(r), bytes(q)) for r, q in rows]

    def grant(self, replica_id: bytes, grant: bytes) -> None:
        self.store.execute("UPDATE replica_joins SET grant_blob = %s WHERE replica_id = %s", (grant, replica_id))

    def granted(self, replica_id: bytes) -> bytes | None:
        rows = self.store.execute("SELECT grant_blob FROM replica_joins WHERE replica_id = %s", (replica_id,))
        return bytes(rows[0][0]) if rows and rows[0][0] is not None else None

    def done(self, replica_id: bytes) -> None:
        self.store.execute("DELETE FROM replica_joins WHERE replica_id = %s", (replica_id,))
