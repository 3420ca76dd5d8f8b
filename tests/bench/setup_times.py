"""Session set-up, stage by stage, timed by whichever `kms` package is first on the path.

`tests.bench.bench_service` runs this file as a script twice: with this tree's `kms` and with the reference
revision's (`make reference`: build/reference/src on PYTHONPATH), each against its own `kms serve`, so before
and after are timed by the same code in one run. It uses only what both trees have (the SDK's transport, its
TLS channel, verify_evidence, KmsClient) and imports nothing from tests/. stdin: a JSON spec (api,
collateral_url, cert, key, mrsigner, root, n); stdout: JSON {stage: [seconds, ...]}.
"""

from __future__ import annotations

import json
import sys
import time

from kms.attestation import AttestationPolicy, PccsClient, TrustAnchor
from kms.client import Credentials, KmsClient
from kms.client.channel import SessionChannel
from kms.client.evidence import CollateralSources, verify_evidence
from kms.client.transport import SessionStream, fetch_evidence, open_channel
from kms.proto.enclave.v1 import boundary_pb2 as pb
from kms.proto.v1 import kms_pb2_grpc

STAGES = ("GetEvidence", "verify (cached collateral)", "TLS handshake + identity probe", "sum of the three",
          "KmsClient() (connect)", "KmsClient() + close()")


def setup_times(spec: dict[str, object]) -> dict[str, list[float]]:
    creds = Credentials(str(spec["cert"]).encode(), str(spec["key"]).encode())
    policy = AttestationPolicy.build(mrsigner=str(spec["mrsigner"]), allow_simulation_insecure=True)
    anchor = TrustAnchor.load(str(spec["root"]).encode(), simulated=True)
    pccs = PccsClient(str(spec["collateral_url"]))
    sources = CollateralSources(pccs)
    api = str(spec["api"])
    times: dict[str, list[float]] = {stage: [] for stage in STAGES}
    channel = open_channel(api)
    stub = kms_pb2_grpc.KeyManagementServiceStub(channel)
    for _ in range(2):  # warm: the collateral fetched, the first connections made
        verify_evidence(fetch_evidence(stub, 10), policy, trust_anchor=anchor, collateral=sources)
        KmsClient(api, credentials=creds, policy=policy, trust_anchor=anchor, collateral=pccs).close()
    for _ in range(int(str(spec["n"]))):
        t0 = time.perf_counter()
        evidence = fetch_evidence(stub, 10)
        t1 = time.perf_counter()
        verified = verify_evidence(evidence, policy, trust_anchor=anchor, collateral=sources)
        t2 = time.perf_counter()
        stream = SessionStream(stub)
        session = SessionChannel(stream.exchange, creds, verified.certificate)
        session.call(pb.Request(get_identity=pb.GetIdentityRequest()))  # the freshness probe's round trip
        t3 = time.perf_counter()
        session.close()
        stream.close()
        for stage, value in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t3 - t0), strict=False):
            times[stage].append(value)
        t4 = time.perf_counter()
        client = KmsClient(api, credentials=creds, policy=policy, trust_anchor=anchor, collateral=pccs)
        t5 = time.perf_counter()
        client.close()
        times["KmsClient() (connect)"].append(t5 - t4)
        times["KmsClient() + close()"].append(time.perf_counter() - t4)
    channel.close()
    return times


if __name__ == "__main__":
    json.dump(setup_times(json.load(sys.stdin)), sys.stdout)
