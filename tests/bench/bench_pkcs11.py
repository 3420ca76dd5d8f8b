"""Benchmark: Encrypt 1 KiB and Sign through the PKCS#11 module (python-pkcs11 -> libkms_pkcs11.so -> `kms agent`'s
local socket -> the agent's attested session) next to the same calls through the Python SDK directly, against the
real `kms serve` over loopback, in the same run.

Run: `./dev bench` or `.venv/bin/python -m tests.bench.bench_pkcs11 [--seconds S] [--concurrency C]`.
C threads per row, each with its own SDK session (SDK rows) or its own PKCS#11 session (module rows: the module
pools up to 8 connections to the agent, which shares one session per server); one call in flight per thread.
Encrypt is CKM_AES_GCM (the KMS envelope, same enclave operation as the SDK's encrypt); Sign is CKM_ECDSA_SHA256
over 32 bytes (hashed in the module, DIGEST to the enclave) against the SDK's ECDSA_SHA_256 over the same 32 bytes.
The module rows add python-pkcs11, the framed protocol, the agent's uid gate and its relay. Figures depend on the
machine (2 shared cores here: client, agent and server compete): compare the rows of one run.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    import pkcs11
    from pkcs11 import Attribute, Mechanism, ObjectClass
    from pkcs11.mechanisms import GCMParams

    from kms.attestation import AttestationPolicy, TrustAnchor
    from kms.client import Credentials, KmsClient
    from kms.client.state import ClientState
    from tests.bench.bench_kms_ops import _phase
    from tests.pkcs11.harness import MODULE, PIN, start_token

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per row (default 3)")
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--concurrency", type=int, default=4, help="threads per row (default 4)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        token = start_token(Path(tmp))
        sdk, sessions = [], []
        try:
            server = token.server
            creds = Credentials.load(token.work / "admin")
            domain = bytes.fromhex(token.agent.info["domain_id"])
            policy = AttestationPolicy.build(mrsigner=server.mrsigner, allow_simulation_insecure=True)
            anchor = TrustAnchor.load(server.root_pem.read_bytes(), simulated=True)
            sdk = [KmsClient(server.api, credentials=creds, policy=policy, trust_anchor=anchor, domain_id=domain,
                             state=ClientState(domain_id=domain)) for _ in range(args.concurrency)]
            aes, p256 = sdk[0].create_key().key_id, sdk[0].create_key("ECC_NIST_P256").key_id
            os.environ["KMS_PKCS11_SOCKET"] = token.socket
            slot_token = pkcs11.lib(str(MODULE)).get_token(token_label="Enclave KMS")
            # the login is token-wide in PKCS#11: the first session logs in, the others share it
            sessions = [slot_token.open(user_pin=PIN if i == 0 else None) for i in range(args.concurrency)]

            def keys(s):
                return (s.get_key(object_class=ObjectClass.SECRET_KEY, id=aes.encode()),
                        s.get_key(object_class=ObjectClass.PRIVATE_KEY, id=p256.encode()))

            p11 = [keys(s) for s in sessions]
            assert all(k[0][Attribute.ID] == aes.encode() for k in p11)
            data, message, gcm = os.urandom(1024), os.urandom(32), GCMParams(b"", None, 128)
            rows = [
                ("Python SDK", "Encrypt 1 KiB", sdk, lambda c: c.encrypt(aes, data)),
                ("PKCS#11", "Encrypt 1 KiB", p11,
                 lambda k: k[0].encrypt(data, mechanism=Mechanism.AES_GCM, mechanism_param=gcm)),
                ("Python SDK", "Sign P-256 (32 B)", sdk, lambda c: c.sign(p256, message, algorithm="ECDSA_SHA_256")),
                ("PKCS#11", "Sign P-256 (32 B)", p11, lambda k: k[1].sign(message, mechanism=Mechanism.ECDSA_SHA256)),
            ]
            print(f"kms serve over loopback; {args.concurrency} threads per row, one call in flight each; "
                  f"{args.seconds:g} s per row; {os.cpu_count()} CPUs shared by client, agent and server")
            print(f"{'path':12} {'operation':20} {'ops/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
            for path, name, targets, fn in rows:
                ops, p50, p99 = _phase(targets, fn, args.seconds, args.warmup)
                print(f"{path:12} {name:20} {ops:8.0f} {p50:8.2f} {p99:8.2f}", flush=True)
        finally:
            for s in sessions:
                s.close()
            for c in sdk:
                c.close()
            token.stop()
    return 0


if __name__ == "__main__":
    from kms.enclave.runtime import ensure_static_tls

    ensure_static_tls()
    raise SystemExit(main())
