"""Typed errors of the simulated platform services."""

from __future__ import annotations


class SimError(Exception):
    """Base class of every error raised by kms.sim."""


class SimProvisioningError(SimError):
    """The simulated platform's files are missing, unreadable, malformed or too permissive."""


class RootSecretError(SimProvisioningError):
    """<data>/sgx-sim/root.secret (the simulated fuses) is missing or malformed."""


class SimSettingError(SimError, ValueError):
    """An unknown TCB level, CA type, CRL name, CPUSVN or SVN value."""


class ReportError(SimError, ValueError):
    """A REPORT handed to the simulated quoting enclave is malformed."""


class ReportMacError(ReportError):
    """The REPORT's MAC does not verify under the QE's report key: not made on this platform for this QE."""
