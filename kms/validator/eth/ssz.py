"""The consensus objects a Web3Signer request carries, as remerkleable SSZ types, per preset.

Only what the untrusted side needs: the objects it serializes for the enclave (which computes their
hash_tree_root, the domain and the signing root itself), and the phase0/altair block bodies whose
root it computes to turn a full block into the BeaconBlockHeader the enclave signs. Field names and
list limits follow the consensus specification; `mainnet` and `minimal` differ in three constants.
"""


from dataclasses import dataclass
from functools import cache
from types import SimpleNamespace

from remerkleable.basic import uint64
from remerkleable.bitfields import Bitlist, Bitvector
from remerkleable.byte_arrays import Bytes32, Bytes48, Bytes96, ByteVector
from remerkleable.complex import Container, List, Vector


@dataclass(frozen=True)
class Preset:
    """The preset constants that change an SSZ type or the slot -> epoch mapping."""

    name: str
    slots_per_epoch: int
    sync_committee_size: int
    max_committees_per_slot: int


PRESETS = {"mainnet": Preset("mainnet", 32, 512, 64), "minimal": Preset("minimal", 8, 32, 4)}
MAX_VALIDATORS_PER_COMMITTEE = 2048  # the same in both presets, as are the phase0 block's list limits
SYNC_COMMITTEE_SUBNET_COUNT = 4
Bytes20 = ByteVector[20]


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


class SignedBeaconBlockHeader(Container):
    message: BeaconBlockHeader
    signature: Bytes96


class ProposerSlashing(Container):
    signed_header_1: SignedBeaconBlockHeader
    signed_header_2: SignedBeaconBlockHeader


class IndexedAttestation(Container):
    attesting_indices: List[uint64, MAX_VALIDATORS_PER_COMMITTEE]
    data: AttestationData
    signature: Bytes96


class AttesterSlashing(Container):
    attestation_1: IndexedAttestation
    attestation_2: IndexedAttestation


class Attestation(Container):
    aggregation_bits: Bitlist[MAX_VALIDATORS_PER_COMMITTEE]
    data: AttestationData
    signature: Bytes96


class Eth1Data(Container):
    deposit_root: Bytes32
    deposit_count: uint64
    block_hash: Bytes32


class DepositData(Container):
    pubkey: Bytes48
    withdrawal_credentials: Bytes32
    amount: uint64
    signature: Bytes96


class Deposit(Container):
    proof: Vector[Bytes32, 33]
    data: DepositData


class VoluntaryExit(Container):
    epoch: uint64
    validator_index: uint64


class SignedVoluntaryExit(Container):
    message: VoluntaryExit
    signature: Bytes96


class BeaconBlockBody(Container):
    randao_reveal: Bytes96
    eth1_data: Eth1Data
    graffiti: Bytes32
    proposer_slashings: List[ProposerSlashing, 16]
    attester_slashings: List[AttesterSlashing, 2]
    attestations: List[Attestation, 128]
    deposits: List[Deposit, 16]
    voluntary_exits: List[SignedVoluntaryExit, 16]


class BeaconBlock(Container):
    slot: uint64
    proposer_index: uint64
    parent_root: Bytes32
    state_root: Bytes32
    body: BeaconBlockBody


class AggregateAndProof(Container):
    aggregator_index: uint64
    aggregate: Attestation
    selection_proof: Bytes96


class SyncAggregatorSelectionData(Container):
    slot: uint64
    subcommittee_index: uint64


class ValidatorRegistrationV1(Container):
    fee_recipient: Bytes20
    gas_limit: uint64
    timestamp: uint64
    pubkey: Bytes48


class DepositMessage(Container):
    pubkey: Bytes48
    withdrawal_credentials: Bytes32
    amount: uint64


@cache
def preset_types(name: str) -> SimpleNamespace:
    """The preset-dependent containers (altair block body, sync contribution, Electra aggregate) of a preset."""
    p = PRESETS[name]

    class SyncAggregate(Container):
        sync_committee_bits: Bitvector[p.sync_committee_size]
        sync_committee_signature: Bytes96

    class BeaconBlockBodyAltair(Container):
        randao_reveal: Bytes96
        eth1_data: Eth1Data
        graffiti: Bytes32
        proposer_slashings: List[ProposerSlashing, 16]
        attester_slashings: List[AttesterSlashing, 2]
        attestations: List[Attestation, 128]
        deposits: List[Deposit, 16]
        voluntary_exits: List[SignedVoluntaryExit, 16]
        sync_aggregate: SyncAggregate

    class BeaconBlockAltair(Container):
        slot: uint64
        proposer_index: uint64
        parent_root: Bytes32
        state_root: Bytes32
        body: BeaconBlockBodyAltair

    class SyncCommitteeContribution(Container):
        slot: uint64
        beacon_block_root: Bytes32
        subcommittee_index: uint64
        aggregation_bits: Bitvector[p.sync_committee_size // SYNC_COMMITTEE_SUBNET_COUNT]
        signature: Bytes96

    class ContributionAndProof(Container):
        aggregator_index: uint64
        contribution: SyncCommitteeContribution
        selection_proof: Bytes96

    class AttestationElectra(Container):
        aggregation_bits: Bitlist[MAX_VALIDATORS_PER_COMMITTEE * p.max_committees_per_slot]
        data: AttestationData
        signature: Bytes96
        committee_bits: Bitvector[p.max_committees_per_slot]

    class AggregateAndProofElectra(Container):
        aggregator_index: uint64
        aggregate: AttestationElectra
        selection_proof: Bytes96

    return SimpleNamespace(preset=p, BeaconBlockAltair=BeaconBlockAltair, ContributionAndProof=ContributionAndProof,
                           AggregateAndProofElectra=AggregateAndProofElectra)
