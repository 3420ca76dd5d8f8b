"""Unit-test doubles for `kms validator eth serve`: a fake of the eth SDK contract (kms/client eth_* methods) that
computes the signing root of what it is sent the way the consensus specification does (remerkleable, test-side),
refuses a differing signing_root like the enclave, and keeps EIP-3076-style history. Fakes only in unit tests:
tests/validator/test_eth_enclave.py runs the same routes against the real enclave."""


import hashlib
from dataclasses import dataclass, field
from typing import Any

from remerkleable.basic import uint64
from remerkleable.byte_arrays import Bytes4, Bytes32
from remerkleable.complex import Container

from kms import errors
from kms.client.eth import EthSignResult, EthWatermark
from kms.client.types import KeyInfo
from kms.validator.eth import ssz

DOMAIN_TYPES = {"BLOCK_V2": "00000000", "ATTESTATION": "01000000", "RANDAO_REVEAL": "02000000",
                "DEPOSIT": "03000000", "VOLUNTARY_EXIT": "04000000", "AGGREGATION_SLOT": "05000000",
                "AGGREGATE_AND_PROOF": "06000000", "AGGREGATE_AND_PROOF_V2": "06000000",
                "SYNC_COMMITTEE_MESSAGE": "07000000", "SYNC_COMMITTEE_SELECTION_PROOF": "08000000",
                "SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF": "09000000", "VALIDATOR_REGISTRATION": "00000001"}


class ForkData(Container):
    current_version: Bytes4
    genesis_validators_root: Bytes32


class SigningData(Container):
    object_root: Bytes32
    domain: Bytes32


def object_type(message_type: str, preset: str) -> Any:
    p = ssz.preset_types(preset)
    return {"BLOCK_V2": ssz.BeaconBlockHeader, "ATTESTATION": ssz.AttestationData, "AGGREGATION_SLOT": uint64,
            "RANDAO_REVEAL": uint64, "AGGREGATE_AND_PROOF": ssz.AggregateAndProof,
            "AGGREGATE_AND_PROOF_V2": p.AggregateAndProofElectra, "VOLUNTARY_EXIT": ssz.VoluntaryExit,
            "SYNC_COMMITTEE_MESSAGE": Bytes32, "SYNC_COMMITTEE_SELECTION_PROOF": ssz.SyncAggregatorSelectionData,
            "SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF": p.ContributionAndProof,
            "VALIDATOR_REGISTRATION": ssz.ValidatorRegistrationV1, "DEPOSIT": ssz.DepositMessage}[message_type]


def signing_root(message_type: str, data: bytes, fork_version: bytes, gvr: bytes | None, preset: str) -> bytes:
    """compute_signing_root(hash_tree_root(object), compute_domain(type, fork_version, gvr))."""
    root = object_type(message_type, preset).decode_bytes(data).hash_tree_root()
    fork_data = ForkData(current_version=fork_version, genesis_validators_root=gvr or bytes(32)).hash_tree_root()
    domain = bytes.fromhex(DOMAIN_TYPES[message_type]) + bytes(fork_data)[:28]
    return bytes(SigningData(object_root=root, domain=domain).hash_tree_root())


@dataclass
class FakeEthClient:
    """The eth SDK contract, faked: signatures are SHA-512/96 bytes of the key and root (not BLS)."""

    preset: str = "mainnet"
    keys: dict[str, bytes] = field(default_factory=dict)         # key id -> public key
    disabled: set[str] = field(default_factory=set)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    roots: list[bytes] = field(default_factory=list)
    blocks: dict[str, dict[int, bytes]] = field(default_factory=dict)
    imported: list[dict] = field(default_factory=list)
    ahead: int = 0  # the enclave's history this far above what it was sent here (another signer's, imported)

    def list_keys(self) -> list[KeyInfo]:
        return [KeyInfo(k, "BLS12_381", "VALIDATOR", "DISABLED" if k in self.disabled else "ENABLED", "", None,
                        1, 1, 1) for k in self.keys]

    def eth_public_key(self, key_id: str) -> bytes:
        return self.keys[key_id]

    def eth_sign(self, key_id: str, message_type: str, data: bytes, fork_version: bytes | None,
                 gvr: bytes | None, root: bytes | None, watermark: Any = None) -> EthSignResult:
        self.calls.append(("sign", (key_id, message_type, watermark)))
        if key_id not in self.keys:
            raise errors.NotFound("no such key")
        if key_id in self.disabled:
            raise errors.KeyStateError("disabled")
        computed = signing_root(message_type, data, fork_version or bytes(4), gvr, self.preset)
        if root is not None and root != computed:
            raise errors.InvalidRequest("the signing root differs from the enclave's")
        if message_type == "BLOCK_V2":
            slot = int(ssz.BeaconBlockHeader.decode_bytes(data).slot)
            prior = self.blocks.setdefault(key_id, {}).get(slot)
            if prior is not None and prior != computed:
                raise errors.DoubleSignRefused("double block")
            self.blocks[key_id][slot] = computed
        self.roots.append(computed)
        signature = hashlib.sha512(self.keys[key_id] + computed).digest() + hashlib.sha256(computed).digest()
        slots = self.blocks.get(key_id, {})
        return EthSignResult(signature[:96], computed, EthWatermark(max(slots, default=-1) + 1 + self.ahead, 0, 0))

    def eth_slashing_export(self, key_ids: list[str]) -> dict:
        if not 1 <= len(key_ids) <= 16:
            raise ValueError("eth_slashing_export: 1 to 16 key ids per call")
        self.calls.append(("export", tuple(key_ids)))
        return {"metadata": {"interchange_format_version": "5", "genesis_validators_root": "0x" + "00" * 32},
                "data": [{"pubkey": "0x" + self.keys[k].hex(), "signed_blocks": [
                    {"slot": str(s)} for s in sorted(self.blocks.get(k, {}))], "signed_attestations": []}
                    for k in key_ids]}

    def eth_slashing_import(self, interchange: dict, key_ids: dict | None = None) -> None:
        if not isinstance(interchange, dict) or "metadata" not in interchange:
            raise errors.InvalidRequest("not an EIP-3076 interchange")
        self.calls.append(("import_interchange", None))

    def eth_import_keystore(self, keystore: dict, password: str, *, genesis_validators_root: bytes) -> KeyInfo:
        assert len(genesis_validators_root) == 32
        if password != "right":
            raise errors.InvalidKey("wrong password")
        key_id = f"k{len(self.keys) + 1}"
        self.keys[key_id] = bytes.fromhex(keystore["pubkey"])
        self.imported.append(keystore)
        return self.list_keys()[-1]

    def disable_key(self, key_id: str) -> None:
        self.disabled.add(key_id)
