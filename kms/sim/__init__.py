"""Simulated SGX platform services (PKI, quoting enclave, collateral, PCCS): stand-ins for Intel's, NOT secure."""

from kms.sim.collateral import SimCollateral, build_collateral
from kms.sim.errors import (
    ReportError,
    ReportMacError,
    RootSecretError,
    SimError,
    SimProvisioningError,
    SimSettingError,
)
from kms.sim.levels import QE_LEVELS, TCB_LEVELS, SimTcbLevel
from kms.sim.pccs import PccsServer, serve
from kms.sim.platform import SimPlatform, read_cpusvn
from kms.sim.qe import SimQuotingEnclave

__all__ = [
    "QE_LEVELS", "TCB_LEVELS", "PccsServer", "ReportError", "ReportMacError", "RootSecretError", "SimCollateral",
    "SimError", "SimPlatform", "SimProvisioningError", "SimQuotingEnclave", "SimSettingError",
    "SimTcbLevel", "build_collateral", "read_cpusvn", "serve",
]
