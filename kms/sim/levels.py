"""The simulated TCB: platform TCB levels (TCB Info v3) and QE levels (QE Identity), newest first."""

from __future__ import annotations

from dataclasses import dataclass

from kms.sim.errors import SimSettingError

# The simulated CPU's default CPUSVN (enclave/platform/sim/simcpu.c k_default_cpusvn). With TCB
# type 0, TCB component i+1 is CPUSVN byte i, so this is also the UpToDate level's components.
DEFAULT_CPUSVN = bytes.fromhex("0f0f0204ff8006000000000000000000")
DEFAULT_PCESVN = 13
DEFAULT_QE_ISVSVN = 8
TCB_EVALUATION_DATA_NUMBER = 19


@dataclass(frozen=True)
class SimTcbLevel:
    """One platform TCB level: the CPUSVN and PCESVN that reach it, its status and advisories."""

    status: str
    cpusvn: bytes
    pcesvn: int
    tcb_date: str
    advisory_ids: tuple[str, ...] = ()

    @property
    def components(self) -> tuple[int, ...]:
        return tuple(self.cpusvn)


def _cpusvn(first: int) -> bytes:
    """The default CPUSVN with its first two components (microcode) set to `first`."""
    return bytes([first, first]) + DEFAULT_CPUSVN[2:]


# Each level lowers components 1-2 below the previous one, so a platform set to a level's exact
# SVNs matches that level first. Advisory IDs are real Intel IDs, used here as plausible labels.
TCB_LEVELS: tuple[SimTcbLevel, ...] = (
    SimTcbLevel("UpToDate", DEFAULT_CPUSVN, DEFAULT_PCESVN, "2025-05-14T00:00:00Z"),
    SimTcbLevel("SWHardeningNeeded", _cpusvn(14), 13, "2024-11-13T00:00:00Z", ("INTEL-SA-00615",)),
    SimTcbLevel("ConfigurationNeeded", _cpusvn(13), 13, "2024-11-13T00:00:00Z", ("INTEL-SA-00289",)),
    SimTcbLevel("ConfigurationAndSWHardeningNeeded", _cpusvn(12), 13, "2024-03-13T00:00:00Z",
                ("INTEL-SA-00289", "INTEL-SA-00615")),
    SimTcbLevel("OutOfDate", _cpusvn(11), 11, "2023-02-15T00:00:00Z",
                ("INTEL-SA-00828", "INTEL-SA-00615")),
    SimTcbLevel("OutOfDateConfigurationNeeded", _cpusvn(10), 10, "2023-02-15T00:00:00Z",
                ("INTEL-SA-00289", "INTEL-SA-00828", "INTEL-SA-00615")),
    SimTcbLevel("Revoked", _cpusvn(5), 5, "2019-11-13T00:00:00Z", ("INTEL-SA-00233",)),
)


@dataclass(frozen=True)
class SimQeLevel:
    """One QE Identity TCB level: the lowest QE ISVSVN that reaches it."""

    isvsvn: int
    status: str
    tcb_date: str
    advisory_ids: tuple[str, ...] = ()


QE_LEVELS: tuple[SimQeLevel, ...] = (
    SimQeLevel(8, "UpToDate", "2024-03-13T00:00:00Z"),
    SimQeLevel(6, "OutOfDate", "2021-11-10T00:00:00Z", ("INTEL-SA-00615",)),
    SimQeLevel(4, "OutOfDate", "2019-11-13T00:00:00Z", ("INTEL-SA-00334", "INTEL-SA-00615")),
    SimQeLevel(2, "Revoked", "2019-05-15T00:00:00Z", ("INTEL-SA-00219", "INTEL-SA-00334", "INTEL-SA-00615")),
)


def tcb_level(name: str) -> SimTcbLevel:
    """The level whose status is `name` (case-insensitive)."""
    for level in TCB_LEVELS:
        if level.status.lower() == name.lower():
            return level
    known = ", ".join(level.status for level in TCB_LEVELS)
    raise SimSettingError(f"unknown TCB level {name!r} (known: {known})")


def level_of(cpusvn: bytes, pcesvn: int) -> SimTcbLevel | None:
    """The first level the SVNs reach, as a verifier would match them (None: below every level)."""
    for level in TCB_LEVELS:
        if pcesvn >= level.pcesvn and all(c >= r for c, r in zip(cpusvn, level.cpusvn, strict=True)):
            return level
    return None
