"""The typed operations of KmsClient, each one Request/Response in the attested session."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager

from kms.client.types import (
    DEFAULT_SIGNING,
    DEFAULT_USAGE,
    MAX_PLAINTEXT,
    SPEC_ALIASES,
    DataKey,
    DecryptResult,
    EncryptResult,
    Identity,
    InitResult,
    KeyInfo,
    MacResult,
    Principal,
    PublicKey,
    RecoveryShare,
    SignResult,
    enum_value,
)
from kms.proto.enclave.v1 import boundary_pb2 as pb

_DIGESTS = {pb.ECDSA_SHA_256: "sha256", pb.ECDSA_SHA_384: "sha384", pb.RSASSA_PSS_SHA_256: "sha256",
            pb.RSASSA_PSS_SHA_384: "sha384", pb.RSASSA_PSS_SHA_512: "sha512",
            pb.RSASSA_PKCS1_V1_5_SHA_256: "sha256", pb.RSASSA_PKCS1_V1_5_SHA_384: "sha384",
            pb.RSASSA_PKCS1_V1_5_SHA_512: "sha512"}


def _context(context: Mapping[str, str] | None) -> list[pb.ContextEntry]:
    return [pb.ContextEntry(key=k.encode(), value=v.encode()) for k, v in sorted((context or {}).items())]


class Operations:
    """Mixin: typed methods over `_call(request)` (provided by KmsClient; retries by kms.client.idempotency)."""

    def __init__(self) -> None:
        self._specs: dict[str, int] = {}
        self._specs_lock = threading.Lock()

    def _call(self, request: pb.Request) -> pb.Response:  # pragma: no cover
        raise NotImplementedError

    def one_replica(self) -> AbstractContextManager[None]:  # pragma: no cover - KmsClient's (kms.client.failover)
        raise NotImplementedError

    def _check_creating(self, operation: str) -> None:  # pragma: no cover - KmsClient checks new_domain
        """Raise unless this client was made to create or recover a domain."""

    def _domain_established(self, domain_id: bytes) -> None:  # pragma: no cover - KmsClient pins it
        """init or recover succeeded: pin the domain."""

    def _remember(self, info: KeyInfo) -> KeyInfo:
        with self._specs_lock:
            self._specs[info.key_id] = pb.KeySpec.Value(info.spec)
        return info

    def _spec_of(self, key_id: str) -> int:
        with self._specs_lock:
            spec = self._specs.get(key_id)
        return spec if spec is not None else pb.KeySpec.Value(self.describe_key(key_id).spec)

    def _algorithm(self, key_id: str, algorithm: str | int | None) -> int:
        if algorithm is not None:
            return enum_value(pb.SigningAlgorithm, algorithm)
        spec = self._spec_of(key_id)
        if spec not in DEFAULT_SIGNING:
            raise ValueError(f"a {pb.KeySpec.Name(spec)} key does not sign")
        return DEFAULT_SIGNING[spec]

    # --- keys -----------------------------------------------------------------------------------

    def create_key(self, spec: str | int = "SYMMETRIC_DEFAULT", usage: str | int | None = None,
                   description: str = "") -> KeyInfo:
        """Create a key (admins). Usage defaults by spec: AES encrypt, HMAC mac, EC/Ed/RSA sign, X25519 agree."""
        spec_n = enum_value(pb.KeySpec, spec, SPEC_ALIASES)
        usage_n = DEFAULT_USAGE[spec_n] if usage is None else enum_value(pb.KeyUsage, usage)
        r = self._call(pb.Request(create_key=pb.CreateKeyRequest(spec=spec_n, usage=usage_n, description=description)))
        return self._remember(KeyInfo.from_pb(r.key_metadata))

    def describe_key(self, key_id: str) -> KeyInfo:
        r = self._call(pb.Request(describe_key=pb.DescribeKeyRequest(key_id=key_id)))
        return self._remember(KeyInfo.from_pb(r.key_metadata))

    def list_keys_page(self, page_token: str = "", limit: int = 32) -> tuple[list[KeyInfo], str]:
        """One page of the keys the caller may see, and the token of the next page ("" at the end)."""
        r = self._call(pb.Request(list_keys=pb.ListKeysRequest(page_token=page_token, limit=limit))).list_keys
        return [self._remember(KeyInfo.from_pb(k)) for k in r.keys], r.next_page_token

    def list_keys(self, page_size: int = 32) -> Iterator[KeyInfo]:
        """Every key the caller may see, fetched page by page as the iterator advances."""
        token = ""
        while True:
            keys, token = self.list_keys_page(token, page_size)
            yield from keys
            if not token:
                return

    def _set_state(self, key_id: str, state: int) -> KeyInfo:
        r = self._call(pb.Request(set_key_state=pb.SetKeyStateRequest(key_id=key_id, state=state)))
        return self._remember(KeyInfo.from_pb(r.key_metadata))

    def enable_key(self, key_id: str) -> KeyInfo:
        return self._set_state(key_id, pb.ENABLED)

    def disable_key(self, key_id: str) -> KeyInfo:
        return self._set_state(key_id, pb.DISABLED)

    def rotate_key(self, key_id: str) -> KeyInfo:
        """A new current version; older versions keep decrypting and verifying."""
        r = self._call(pb.Request(rotate_key=pb.RotateKeyRequest(key_id=key_id)))
        return self._remember(KeyInfo.from_pb(r.key_metadata))

    def get_public_key(self, key_id: str, *, pem: bool = False) -> PublicKey:
        fmt = pb.PUBLIC_KEY_PEM if pem else pb.PUBLIC_KEY_DER
        r = self._call(pb.Request(get_public_key=pb.GetPublicKeyRequest(key_id=key_id, format=fmt))).get_public_key
        return PublicKey(r.key_id, r.key_version, pb.KeySpec.Name(r.spec), bytes(r.public_key))

    # --- data -----------------------------------------------------------------------------------

    def encrypt(self, key_id: str, plaintext: bytes, context: Mapping[str, str] | None = None) -> EncryptResult:
        """AES-256-GCM under the key's current version; the context is bound as AAD. At most MAX_PLAINTEXT bytes:
        larger data goes through `encrypt_stream` (envelope encryption)."""
        if len(plaintext) > MAX_PLAINTEXT:
            raise ValueError(f"plaintext is {len(plaintext)} bytes, above the enclave's limit of {MAX_PLAINTEXT} "
                             "for Encrypt: encrypt larger data with encrypt_stream (envelope encryption)")
        r = self._call(pb.Request(encrypt=pb.EncryptRequest(key_id=key_id, plaintext=plaintext,
                                                            context=_context(context)))).encrypt
        return EncryptResult(r.key_id, r.key_version, bytes(r.ciphertext))

    def decrypt(self, ciphertext: bytes, context: Mapping[str, str] | None = None) -> DecryptResult:
        """The ciphertext names its key and version; a wrong context or any tampering is InvalidCiphertext."""
        r = self._call(pb.Request(decrypt=pb.DecryptRequest(ciphertext=ciphertext, context=_context(context)))).decrypt
        return DecryptResult(r.key_id, r.key_version, bytes(r.plaintext))

    def generate_data_key(self, key_id: str, number_of_bytes: int = 32, context: Mapping[str, str] | None = None,
                          *, with_plaintext: bool = True) -> DataKey:
        """A fresh data key: its plaintext (unless with_plaintext=False) and its ciphertext under key_id."""
        req = pb.GenerateDataKeyRequest(key_id=key_id, number_of_bytes=number_of_bytes, context=_context(context),
                                        without_plaintext=not with_plaintext)
        r = self._call(pb.Request(generate_data_key=req)).generate_data_key
        return DataKey(r.key_id, r.key_version, bytes(r.plaintext), bytes(r.ciphertext))

    def re_encrypt(self, ciphertext: bytes, destination_key_id: str, source_context: Mapping[str, str] | None = None,
                   destination_context: Mapping[str, str] | None = None) -> EncryptResult:
        """Decrypt and encrypt again under another key (or context) without the plaintext leaving the enclave.

        The new ciphertext keeps the source context unless `destination_context` is given ({} for none)."""
        destination = source_context if destination_context is None else destination_context
        req = pb.ReEncryptRequest(ciphertext=ciphertext, source_context=_context(source_context),
                                  destination_key_id=destination_key_id, destination_context=_context(destination))
        r = self._call(pb.Request(re_encrypt=req)).re_encrypt
        return EncryptResult(r.key_id, r.key_version, bytes(r.ciphertext))

    def _sign_request(self, key_id: str, message: bytes | None, digest: bytes | None,
                      algorithm: str | int | None) -> tuple[int, bytes, int]:
        if (message is None) == (digest is None):
            raise ValueError("give exactly one of message= or digest=")
        alg = self._algorithm(key_id, algorithm)
        if digest is not None:
            return alg, digest, pb.DIGEST
        return alg, message or b"", pb.RAW

    def sign(self, key_id: str, message: bytes | None = None, *, digest: bytes | None = None,
             algorithm: str | int | None = None, p1363: bool = False) -> SignResult:
        """Sign a message, or a precomputed digest (not Ed25519). ECDSA signatures are DER unless p1363."""
        alg, data, kind = self._sign_request(key_id, message, digest, algorithm)
        fmt = pb.SIGNATURE_FORMAT_P1363 if p1363 else pb.SIGNATURE_FORMAT_DER
        r = self._call(pb.Request(sign=pb.SignRequest(key_id=key_id, message=data, message_type=kind,
                                                      algorithm=alg, format=fmt))).sign
        return SignResult(r.key_id, r.key_version, bytes(r.signature), pb.SigningAlgorithm.Name(alg))

    def verify(self, key_id: str, *, signature: bytes, message: bytes | None = None, digest: bytes | None = None,
               algorithm: str | int | None = None, p1363: bool = False, key_version: int = 0) -> bool:
        """True if `signature` is valid over `message` (or `digest`); raises kms.errors.InvalidSignature if not.

        Everything but the key is a keyword (`verify(key_id, signature=sig, message=m)`): two byte strings in
        the wrong order would be a wrong signature, so a positional call is a TypeError instead."""
        if not isinstance(signature, bytes | bytearray | memoryview):
            raise TypeError(f"signature is bytes, not {type(signature).__name__}")
        alg, data, kind = self._sign_request(key_id, message, digest, algorithm)
        fmt = pb.SIGNATURE_FORMAT_P1363 if p1363 else pb.SIGNATURE_FORMAT_DER
        r = self._call(pb.Request(verify=pb.VerifyRequest(key_id=key_id, message=data, message_type=kind,
                                                          algorithm=alg, format=fmt, signature=signature,
                                                          key_version=key_version))).verify
        return bool(r.valid)

    @staticmethod
    def digest_for(algorithm: str | int, message: bytes) -> bytes:
        """The digest a DIGEST-type sign/verify expects for `algorithm` (a local convenience)."""
        alg = enum_value(pb.SigningAlgorithm, algorithm)
        if alg not in _DIGESTS:
            raise ValueError(f"{pb.SigningAlgorithm.Name(alg)} signs messages only")
        return hashlib.new(_DIGESTS[alg], message).digest()

    def generate_mac(self, key_id: str, message: bytes) -> MacResult:
        r = self._call(pb.Request(generate_mac=pb.GenerateMacRequest(key_id=key_id, message=message))).generate_mac
        return MacResult(r.key_id, r.key_version, bytes(r.mac))

    def verify_mac(self, key_id: str, message: bytes, mac: bytes, key_version: int = 0) -> bool:
        r = self._call(pb.Request(verify_mac=pb.VerifyMacRequest(key_id=key_id, message=message, mac=mac,
                                                                 key_version=key_version))).verify_mac
        return bool(r.valid)

    def generate_random(self, length: int) -> bytes:
        """1..1024 random bytes from the enclave's DRBG."""
        return bytes(self._call(pb.Request(generate_random=pb.GenerateRandomRequest(length=length))).generate_random
                     .random)

    # --- administration ---------------------------------------------------------------------------

    def init(self, recovery_public_keys: Iterable[bytes], threshold: int, admin_name: str = "admin", *,
             auditor_public_keys: Iterable[bytes] = (), audit_bodies_in_clear_insecure: bool = False) -> InitResult:
        """Initialize a fresh server: this client becomes the first admin; returns the encrypted recovery shares.

        Only for a client made with new_domain=True; the new domain is pinned afterwards (and saved in the
        client's state, e.g. next to its credentials).

        recovery_public_keys are raw 32-byte X25519 public keys; share i is encrypted to key i.
        auditor_public_keys (raw X25519, 1..8) are who can read what each audit record says (the enclave
        seals every record's body to them); the server refuses a domain without one, unless
        audit_bodies_in_clear_insecure, which leaves every body readable by the host (development only).
        """
        keys = tuple(bytes(k) for k in recovery_public_keys)
        if not keys or any(len(k) != 32 for k in keys):
            raise ValueError("recovery public keys are raw 32-byte X25519 keys (at least one)")
        if not 1 <= threshold <= len(keys):
            raise ValueError(f"threshold must be 1..{len(keys)}")
        self._check_creating("init")
        auditors = _auditor_keys(auditor_public_keys, allow_none=audit_bodies_in_clear_insecure)
        req = pb.InitRequest(admin_name=admin_name, recovery_public_keys=keys, threshold=threshold,
                             auditor_public_keys=auditors,
                             audit_bodies_in_clear_insecure=audit_bodies_in_clear_insecure)
        r = self._call(pb.Request(init=req)).init
        self._domain_established(bytes(r.domain_id))
        shares = tuple(RecoveryShare(s.index, s.share_x, bytes(s.ephemeral_public_key), bytes(s.ciphertext))
                       for s in r.shares)
        return InitResult(bytes(r.domain_id), bytes(r.admin_principal_id), shares, threshold, keys)

    def set_auditors(self, auditor_public_keys: Iterable[bytes]) -> list[bytes]:
        """Replace the domain's auditors (admins; raw X25519 keys, 1..8): audit records from the next one on are
        readable by these keys only. The change is audited; returns the auditors the domain now has."""
        req = pb.SetAuditorsRequest(auditor_public_keys=_auditor_keys(auditor_public_keys, allow_none=False))
        r = self._call(pb.Request(set_auditors=req)).auditors
        return [bytes(k) for k in r.auditor_public_keys]

    def add_principal(self, principal_id: bytes, name: str, role: str | int = "USER") -> list[Principal]:
        """Register a principal (admins); returns the principal list."""
        req = pb.AddPrincipalRequest(principal_id=principal_id, name=name, role=enum_value(pb.Role, role))
        r = self._call(pb.Request(add_principal=req)).principals
        return [Principal.from_pb(p) for p in r.principals]

    def remove_principal(self, principal_id: bytes) -> list[Principal]:
        """Remove a principal for good (admins): its role, grants and policy statements stop applying and
        its certificate is refused from then on (never re-added; issue new credentials instead). Not the
        last admin. Returns the remaining principals."""
        req = pb.RemovePrincipalRequest(principal_id=principal_id)
        r = self._call(pb.Request(remove_principal=req)).principals
        return [Principal.from_pb(p) for p in r.principals]

    def list_principals(self) -> list[Principal]:
        r = self._call(pb.Request(list_principals=pb.ListPrincipalsRequest())).principals
        return [Principal.from_pb(p) for p in r.principals]

    def recover(self, domain_id: bytes, shares: Iterable[tuple[int, bytes]]) -> list[Principal]:
        """Recombine the domain key on a fresh server from plain shares (share_x, 32 bytes), at least the threshold.

        Each share is opened offline by its holder (kms.client.recovery.open_share). The enclave
        installs the key only if it opens the stored domain state of domain_id; returns the principals.
        """
        plain = [pb.PlainShare(share_x=x, share=bytes(share)) for x, share in shares]
        if len(domain_id) != 16 or not plain or any(len(s.share) != 32 or not 1 <= s.share_x <= 255 for s in plain):
            raise ValueError("recover takes a 16-byte domain id and (share_x 1..255, 32-byte share) pairs")
        self._check_creating("recover")
        r = self._call(pb.Request(recover=pb.RecoverRequest(domain_id=domain_id, shares=plain)))
        self._domain_established(bytes(domain_id))
        return [Principal.from_pb(p) for p in r.principals.principals]

    def identity(self) -> Identity:
        """The enclave's own view of its identity and audit key (inside the session, so it is authenticated)."""
        return Identity.from_pb(self._call(pb.Request(get_identity=pb.GetIdentityRequest())).get_identity)


MAX_AUDITORS = 8


def _auditor_keys(keys: Iterable[bytes], *, allow_none: bool) -> tuple[bytes, ...]:
    out = tuple(bytes(k) for k in keys)
    if any(len(k) != 32 for k in out) or len(set(out)) != len(out) or len(out) > MAX_AUDITORS:
        raise ValueError(f"auditor public keys are distinct raw 32-byte X25519 keys, at most {MAX_AUDITORS}")
    if allow_none and out:
        raise ValueError("audit bodies in clear (insecure) is the choice of a domain without auditors")
    if not out and not allow_none:
        raise ValueError("give at least one auditor public key: without one nobody could read the audit log")
    return out
