"""Client SDK: verify the enclave's evidence, then talk to it over an attested TLS session."""

from kms.client.client import KmsClient
from kms.client.credentials import Credentials, principal_id_of
from kms.client.errors import (
    ClientClosed,
    ClientError,
    OutcomeUnknown,
    ServerError,
    TransportError,
    VerificationFailed,
)
from kms.client.evidence import VerifiedEvidence
from kms.client.types import (
    DataKey,
    DecryptResult,
    EncryptResult,
    InitResult,
    KeyInfo,
    MacResult,
    Principal,
    PublicKey,
    RecoveryShare,
    SignResult,
)

__all__ = [
    "ClientClosed", "ClientError", "Credentials", "DataKey", "DecryptResult", "EncryptResult", "InitResult", "KeyInfo",
    "KmsClient", "MacResult", "OutcomeUnknown", "Principal", "PublicKey", "RecoveryShare", "ServerError",
    "SignResult", "TransportError", "VerificationFailed", "VerifiedEvidence", "principal_id_of",
]
