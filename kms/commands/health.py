"""`kms health`: the gRPC health (grpc.health.v1) of the server's API port and health port, for people and scripts.

Several replicas: comma-separated --server addresses (and, optionally, as many --health-server addresses in the
same order); every port of every replica is asked. Exit 0 when all report SERVING for kms.v1.KeyManagementService,
2 when any does not (one line on stderr names the port, what answered and what to do), 1 on usage errors: the
exit codes of every kms command. Nothing is verified and no session is opened: a liveness answer, not a trust
decision (`kms status` verifies the evidence).
The API port echoes an `x-request-id` initial metadata entry on every RPC and the health port (no interceptors)
never does: that tells a swapped pair of addresses apart. Kubernetes asks the health port the same question with
its native gRPC probes (deploy/base/statefulset.yaml; docs/operations.md, "Health").
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kms.client.transport import open_channel
from kms.commands.common import DEFAULT_SERVER, EXIT_LOCAL, EXIT_OK, EXIT_REMOTE, emit
from kms.commands.flags import add_output, checked, env_default, server_address
from kms.proto.v1 import kms_pb2

SERVICE = kms_pb2.DESCRIPTOR.services_by_name["KeyManagementService"].full_name
DEFAULT_HEALTH_PORT = 7444  # the default health_listen's port
REQUEST_ID = "x-request-id"  # echoed by the API port's interceptors (docs/operations.md, Logs)
STATUSES = ("SERVING", "NOT_SERVING", "UNREACHABLE", "WRONG_PORT", "SERVICE_UNKNOWN", "ERROR")  # docs/operations.md
PORTS_HINT = ("--server takes the API port (default 7443), --health-server the plaintext health port (default "
              "7444); the metrics port answers HTTP only")


@dataclass(frozen=True)
class PortHealth:
    """One port's answer."""

    port: str  # "api" or "health"
    address: str
    status: str  # one of STATUSES (or the health service's UNKNOWN)
    detail: str
    latency_ms: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == "SERVING"

    def to_dict(self) -> dict[str, object]:
        return {"port": self.port, "address": self.address, "status": self.status, "ok": self.ok,
                "latency_ms": self.latency_ms, "detail": self.detail}

    def line(self) -> str:
        return f"the {self.port} port {self.address}: {self.status}" + (f" ({self.detail})" if self.detail else "")


