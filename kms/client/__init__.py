"""Client SDK: verify the enclave's evidence, then talk to it over an attested TLS session."""

import logging

from kms.client.byok import ImportParameters
from kms.client.client import KmsClient
from kms.client.credentials import Credentials, principal_id_of
from kms.client.envelope import BatchItem
from kms.client.errors import (
    ClientClosed,
    ClientError,
    ClientStateError,
    DomainMismatch,
    EthFormatError,
    InvalidMessage,
    OutcomeUnknown,
    RollbackDetected,
    ServerError,
    TransportError,
    VerificationFailed,
)
from kms.client.eth import EthSignResult, EthWatermark
from kms.client.evidence import VerifiedEvidence
from kms.client.policy import Grant, KeyPolicy, PolicyError, Statement
from kms.client.state import ClientState, StateHead
from kms.client.types import (
    DataKey,
    DataKeyPair,
    DecryptResult,
    EncryptResult,
    EnvelopeResult,
    Identity,
    InitResult,
    KeyInfo,
    MacResult,
    Principal,
    PublicKey,
    RecoveryShare,
    SignResult,
)

__all__ = [
    "BatchItem", "ClientClosed", "ClientError", "ClientState", "ClientStateError", "Credentials", "DataKey",
    "DataKeyPair", "DecryptResult", "DomainMismatch", "EncryptResult", "EnvelopeResult", "EthFormatError",
    "EthSignResult", "EthWatermark", "Grant", "Identity",
    "ImportParameters", "InitResult", "InvalidMessage", "KeyInfo", "KeyPolicy", "KmsClient", "MacResult",
    "OutcomeUnknown", "PolicyError", "Principal", "PublicKey", "RecoveryShare", "RollbackDetected", "ServerError",
    "SignResult", "StateHead", "Statement", "TransportError", "VerificationFailed", "VerifiedEvidence",
    "principal_id_of",
]

# A library logs, the application decides where it goes: without this, Python's last-resort handler would print the
# SDK's replica warnings to stderr beside the CLI's one-line error (docs/api.md, errors).
logging.getLogger("kms.client").addHandler(logging.NullHandler())
