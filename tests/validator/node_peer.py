"""A test peer that plays the CometBFT node: listens (loopback tcp + SecretConnection, or unix), sends privval."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519
from google.protobuf.timestamp_pb2 import Timestamp

from kms.proto.cometbft.v038 import privval_pb2 as pv
from kms.proto.cometbft.v038 import types_pb2 as cmt
from kms.validator.protoio import PlainStream, Stream, delimited, read_delimited
from kms.validator.secret_connection import SecretConnection

PREVOTE, PRECOMMIT, PROPOSAL = 1, 2, 32


def block(tag: int) -> cmt.BlockID:
    """A block id whose hashes are derived from tag (tag 0: the nil block id)."""
    bid = cmt.BlockID()
    bid.part_set_header.SetInParent()
    if tag:
        bid.hash = bytes([tag]) * 32
        bid.part_set_header.total = 1
        bid.part_set_header.hash = bytes([tag ^ 0xFF]) * 32
    return bid


def vote(height: int, rnd: int, vtype: int, tag: int, *, ts: int = 1_700_000_000, extension: bytes = b"") -> cmt.Vote:
    """A vote as the node builds it (validator address and index set, no signature)."""
    v = cmt.Vote(type=vtype, height=height, round=rnd, validator_address=b"\x01" * 20, validator_index=0,
                 timestamp=Timestamp(seconds=ts), extension=extension)
    v.block_id.CopyFrom(block(tag))
    return v


def proposal(height: int, rnd: int, tag: int, *, ts: int = 1_700_000_000) -> cmt.Proposal:
    """A proposal as the node builds it."""
    p = cmt.Proposal(type=PROPOSAL, height=height, round=rnd, pol_round=-1, timestamp=Timestamp(seconds=ts))
    p.block_id.CopyFrom(block(tag))
    return p


class NodeConnection:
    """One accepted signer connection."""

    def __init__(self, sock: socket.socket, stream: Stream, remote_key: bytes | None) -> None:
        self.sock, self.stream, self.remote_key = sock, stream, remote_key

    def request(self, msg: pv.Message) -> pv.Message:
        self.stream.write(delimited(msg.SerializeToString()))
        return pv.Message.FromString(read_delimited(self.stream))

    def ping(self) -> bool:
        return self.request(pv.Message(ping_request=pv.PingRequest())).HasField("ping_response")

    def pub_key(self, chain_id: str) -> pv.PubKeyResponse:
        return self.request(pv.Message(pub_key_request=pv.PubKeyRequest(chain_id=chain_id))).pub_key_response

    def sign_vote(self, chain_id: str, v: cmt.Vote) -> pv.SignedVoteResponse:
        req = pv.SignVoteRequest(vote=v, chain_id=chain_id)
        return self.request(pv.Message(sign_vote_request=req)).signed_vote_response

    def sign_proposal(self, chain_id: str, p: cmt.Proposal) -> pv.SignedProposalResponse:
        req = pv.SignProposalRequest(proposal=p, chain_id=chain_id)
        return self.request(pv.Message(sign_proposal_request=req)).signed_proposal_response

    def close(self) -> None:
        self.stream.close()


class NodePeer:
    """The node's priv_validator_laddr listener; a fresh Ed25519 node key per start, like CometBFT v0.38."""

    def __init__(self, unix_path: Path | None = None, port: int = 0) -> None:
        self.identity = ed25519.Ed25519PrivateKey.generate()
        if unix_path is not None:
            self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.listener.bind(str(unix_path))
            self.addr = f"unix://{unix_path}"
        else:
            self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.listener.bind(("127.0.0.1", port))
            self.addr = f"tcp://127.0.0.1:{self.listener.getsockname()[1]}"
        self.listener.listen(4)
        self._lock = threading.Lock()

    def accept(self, timeout: float = 30.0) -> NodeConnection:
        """Wait for the signer to dial in, then run the handshake (SecretConnection over tcp)."""
        self.listener.settimeout(timeout)
        sock, _ = self.listener.accept()
        sock.settimeout(timeout)
        if self.addr.startswith("unix://"):
            return NodeConnection(sock, PlainStream(sock), None)
        conn = SecretConnection(sock, self.identity)
        return NodeConnection(sock, conn, conn.remote_public_key)

    def close(self) -> None:
        self.listener.close()
