"""Ethereum validator operations of KmsClient: BLS12-381 keys, signing through the enclave's slashing protection,
EIP-2335 keystore import and EIP-3076 interchange (docs/ethereum-keys.md; the interface: docs/eth-interface.md)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kms.client.eth_formats import build_interchange, keystore_request, parse_interchange
from kms.client.operations import Operations
from kms.client.types import KeyInfo
from kms.proto.enclave.v1 import boundary_pb2 as pb

# Web3Signer's `type` names -> the enclave's message types.
MESSAGE_TYPES: dict[str, int] = {
    "BLOCK_V2": pb.ETH_BLOCK_V2, "ATTESTATION": pb.ETH_ATTESTATION, "AGGREGATION_SLOT": pb.ETH_AGGREGATION_SLOT,
    "AGGREGATE_AND_PROOF": pb.ETH_AGGREGATE_AND_PROOF, "AGGREGATE_AND_PROOF_V2": pb.ETH_AGGREGATE_AND_PROOF_V2,
    "RANDAO_REVEAL": pb.ETH_RANDAO_REVEAL, "VOLUNTARY_EXIT": pb.ETH_VOLUNTARY_EXIT,
    "SYNC_COMMITTEE_MESSAGE": pb.ETH_SYNC_COMMITTEE_MESSAGE,
    "SYNC_COMMITTEE_SELECTION_PROOF": pb.ETH_SYNC_COMMITTEE_SELECTION_PROOF,
    "SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF": pb.ETH_SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF,
    "VALIDATOR_REGISTRATION": pb.ETH_VALIDATOR_REGISTRATION, "DEPOSIT": pb.ETH_DEPOSIT,
}


IMPORT_BATCH = 16  # EthSlashingImportRequest.records and EthSlashingExportRequest.key_ids max_count (boundary.options)


def chain_id_of(genesis_validators_root: bytes) -> str:
    """A BLS12_381 key's chain id: "0x" + the 32-byte genesis_validators_root in lower-case hex."""
    if len(genesis_validators_root) != 32:
        raise ValueError("genesis_validators_root must be 32 bytes")
    return "0x" + bytes(genesis_validators_root).hex()


@dataclass(frozen=True)
class EthWatermark:
    """The slashing guard's lower bounds: the lowest block slot, source and target epoch still signable (0: none).
    The signer on the validator's side keeps the highest it saw (`merge`) and sends it with each request."""

    min_block_slot: int = 0
    min_source_epoch: int = 0
    min_target_epoch: int = 0

    def merge(self, other: EthWatermark) -> EthWatermark:
        """Field by field the higher bound."""
        return EthWatermark(max(self.min_block_slot, other.min_block_slot),
                            max(self.min_source_epoch, other.min_source_epoch),
                            max(self.min_target_epoch, other.min_target_epoch))

    def to_pb(self) -> pb.EthWatermark:
        return pb.EthWatermark(min_block_slot=self.min_block_slot, min_source_epoch=self.min_source_epoch,
                               min_target_epoch=self.min_target_epoch)

    @classmethod
    def from_pb(cls, m: pb.EthWatermark) -> EthWatermark:
        return cls(m.min_block_slot, m.min_source_epoch, m.min_target_epoch)


@dataclass(frozen=True)
class EthSignResult:
    """A BLS signature (96 bytes, compressed G2), the signing root the enclave computed, the guard's watermark
    after the request, and whether the request repeated a stored one (same position, same signing root)."""

    signature: bytes
    signing_root: bytes
    watermark: EthWatermark
    repeated: bool = False

    @classmethod
    def from_pb(cls, r: pb.EthSignResponse) -> EthSignResult:
        return cls(bytes(r.signature), bytes(r.signing_root), EthWatermark.from_pb(r.watermark), r.repeated)


def _optional(value: bytes | None, size: int, what: str) -> bytes:
    if value is None:
        return b""
    if len(value) != size:
        raise ValueError(f"{what} must be {size} bytes, not {len(value)}")
    return bytes(value)


