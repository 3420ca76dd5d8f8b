"""The plain-HTTP Prometheus /metrics endpoint on its own port (the server's and the validator signer's)."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server

from kms.config import parse_address


class MetricsServer:
    """Serves a registry's metrics at http://listen/metrics until stop()."""

    def __init__(self, listen: str, registry: CollectorRegistry = REGISTRY) -> None:
        host, port = parse_address(listen, "metrics_listen")
        self._server, self._thread = start_http_server(port, addr=host, registry=registry)
        self.port = int(self._server.server_address[1])
        self.address = f"{host}:{self.port}" if ":" not in host else f"[{host}]:{self.port}"

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
