"""CometBFT canonical sign bytes (types/canonical.go): CanonicalVote, CanonicalProposal, CanonicalVoteExtension."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from kms.proto.cometbft.v038 import types_pb2 as cmt
from kms.proto.enclave.v1 import cometbft_pb2 as canon
from kms.validator.protoio import delimited, split_delimited

GO_ZERO_SECONDS = -62135596800  # Go's zero time.Time (0001-01-01T00:00:00Z)
PREVOTE, PRECOMMIT, PROPOSAL = cmt.SIGNED_MSG_TYPE_PREVOTE, cmt.SIGNED_MSG_TYPE_PRECOMMIT, cmt.SIGNED_MSG_TYPE_PROPOSAL
STEP_NAMES = {1: "propose", 2: "prevote", 3: "precommit"}  # FilePV steps, as the enclave reports them
_HASH_LEN = 32


class SignBytesError(ValueError):
    """A vote or proposal that has no valid canonical form (CometBFT would refuse it too)."""


def fill_gogo_defaults(msg: cmt.Vote | cmt.Proposal) -> None:
    """Make the gogo non-nullable fields explicit (block id, part set header, timestamp) as CometBFT encodes them."""
    msg.block_id.part_set_header.SetInParent()
    if not msg.HasField("timestamp"):
        msg.timestamp.seconds = GO_ZERO_SECONDS


def block_id_is_nil(block_id: cmt.BlockID) -> bool:
    """CometBFT's BlockID.IsZero: no hash and an empty part set header."""
    psh = block_id.part_set_header
    return not block_id.hash and psh.total == 0 and not psh.hash


def _canonical_block_id(block_id: cmt.BlockID) -> canon.CmtBlockId | None:
    for h in (block_id.hash, block_id.part_set_header.hash):
        if len(h) not in (0, _HASH_LEN):
            raise SignBytesError("block id hashes must be empty or 32 bytes")
    if block_id_is_nil(block_id):
        return None
    out = canon.CmtBlockId(hash=block_id.hash)
    out.part_set_header.SetInParent()
    out.part_set_header.total = block_id.part_set_header.total
    out.part_set_header.hash = block_id.part_set_header.hash
    return out


def _timestamp(ts: Timestamp, present: bool) -> canon.CmtTimestamp:
    if not present:
        return canon.CmtTimestamp(seconds=GO_ZERO_SECONDS)
    return canon.CmtTimestamp(seconds=ts.seconds, nanos=ts.nanos)


def _check_position(height: int, round_: int) -> None:
    if height < 0 or round_ < 0:
        raise SignBytesError("negative height or round")


def vote_sign_bytes(chain_id: str, vote: cmt.Vote) -> bytes:
    """types.VoteSignBytes: uvarint-length-prefixed CanonicalVote (no validator, no extension)."""
    _check_position(vote.height, vote.round)
    cv = canon.CmtCanonicalVote(type=vote.type, height=vote.height, round=vote.round, chain_id=chain_id)
    block_id = _canonical_block_id(vote.block_id)
    if block_id is not None:
        cv.block_id.CopyFrom(block_id)
    cv.timestamp.CopyFrom(_timestamp(vote.timestamp, vote.HasField("timestamp")))
    return delimited(cv.SerializeToString())


def proposal_sign_bytes(chain_id: str, proposal: cmt.Proposal) -> bytes:
    """types.ProposalSignBytes: uvarint-length-prefixed CanonicalProposal (type is always PROPOSAL)."""
    _check_position(proposal.height, proposal.round)
    if proposal.pol_round < -1:
        raise SignBytesError("pol_round below -1")
    cp = canon.CmtCanonicalProposal(type=PROPOSAL, height=proposal.height, round=proposal.round,
                                    pol_round=proposal.pol_round, chain_id=chain_id)
    block_id = _canonical_block_id(proposal.block_id)
    if block_id is not None:
        cp.block_id.CopyFrom(block_id)
    cp.timestamp.CopyFrom(_timestamp(proposal.timestamp, proposal.HasField("timestamp")))
    return delimited(cp.SerializeToString())


def vote_extension_sign_bytes(chain_id: str, vote: cmt.Vote) -> bytes:
    """types.VoteExtensionSignBytes: uvarint-length-prefixed CanonicalVoteExtension."""
    ext = canon.CmtCanonicalVoteExtension(extension=vote.extension, height=vote.height, round=vote.round,
                                          chain_id=chain_id)
    return delimited(ext.SerializeToString())


def signs_extension(vote: cmt.Vote) -> bool:
    """FilePV signs the extension of every non-nil precommit (even an empty one), and of nothing else."""
    return vote.type == PRECOMMIT and not block_id_is_nil(vote.block_id)


def timestamp_from_sign_bytes(sign_bytes: bytes, proposal: bool) -> Timestamp:
    """The timestamp inside stored sign bytes (the enclave's answer when it reuses a signature)."""
    body = split_delimited(sign_bytes)
    msg = canon.CmtCanonicalProposal() if proposal else canon.CmtCanonicalVote()
    msg.ParseFromString(body)
    return Timestamp(seconds=msg.timestamp.seconds, nanos=msg.timestamp.nanos)


def replace_timestamp(sign_bytes: bytes, ts: Timestamp, proposal: bool) -> bytes:
    """The same sign bytes with another timestamp (to check that a reused signature differs only there)."""
    msg = canon.CmtCanonicalProposal() if proposal else canon.CmtCanonicalVote()
    msg.ParseFromString(split_delimited(sign_bytes))
    msg.timestamp.seconds, msg.timestamp.nanos = ts.seconds, ts.nanos
    return delimited(msg.SerializeToString())


def with_timestamp(msg: cmt.Vote | cmt.Proposal, ts: Timestamp) -> None:
    """Overwrite the message's timestamp (FilePV does this when only the timestamp differed)."""
    msg.timestamp.CopyFrom(ts)
