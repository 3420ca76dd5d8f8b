"""Which operations may be sent again after their answer was lost: the one table of the SDK and the agent.

An idempotent request (a read, encrypt/decrypt, an update to a given value) is re-sent after a transport failure,
on a fresh verified session to the same or another replica. A request that creates or changes something each
time it runs is re-sent only if it certainly never left the client; once it may have run, the caller gets
OutcomeUnknown naming the operation (look, with describe or list, before doing it again). docs/api.md §5.
"""

from __future__ import annotations

from kms.proto.enclave.v1 import boundary_pb2 as pb

NOT_IDEMPOTENT = frozenset({
    "create_key", "rotate_key", "schedule_key_deletion", "cancel_key_deletion", "destroy_key", "rotate_if_due",
    "create_alias", "delete_alias", "create_grant", "revoke_grant", "import_key_material", "prepare_key_import",
    "import_transferred_key", "set_auditors", "add_principal", "remove_principal", "import_validator",
    "eth_import_keystore",
    "init", "recover", "approve_replica", "remove_replica",
    "generate_domain_key", "load_domain_key", "install_quote", "replica_join", "replica_admit",
    "replica_join_complete",   # these six are the host's own, never sent by a client (listed: all are classified)
})

IDEMPOTENT = frozenset({
    "get_identity", "describe_key", "get_public_key", "set_key_state", "list_keys", "update_key",
    "update_alias", "list_aliases", "generate_data_key", "generate_data_key_pair", "re_encrypt", "batch",
    "get_parameters_for_import", "put_key_policy", "list_grants", "export_key", "encrypt", "decrypt", "sign",
    "verify", "generate_mac", "verify_mac", "asymmetric_decrypt", "derive_shared_secret", "generate_random",
    "get_evidence", "list_principals", "validator_sign", "validator_state", "validator_state_import",
    "eth_sign", "eth_slashing_export", "eth_slashing_import", "eth_slashing_check",
    "list_replicas", "set_replica_policy",
})


def operation_of(request: pb.Request) -> str | None:
    """The request's operation, or None when its oneof is empty."""
    return request.WhichOneof("op")


def is_idempotent(operation: str | None) -> bool:
    """True when a request of `operation` may be sent again (an unknown operation is not)."""
    return operation in IDEMPOTENT
