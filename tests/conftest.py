"""Shared fixtures: the real enclave build (through `make`), a loaded enclave with an in-memory
record store, and access to ../shared/vectors (skip without it, fail under CI=true)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

# Enclave images need static TLS that glibc sizes at process start: tests/static_tls.py (loaded
# with -p before output capture starts) re-executes pytest with it when the environment lacks it.

REPO = Path(__file__).resolve().parents[1]
VECTORS = REPO.parent / "shared" / "vectors"


def vectors_dir(*parts: str) -> Path:
    """A directory under ../shared/vectors; skips when absent, fails when CI=true."""
    path = VECTORS.joinpath(*parts)
    if not path.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"test vectors missing under CI: {path}")
        pytest.skip(f"test vectors not present: {path} (they live in ../shared/vectors)")
    return path


@pytest.fixture(scope="session", autouse=True)
def kms_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A KMS home of the test run's own (KMS_HOME, and XDG_CONFIG_HOME for subprocesses started with the
    KMS_ variables stripped), so that nothing a test runs writes to the user's ~/.config/kms; subprocesses
    inherit both. Tests that care make their own."""
    home = tmp_path_factory.mktemp("kms-home")
    names = ("KMS_HOME", "XDG_CONFIG_HOME")
    old = {name: os.environ.get(name) for name in names}
    os.environ["KMS_HOME"] = str(home)
    os.environ["XDG_CONFIG_HOME"] = str(home / "xdg")
    yield home
    for name, value in old.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def pg_cluster():
    """A throwaway PostgreSQL cluster for the session (tests/pg.py); skips without Debian's postgresql,
    fails when CI=true."""
    from tests.pg import PgCluster, pg_bin

    bin_dir = pg_bin()
    if bin_dir is None:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL is missing under CI: install Debian's postgresql (./dev setup does as root)")
        pytest.skip("PostgreSQL is not installed (Debian's postgresql; ./dev setup installs it as root)")
    cluster = PgCluster(bin_dir)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def build() -> Path:
    """Build the enclave, its SIGSTRUCT, the simulated CPU and the bridge (no-op when fresh)."""
    subprocess.run(["make", "-s", "all"], cwd=REPO, check=True)
    return REPO / "build"


@pytest.fixture
def store():
    """The host's record store for tests (in memory, conditional writes like the real one)."""
    from kms.enclave.bridge import MemoryStore

    return MemoryStore()


@pytest.fixture
def enclave(build: Path, tmp_path: Path, store) -> Iterator[object]:
    """A fresh platform directory, a loaded enclave with a generated domain key."""
    from kms.enclave.bridge import Enclave
    from kms.proto.enclave.v1 import boundary_pb2 as pb

    with Enclave(tmp_path / "data", store=store) as e:
        e.call(pb.Request(generate_domain_key=pb.GenerateDomainKeyRequest()))
        yield e
