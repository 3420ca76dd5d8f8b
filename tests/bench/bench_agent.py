"""Benchmark: Encrypt 1 KiB and Sign through `kms agent`'s unary gRPC (unix socket) next to the same calls
through the Python SDK directly, against the real `kms serve` over loopback, in the same run.

Run: `./dev bench` or `.venv/bin/python -m tests.bench.bench_agent [--seconds S] [--concurrency C]`.
C threads per row, each with its own SDK session (SDK rows) or its own gRPC channel to the agent (agent rows,
which share the agent's one session per server); one call in flight per thread. The agent rows add a gRPC hop
on the unix socket, the agent's uid gate and its relay. Figures depend on the machine (2 shared cores here:
client, agent and server compete): compare the rows of one run.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import grpc

from kms.attestation import AttestationPolicy, TrustAnchor
from kms.client import Credentials, KmsClient
from kms.client.state import ClientState
from kms.proto.agent.v1 import agent_pb2_grpc
from kms.proto.enclave.v1 import boundary_pb2 as pb
from tests.bench.bench_kms_ops import _phase

PLAINTEXT = 1024
MESSAGE = 32


def main(argv: list[str] | None = None) -> int:
    from tests.agent.harness import AgentProcess, init_domain
    from tests.e2e.server import ServerProcess

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per row (default 3)")
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--concurrency", type=int, default=4, help="threads per row (default 4)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(Path(tmp) / "data", "--housekeeping-interval-s=0", log_level="info")
        agent = sdk = channels = None
        try:
            env = init_domain(server, Path(tmp) / "work")
            agent = AgentProcess(env, Path(tmp) / "agent.sock", "--log-level=info")
            creds = Credentials.load(Path(tmp) / "work" / "admin")
            domain = bytes.fromhex(agent.info["domain_id"])
            policy = AttestationPolicy.build(mrsigner=server.mrsigner, allow_simulation_insecure=True)
            anchor = TrustAnchor.load(server.root_pem.read_bytes(), simulated=True)
            sdk = [KmsClient(server.api, credentials=creds, policy=policy, trust_anchor=anchor, domain_id=domain,
                             state=ClientState(domain_id=domain)) for _ in range(args.concurrency)]
            channels = [grpc.insecure_channel(agent.target) for _ in range(args.concurrency)]
            stubs = [agent_pb2_grpc.KmsAgentStub(c) for c in channels]
            aes, p256 = sdk[0].create_key().key_id, sdk[0].create_key("ECC_NIST_P256").key_id
            data, message = os.urandom(PLAINTEXT), os.urandom(MESSAGE)
            enc = pb.EncryptRequest(key_id=aes, plaintext=data)
            sig = pb.SignRequest(key_id=p256, message=message, algorithm=pb.ECDSA_SHA_256)
            rows = [
                ("Python SDK", "Encrypt 1 KiB", sdk, lambda c: c.encrypt(aes, data)),
                ("agent gRPC", "Encrypt 1 KiB", stubs, lambda s: s.Encrypt(enc, timeout=30)),
                ("Python SDK", "Sign P-256 (32 B)", sdk, lambda c: c.sign(p256, message, algorithm="ECDSA_SHA_256")),
                ("agent gRPC", "Sign P-256 (32 B)", stubs, lambda s: s.Sign(sig, timeout=30)),
            ]
            print(f"kms serve over loopback; {args.concurrency} threads per row, one call in flight each; "
                  f"{args.seconds:g} s per row; {os.cpu_count()} CPUs shared by client, agent and server")
            print(f"{'path':12} {'operation':20} {'ops/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
            for path, name, targets, fn in rows:
                ops, p50, p99 = _phase(targets, fn, args.seconds, args.warmup)
                print(f"{path:12} {name:20} {ops:8.0f} {p50:8.2f} {p99:8.2f}", flush=True)
        finally:
            for c in channels or ():
                c.close()
            for c in sdk or ():
                c.close()
            if agent is not None:
                agent.stop()
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
