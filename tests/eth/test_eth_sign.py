"""eth_sign through a real server and the real enclave: for every message type, the signing root the enclave computes
equals remerkleable's (an independent SSZ implementation) for objects built here, and the BLS signature verifies
under py_ecc (an independent BLS12-381); the consistent Web3Signer request examples give their stated signing roots
and, with the example key, their signatures; and what must be refused is, with the typed error."""

import json

import pytest
from py_ecc.bls import G2ProofOfPossession as bls
from remerkleable.basic import uint64
from remerkleable.bitfields import Bitlist, Bitvector
from remerkleable.byte_arrays import Bytes32, Bytes48, Bytes96

from kms import errors
from kms.client import KmsClient
from tests.eth import ssz_types as t
from tests.eth.conftest import vectors

GVR = bytes(range(32))
FORK = bytes.fromhex("04000000")  # an arbitrary fork version: the caller's


def _r(n: int, seed: int) -> bytes:
    return bytes((seed * 31 + i * 7) % 256 for i in range(n))


def objects() -> dict[str, object]:
    """One object of each message type, with non-trivial field values."""
    data = t.AttestationData(slot=1000, index=3, beacon_block_root=Bytes32(_r(32, 1)),
                             source=t.Checkpoint(epoch=30, root=Bytes32(_r(32, 2))),
                             target=t.Checkpoint(epoch=31, root=Bytes32(_r(32, 3))))
    bits = Bitlist[2048](*([True, False, True] * 100))
    electra_bits = Bitlist[2048 * 64](*([False, True] * 700))
    return {
        "BLOCK_V2": t.BeaconBlockHeader(slot=1000, proposer_index=77, parent_root=Bytes32(_r(32, 4)),
                                        state_root=Bytes32(_r(32, 5)), body_root=Bytes32(_r(32, 6))),
        "ATTESTATION": data,
        "AGGREGATION_SLOT": uint64(1000),
        "AGGREGATE_AND_PROOF": t.AggregateAndProof(aggregator_index=9, aggregate=t.Attestation(
            aggregation_bits=bits, data=data, signature=Bytes96(_r(96, 7))), selection_proof=Bytes96(_r(96, 8))),
        "AGGREGATE_AND_PROOF_V2": t.AggregateAndProofElectra(aggregator_index=9, aggregate=t.AttestationElectra(
            aggregation_bits=electra_bits, data=data, signature=Bytes96(_r(96, 7)),
            committee_bits=Bitvector[64](*([True] + [False] * 62 + [True]))), selection_proof=Bytes96(_r(96, 8))),
        "RANDAO_REVEAL": uint64(31),
        "VOLUNTARY_EXIT": t.VoluntaryExit(epoch=31, validator_index=12345),
        "SYNC_COMMITTEE_MESSAGE": Bytes32(_r(32, 9)),
        "SYNC_COMMITTEE_SELECTION_PROOF": t.SyncAggregatorSelectionData(slot=1000, subcommittee_index=2),
        "SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF": t.ContributionAndProof(aggregator_index=4, contribution=(
            t.SyncCommitteeContribution(slot=1000, beacon_block_root=Bytes32(_r(32, 10)), subcommittee_index=1,
                                        aggregation_bits=Bitvector[128](*([True, False, False] * 42 + [True, True])),
                                        signature=Bytes96(_r(96, 11)))), selection_proof=Bytes96(_r(96, 12))),
        "VALIDATOR_REGISTRATION": t.ValidatorRegistrationV1(fee_recipient=t.Bytes20(_r(20, 13)), gas_limit=30_000_000,
                                                            timestamp=1_700_000_000, pubkey=Bytes48(_r(48, 14))),
        "DEPOSIT": t.DepositMessage(pubkey=Bytes48(_r(48, 15)), withdrawal_credentials=Bytes32(_r(32, 16)),
                                    amount=32_000_000_000),
    }


GENESIS_DOMAIN = {"DEPOSIT", "VALIDATOR_REGISTRATION"}


@pytest.fixture(scope="module")
def key(admin: KmsClient) -> tuple[str, bytes]:
    info = admin.eth_generate_key(GVR, description="eth test", allow_voluntary_exit=True)
    assert info.spec == "BLS12_381" and info.usage == "VALIDATOR"
    return info.key_id, admin.eth_public_key(info.key_id)


@pytest.mark.parametrize("message_type", sorted(objects()))
def test_signing_root_and_signature_match_independent_implementations(admin, key, message_type):
    key_id, pk = key
    obj = objects()[message_type]
    gvr = bytes(32) if message_type in GENESIS_DOMAIN else GVR
    expected = t.signing_root(message_type, bytes(obj.hash_tree_root()), FORK, gvr)
    stated_gvr = None if message_type in GENESIS_DOMAIN else GVR
    res = admin.eth_sign(key_id, message_type, obj.encode_bytes(), FORK, stated_gvr)
    assert res.signing_root == expected
    assert len(res.signature) == 96 and bls.Verify(pk, expected, res.signature)
    # the same request with the signing root stated agrees; a different one is refused
    again = admin.eth_sign(key_id, message_type, obj.encode_bytes(), FORK, gvr, expected)
    assert again.signature == res.signature
    with pytest.raises(errors.InvalidRequest):
        admin.eth_sign(key_id, message_type, obj.encode_bytes(), FORK, gvr, bytes(32))


