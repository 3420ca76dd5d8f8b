"""`kms serve`: start the enclave on the data directory and report its identity.

Until the gRPC front end exists (the service issue) this is the service's whole start-up:
load the signed enclave on the simulated platform, unseal (or create) the domain key, run a
self-check through the real ECALL path, print the identity, and exit.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from kms.errors import KmsError

if TYPE_CHECKING:
    from kms.enclave.bridge import Enclave


def register(parser: argparse.ArgumentParser) -> None:
    """Add the serve flags to its parser."""
    parser.add_argument("--data-dir", default="data", help="data directory (sealed state, simulated platform)")
    parser.add_argument("--output", choices=("table", "json"), default="table")
    parser.set_defaults(func=run)


def _self_check(enclave: Enclave) -> None:
    """Create a throw-away key (its record kept in memory only), encrypt and decrypt through the ECALL path."""
    from kms.proto.enclave.v1 import boundary_pb2 as pb

    r = enclave.call(pb.Request(create_key=pb.CreateKeyRequest(spec=pb.SYMMETRIC_DEFAULT, usage=pb.ENCRYPT_DECRYPT)))
    ct = enclave.call(pb.Request(encrypt=pb.EncryptRequest(key_id=r.key_metadata.key_id, plaintext=b"self-check")))
    pt = enclave.call(pb.Request(decrypt=pb.DecryptRequest(ciphertext=ct.encrypt.ciphertext)))
    if pt.decrypt.plaintext != b"self-check":
        raise KmsError("self-check: decrypt did not return the plaintext")


def run(args: argparse.Namespace) -> int:
    """Start, check and describe the enclave; 0 on success, 2 when the enclave refuses."""
    from kms.enclave.node import open_node

    from kms.enclave.bridge import MemoryStore

    try:
        with open_node(args.data_dir, store=MemoryStore()) as enclave:
            ident = enclave.identity()
            _self_check(enclave)
    except KmsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    info = {
        "mrenclave": ident.mrenclave.hex(), "mrsigner": ident.mrsigner.hex(),
        "isv_prod_id": ident.isv_prod_id, "isv_svn": ident.isv_svn, "debug": ident.debug,
        "simulated": ident.simulated, "domain_id": ident.domain_id.hex(), "enclave_version": ident.version,
        "self_check": "ok",
    }
    if ident.simulated:
        print("WARNING: simulated SGX platform: keys are NOT protected (development and CI only)", file=sys.stderr)
    if args.output == "json":
        print(json.dumps(info, indent=2))
    else:
        for k, v in info.items():
            print(f"{k:16} {v}")
        print("\nThe enclave is ready. The gRPC front end arrives with the service issue; until then")
        print("`kms serve` starts, checks and describes the enclave, then exits.")
    return 0
