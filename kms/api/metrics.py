"""Prometheus metrics: go-grpc-prometheus names for the gRPC server, plus the enclave, sessions and store.

Served by kms.metrics_endpoint.MetricsServer.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_GRPC = ("grpc_type", "grpc_service", "grpc_method")

STARTED = Counter("grpc_server_started_total", "RPCs started on the server.", _GRPC)
HANDLED = Counter("grpc_server_handled_total", "RPCs completed on the server, regardless of success or failure.",
                  (*_GRPC, "grpc_code"))
HANDLING = Histogram("grpc_server_handling_seconds", "Response latency (seconds) of RPCs handled by the server.",
                     _GRPC, buckets=(*_LATENCY, 30, 60, 300))
MSG_RECEIVED = Counter("grpc_server_msg_received_total", "RPC stream messages received on the server.", _GRPC)
MSG_SENT = Counter("grpc_server_msg_sent_total", "gRPC stream messages sent on the server.", _GRPC)

# livesum: under `kms serve --processes` (prometheus_client's multiprocess mode) the live workers' sessions added up
SESSIONS_ACTIVE = Gauge("kms_sessions_active", "Attested sessions open in the enclave.", multiprocess_mode="livesum")
ECALL_SECONDS = Histogram("kms_ecall_seconds", "Time spent in an enclave call, by ECALL (and host operation).",
                          ("ecall",), buckets=_LATENCY)
STORE_WRITES = Counter("kms_store_writes_total", "Record writes to the store, by result (ok, conflict, error).",
                       ("result",))
SESSION_FAILURES = Counter("kms_session_failures_total", "Sessions that ended with an error, by reason.",
                           ("reason",))

METRIC_NAMES = ("grpc_server_started_total", "grpc_server_handled_total", "grpc_server_handling_seconds",
                "grpc_server_msg_received_total", "grpc_server_msg_sent_total", "kms_sessions_active",
                "kms_ecall_seconds", "kms_store_writes_total", "kms_session_failures_total")


_ECALL_BY_NAME: dict[str, Histogram] = {}  # labels() takes a lock and builds its key on every call


def observe_ecall(name: str, seconds: float) -> None:
    """Record one ECALL's duration."""
    child = _ECALL_BY_NAME.get(name)
    if child is None:
        child = _ECALL_BY_NAME[name] = ECALL_SECONDS.labels(ecall=name)
    child.observe(seconds)


def observe_store_write(result: str) -> None:
    """Count one store write."""
    STORE_WRITES.labels(result=result).inc()


def set_sessions(active: int) -> None:
    """Publish the number of open sessions."""
    SESSIONS_ACTIVE.set(active)


def session_failed(reason: str) -> None:
    """Count a session that ended with an error."""
    SESSION_FAILURES.labels(reason=reason).inc()


def split_method(full: str) -> tuple[str, str]:
    """'/pkg.Service/Method' -> ('pkg.Service', 'Method')."""
    _, _, rest = full.partition("/")
    service, _, method = rest.partition("/")
    return service or "unknown", method or "unknown"

