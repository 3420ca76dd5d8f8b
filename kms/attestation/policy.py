"""AttestationPolicy: which verified enclaves and platforms a client accepts."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields

from kms.attestation.chain import iso
from kms.attestation.errors import CollateralExpiredError, NotYetValidError, PolicyError, Step
from kms.attestation.quote import ATTR_DEBUG, ATTR_EINITTOKEN_KEY, ATTR_PROVISIONKEY
from kms.attestation.result import EnclaveIdentity, SignedQuote, VerifiedQuote
from kms.attestation.tcb import TcbStatus

OUT_OF_DATE_STATUSES = frozenset({TcbStatus.OUT_OF_DATE, TcbStatus.OUT_OF_DATE_CONFIGURATION_NEEDED})


def _hex(value: bytes) -> str:
    return value.hex()


@dataclass(frozen=True)
class AttestationPolicy:
    """Accepted identities and platform states. Every relaxation is named `*_insecure` and off.

    - mrenclaves: accepted MRENCLAVE values (any one matches); mrsigner: the required MRSIGNER.
      At least one of them is required unless allow_any_enclave_insecure.
    - isvprodid: required ISVPRODID; min_isvsvn: lowest accepted ISVSVN.
    - allowed_tcb_statuses: converged TCB statuses accepted (default UpToDate only). OutOfDate*
      also need allow_outdated_tcb_insecure; Revoked can never be allowed.
    - report_data: expected REPORTDATA, zero-padded to 64 bytes (exact match).
    - DEBUG enclaves, expired collateral and simulated platforms are refused unless the
      matching `allow_*_insecure` flag is set. Collateral that is not yet valid is always refused.
    """

    mrenclaves: frozenset[bytes] = field(default_factory=frozenset)
    mrsigner: bytes | None = None
    isvprodid: int | None = None
    min_isvsvn: int = 0
    allowed_tcb_statuses: frozenset[TcbStatus] = frozenset({TcbStatus.UP_TO_DATE})
    report_data: bytes | None = None
    allow_debug_insecure: bool = False
    allow_expired_collateral_insecure: bool = False
    allow_outdated_tcb_insecure: bool = False
    allow_any_enclave_insecure: bool = False
    allow_simulation_insecure: bool = False

    def __post_init__(self) -> None:
        mrenclaves = frozenset(bytes(m) for m in self.mrenclaves)
        statuses = frozenset(TcbStatus(s) for s in self.allowed_tcb_statuses)
        object.__setattr__(self, "mrenclaves", mrenclaves)
        object.__setattr__(self, "allowed_tcb_statuses", statuses)
        if any(len(m) != 32 for m in mrenclaves) or (self.mrsigner is not None and len(self.mrsigner) != 32):
            raise ValueError("MRENCLAVE and MRSIGNER values are 32 bytes")
        if not mrenclaves and self.mrsigner is None and not self.allow_any_enclave_insecure:
            raise ValueError("pin MRENCLAVE and/or MRSIGNER, or set allow_any_enclave_insecure")
        if self.isvprodid is not None and not 0 <= self.isvprodid <= 0xFFFF:
            raise ValueError("ISVPRODID is a 16-bit value")
        if not 0 <= self.min_isvsvn <= 0xFFFF:
            raise ValueError("ISVSVN is a 16-bit value")
        if self.report_data is not None and len(self.report_data) > 64:
            raise ValueError("REPORTDATA is at most 64 bytes")
        if not statuses:
            raise ValueError("allowed_tcb_statuses is empty")
        if TcbStatus.REVOKED in statuses:
            raise ValueError("a Revoked TCB can never be accepted")
        if statuses & OUT_OF_DATE_STATUSES and not self.allow_outdated_tcb_insecure:
            raise ValueError("accepting an OutOfDate TCB requires allow_outdated_tcb_insecure")

    @classmethod
    def build(
        cls,
        *,
        mrenclave: str | bytes | Iterable[str | bytes] | None = None,
        mrsigner: str | bytes | None = None,
        allowed_tcb_statuses: Iterable[str | TcbStatus] = (TcbStatus.UP_TO_DATE,),
        report_data: str | bytes | None = None,
        **kwargs: object,
    ) -> AttestationPolicy:
        """Convenience constructor that accepts hex strings and single values."""

        def raw(value: str | bytes) -> bytes:
            return bytes.fromhex(value) if isinstance(value, str) else bytes(value)

        if mrenclave is None:
            mrenclaves: frozenset[bytes] = frozenset()
        elif isinstance(mrenclave, (str, bytes)):
            mrenclaves = frozenset({raw(mrenclave)})
        else:
            mrenclaves = frozenset(raw(m) for m in mrenclave)
        return cls(
            mrenclaves=mrenclaves,
            mrsigner=None if mrsigner is None else raw(mrsigner),
            allowed_tcb_statuses=frozenset(TcbStatus(s) for s in allowed_tcb_statuses),
            report_data=None if report_data is None else raw(report_data),
            **kwargs,  # type: ignore[arg-type]
        )

    def evaluate(self, checked: VerifiedQuote) -> None:
        """Raise the first policy failure of evidence whose signatures and TCB were evaluated. The validity
        window of the collateral comes last, so that its message says "all other checks passed" only when
        they did: the enclave, the TCB status and REPORTDATA, in that order, then not-yet-valid (never
        relaxed) and expired (unless allow_expired_collateral_insecure) collateral."""
        self._enclave(checked.identity, checked.simulated)
        if checked.tcb_status not in self.allowed_tcb_statuses:
            allowed = ", ".join(sorted(s.value for s in self.allowed_tcb_statuses))
            raise PolicyError(Step.POLICY_TCB_STATUS,
                              f"TCB status {checked.tcb_status.value} is not accepted (accepted: {allowed}; "
                              f"advisories: {', '.join(checked.advisory_ids) or 'none'})")
        self._report_data(checked.identity)
        self._validity_window(checked)

    def evaluate_without_tcb(self, signed: SignedQuote) -> None:
        """The checks that need no collateral (the enclave and REPORTDATA) of a quote verified without it.
        Passing them is NOT an acceptance: the caller still refuses (TcbNotEvaluatedError)."""
        self._enclave(signed.identity, signed.simulated)
        self._report_data(signed.identity)

    def _enclave(self, ident: EnclaveIdentity, simulated: bool) -> None:
        if simulated and not self.allow_simulation_insecure:
            raise PolicyError(Step.POLICY_SIMULATION,
                              "evidence from a simulated SGX platform gives no protection; "
                              "refused unless allow_simulation_insecure")
        self._attributes(ident)
        if self.mrenclaves and ident.mrenclave not in self.mrenclaves:
            raise PolicyError(Step.POLICY_MRENCLAVE,
                              f"MRENCLAVE {_hex(ident.mrenclave)} is not an accepted value")
        if self.mrsigner is not None and ident.mrsigner != self.mrsigner:
            raise PolicyError(Step.POLICY_MRSIGNER,
                              f"MRSIGNER {_hex(ident.mrsigner)} is not {_hex(self.mrsigner)}")
        if self.isvprodid is not None and ident.isvprodid != self.isvprodid:
            raise PolicyError(Step.POLICY_ISVPRODID, f"ISVPRODID {ident.isvprodid} is not {self.isvprodid}")
        if ident.isvsvn < self.min_isvsvn:
            raise PolicyError(Step.POLICY_ISVSVN, f"ISVSVN {ident.isvsvn} is below the minimum {self.min_isvsvn}")

    def _report_data(self, ident: EnclaveIdentity) -> None:
        if self.report_data is not None:
            expected = self.report_data.ljust(64, b"\x00")
            if ident.report_data != expected:
                raise PolicyError(Step.POLICY_REPORT_DATA,
                                  f"REPORTDATA {_hex(ident.report_data)} is not the expected {_hex(expected)}")

    def _validity_window(self, checked: VerifiedQuote) -> None:
        expired = (f"collateral expired at {iso(checked.collateral_expiry)} ({checked.collateral_expiry_source})"
                   if checked.collateral_expired else "")
        if checked.collateral_not_yet_valid:
            assert checked.collateral_valid_from is not None
            also = f", and {expired}" if expired else ""
            raise NotYetValidError(
                f"collateral is not valid before {iso(checked.collateral_valid_from)} "
                f"({checked.collateral_valid_from_source}){also}; all other checks passed")
        if expired and not self.allow_expired_collateral_insecure:
            raise CollateralExpiredError(f"{expired}; all other checks passed")

    def _attributes(self, ident: EnclaveIdentity) -> None:
        # INIT is not checked: EREPORT runs only in an initialized enclave, so a genuine QE never
        # signs a report without it. PROVISIONKEY/EINITTOKEN_KEY belong to Intel's architectural
        # enclaves, never to an application.
        flags = ident.flags
        if flags & ATTR_DEBUG and not self.allow_debug_insecure:
            raise PolicyError(Step.POLICY_ATTRIBUTES,
                              "enclave runs in DEBUG mode (its memory is readable by the host); "
                              "refused unless allow_debug_insecure")
        if flags & (ATTR_PROVISIONKEY | ATTR_EINITTOKEN_KEY):
            raise PolicyError(Step.POLICY_ATTRIBUTES,
                              f"enclave attributes 0x{flags:x} grant PROVISIONKEY or EINITTOKEN_KEY")


# The policy's relaxations, in declaration order: the flag, TOML and environment names derive from these.
RELAXATIONS: tuple[str, ...] = tuple(f.name for f in fields(AttestationPolicy)
                                     if f.name.startswith("allow_") and f.name.endswith("_insecure"))
