"""requirements.lock, which ./dev installs with --require-hashes, pins every dependency pyproject.toml names (the
service's and the test extra's) to one exact version inside pyproject's range, each with its sha256 hashes, and
pins nothing without them. A dependency added to pyproject.toml without `./dev lock` fails here."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s\\]+)")


def locked() -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) from requirements.lock."""
    out: dict[str, tuple[str, int]] = {}
    name = None
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        match = PIN.match(line)
        if match:
            name = canonicalize_name(match.group(1))
            out[name] = (match.group(2), 0)
        elif name and line.strip().startswith("--hash=sha256:"):
            assert re.fullmatch(r"--hash=sha256:[0-9a-f]{64}( \\)?", line.strip()), line
            out[name] = (out[name][0], out[name][1] + 1)
        elif line and not line.startswith(("#", "    #")):
            raise AssertionError(f"unexpected line in requirements.lock: {line!r}")
    return out


def declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    build = project["build-system"]["requires"]
    return [Requirement(r) for r in [*project["project"]["dependencies"],
                                     *project["project"]["optional-dependencies"]["test"], *build]]


def test_every_declared_dependency_is_pinned_in_range_with_hashes() -> None:
    lock = locked()
    for req in declared():
        name = canonicalize_name(req.name)
        assert name in lock, f"{req.name} is in pyproject.toml but not in requirements.lock: run ./dev lock"
        version, hashes = lock[name]
        assert req.specifier.contains(version, prereleases=True), f"{req.name}=={version} is outside {req.specifier}"
        assert hashes >= 1, req.name


def test_every_pin_has_hashes_and_nothing_is_fetched_by_url() -> None:
    lock = locked()
    assert len(lock) > 20 and all(hashes >= 1 for _, hashes in lock.values()), lock
    text = (ROOT / "requirements.lock").read_text()
    assert "--index-url" not in text and "--find-links" not in text and "://" not in text
