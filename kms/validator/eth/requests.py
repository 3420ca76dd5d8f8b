"""A Web3Signer eth2 signing request body -> what the enclave signs: the SSZ bytes of exactly the object whose
hash_tree_root is signed, its message type (Web3Signer's names), the fork version and genesis validators root.

The enclave computes the object's root, the domain and the signing root itself, and refuses a request whose
`signing_root` (alias `signingRoot`) differs. This side only parses strictly; the one computation it does is a
phase0/altair full block's body_root, so the enclave hashes the BeaconBlockHeader (the same root as the block).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from remerkleable.basic import uint64
from remerkleable.byte_arrays import Bytes32
from remerkleable.complex import Container

from kms.validator.eth import ssz
from kms.validator.eth.convert import RequestError, fields, from_json, hex_bytes, integer

PRE_BELLATRIX = ("PHASE0", "ALTAIR")
POST_ALTAIR = ("BELLATRIX", "CAPELLA", "DENEB", "ELECTRA", "FULU")
POST_DENEB = ("ELECTRA", "FULU")
_NO_FORK_INFO = ("DEPOSIT", "VALIDATOR_REGISTRATION")


@dataclass(frozen=True)
class SignRequest:
    """One parsed request: what eth_sign takes, and what the logs, metrics and the watermark need."""

    request_type: str  # as the client sent it (BLOCK, BLOCK_V2, ...)
    message_type: str  # as the enclave takes it
    ssz: bytes
    fork_version: bytes | None
    genesis_validators_root: bytes | None
    signing_root: bytes | None
    slot: int | None = None
    epoch: int | None = None  # the object's epoch (the fork version was chosen by it)
    source_epoch: int | None = None  # ATTESTATION only
    target_epoch: int | None = None

    @property
    def slashable(self) -> bool:
        """Blocks and attestations: the types the slashing-protection rules (and the watermark) cover."""
        return self.message_type in ("BLOCK_V2", "ATTESTATION")


@dataclass(frozen=True)
class _Object:
    message_type: str
    value: Any  # the SSZ view (or raw 32 bytes for SYNC_COMMITTEE_MESSAGE)
    slot: int | None = None
    epoch: int | None = None


def _container(body: dict, key: str, typ: type[Container]) -> Any:
    return from_json(typ, body[key], key)


def _versioned(body: dict, key: str, versions: tuple[str, ...]) -> tuple[str, dict]:
    obj = body[key]
    if not isinstance(obj, dict) or "version" not in obj:
        raise RequestError(f"{key}: expected a JSON object with a version")
    version = obj["version"]
    if version not in versions:
        raise RequestError(f"{key}.version: {version!r} is not supported (one of {', '.join(versions)})")
    return version, obj


def _block(body: dict, types: Any) -> _Object:
    version, obj = _versioned(body, "beacon_block", PRE_BELLATRIX + POST_ALTAIR)
    if version in PRE_BELLATRIX:
        fields(obj, "beacon_block", {"version", "block"})
        block = from_json(ssz.BeaconBlock if version == "PHASE0" else types.BeaconBlockAltair, obj["block"],
                          "beacon_block.block")
        return _header(block)
    fields(obj, "beacon_block", {"version", "block_header"})
    header = from_json(ssz.BeaconBlockHeader, obj["block_header"], "beacon_block.block_header")
    return _Object("BLOCK_V2", header, slot=int(header.slot))


def _header(block: Any) -> _Object:
    header = ssz.BeaconBlockHeader(slot=block.slot, proposer_index=block.proposer_index,
                                   parent_root=block.parent_root, state_root=block.state_root,
                                   body_root=block.body.hash_tree_root())
    return _Object("BLOCK_V2", header, slot=int(header.slot))


def _aggregate_v2(body: dict, types: Any) -> _Object:
    version, obj = _versioned(body, "aggregate_and_proof", PRE_BELLATRIX + POST_ALTAIR)
    fields(obj, "aggregate_and_proof", {"version", "data"})
    if version in POST_DENEB:
        value = from_json(types.AggregateAndProofElectra, obj["data"], "aggregate_and_proof.data")
        return _Object("AGGREGATE_AND_PROOF_V2", value, slot=int(value.aggregate.data.slot))
    value = from_json(ssz.AggregateAndProof, obj["data"], "aggregate_and_proof.data")
    return _Object("AGGREGATE_AND_PROOF", value, slot=int(value.aggregate.data.slot))


def _object(kind: str, body: dict, types: Any) -> _Object:
    if kind == "BLOCK":
        return _header(from_json(ssz.BeaconBlock, body["block"], "block"))
    if kind == "BLOCK_V2":
        return _block(body, types)
    if kind == "ATTESTATION":
        data = _container(body, "attestation", ssz.AttestationData)
        return _Object("ATTESTATION", data, slot=int(data.slot), epoch=int(data.target.epoch))
    if kind == "AGGREGATION_SLOT":
        slot = integer(fields(body[_KEY[kind]], _KEY[kind], {"slot"})["slot"], "aggregation_slot.slot")
        return _Object(kind, uint64(slot), slot=slot)
    if kind == "AGGREGATE_AND_PROOF":
        value = _container(body, "aggregate_and_proof", ssz.AggregateAndProof)
        return _Object(kind, value, slot=int(value.aggregate.data.slot))
    if kind == "AGGREGATE_AND_PROOF_V2":
        return _aggregate_v2(body, types)
    if kind == "RANDAO_REVEAL":
        epoch = integer(fields(body[_KEY[kind]], _KEY[kind], {"epoch"})["epoch"], "randao_reveal.epoch")
        return _Object(kind, uint64(epoch), epoch=epoch)
    if kind == "VOLUNTARY_EXIT":
        value = _container(body, "voluntary_exit", ssz.VoluntaryExit)
        return _Object(kind, value, epoch=int(value.epoch))
    if kind == "SYNC_COMMITTEE_MESSAGE":
        obj = fields(body[_KEY[kind]], _KEY[kind], {"beacon_block_root", "slot"})
        slot = integer(obj["slot"], "sync_committee_message.slot")
        root = hex_bytes(obj["beacon_block_root"], "sync_committee_message.beacon_block_root", length=32)
        return _Object(kind, Bytes32(root), slot=slot)
    if kind == "SYNC_COMMITTEE_SELECTION_PROOF":
        value = _container(body, _KEY[kind], ssz.SyncAggregatorSelectionData)
        return _Object(kind, value, slot=int(value.slot))
    if kind == "SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF":
        value = _container(body, _KEY[kind], types.ContributionAndProof)
        return _Object(kind, value, slot=int(value.contribution.slot))
    if kind == "VALIDATOR_REGISTRATION":
        return _Object(kind, _container(body, _KEY[kind], ssz.ValidatorRegistrationV1))
    deposit = fields(body["deposit"], "deposit", {"pubkey", "withdrawal_credentials", "amount",
                                                  "genesis_fork_version"})
    message = from_json(ssz.DepositMessage, {k: deposit[k] for k in ("pubkey", "withdrawal_credentials", "amount")},
                        "deposit")
    return _Object(kind, message, epoch=None)


_KEY = {"BLOCK": "block", "BLOCK_V2": "beacon_block", "ATTESTATION": "attestation",
        "AGGREGATION_SLOT": "aggregation_slot", "AGGREGATE_AND_PROOF": "aggregate_and_proof",
        "AGGREGATE_AND_PROOF_V2": "aggregate_and_proof", "RANDAO_REVEAL": "randao_reveal",
        "VOLUNTARY_EXIT": "voluntary_exit", "SYNC_COMMITTEE_MESSAGE": "sync_committee_message",
        "SYNC_COMMITTEE_SELECTION_PROOF": "sync_aggregator_selection_data",
        "SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF": "contribution_and_proof",
        "VALIDATOR_REGISTRATION": "validator_registration", "DEPOSIT": "deposit"}
TYPES = tuple(_KEY)


def _signing_root(body: dict) -> bytes | None:
    values = [hex_bytes(body[k], k, length=32) for k in ("signing_root", "signingRoot") if k in body]
    if len(values) == 2 and values[0] != values[1]:
        raise RequestError("signing_root and signingRoot differ")
    return values[0] if values else None


def _fork_version(body: dict, epoch: int | None) -> tuple[bytes, bytes]:
    info = fields(body["fork_info"], "fork_info", {"fork", "genesis_validators_root"})
    fork = fields(info["fork"], "fork_info.fork", {"previous_version", "current_version", "epoch"})
    previous = hex_bytes(fork["previous_version"], "fork_info.fork.previous_version", length=4)
    current = hex_bytes(fork["current_version"], "fork_info.fork.current_version", length=4)
    fork_epoch = integer(fork["epoch"], "fork_info.fork.epoch")
    root = hex_bytes(info["genesis_validators_root"], "fork_info.genesis_validators_root", length=32)
    return (previous if epoch is not None and epoch < fork_epoch else current), root


def parse(body: Any, *, preset: str, genesis_fork_version: bytes) -> SignRequest:
    """The request a JSON body denotes (RequestError, naming the field, when it is malformed or unsupported).
    `genesis_fork_version` is the network's, for VALIDATOR_REGISTRATION (its body carries no fork)."""
    if not isinstance(body, dict):
        raise RequestError("the body must be a JSON object")
    kind = body.get("type")
    if kind not in _KEY:
        raise RequestError(f"type: {kind!r} is not a supported signing type (one of {', '.join(TYPES)})")
    required = {"type", _KEY[kind]} | (set() if kind in _NO_FORK_INFO else {"fork_info"})
    fields(body, "body", required, frozenset({"signing_root", "signingRoot"}))
    types = ssz.preset_types(preset)
    obj = _object(kind, body, types)
    epoch = obj.epoch if obj.epoch is not None or obj.slot is None else obj.slot // types.preset.slots_per_epoch
    if kind == "DEPOSIT":
        version = hex_bytes(body["deposit"]["genesis_fork_version"], "deposit.genesis_fork_version", length=4)
        fork_version, gvr = version, None
    elif kind == "VALIDATOR_REGISTRATION":
        fork_version, gvr = genesis_fork_version, None
    else:
        fork_version, gvr = _fork_version(body, epoch)
    source = target = None
    if obj.message_type == "ATTESTATION":
        source, target = int(obj.value.source.epoch), int(obj.value.target.epoch)
    return SignRequest(kind, obj.message_type, obj.value.encode_bytes(), fork_version, gvr, _signing_root(body),
                       slot=obj.slot, epoch=epoch, source_epoch=source, target_epoch=target)
