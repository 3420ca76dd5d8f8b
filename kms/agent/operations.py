"""The operations the agent forwards: the Request oneof members a session principal may send, with idempotency.

Which of them may be sent again is the SDK's one table (kms.client.idempotency): a request that is not idempotent
is never sent again once it may have left, not on a reconnect, not to another server (failover); its caller gets
ABORTED (OutcomeUnknown) instead (docs/api.md §5).
"""

from __future__ import annotations

from kms.client.idempotency import operation_of
from kms.errors import E, InvalidRequest
from kms.proto.enclave.v1 import boundary_pb2 as pb

# Not forwarded: the host's plumbing (the call ECALL only) and the two operations that create a domain (an agent
# is pinned to one; `kms admin init|recover` do those).
NOT_FORWARDED = {
    "generate_domain_key": "host only",
    "load_domain_key": "host only",
    "install_quote": "host only",
    "get_evidence": "host only (the gRPC API's GetEvidence serves it)",
    "init": "creates a domain: `kms admin init`",
    "recover": "restores a domain: `kms admin recover`",
    "list_replicas": "cluster administration: `kms cluster`",
    "approve_replica": "cluster administration: `kms cluster`",
    "remove_replica": "cluster administration: `kms cluster`",
    "set_replica_policy": "cluster administration: `kms cluster`",
    "replica_join": "host only (the attested join)",
    "replica_admit": "host only (the attested join)",
    "replica_join_complete": "host only (the attested join)",
}

_OP_FIELDS = pb.Request.DESCRIPTOR.oneofs_by_name["op"].fields
FORWARDED: tuple[str, ...] = tuple(f.name for f in _OP_FIELDS if f.name not in NOT_FORWARDED)


def is_forwarded(operation: str | None) -> bool:
    return operation is not None and operation in FORWARDED


def camel(operation: str) -> str:
    """create_key -> CreateKey: the RPC of agent.proto's KmsAgent service that carries the operation."""
    return "".join(part.capitalize() for part in operation.split("_"))


REQUEST_MAX = 64 * 1024 - 32   # the enclave's request frame (KMS_MAX_REQUEST_SIZE) less what the session adds


def prepare(request: pb.Request) -> str:
    """Check a caller's request before it goes anywhere and clear what the session sets itself (version, request
    id, host time); returns its operation. Raises the enclave's own codes: an empty or unforwarded operation is
    KMS_ERR_UNKNOWN_OPERATION, a request above the session's frame KMS_ERR_REQUEST_TOO_LARGE (refused here, so a
    request that can never fit is not mistaken for a broken server)."""
    operation = operation_of(request)
    if operation is None or not is_forwarded(operation):
        why = NOT_FORWARDED.get(operation or "", "no operation set")
        raise InvalidRequest(f"the agent does not forward {operation or 'this request'} ({why})",
                             E.KMS_ERR_UNKNOWN_OPERATION)
    request.ClearField("version")
    request.ClearField("request_id")
    request.ClearField("host_time")
    size = request.ByteSize()
    if size > REQUEST_MAX:
        raise InvalidRequest(f"a {operation} request of {size} bytes exceeds the session's {REQUEST_MAX}-byte limit",
                             E.KMS_ERR_REQUEST_TOO_LARGE)
    return operation
