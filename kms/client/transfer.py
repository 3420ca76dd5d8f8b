"""Moving a key between enclaves by local attestation (same platform): prepare on the importer, export, import."""

from __future__ import annotations

from kms.client.operations import Operations
from kms.client.types import KeyInfo
from kms.proto.enclave.v1 import boundary_pb2 as pb


def _destination(domain_id: bytes, mrenclave: bytes | None, min_isvsvn: int | None) -> dict[str, bytes | int]:
    """The ExportKeyRequest fields naming the importer; ValueError unless a domain and MRENCLAVE or ISVSVN."""
    if len(domain_id) != 16:
        raise ValueError("the destination's domain id is 16 bytes")
    if mrenclave is None and min_isvsvn is None:
        raise ValueError("name the destination's MRENCLAVE or a minimum ISVSVN (or both)")
    if mrenclave is not None and len(mrenclave) != 32:
        raise ValueError("an MRENCLAVE is 32 bytes")
    if min_isvsvn is not None and not 1 <= min_isvsvn <= 0xFFFF:
        raise ValueError("a minimum ISVSVN is 1..65535")
    return {"peer_domain_id": domain_id, "peer_mrenclave": mrenclave or b"", "peer_min_isvsvn": min_isvsvn or 0}


class TransferOperations(Operations):
    """Mixin: transfer_key_to (exporter side) and the importer's two steps.

    Both clients must be connected (and verified) to enclaves of the same signer on the same
    platform; the key's export policy must be EXPORT_TO_ATTESTED_ENCLAVE. The caller names the
    destination (its domain id, and its MRENCLAVE or a minimum ISVSVN); the exporting enclave refuses
    any other importer (kms.errors.PeerMismatch).
    """

    def target_info(self) -> bytes:
        """This enclave's TARGETINFO (512 bytes), which an importer targets its REPORT at."""
        return self._call(pb.Request(get_identity=pb.GetIdentityRequest())).get_identity.target_info

    def prepare_key_import(self, exporter_target_info: bytes) -> pb.PrepareKeyImportResponse:
        """Importer: an ephemeral key and a REPORT binding it, targeted at the exporter."""
        req = pb.PrepareKeyImportRequest(exporter_target_info=exporter_target_info)
        return self._call(pb.Request(prepare_key_import=req)).prepare_key_import

    def export_key(self, key_id: str, prepared: pb.PrepareKeyImportResponse, *, destination_domain: bytes,
                   mrenclave: bytes | None = None, min_isvsvn: int | None = None) -> pb.ExportKeyResponse:
        """Exporter: check the importer's REPORT inside the enclave (our signer and product, and the domain,
        MRENCLAVE or minimum ISVSVN named here) and wrap the key to its ephemeral key."""
        req = pb.ExportKeyRequest(key_id=key_id, peer_report=prepared.report, peer_public_key=prepared.public_key,
                                  **_destination(destination_domain, mrenclave, min_isvsvn))
        return self._call(pb.Request(export_key=req)).export_key

    def import_transferred_key(self, prepared: pb.PrepareKeyImportResponse, wrapped: pb.ExportKeyResponse) -> KeyInfo:
        """Importer: unwrap with the ephemeral key (one use) and store the key under its own key id."""
        req = pb.ImportTransferredKeyRequest(transfer_id=prepared.transfer_id,
                                             ephemeral_public_key=wrapped.ephemeral_public_key,
                                             wrapped_key=wrapped.wrapped_key)
        r = self._call(pb.Request(import_transferred_key=req))
        return self._remember(KeyInfo.from_pb(r.key_metadata))

    def transfer_key_to(self, importer: TransferOperations, key_id: str, *, destination_domain: bytes,
                        mrenclave: bytes | None = None, min_isvsvn: int | None = None) -> KeyInfo:
        """The whole transfer of key_id from this client's enclave to importer's, which must be the domain
        `destination_domain` and run `mrenclave` or an ISVSVN >= `min_isvsvn` (PeerMismatch otherwise)."""
        _destination(destination_domain, mrenclave, min_isvsvn)  # ValueError before anything is sent
        with self.one_replica(), importer.one_replica():   # each side's steps use one enclave's state
            prepared = importer.prepare_key_import(self.target_info())
            return importer.import_transferred_key(prepared, self.export_key(
                key_id, prepared, destination_domain=destination_domain, mrenclave=mrenclave, min_isvsvn=min_isvsvn))