def _address(value: str, flag: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{flag} takes HOST:PORT with a port 1..65535, not {value!r}")
    return value


def health_address(server: str) -> str:
    """The default health address: the API address's host with port 7444 (the default health_listen)."""
    return f"{server.rpartition(':')[0]}:{DEFAULT_HEALTH_PORT}"


def _one_line(text: str) -> str:
    return " ".join((text or "").split())[:300]


def wrong_port_hint(code: grpc.StatusCode | None, details: str) -> str | None:
    """What a failed RPC says about the address, when it says something a person can act on."""
    if "Connection refused" in details:
        return "nothing listens there (connection refused): is the server running, and is this its address?"
    if "HTTP/2" in details or "http1.x" in details.lower():
        return f"it answers, but not gRPC (HTTP/1): the metrics port? {PORTS_HINT}"
    if code is grpc.StatusCode.UNIMPLEMENTED:
        return f"it speaks gRPC, but not this service: {PORTS_HINT}"
    return None


def _failure(port: str, address: str, exc: grpc.RpcError, timeout: float) -> PortHealth:
    code = exc.code() if callable(getattr(exc, "code", None)) else None
    details = _one_line(exc.details() if callable(getattr(exc, "details", None)) else str(exc))
    hint = wrong_port_hint(code, details)
    if hint is not None:
        status = "UNREACHABLE" if hint.startswith("nothing listens") else "WRONG_PORT"
        return PortHealth(port, address, status, hint)
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return PortHealth(port, address, "UNREACHABLE", f"no answer within {timeout:g} s")
    if code is grpc.StatusCode.UNAVAILABLE:
        return PortHealth(port, address, "UNREACHABLE", details)
    if code is grpc.StatusCode.NOT_FOUND:  # a health server that does not know the service
        return PortHealth(port, address, "SERVICE_UNKNOWN", f"a health server without {SERVICE}: not a KMS")
    return PortHealth(port, address, "ERROR", f"{code.name if code else 'UNKNOWN'}: {details}")


def check_port(port: str, address: str, timeout: float) -> PortHealth:
    """Health.Check(kms.v1.KeyManagementService) on one address; a failure is an answer, never an exception."""
    start = time.perf_counter()
    with open_channel(address) as channel:  # the SDK's channel options
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response, call = stub.Check.with_call(health_pb2.HealthCheckRequest(service=SERVICE), timeout=timeout,
                                                  metadata=((REQUEST_ID, f"kms-health-{secrets.token_hex(4)}"),))
        except grpc.RpcError as exc:
            return _failure(port, address, exc, timeout)
    latency = round((time.perf_counter() - start) * 1000, 1)
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    echoed = any(key == REQUEST_ID for key, _ in call.initial_metadata() or ())
    if port == "api" and not echoed:
        return PortHealth(port, address, "WRONG_PORT", f"a gRPC health server, but not the API port (no "
                          f"{REQUEST_ID} echoed): the health port? {PORTS_HINT}", latency)
    if port == "health" and echoed:
        return PortHealth(port, address, "WRONG_PORT", f"the API port (it echoes {REQUEST_ID}), not the plaintext "
                          f"health port the probes use: {PORTS_HINT}", latency)
    detail = "draining or not started" if status == "NOT_SERVING" else ""
    return PortHealth(port, address, status, detail, latency)


def register(groups: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `kms health` to kms's groups."""
    p = groups.add_parser(
        "health", help="gRPC health of the server's API port and health port (exit 0 serving, 2 not)",
        description="Asks grpc.health.v1 Check(kms.v1.KeyManagementService) on both ports. Exit 0 when both "
                    "answer SERVING, 2 when either does not (one line on stderr names the port and why), 1 on "
                    "usage errors. Verifies nothing: `kms status` verifies the enclave's evidence.")
    p.add_argument("--server", type=checked(server_address), default=env_default("KMS_SERVER", DEFAULT_SERVER),
                   metavar="HOST:PORT", help=f"the API address, or several comma-separated (env KMS_SERVER; default "
                        f"{DEFAULT_SERVER})")
    p.add_argument("--health-server", default=os.environ.get("KMS_HEALTH_SERVER"), metavar="HOST:PORT",
                   help=f"the plaintext health address, one per --server address (env KMS_HEALTH_SERVER; default: "
                        f"each --server host, port {DEFAULT_HEALTH_PORT})")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per port (default 5)")
    add_output(p)
    p.set_defaults(func=run)


def _pairs(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(API, health) address of each replica: --server and --health-server lists pair up in order."""
    apis = [_address(a.strip(), "--server") for a in args.server.split(",") if a.strip()]
    healths = [h.strip() for h in (args.health_server or "").split(",") if h.strip()]
    if healths and len(healths) != len(apis):
        raise ValueError(f"--health-server names {len(healths)} addresses and --server {len(apis)}: give one "
                         "health address per API address, in the same order, or none (each API host, port "
                         f"{DEFAULT_HEALTH_PORT})")
    return [(api, _address(health, "--health-server"))
            for api, health in zip(apis, healths or [health_address(a) for a in apis], strict=True)]


def run(args: argparse.Namespace) -> int:
    try:
        pairs = _pairs(args)
        if not 0 < args.timeout <= 300:
            raise ValueError(f"--timeout is 0..300 seconds, not {args.timeout:g}")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_LOCAL
    ports = [check_port(port, address, args.timeout) for api, health in pairs
             for port, address in (("api", api), ("health", health))]
    ok = all(p.ok for p in ports)
    if args.output == "json":
        emit(args, {"ok": ok, "service": SERVICE, "ports": [p.to_dict() for p in ports]})
    else:
        rows = [{**p.to_dict(), "latency_ms": "" if p.latency_ms is None else f"{p.latency_ms} ms"} for p in ports]
        emit(args, rows, ("port", "address", "status", "latency_ms", "detail"))
    if not ok:
        print("error: not serving: " + "; ".join(p.line() for p in ports if not p.ok), file=sys.stderr)
    return EXIT_OK if ok else EXIT_REMOTE
