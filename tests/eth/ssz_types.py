"""The signed objects as remerkleable SSZ types (consensus specs, mainnet preset): the independent oracle for the
enclave's SSZ parsing and hash_tree_root, and the converters from Web3Signer request JSON to SSZ bytes."""


from typing import Any

from remerkleable.basic import uint64
from remerkleable.bitfields import Bitlist, Bitvector
from remerkleable.byte_arrays import Bytes4, Bytes32, Bytes48, Bytes96, ByteVector
from remerkleable.complex import Container

MAX_VALIDATORS_PER_COMMITTEE, MAX_COMMITTEES_PER_SLOT = 2048, 64
SYNC_SUBCOMMITTEE_SIZE = 512 // 4


class Bytes20(ByteVector[20]):  # type: ignore[misc]
    pass


class Checkpoint(Container):
    epoch: uint64
    root: Bytes32


class AttestationData(Container):
    slot: uint64
    index: uint64
    beacon_block_root: Bytes32
    source: Checkpoint
    target: Checkpoint


class BeaconBlockHeader(Container):
    slot: uint64
    proposer_index: uint64
    parent_root: Bytes32
    state_root: Bytes32
    body_root: Bytes32


class Attestation(Container):
    aggregation_bits: Bitlist[MAX_VALIDATORS_PER_COMMITTEE]
    data: AttestationData
    signature: Bytes96


class AttestationElectra(Container):
    aggregation_bits: Bitlist[MAX_VALIDATORS_PER_COMMITTEE * MAX_COMMITTEES_PER_SLOT]
    data: AttestationData
    signature: Bytes96
    committee_bits: Bitvector[MAX_COMMITTEES_PER_SLOT]


class AggregateAndProof(Container):
    aggregator_index: uint64
    aggregate: Attestation
    selection_proof: Bytes96


class AggregateAndProofElectra(Container):
    aggregator_index: uint64
    aggregate: AttestationElectra
    selection_proof: Bytes96


class VoluntaryExit(Container):
    epoch: uint64
    validator_index: uint64


class SyncAggregatorSelectionData(Container):
    slot: uint64
    subcommittee_index: uint64


class SyncCommitteeContribution(Container):
    slot: uint64
    beacon_block_root: Bytes32
    subcommittee_index: uint64
    aggregation_bits: Bitvector[SYNC_SUBCOMMITTEE_SIZE]
    signature: Bytes96


class ContributionAndProof(Container):
    aggregator_index: uint64
    contribution: SyncCommitteeContribution
    selection_proof: Bytes96


class ValidatorRegistrationV1(Container):
    fee_recipient: Bytes20
    gas_limit: uint64
    timestamp: uint64
    pubkey: Bytes48


class DepositMessage(Container):
    pubkey: Bytes48
    withdrawal_credentials: Bytes32
    amount: uint64


class ForkData(Container):
    current_version: Bytes4
    genesis_validators_root: Bytes32


class SigningData(Container):
    object_root: Bytes32
    domain: Bytes32


DOMAIN_TYPES = {
    "BLOCK_V2": "00000000", "ATTESTATION": "01000000", "RANDAO_REVEAL": "02000000", "DEPOSIT": "03000000",
    "VOLUNTARY_EXIT": "04000000", "AGGREGATION_SLOT": "05000000", "AGGREGATE_AND_PROOF": "06000000",
    "AGGREGATE_AND_PROOF_V2": "06000000", "SYNC_COMMITTEE_MESSAGE": "07000000",
    "SYNC_COMMITTEE_SELECTION_PROOF": "08000000", "SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF": "09000000",
    "VALIDATOR_REGISTRATION": "00000001",
}


def signing_root(message_type: str, object_root: bytes, fork_version: bytes, gvr: bytes) -> bytes:
    """compute_signing_root(object_root, compute_domain(DomainType, fork_version, gvr)), with remerkleable."""
    fork_data_root = ForkData(current_version=Bytes4(fork_version), genesis_validators_root=Bytes32(gvr))
    domain = bytes.fromhex(DOMAIN_TYPES[message_type]) + bytes(fork_data_root.hash_tree_root())[:28]
    return bytes(SigningData(object_root=Bytes32(object_root), domain=Bytes32(domain)).hash_tree_root())


def _h(value: str) -> bytes:
    return bytes.fromhex(value[2:] if value.startswith("0x") else value)


def _checkpoint(j: dict[str, Any]) -> Checkpoint:
    return Checkpoint(epoch=int(j["epoch"]), root=Bytes32(_h(j["root"])))


def attestation_data(j: dict[str, Any]) -> AttestationData:
    return AttestationData(slot=int(j["slot"]), index=int(j["index"]),
                           beacon_block_root=Bytes32(_h(j["beacon_block_root"])),
                           source=_checkpoint(j["source"]), target=_checkpoint(j["target"]))


def _bitlist(cls: Any, hexbits: str) -> Any:
    return cls.decode_bytes(_h(hexbits))


