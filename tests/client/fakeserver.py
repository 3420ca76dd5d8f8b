"""A minimal in-process KeyManagementService over the real enclave (test double of `kms serve` for SDK tests).

It relays Session frames to the enclave's session ECALLs exactly as the real front end must
(one answer per client frame, ABORTED on a TLS failure), serves evidence with the simulated
PCCS's URL, counts RPCs and can inject transport faults.
"""

from __future__ import annotations

import threading
from concurrent import futures
from pathlib import Path

import grpc

from kms.enclave.bridge import Enclave, MemoryStore
from kms.errors import E, KmsError, NotInitialized
from kms.proto.enclave.v1 import boundary_pb2 as pb
from kms.proto.v1 import kms_pb2, kms_pb2_grpc
from kms.service.evidence import install_evidence
from kms.sim import PccsServer, SimPlatform, SimQuotingEnclave


class FakeServer(kms_pb2_grpc.KeyManagementServiceServicer):
    def __init__(self, data_dir: Path, *, threads: int = 80, image: Path | None = None) -> None:
        self.platform = SimPlatform(data_dir)
        self.pccs = PccsServer(self.platform)
        self.store = MemoryStore()
        self.enclave = Enclave(data_dir, store=self.store, tcs_num=16, image=image)
        self.qe = SimQuotingEnclave(self.platform)
        self.evidence = install_evidence(self.enclave, self.qe)
        self.mrsigner = bytes(self.enclave.identity().mrsigner)
        self.lock = threading.Lock()
        self.evidence_rpcs = 0
        self.session_rpcs = 0
        self.frames_in = 0
        self.fail_evidence = 0            # answer this many GetEvidence calls with UNAVAILABLE
        self.dead_collateral = 0          # name a PCCS nobody listens on in this many GetEvidence answers
        self.drop_after_frames: int | None = None  # abort the next session after this many frames
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads))
        kms_pb2_grpc.add_KeyManagementServiceServicer_to_server(self, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.target = f"127.0.0.1:{self.port}"
        self.server.start()

    def GetEvidence(self, request, context):
        with self.lock:
            self.evidence_rpcs += 1
            if self.fail_evidence > 0:
                self.fail_evidence -= 1
                context.abort(grpc.StatusCode.UNAVAILABLE, "injected: evidence unavailable")
            self.evidence = self._current_evidence()
            url = self.pccs.url
            if self.dead_collateral > 0:
                self.dead_collateral -= 1
                url = "http://127.0.0.1:1/"  # refused at once
        return kms_pb2.GetEvidenceResponse(
            certificate=self.evidence.certificate, quote=self.evidence.quote, collateral_url=url,
            simulated=True, initialized=bool(self.enclave.identity().domain_loaded), enclave_version="test")

    def _current_evidence(self) -> pb.EvidenceResponse:
        """As the real front end: quoted again once the claims changed (init/recover: the domain id, audit key)."""
        try:
            return self.enclave.call(pb.Request(get_evidence=pb.GetEvidenceRequest())).evidence
        except NotInitialized as exc:
            if exc.code != E.KMS_ERR_EVIDENCE_NOT_READY:
                raise
            return install_evidence(self.enclave, self.qe)

    def Session(self, request_iterator, context):
        with self.lock:
            self.session_rpcs += 1
            drop, self.drop_after_frames = self.drop_after_frames, None
        try:
            sid = self.enclave.session_open()
        except KmsError as exc:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        frames, closed = 0, False
        try:
            for frame in request_iterator:
                frames += 1
                with self.lock:
                    self.frames_in += 1
                if drop is not None and frames > drop:
                    context.abort(grpc.StatusCode.UNAVAILABLE, "injected: stream dropped")
                try:
                    out, closed = self.enclave.session_feed(sid, frame.tls)
                except KmsError as exc:
                    closed = True
                    context.abort(grpc.StatusCode.ABORTED, f"session ended: {exc.code_name}")
                yield kms_pb2.SessionFrame(tls=out)
                if closed:
                    return
        finally:
            if not closed:
                try:
                    self.enclave.session_close(sid)
                except KmsError:
                    pass

    def stop(self) -> None:
        self.server.stop(grace=None)
        self.pccs.stop()
        self.enclave.close()
