"""privval (CometBFT v0.38): the Message codec and the handler that answers PubKey, SignVote, SignProposal, Ping."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.hazmat.primitives.hashes import SHA256

from kms import errors
from kms.client.errors import ClientError, VerificationFailed
from kms.proto.cometbft.v038 import privval_pb2 as pv
from kms.proto.cometbft.v038 import types_pb2 as cmt
from kms.proto.enclave.v1 import boundary_pb2 as pb
from kms.validator import canonical
from kms.validator.kms_link import ValidatorLink, ValidatorPublicKey
from kms.validator.protoio import ProtocolError
from kms.validator.watermark import STEPS, Regression, SignerGuard, WatermarkError

CODE_UNKNOWN, CODE_DOUBLE_SIGN = 1, 2  # tmkms / tendermint-rs RemoteErrorCode


# The guard's row is damaged (it does not authenticate) or not the one the state log says (gone, or
# an older copy): the enclave refuses to sign with it either way.
_GUARD_STATE_LOST = (errors.E.KMS_ERR_RECORD_CORRUPT, errors.E.KMS_ERR_STALE_RECORD)


@dataclass(frozen=True)
class Decision:
    """One signature decision, for the log and the metrics (no data bytes)."""

    chain_id: str
    height: int
    round: int
    step: str
    outcome: str  # signed, reused, refused, error
    reason: str = ""


def encode(msg: pv.Message) -> bytes:
    """The Message oneof's bytes (without the wire's length prefix)."""
    return msg.SerializeToString()


def decode(body: bytes) -> pv.Message:
    """A Message from its bytes; ProtocolError if it is not one."""
    msg = pv.Message()
    try:
        msg.ParseFromString(body)
    except Exception as exc:  # google.protobuf.message.DecodeError and friends
        raise ProtocolError("undecodable privval message") from exc
    if msg.WhichOneof("sum") is None:
        raise ProtocolError("empty privval message")
    return msg


def remote_error(code: int, description: str) -> pv.RemoteSignerError:
    return pv.RemoteSignerError(code=code, description=description)


def pub_key_response(key: ValidatorPublicKey | None, error: pv.RemoteSignerError | None = None) -> pv.Message:
    """PubKeyResponse: the key (tendermint.crypto.PublicKey), or an empty key and an error."""
    resp = pv.PubKeyResponse()
    resp.pub_key.SetInParent()
    if key is not None:
        setattr(resp.pub_key, key.key_type, key.raw)
    if error is not None:
        resp.error.CopyFrom(error)
    return pv.Message(pub_key_response=resp)


def vote_response(vote: cmt.Vote | None, error: pv.RemoteSignerError | None = None) -> pv.Message:
    """SignedVoteResponse: the signed vote, or an empty vote and an error (as CometBFT's signer server sends)."""
    resp = pv.SignedVoteResponse()
    if vote is not None:
        resp.vote.CopyFrom(vote)
    canonical.fill_gogo_defaults(resp.vote)
    if error is not None:
        resp.error.CopyFrom(error)
    return pv.Message(signed_vote_response=resp)


def proposal_response(proposal: cmt.Proposal | None, error: pv.RemoteSignerError | None = None) -> pv.Message:
    """SignedProposalResponse: the signed proposal, or an empty proposal and an error."""
    resp = pv.SignedProposalResponse()
    if proposal is not None:
        resp.proposal.CopyFrom(proposal)
    canonical.fill_gogo_defaults(resp.proposal)
    if error is not None:
        resp.error.CopyFrom(error)
    return pv.Message(signed_proposal_response=resp)


def _verify(key: ValidatorPublicKey, signature: bytes, data: bytes) -> None:
    if key.key_type == "ed25519":
        key.key.verify(signature, data)  # type: ignore[call-arg]
        return
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:64], "big")
    key.key.verify(utils.encode_dss_signature(r, s), data, ec.ECDSA(SHA256()))  # type: ignore[call-arg]


