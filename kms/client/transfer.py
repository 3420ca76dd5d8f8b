"""Moving a key between enclaves by local attestation (same platform): prepare on the importer, export, import."""

from __future__ import annotations

from kms.client.operations import Operations
from kms.client.types import KeyInfo
from kms.proto.enclave.v1 import boundary_pb2 as pb


class TransferOperations(Operations):
    """Mixin: transfer_key_to (exporter side) and the importer's two steps.

    Both clients must be connected (and verified) to enclaves of the same signer on the same
    platform; the key's export policy must be EXPORT_TO_ATTESTED_ENCLAVE.
    """

    def target_info(self) -> bytes:
        """This enclave's TARGETINFO (512 bytes), which an importer targets its REPORT at."""
        return self._call(pb.Request(get_identity=pb.GetIdentityRequest())).get_identity.target_info

    def prepare_key_import(self, exporter_target_info: bytes) -> pb.PrepareKeyImportResponse:
        """Importer: an ephemeral key and a REPORT binding it, targeted at the exporter."""
        req = pb.PrepareKeyImportRequest(exporter_target_info=exporter_target_info)
        return self._call(pb.Request(prepare_key_import=req), idempotent=False).prepare_key_import

    def export_key(self, key_id: str, prepared: pb.PrepareKeyImportResponse) -> pb.ExportKeyResponse:
        """Exporter: check the importer's REPORT inside the enclave and wrap the key to its ephemeral key."""
        req = pb.ExportKeyRequest(key_id=key_id, peer_report=prepared.report, peer_public_key=prepared.public_key)
        return self._call(pb.Request(export_key=req)).export_key

    def import_transferred_key(self, prepared: pb.PrepareKeyImportResponse, wrapped: pb.ExportKeyResponse) -> KeyInfo:
        """Importer: unwrap with the ephemeral key (one use) and store the key under its own key id."""
        req = pb.ImportTransferredKeyRequest(transfer_id=prepared.transfer_id,
                                             ephemeral_public_key=wrapped.ephemeral_public_key,
                                             wrapped_key=wrapped.wrapped_key)
        r = self._call(pb.Request(import_transferred_key=req), idempotent=False)
        return self._remember(KeyInfo.from_pb(r.key_metadata))

    def transfer_key_to(self, importer: TransferOperations, key_id: str) -> KeyInfo:
        """The whole transfer of key_id from this client's enclave to importer's."""
        prepared = importer.prepare_key_import(self.target_info())
        return importer.import_transferred_key(prepared, self.export_key(key_id, prepared))