def _attestation(j: dict[str, Any], electra: bool) -> Any:
    if electra:
        return AttestationElectra(aggregation_bits=_bitlist(AttestationElectra.fields()["aggregation_bits"],
                                                            j["aggregation_bits"]),
                                  data=attestation_data(j["data"]), signature=Bytes96(_h(j["signature"])),
                                  committee_bits=Bitvector[MAX_COMMITTEES_PER_SLOT].decode_bytes(_h(j["committee_bits"])))
    return Attestation(aggregation_bits=_bitlist(Attestation.fields()["aggregation_bits"], j["aggregation_bits"]),
                       data=attestation_data(j["data"]), signature=Bytes96(_h(j["signature"])))


def from_request(req: dict[str, Any]) -> tuple[str, Any, int] | None:
    """(message type for eth_sign, the SSZ object, the epoch that picks the fork version) of a Web3Signer request,
    or None for what the enclave takes in another form (a full phase0/altair block: the HTTP side sends its
    header; the deprecated BLOCK)."""
    t = req["type"]
    if t == "BLOCK_V2":
        b = req["beacon_block"]
        if "block_header" not in b:
            return None
        h = b["block_header"]
        obj = BeaconBlockHeader(slot=int(h["slot"]), proposer_index=int(h["proposer_index"]),
                                parent_root=Bytes32(_h(h["parent_root"])), state_root=Bytes32(_h(h["state_root"])),
                                body_root=Bytes32(_h(h["body_root"])))
        return t, obj, int(h["slot"]) // 32
    if t == "ATTESTATION":
        obj = attestation_data(req["attestation"])
        return t, obj, int(req["attestation"]["target"]["epoch"])
    if t in ("AGGREGATE_AND_PROOF", "AGGREGATE_AND_PROOF_V2"):
        a = req["aggregate_and_proof"]
        electra = t == "AGGREGATE_AND_PROOF_V2" and a.get("version") in ("ELECTRA", "FULU")
        a = a.get("data", a)
        cls = AggregateAndProofElectra if electra else AggregateAndProof
        obj = cls(aggregator_index=int(a["aggregator_index"]), aggregate=_attestation(a["aggregate"], electra),
                  selection_proof=Bytes96(_h(a["selection_proof"])))
        kind = "AGGREGATE_AND_PROOF_V2" if electra else "AGGREGATE_AND_PROOF"
        return kind, obj, int(a["aggregate"]["data"]["slot"]) // 32
    if t == "AGGREGATION_SLOT":
        slot = int(req["aggregation_slot"]["slot"])
        return t, uint64(slot), slot // 32
    if t == "RANDAO_REVEAL":
        epoch = int(req["randao_reveal"]["epoch"])
        return t, uint64(epoch), epoch
    if t == "VOLUNTARY_EXIT":
        v = req["voluntary_exit"]
        return t, VoluntaryExit(epoch=int(v["epoch"]), validator_index=int(v["validator_index"])), int(v["epoch"])
    if t == "SYNC_COMMITTEE_MESSAGE":
        m = req["sync_committee_message"]
        return t, Bytes32(_h(m["beacon_block_root"])), int(m["slot"]) // 32
    if t == "SYNC_COMMITTEE_SELECTION_PROOF":
        s = req["sync_aggregator_selection_data"]
        return t, SyncAggregatorSelectionData(slot=int(s["slot"]), subcommittee_index=int(s["subcommittee_index"])), \
            int(s["slot"]) // 32
    if t == "SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF":
        c = req["contribution_and_proof"]
        k = c["contribution"]
        contribution = SyncCommitteeContribution(
            slot=int(k["slot"]), beacon_block_root=Bytes32(_h(k["beacon_block_root"])),
            subcommittee_index=int(k["subcommittee_index"]),
            aggregation_bits=Bitvector[SYNC_SUBCOMMITTEE_SIZE].decode_bytes(_h(k["aggregation_bits"])),
            signature=Bytes96(_h(k["signature"])))
        obj = ContributionAndProof(aggregator_index=int(c["aggregator_index"]), contribution=contribution,
                                   selection_proof=Bytes96(_h(c["selection_proof"])))
        return t, obj, int(k["slot"]) // 32
    if t == "VALIDATOR_REGISTRATION":
        r = req["validator_registration"]
        obj = ValidatorRegistrationV1(fee_recipient=Bytes20(_h(r["fee_recipient"])), gas_limit=int(r["gas_limit"]),
                                      timestamp=int(r["timestamp"]), pubkey=Bytes48(_h(r["pubkey"])))
        return t, obj, 0
    if t == "DEPOSIT":
        d = req["deposit"]
        obj = DepositMessage(pubkey=Bytes48(_h(d["pubkey"])),
                             withdrawal_credentials=Bytes32(_h(d["withdrawal_credentials"])), amount=int(d["amount"]))
        return t, obj, 0
    return None