class PrivvalHandler:
    """Answers one validator's privval requests through the KMS; `observe` gets every signature decision."""

    def __init__(self, link: ValidatorLink, key_id: str, chain_id: str, *, sign_extensions: bool = True,
                 observe: Callable[[Decision], None] = lambda d: None, guard: SignerGuard | None = None) -> None:
        self.link, self.key_id, self.chain_id = link, key_id, chain_id
        self.sign_extensions = sign_extensions
        self.guard = guard  # the validator's watermark (two-sided guard); None: the enclave's guard alone
        self._observe = observe
        self._public_key: ValidatorPublicKey | None = None

    def public_key(self) -> ValidatorPublicKey:
        """The validator's public key (fetched once from the KMS)."""
        if self._public_key is None:
            self._public_key = self.link.public_key(self.key_id)
        return self._public_key

    def handle(self, msg: pv.Message) -> pv.Message:
        """The response to one request; ProtocolError for a message a signer never receives."""
        kind = msg.WhichOneof("sum")
        if kind == "ping_request":
            return pv.Message(ping_response=pv.PingResponse())
        if kind == "pub_key_request":
            return self._pub_key(msg.pub_key_request)
        if kind == "sign_vote_request":
            return self._sign_vote(msg.sign_vote_request)
        if kind == "sign_proposal_request":
            return self._sign_proposal(msg.sign_proposal_request)
        raise ProtocolError(f"unexpected privval message {kind}")

    def _pub_key(self, req: pv.PubKeyRequest) -> pv.Message:
        if req.chain_id != self.chain_id:
            return pub_key_response(None, remote_error(CODE_UNKNOWN, f"unable to provide pubkey: chain id "
                                                                     f"{req.chain_id!r} is not {self.chain_id!r}"))
        try:
            return pub_key_response(self.public_key())
        except (ClientError, errors.KmsError, ValueError) as exc:
            return pub_key_response(None, remote_error(CODE_UNKNOWN, f"unable to provide pubkey: {exc}"))

    def _sign_vote(self, req: pv.SignVoteRequest) -> pv.Message:
        vote = cmt.Vote()
        vote.CopyFrom(req.vote)
        canonical.fill_gogo_defaults(vote)
        step = {canonical.PREVOTE: "prevote", canonical.PRECOMMIT: "precommit"}.get(vote.type, "unknown")
        position = (req.chain_id, vote.height, vote.round, step)
        try:
            sign_bytes, ext_bytes = self._prepare(position, lambda: _vote_bytes(req.chain_id, vote,
                                                                                self.sign_extensions))
            r = self._sign(pb.VOTE, sign_bytes, ext_bytes, position, proposal=False)
        except _Refusal as refusal:
            return vote_response(None, refusal.error)
        vote.signature = r.signature
        vote.extension_signature = r.extension_signature
        if r.sign_bytes != sign_bytes:  # reused with only the timestamp different: send the stored one
            canonical.with_timestamp(vote, canonical.timestamp_from_sign_bytes(r.sign_bytes, proposal=False))
        return vote_response(vote)

    def _sign_proposal(self, req: pv.SignProposalRequest) -> pv.Message:
        proposal = cmt.Proposal()
        proposal.CopyFrom(req.proposal)
        canonical.fill_gogo_defaults(proposal)
        position = (req.chain_id, proposal.height, proposal.round, "propose")
        try:
            sign_bytes, _ = self._prepare(position, lambda: (canonical.proposal_sign_bytes(req.chain_id, proposal),
                                                             b""))
            r = self._sign(pb.PROPOSAL, sign_bytes, b"", position, proposal=True)
        except _Refusal as refusal:
            return proposal_response(None, refusal.error)
        proposal.signature = r.signature
        if r.sign_bytes != sign_bytes:
            canonical.with_timestamp(proposal, canonical.timestamp_from_sign_bytes(r.sign_bytes, proposal=True))
        return proposal_response(proposal)

    def _prepare(self, position: tuple[str, int, int, str],
                 build: Callable[[], tuple[bytes, bytes]]) -> tuple[bytes, bytes]:
        """The sign bytes for a request of this signer's chain, or a refusal (error code 1) the node is sent."""
        chain, height, rnd, step = position
        try:
            if chain != self.chain_id:
                raise canonical.SignBytesError(f"chain id {chain!r} is not this signer's {self.chain_id!r}")
            return build()
        except canonical.SignBytesError as exc:
            self._observe(Decision(chain, height, rnd, step, "error", str(exc)))
            raise _Refusal(CODE_UNKNOWN, f"signer error: {exc}") from exc

    def _sign(self, kind: int, sign_bytes: bytes, ext_bytes: bytes, position: tuple[str, int, int, str], *,
              proposal: bool) -> pb.ValidatorSignResponse:
        chain, height, rnd, step = position
        try:
            pos = (height, rnd, STEPS.get(step, 0))  # 0: not a signable type (the enclave's parser refuses it)
            watermark = self._watermark(pos)
            r = self.link.sign(self.key_id, self.chain_id, kind, sign_bytes, ext_bytes, watermark=watermark)
            self._check_answer(r, sign_bytes, ext_bytes, proposal)
            if (r.height, r.round, r.step) != pos:
                raise ValueError("the KMS answered for another height/round/step")
            if self.guard is not None:  # durable before the node gets the signature
                self.guard.record(pos, r.sign_bytes)
        except (errors.DoubleSignRefused, Regression) as exc:
            why = f"validator watermark: {exc}" if isinstance(exc, Regression) else "double-sign guard"
            self._observe(Decision(chain, height, rnd, step, "refused", why))
            raise _Refusal(CODE_DOUBLE_SIGN, f"double signing requested at height: {height}") from exc
        except WatermarkError as exc:
            self._observe(Decision(chain, height, rnd, step, "error", str(exc)))
            raise _Refusal(CODE_UNKNOWN, f"signer error: {exc}") from exc
        except errors.StoreError as exc:
            reason = ("the guard state is missing or corrupt: signing is stopped for this key until an operator "
                      "restores it (docs/validators.md)") if exc.code in _GUARD_STATE_LOST else str(exc)
            self._observe(Decision(chain, height, rnd, step, "error", reason))
            raise _Refusal(CODE_UNKNOWN, f"signer error: {reason}") from exc
        except (ClientError, errors.KmsError, InvalidSignature, ValueError) as exc:
            reason = "signature does not verify" if isinstance(exc, InvalidSignature) else str(exc)
            if isinstance(exc, VerificationFailed):
                reason = f"KMS NOT trusted, nothing was sent: {exc}"
            self._observe(Decision(chain, height, rnd, step, "error", reason))
            raise _Refusal(CODE_UNKNOWN, f"signer error: {reason}") from exc
        self._observe(Decision(chain, height, rnd, step, "reused" if r.reused else "signed"))
        return r

    def _watermark(self, pos: tuple[int, int, int]) -> pb.ValidatorWatermark | None:
        """The watermark to send (seeded from the KMS's guard the first time); Regression when pos is below it."""
        if self.guard is None:
            return None
        if pos[2] not in STEPS.values():
            raise ValueError("not a signable message type")
        if self.guard.current is None:
            self.guard.seed(self.link.state(self.key_id))
        return self.guard.check(pos)

    def _check_answer(self, r: pb.ValidatorSignResponse, sign_bytes: bytes, ext_bytes: bytes, proposal: bool) -> None:
        """Fail closed unless the signature verifies over the bytes it claims, and those match the request."""
        key = self.public_key()
        if r.sign_bytes != sign_bytes:
            if not r.reused:
                raise ValueError("the KMS signed other bytes than requested")
            # Only the timestamp may differ: our message with the stored timestamp must give the stored bytes.
            stored = canonical.timestamp_from_sign_bytes(r.sign_bytes, proposal)
            if canonical.replace_timestamp(sign_bytes, stored, proposal) != r.sign_bytes:
                raise ValueError("the KMS reused a signature over different data")
        _verify(key, r.signature[:64], r.sign_bytes)
        if ext_bytes:
            _verify(key, r.extension_signature[:64], ext_bytes)
        elif r.extension_signature:
            raise ValueError("unexpected extension signature")


def _vote_bytes(chain_id: str, vote: cmt.Vote, sign_extensions: bool) -> tuple[bytes, bytes]:
    """Vote sign bytes, and extension sign bytes for non-nil precommits (FilePV: an extension elsewhere is an error)."""
    sign_bytes = canonical.vote_sign_bytes(chain_id, vote)
    if canonical.signs_extension(vote):
        return sign_bytes, canonical.vote_extension_sign_bytes(chain_id, vote) if sign_extensions else b""
    if vote.extension:
        raise canonical.SignBytesError("unexpected vote extension: only non-nil precommits carry one")
    return sign_bytes, b""


class _Refusal(Exception):
    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.error = remote_error(code, description)