def test_public_key_is_the_secrets(admin):
    secret = bytes.fromhex("263dbd792f5b1be47ed85f8938c0f29586af0d3ac7b977f21c278fe1462040e3")
    info = admin.eth_import_secret(secret, genesis_validators_root=GVR)
    assert admin.eth_public_key(info.key_id) == bls.SkToPk(int.from_bytes(secret, "big"))
    with pytest.raises(errors.InvalidKey):
        admin.eth_import_secret(bytes(32), genesis_validators_root=GVR)  # zero is not a secret key
    with pytest.raises(errors.InvalidKey):  # the group order r is not either
        admin.eth_import_secret(bytes.fromhex("73eda753299d7d483339d80809a1d80553bda402fffe5bfeffffffff00000001"),
                                genesis_validators_root=GVR)


def test_refusals(admin, key):
    key_id, _ = key
    objs = objects()
    att = objs["ATTESTATION"].encode_bytes()
    with pytest.raises(errors.InvalidRequest):  # another chain than the key's
        admin.eth_sign(key_id, "ATTESTATION", att, FORK, bytes(32))
    with pytest.raises(errors.InvalidRequest):  # a DEPOSIT's root is zero
        admin.eth_sign(key_id, "DEPOSIT", objs["DEPOSIT"].encode_bytes(), FORK, GVR)
    for bad in (att[:-1], att + b"\0", b""):
        with pytest.raises(errors.InvalidRequest):
            admin.eth_sign(key_id, "ATTESTATION", bad, FORK, GVR)
    agg = bytearray(objs["AGGREGATE_AND_PROOF"].encode_bytes())
    for mutate in (lambda b: b.__setitem__(-1, 0),            # no delimiter bit
                   lambda b: b.__setitem__(8, 107),           # offset of the aggregate
                   lambda b: b.__setitem__(108, 229)):        # offset of the bitlist
        bad = bytearray(agg)
        mutate(bad)
        with pytest.raises(errors.InvalidRequest):
            admin.eth_sign(key_id, "AGGREGATE_AND_PROOF", bytes(bad), FORK, GVR)
    with pytest.raises(errors.InvalidRequest):  # a bitlist longer than its limit (2048 bits)
        big = t.AggregateAndProofElectra(aggregator_index=1, aggregate=t.AttestationElectra(
            aggregation_bits=Bitlist[2048 * 64](*([True] * 2049))), selection_proof=Bytes96(bytes(96)))
        admin.eth_sign(key_id, "AGGREGATE_AND_PROOF", big.encode_bytes(), FORK, GVR)
    with pytest.raises(errors.KeyStateError):  # CometBFT's operation does not take an Ethereum key
        from kms.validator.kms_link import ValidatorLink
        ValidatorLink(admin).sign(key_id, "chain", 1, b"\x00")
    plain = admin.eth_generate_key(GVR)  # exits need the key's consent
    with pytest.raises(errors.PermissionDenied):
        admin.eth_sign(plain.key_id, "VOLUNTARY_EXIT", objs["VOLUNTARY_EXIT"].encode_bytes(), FORK, GVR)
    with pytest.raises(errors.KeyStateError):  # no rotation: a validator's key is its identity
        admin.rotate_key(plain.key_id)


def _fork_version(fork_info: dict, epoch: int) -> bytes:
    fork = fork_info["fork"]
    version = fork["previous_version"] if epoch < int(fork["epoch"]) else fork["current_version"]
    return bytes.fromhex(version[2:])


def test_web3signer_examples(admin):
    examples = json.loads((vectors("eth2") / "signing" / "web3signer_openapi_examples.json").read_text())
    secret = bytes.fromhex(examples["identifier_secret_key"][2:])
    ran = []
    for case in examples["cases"]:
        if not case["consistent"] or case["preset"] == "minimal":
            continue  # mainnet preset only (docs/ethereum-keys.md); the inconsistent two have no stated root
        req = case.get("request_snake_case", case["request"])
        parsed = t.from_request(req)
        if parsed is None:
            continue  # a full phase0 block or the deprecated BLOCK: the HTTP side sends the header
        message_type, obj, epoch = parsed
        if message_type in GENESIS_DOMAIN:
            version = case["derived"].get("genesis_fork_version_used") or req["deposit"]["genesis_fork_version"]
            gvr, fork = None, bytes.fromhex(version[2:])
            chain = bytes(32)
        else:
            gvr = bytes.fromhex(req["fork_info"]["genesis_validators_root"][2:])
            fork, chain = _fork_version(req["fork_info"], epoch), gvr
        info = admin.eth_import_secret(secret, genesis_validators_root=chain, allow_voluntary_exit=True)
        assert "0x" + admin.eth_public_key(info.key_id).hex() == examples["identifier"]
        res = admin.eth_sign(info.key_id, message_type, obj.encode_bytes(), fork, gvr,
                             bytes.fromhex(case["expected_signing_root"][2:]))
        assert "0x" + res.signing_root.hex() == case["expected_signing_root"], case["name"]
        expected = case["derived"]["signature_with_web3signer_acceptance_test_key"]
        assert "0x" + res.signature.hex() == expected, case["name"]
        ran.append(case["name"])
    assert len(ran) >= 19, ran
