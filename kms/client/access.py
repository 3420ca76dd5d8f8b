"""Access-control operations of KmsClient: key policies and fine-grained grants (admins)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from kms.client.errors import ServerError
from kms.client.operations import Operations
from kms.client.policy import Grant, KeyPolicy, PolicyError, grant_conditions, operations_mask
from kms.client.types import KeyInfo
from kms.proto.enclave.v1 import boundary_pb2 as pb

GRANT_ID_BYTES = 16


def _grants(r: pb.Response) -> list[Grant]:
    return [Grant.from_pb(g) for g in r.grants.grants]


class AccessOperations(Operations):
    """Mixin: put_key_policy, create_grant, list_grants, revoke_grant."""

    def put_key_policy(self, key_id: str, policy: KeyPolicy) -> KeyInfo:
        """Replace a key's policy (statements and export setting); the metadata carries the new policy hash."""
        r = self._call(pb.Request(put_key_policy=policy.to_pb(key_id)))
        return self._remember(KeyInfo.from_pb(r.key_metadata))

    def create_grant(self, key_id: str, grantee: bytes, operations: Iterable[str] | int, *,
                     expires_at: datetime | int | None = None,
                     conditions: Mapping[str, str] | None = None) -> Grant:
        """Let `grantee` (a principal id) run the named operations on the key until `expires_at` (server time;
        None: no expiry) while the request's encryption context holds `conditions`. Returns the new grant."""
        if len(grantee) != 32:
            raise PolicyError("the grantee is a 32-byte principal id")
        mask = operations if isinstance(operations, int) else operations_mask(operations)
        expiry = int(expires_at.timestamp()) if isinstance(expires_at, datetime) else int(expires_at or 0)
        req = pb.CreateGrantRequest(key_id=key_id, grantee=grantee, operations=mask, expires_at=expiry,
                                    conditions=grant_conditions(conditions))
        grants = _grants(self._call(pb.Request(create_grant=req)))
        if not grants or grants[-1].grantee != grantee or grants[-1].operations != mask:
            raise ServerError("the create_grant answer does not end with the new grant")
        return grants[-1]  # the enclave appends the new grant to the key's list

    def list_grants(self, key_id: str) -> list[Grant]:
        """Every grant of the key (expired ones included until revoked)."""
        return _grants(self._call(pb.Request(list_grants=pb.ListGrantsRequest(key_id=key_id))))

    def revoke_grant(self, key_id: str, grant_id: bytes) -> list[Grant]:
        """Remove one grant by its id (admins); returns the key's remaining grants.
        """
        if len(grant_id) != GRANT_ID_BYTES:
            raise ValueError(f"a grant id is {GRANT_ID_BYTES} bytes, as list_grants and create_grant return it")
        req = pb.RevokeGrantRequest(key_id=key_id, grant_id=grant_id)
        return _grants(self._call(pb.Request(revoke_grant=req)))
