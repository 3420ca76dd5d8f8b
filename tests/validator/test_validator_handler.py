"""PrivvalHandler over the real enclave (host path, no server): FilePV answers, and a lying KMS is never believed."""

from __future__ import annotations

import pytest

from kms.proto.cometbft.v038 import privval_pb2 as pv
from kms.proto.enclave.v1 import boundary_pb2 as pb
from kms.validator import canonical
from kms.validator.kms_link import ValidatorLink
from kms.validator.privval import Decision, PrivvalHandler
from kms.validator.protoio import ProtocolError
from tests.validator.checks import verify_proposal, verify_vote
from tests.validator.node_peer import PRECOMMIT, PREVOTE, proposal, vote

C = "chain-h"


class EnclaveClient:
    """Stands in for KmsClient: boundary Requests straight into an in-process enclave."""

    def __init__(self, enclave) -> None:
        self.enclave = enclave
        self.evidence = None
        self.tamper = None

    def _call(self, request: pb.Request) -> pb.Response:
        response = self.enclave.call(request)
        if self.tamper is not None and response.WhichOneof("result") == "validator_sign":
            self.tamper(response.validator_sign)
        return response


def _handler(enclave, spec: str = "ed25519", **kw) -> tuple[PrivvalHandler, EnclaveClient, list[Decision]]:
    client = EnclaveClient(enclave)
    link = ValidatorLink(client)  # type: ignore[arg-type]
    key = link.create(C, spec)
    seen: list[Decision] = []
    return PrivvalHandler(link, key.key_id, C, observe=seen.append, **kw), client, seen


def _vote(handler: PrivvalHandler, v, chain: str = C) -> pv.SignedVoteResponse:
    msg = pv.Message(sign_vote_request=pv.SignVoteRequest(vote=v, chain_id=chain))
    return handler.handle(msg).signed_vote_response


def test_filepv_answers_through_the_enclave(enclave) -> None:
    handler, _, seen = _handler(enclave)
    pub = handler.public_key().raw
    p = handler.handle(pv.Message(sign_proposal_request=pv.SignProposalRequest(proposal=proposal(1, 0, 1),
                                                                               chain_id=C)))
    verify_proposal(pub, C, p.signed_proposal_response.proposal)
    verify_vote(pub, C, _vote(handler, vote(1, 0, PREVOTE, 1)).vote)
    first = _vote(handler, vote(1, 0, PRECOMMIT, 1, extension=b"x"))
    verify_vote(pub, C, first.vote)
    later = _vote(handler, vote(1, 0, PRECOMMIT, 1, ts=1_800_000_000, extension=b"y"))
    assert later.vote.signature == first.vote.signature and later.vote.timestamp.seconds == 1_700_000_000
    verify_vote(pub, C, later.vote)  # the extension is signed anew (FilePV), the vote signature reused
    assert later.vote.extension_signature != first.vote.extension_signature
    assert _vote(handler, vote(1, 0, PRECOMMIT, 2)).error.code == 2
    assert [d.outcome for d in seen] == ["signed", "signed", "signed", "reused", "refused"]
    assert seen[-1] == Decision(C, 1, 0, "precommit", "refused", "double-sign guard")


def test_secp256k1_and_extension_switch(enclave) -> None:
    handler, _, _ = _handler(enclave, "secp256k1", sign_extensions=False)
    pub = handler.public_key().raw
    assert len(pub) == 33
    r = _vote(handler, vote(3, 0, PRECOMMIT, 3, extension=b"ext"))
    assert len(r.vote.signature) == 64 and not r.vote.extension_signature
    canonical_bytes = canonical.vote_sign_bytes(C, r.vote)
    from tests.validator.checks import verify

    verify(pub, r.vote.signature, canonical_bytes)


def test_bad_requests_are_answered_with_errors(enclave) -> None:
    handler, _, seen = _handler(enclave)
    assert _vote(handler, vote(1, 0, PREVOTE, 1, extension=b"no")).error.code == 1
    assert _vote(handler, vote(1, 0, PREVOTE, 1), chain="other").error.code == 1
    bad = vote(1, 0, PREVOTE, 1)
    bad.block_id.hash = b"short"
    assert _vote(handler, bad).error.code == 1
    wrong_type = vote(1, 0, PREVOTE, 1)
    wrong_type.type = 32
    assert "INVALID_ARGUMENT" in _vote(handler, wrong_type).error.description  # the enclave's own parser refuses
    assert all(d.outcome == "error" for d in seen)
    with pytest.raises(ProtocolError):
        handler.handle(pv.Message(ping_response=pv.PingResponse()))
    assert handler.handle(pv.Message(ping_request=pv.PingRequest())).HasField("ping_response")


@pytest.mark.parametrize("lie", ["bad_signature", "other_bytes", "reuse_other_block", "stray_extension_sig"])
def test_a_lying_kms_answer_is_not_passed_on(enclave, lie: str) -> None:
    handler, client, seen = _handler(enclave)
    handler.public_key()
    other = canonical.vote_sign_bytes(C, vote(1, 0, PREVOTE, 9))

    def tamper(r: pb.ValidatorSignResponse) -> None:
        if lie == "bad_signature":
            r.signature = bytes([r.signature[0] ^ 1]) + r.signature[1:]
        elif lie == "other_bytes":
            r.sign_bytes = other
        elif lie == "reuse_other_block":
            r.sign_bytes, r.reused = other, True
        else:
            r.extension_signature = r.signature

    client.tamper = tamper
    r = _vote(handler, vote(1, 0, PREVOTE, 1))
    assert r.error.code == 1 and not r.vote.signature
    assert seen[-1].outcome == "error"
