"""One enclave on one data directory: load it, and reload (or create) its sealed domain key.

The sealed domain key is written atomically and fsync'd before the enclave uses it, so a
crash never leaves an enclave working with a key the disk does not hold.
"""

from __future__ import annotations

import os
from pathlib import Path

from kms.enclave.bridge import Enclave, RecordStore
from kms.proto.enclave.v1 import boundary_pb2 as pb

SEALED_DOMAIN_KEY = "domain-key.sealed"


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write, fsync, rename, fsync the directory: the file is either old or new, never torn."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def open_node(data_dir: Path | str, *, store: RecordStore | None = None, create: bool = True,
              **enclave_args: object) -> Enclave:
    """Load the enclave on data_dir and its domain key (generated and sealed on first start if create)."""
    data = Path(data_dir)
    enclave = Enclave(data, store=store, **enclave_args)  # type: ignore[arg-type]
    try:
        sealed = data / SEALED_DOMAIN_KEY
        if sealed.exists():
            enclave.call(pb.Request(load_domain_key=pb.LoadDomainKeyRequest(sealed_domain_key=sealed.read_bytes())))
        elif create:
            r = enclave.call(pb.Request(generate_domain_key=pb.GenerateDomainKeyRequest()))
            write_atomic(sealed, r.generate_domain_key.sealed_domain_key)
    except BaseException:
        enclave.close()
        raise
    return enclave
