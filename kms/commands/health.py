"""`kms health`: the gRPC health (grpc.health.v1) of the server's API port and health port, for people and probes.

Exit 0 when both report SERVING for kms.v1.KeyManagementService, 2 when either does not (the message names which
port and why), 1 on usage errors. Nothing is verified and no session is opened: a cheap liveness answer, not a
trust decision (`kms status` verifies the evidence). The API port answers every RPC with an `x-request-id`
initial metadata entry and the health port (no interceptors) never does: that tells a swapped pair of addresses.
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

from kms.commands.common import DEFAULT_SERVER, EXIT_LOCAL, EXIT_OK, EXIT_REMOTE, emit
from kms.proto.v1 import kms_pb2

SERVICE = kms_pb2.DESCRIPTOR.services_by_name["KeyManagementService"].full_name
DEFAULT_HEALTH_PORT = 7444
REQUEST_ID = "x-request-id"  # echoed by the API port's interceptors (docs/operations.md, Logs)


@dataclass(frozen=True)
class PortHealth:
    """One port's answer."""

    port: str  # "api" or "health"
    address: str
    status: str  # SERVING, NOT_SERVING, SERVICE_UNKNOWN, UNKNOWN, UNREACHABLE, ERROR, WRONG_PORT
    detail: str
    latency_ms: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == "SERVING"

    def to_dict(self) -> dict[str, object]:
        return {"port": self.port, "address": self.address, "status": self.status, "ok": self.ok,
                "latency_ms": self.latency_ms, "detail": self.detail}


def _address(value: str, flag: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{flag} takes HOST:PORT with a port 1..65535, not {value!r}")
    return value


def health_address(server: str) -> str:
    """The default health address: the API address's host with port 7444 (the default health_listen)."""
    host = server.rpartition(":")[0]
    return f"{host}:{DEFAULT_HEALTH_PORT}"


def _one_line(text: str) -> str:
    return " ".join((text or "").split())[:300]


def check_port(port: str, address: str, timeout: float) -> PortHealth:
    """Health.Check(kms.v1.KeyManagementService) on one address; a failure is an answer, never an exception."""
    rid = f"kms-health-{secrets.token_hex(4)}"
    start = time.perf_counter()
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response, call = stub.Check.with_call(health_pb2.HealthCheckRequest(service=SERVICE), timeout=timeout,
                                                  metadata=((REQUEST_ID, rid),))
        except grpc.RpcError as exc:
            code = exc.code() if callable(getattr(exc, "code", None)) else None
            details = _one_line(exc.details() if callable(getattr(exc, "details", None)) else str(exc))
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                return PortHealth(port, address, "UNREACHABLE", f"{code.name}: {details}")
            if code is grpc.StatusCode.NOT_FOUND:  # a health server that does not know the service
                return PortHealth(port, address, "SERVICE_UNKNOWN", f"no health status for {SERVICE}")
            if code is grpc.StatusCode.UNIMPLEMENTED:
                return PortHealth(port, address, "ERROR", "not a gRPC health server (UNIMPLEMENTED)")
            return PortHealth(port, address, "ERROR", f"{code.name if code else 'UNKNOWN'}: {details}")
    latency = round((time.perf_counter() - start) * 1000, 1)
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    echoed = any(key == REQUEST_ID for key, _ in call.initial_metadata() or ())
    if status == "SERVING" and port == "api" and not echoed:
        return PortHealth(port, address, "WRONG_PORT", "answers health but not as the API port (no x-request-id "
                          "echoed): is this the health port?", latency)
    if status == "SERVING" and port == "health" and echoed:
        return PortHealth(port, address, "WRONG_PORT", "this is the API port (it echoes x-request-id), not the "
                          "plaintext health port the probes use", latency)
    detail = "" if status == "SERVING" else "draining or not started (NOT_SERVING)" if status == "NOT_SERVING" else ""
    return PortHealth(port, address, status, detail, latency)


def register(groups: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `kms health` to kms's groups."""
    p = groups.add_parser(
        "health", help="gRPC health of the server's API port and health port (exit 0 serving, 2 not)",
        description="Asks grpc.health.v1 Check(kms.v1.KeyManagementService) on both ports. Exit 0 when both "
                    "answer SERVING, 2 when either does not (the message names the port), 1 on usage errors. "
                    "Verifies nothing: `kms status` verifies the enclave's evidence.")
    p.add_argument("--server", default=os.environ.get("KMS_SERVER", DEFAULT_SERVER), metavar="HOST:PORT",
                   help="the API address (env KMS_SERVER; default %(default)s)")
    p.add_argument("--health-server", default=os.environ.get("KMS_HEALTH_SERVER"), metavar="HOST:PORT",
                   help=f"the plaintext health address (env KMS_HEALTH_SERVER; default: the --server host, port "
                        f"{DEFAULT_HEALTH_PORT})")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per port (default 5)")
    p.add_argument("--output", choices=("table", "json"), default=os.environ.get("KMS_OUTPUT", "table"),
                   help="output format (env KMS_OUTPUT; default table)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        api = _address(args.server, "--server")
        health = _address(args.health_server or health_address(api), "--health-server")
        if not 0 < args.timeout <= 300:
            raise ValueError(f"--timeout is 0..300 seconds, not {args.timeout}")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_LOCAL
    ports = [check_port("api", api, args.timeout), check_port("health", health, args.timeout)]
    ok = all(p.ok for p in ports)
    if args.output == "json":
        emit(args, {"ok": ok, "service": SERVICE, "ports": [p.to_dict() for p in ports]})
    else:
        rows = [{**p.to_dict(), "latency_ms": "" if p.latency_ms is None else f"{p.latency_ms} ms"} for p in ports]
        emit(args, rows, ("port", "address", "status", "latency_ms", "detail"))
    for p in ports:
        if not p.ok:
            print(f"error: the {p.port} port {p.address} is not serving: {p.status}"
                  + (f" ({p.detail})" if p.detail else ""), file=sys.stderr)
    return EXIT_OK if ok else EXIT_REMOTE