class EthOperations(Operations):
    """Mixin: Ethereum validator keys (BLS12_381, VALIDATOR usage), eth_sign and slashing-protection interchange."""

    def eth_generate_key(self, genesis_validators_root: bytes, *, description: str = "",
                         allow_voluntary_exit: bool = False) -> KeyInfo:
        """A new BLS12-381 validator key for the chain of genesis_validators_root, generated in the enclave (admins).
        VOLUNTARY_EXIT is signed only when allow_voluntary_exit."""
        req = pb.CreateKeyRequest(spec=pb.BLS12_381, usage=pb.VALIDATOR, description=description,
                                  chain_id=chain_id_of(genesis_validators_root),
                                  allow_voluntary_exit=allow_voluntary_exit)
        return self._remember(KeyInfo.from_pb(self._call(pb.Request(create_key=req)).key_metadata))

    def eth_import_keystore(self, keystore: Mapping[str, Any], password: str, *, genesis_validators_root: bytes,
                            description: str = "", allow_voluntary_exit: bool = False) -> KeyInfo:
        """Import an EIP-2335 keystore (admins). The keystore's fields are parsed here and the password normalised
        (NFKD, control characters removed); the KDF, checksum and decryption run in the enclave, over the
        attested session. EthFormatError (nothing sent) for a malformed or unsupported keystore;
        InvalidSignature for a wrong password; InvalidKey when the key does not match the keystore's pubkey."""
        req = keystore_request(keystore, password)
        req.chain_id = chain_id_of(genesis_validators_root)
        req.description, req.allow_voluntary_exit = description, allow_voluntary_exit
        _ = self.evidence  # type: ignore[attr-defined]  # verified session before the keystore leaves
        return self._remember(KeyInfo.from_pb(self._call(pb.Request(eth_import_keystore=req)).key_metadata))

    def eth_import_secret(self, secret: bytes, *, genesis_validators_root: bytes, description: str = "",
                          allow_voluntary_exit: bool = False) -> KeyInfo:
        """Import a raw BLS12-381 secret key (32 bytes, big-endian), as import_validator does for CometBFT keys
        (admins, over the attested session). The slashing guard starts empty: import the key's interchange."""
        req = pb.ImportValidatorRequest(spec=pb.BLS12_381, private_key=_optional(secret, 32, "secret"),
                                        chain_id=chain_id_of(genesis_validators_root), description=description,
                                        allow_voluntary_exit=allow_voluntary_exit)
        _ = self.evidence  # type: ignore[attr-defined]
        return self._remember(KeyInfo.from_pb(self._call(pb.Request(import_validator=req)).key_metadata))

    def eth_public_key(self, key_id: str) -> bytes:
        """The key's public key: 48 bytes, a compressed G1 point."""
        req = pb.GetPublicKeyRequest(key_id=key_id, format=pb.PUBLIC_KEY_RAW)
        return bytes(self._call(pb.Request(get_public_key=req)).get_public_key.public_key)

    def eth_sign(self, key_id: str, message_type: str, ssz: bytes, fork_version: bytes | None,
                 genesis_validators_root: bytes | None, signing_root: bytes | None = None, *,
                 watermark: EthWatermark | None = None) -> EthSignResult:
        """Sign the SSZ object `ssz` of `message_type` (Web3Signer's names: MESSAGE_TYPES). The enclave computes
        hash_tree_root, the domain (fork_version, genesis_validators_root) and the signing root itself; a
        `signing_root` given is compared with it (InvalidRequest when it differs). BLOCK_V2 and ATTESTATION
        pass slashing protection (SlashingProtectionRefused). `watermark`: the signer's own, a second bound."""
        try:
            kind = MESSAGE_TYPES[message_type]
        except KeyError:
            raise ValueError(f"unknown message type {message_type!r} (one of: {', '.join(MESSAGE_TYPES)})") from None
        req = pb.EthSignRequest(key_id=key_id, type=kind, ssz=bytes(ssz),
                                fork_version=_optional(fork_version, 4, "fork_version"),
                                genesis_validators_root=_optional(genesis_validators_root, 32,
                                                                  "genesis_validators_root"),
                                signing_root=_optional(signing_root, 32, "signing_root"))
        if watermark is not None:
            req.watermark.CopyFrom(watermark.to_pb())
        return EthSignResult.from_pb(self._call(pb.Request(eth_sign=req)).eth_sign)

    def eth_slashing_check(self, key_id: str, message_type: str, signing_root: bytes, *, slot: int = 0,
                           source_epoch: int = 0, target_epoch: int = 0) -> EthSignResult:
        """Admins: the guard's decision for a BLOCK_V2 at `slot` or an ATTESTATION (source, target) with this
        signing root, recorded as eth_sign would record it, signing nothing (the EIP-3076 tests' attempts)."""
        req = pb.EthSlashingCheckRequest(key_id=key_id, type=MESSAGE_TYPES[message_type], slot=slot,
                                         source_epoch=source_epoch, target_epoch=target_epoch,
                                         signing_root=_optional(signing_root, 32, "signing_root"))
        return EthSignResult.from_pb(self._call(pb.Request(eth_slashing_check=req)).eth_sign)

    def eth_slashing_export(self, key_ids: Iterable[str]) -> dict[str, Any]:
        """EIP-3076 (v5) interchange JSON of the keys' slashing protection, as the enclave holds it."""
        ids = list(key_ids)
        if not 1 <= len(ids) <= IMPORT_BATCH:
            raise ValueError(f"eth_slashing_export: 1 to {IMPORT_BATCH} key ids per call, not {len(ids)}")
        req = pb.EthSlashingExportRequest(key_ids=ids)
        data = self._call(pb.Request(eth_slashing_export=req)).eth_slashing
        return build_interchange(bytes(data.genesis_validators_root), data.records)

    def eth_watermark(self, key_id: str) -> EthWatermark:
        """The key's slashing guard now: the lowest block slot, source and target epoch it still signs (0: none)."""
        req = pb.EthSlashingExportRequest(key_ids=[key_id])
        return EthWatermark.from_pb(self._call(pb.Request(eth_slashing_export=req)).eth_slashing.records[0].watermark)

    def eth_slashing_import(self, interchange: Mapping[str, Any],
                            key_ids: Mapping[bytes, str] | None = None) -> dict[bytes, str]:
        """Merge an EIP-3076 (v5) interchange into the slashing protection of the keys it names (admins): watermarks
        only rise. `key_ids` maps pubkeys to key ids, and each of them must be of the interchange's chain (the
        "database" EIP-3076 imports into); default: every BLS12_381 key the caller sees, of which those the
        interchange names are checked and merged. Returns the pubkeys merged and their key ids; pubkeys of no key
        here are skipped. EthFormatError when malformed;
        InvalidRequest when genesis_validators_root is not the keys' chain."""
        gvr, records = parse_interchange(interchange)
        known = dict(key_ids) if key_ids is not None else self._eth_keys_by_pubkey()
        merged: dict[bytes, str] = {}
        for pubkey, rec in records:
            if pubkey in known:
                rec.key_id = merged[pubkey] = known[pubkey]
        chosen = [rec for pubkey, rec in records if pubkey in merged]
        if key_ids is not None:  # every key named is checked to be of the interchange's chain, even without data
            chosen += [pb.EthSlashingRecord(key_id=k, pubkey=p) for p, k in known.items() if p not in merged]
        for i in range(0, len(chosen), IMPORT_BATCH):  # the enclave takes IMPORT_BATCH records per request
            req = pb.EthSlashingImportRequest(genesis_validators_root=gvr, records=chosen[i:i + IMPORT_BATCH])
            self._call(pb.Request(eth_slashing_import=req))
        return merged

    def _eth_keys_by_pubkey(self) -> dict[bytes, str]:
        keys = [k.key_id for k in self.list_keys() if k.spec == "BLS12_381"]
        return {self.eth_public_key(k): k for k in keys}
