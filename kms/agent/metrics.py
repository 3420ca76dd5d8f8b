"""The agent's Prometheus metrics (served by kms.metrics_endpoint.MetricsServer from REGISTRY): the
go-grpc-prometheus names for its unary API, like the server's, plus the state of each KMS server it fails over
between and the refusals of its sockets."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_GRPC = ("grpc_type", "grpc_service", "grpc_method")
REGISTRY = CollectorRegistry()   # the agent's own: nothing else in its process (or a test's) registers into it
_R = {"registry": REGISTRY}

STARTED = Counter("grpc_server_started_total", "RPCs started on the server.", _GRPC, **_R)
HANDLED = Counter("grpc_server_handled_total", "RPCs completed on the server, regardless of success or failure.",
                  (*_GRPC, "grpc_code"), **_R)
HANDLING = Histogram("grpc_server_handling_seconds", "Response latency (seconds) of RPCs handled by the server.",
                     _GRPC, buckets=_LATENCY, **_R)
LOCAL_REQUESTS = Counter("kms_agent_local_requests_total",
                         "Frames of the PKCS#11 module's local protocol answered, by body and agent error.",
                         ("body", "error"), **_R)
SERVER_UP = Gauge("kms_agent_server_up", "1 while the agent holds a verified session to this KMS server.",
                  ("server",), **_R)
VERIFICATION_FAILURES = Counter("kms_agent_verification_failures_total",
                                "KMS servers refused: evidence, domain pin or freshness did not verify.",
                                ("server",), **_R)
FAILOVERS = Counter("kms_agent_failovers_total", "Requests answered by another server than the one in use.", **_R)
PEERS_REFUSED = Counter("kms_agent_peers_refused_total",
                        "Connections refused on a unix socket: the peer's uid is not allowed.", ("socket",), **_R)
UNAUTHENTICATED = Counter("kms_agent_unauthenticated_total", "TCP calls refused for a missing or wrong token.", **_R)

METRIC_NAMES = ("grpc_server_started_total", "grpc_server_handled_total", "grpc_server_handling_seconds",
                "kms_agent_local_requests_total", "kms_agent_server_up", "kms_agent_verification_failures_total",
                "kms_agent_failovers_total", "kms_agent_peers_refused_total", "kms_agent_unauthenticated_total")
