"""Shared fixtures: the real enclave build (through `make`), a loaded enclave with an in-memory
record store, and access to ../shared/vectors (skip without it, fail under CI=true)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

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


@pytest.fixture(scope="session")
def build() -> Path:
    """Build the enclave, its SIGSTRUCT, the simulated CPU and the bridge (no-op when fresh)."""
    subprocess.run(["make", "-s", "all"], cwd=REPO, check=True)
    return REPO / "build"


class MemoryStore(dict[str, bytes]):
    """The host's record store for tests: key id -> encrypted record blob."""

    def apply(self, response: object) -> None:
        """Persist a RecordWrite when the response carries one (what the service will do)."""
        if response.HasField("record_write"):  # type: ignore[attr-defined]
            w = response.record_write  # type: ignore[attr-defined]
            self[w.key_id] = w.blob


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def enclave(build: Path, tmp_path: Path, store: MemoryStore) -> Iterator[object]:
    """A fresh platform directory, a loaded enclave with a generated domain key."""
    from kms.enclave.bridge import Enclave
    from kms.proto.enclave.v1 import boundary_pb2 as pb

    with Enclave(tmp_path / "data", store=store.get) as e:
        e.call(pb.Request(generate_domain_key=pb.GenerateDomainKeyRequest()))
        yield e
