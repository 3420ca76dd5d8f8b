"""Key lifecycle operations of KmsClient: deletion window, destruction, key settings, scheduled rotation, aliases."""

from __future__ import annotations

from kms.client.operations import Operations
from kms.client.types import KeyInfo
from kms.proto.enclave.v1 import boundary_pb2 as pb


def _aliases(r: pb.Response) -> dict[str, str]:
    return {a.alias: a.key_id for a in r.aliases.aliases}


class LifecycleOperations(Operations):
    """Mixin: deletion scheduling, update_key, housekeeping operations and aliases (admins)."""

    def _metadata(self, request: pb.Request) -> KeyInfo:
        return self._remember(KeyInfo.from_pb(self._call(request).key_metadata))

    def schedule_key_deletion(self, key_id: str, pending_window_days: int = 30) -> KeyInfo:
        """PENDING_DELETION for 7..30 days (every use refused), then destroyable (admins)."""
        req = pb.ScheduleKeyDeletionRequest(key_id=key_id, pending_window_days=pending_window_days)
        return self._metadata(pb.Request(schedule_key_deletion=req))

    def cancel_key_deletion(self, key_id: str) -> KeyInfo:
        """Back from PENDING_DELETION; the key comes back DISABLED (admins)."""
        return self._metadata(pb.Request(cancel_key_deletion=pb.CancelKeyDeletionRequest(key_id=key_id)))

    def destroy_key(self, key_id: str) -> KeyInfo:
        """Wipe a PENDING_DELETION key whose window has passed (else NOT_DUE, an InvalidRequest); not undoable."""
        return self._metadata(pb.Request(destroy_key=pb.DestroyKeyRequest(key_id=key_id)))

    def rotate_if_due(self, key_id: str) -> KeyInfo:
        """Rotate if the key's rotation period has passed since its last rotation (else NOT_DUE)."""
        return self._metadata(pb.Request(rotate_if_due=pb.RotateIfDueRequest(key_id=key_id)))

    def update_key(self, key_id: str, *, min_decrypt_version: int | None = None,
                   rotation_period_days: int | None = None, description: str | None = None) -> KeyInfo:
        """Change a key's settings (admins); only the arguments given change.

        min_decrypt_version retires every older version (its ciphertexts then fail with
        KEY_VERSION_RETIRED; never the current one); rotation_period_days (1..3650, 0 off; AES keys)
        schedules rotation by the server's housekeeping.
        """
        if min_decrypt_version is None and rotation_period_days is None and description is None:
            raise ValueError("update_key: give min_decrypt_version, rotation_period_days or description")
        req = pb.UpdateKeyRequest(key_id=key_id)
        if min_decrypt_version is not None:
            req.set_min_decrypt_version, req.min_decrypt_version = True, min_decrypt_version
        if rotation_period_days is not None:
            req.set_rotation_period, req.rotation_period_days = True, rotation_period_days
        if description is not None:
            req.set_description, req.description = True, description
        return self._metadata(pb.Request(update_key=req))

    # --- aliases ------------------------------------------------------------------------------------

    def create_alias(self, alias: str, key_id: str) -> dict[str, str]:
        """`alias/<name>` -> key id, usable wherever a key id is (admins); returns every alias."""
        return _aliases(self._call(pb.Request(create_alias=pb.AliasRequest(alias=alias, key_id=key_id))))

    def update_alias(self, alias: str, key_id: str) -> dict[str, str]:
        """Point an existing alias at another key (admins); returns every alias."""
        return _aliases(self._call(pb.Request(update_alias=pb.AliasRequest(alias=alias, key_id=key_id))))

    def delete_alias(self, alias: str) -> dict[str, str]:
        """Remove an alias (admins); returns the remaining aliases."""
        return _aliases(self._call(pb.Request(delete_alias=pb.AliasRequest(alias=alias))))

    def list_aliases(self) -> dict[str, str]:
        """Every alias of the domain and the key id it names."""
        return _aliases(self._call(pb.Request(list_aliases=pb.ListAliasesRequest())))
