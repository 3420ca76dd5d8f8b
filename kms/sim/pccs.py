"""A simulated PCCS: Intel PCS v3/v4 collateral paths and headers over loopback HTTP (stdlib http.server)."""

from __future__ import annotations

import ipaddress
import logging
import secrets
import socket
import threading
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from kms.sim import pki
from kms.sim.collateral import qe_identity_text, signed_response, tcb_info_text
from kms.sim.errors import SimError, SimSettingError
from kms.sim.platform import SimPlatform

_log = logging.getLogger(__name__)
PREFIX = "/sgx/certification/v"
TCB_INFO_ISSUER_CHAIN = {4: "TCB-Info-Issuer-Chain", 3: "SGX-TCB-Info-Issuer-Chain"}
ENCLAVE_IDENTITY_ISSUER_CHAIN = "SGX-Enclave-Identity-Issuer-Chain"
PCK_CRL_ISSUER_CHAIN = "SGX-PCK-CRL-Issuer-Chain"
PCK_CERT_ISSUER_CHAIN = {4: "SGX-PCK-Certificate-Issuer-Chain", 3: "PCS-Certificate-Issuer-Chain"}
Response = tuple[int, bytes, str, dict[str, str]]


class HttpError(Exception):
    """An error answer: HTTP status and a short text."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _chain_header(*certs: x509.Certificate) -> str:
    """PEM certificates, URL-encoded as the PCS sends issuer chains in headers."""
    return urllib.parse.quote(pki.cert_pem(*certs).decode("ascii"), safe="")


def _one(query: dict[str, list[str]], name: str, required: bool = True) -> str | None:
    values = query.get(name, [])
    if len(values) > 1 or (required and not values):
        raise HttpError(400, f"query parameter {name!r} must be given once")
    return values[0] if values else None


class _Routes:
    """The collateral endpoints of one platform; every response is built fresh from its files."""

    def __init__(self, platform: SimPlatform) -> None:
        self.platform = platform

    def tcb(self, version: int, query: dict[str, list[str]]) -> Response:
        fmspc = _one(query, "fmspc") or ""
        if version == 4:
            update = _one(query, "update", required=False)
            if update not in (None, "early", "standard"):
                raise HttpError(400, "update must be early or standard")
        if fmspc.upper() != self.platform.fmspc.hex().upper():
            raise HttpError(404, f"no TCB Info for FMSPC {fmspc}")
        body = tcb_info_text(self.platform)
        signed = signed_response("tcbInfo", body, pki.raw_signature(self.platform.key("tcb-signing"), body))
        chain = _chain_header(self.platform.tcb_signing, self.platform.root)
        return 200, signed, "application/json", {TCB_INFO_ISSUER_CHAIN[version]: chain}

    def qe_identity(self, version: int, query: dict[str, list[str]]) -> Response:
        body = qe_identity_text()
        signed = signed_response("enclaveIdentity", body, pki.raw_signature(self.platform.key("tcb-signing"), body))
        chain = _chain_header(self.platform.tcb_signing, self.platform.root)
        return 200, signed, "application/json", {ENCLAVE_IDENTITY_ISSUER_CHAIN: chain}

    def pckcrl(self, version: int, query: dict[str, list[str]]) -> Response:
        ca = (_one(query, "ca") or "").lower()
        if ca not in pki.CA_TYPES:
            raise HttpError(400, "ca must be processor or platform")
        encoding = _one(query, "encoding", required=False)
        if encoding not in (None, "der", "pem"):
            raise HttpError(400, "encoding must be der or pem")
        crl = self.platform.crl(ca)
        headers = {PCK_CRL_ISSUER_CHAIN: _chain_header(self.platform.cas[ca], self.platform.root)}
        if encoding == "der":
            return 200, crl.public_bytes(serialization.Encoding.DER), "application/pkix-crl", headers
        return 200, crl.public_bytes(serialization.Encoding.PEM), "application/x-pem-file", headers

    def rootcacrl(self, version: int, query: dict[str, list[str]]) -> Response:
        """As the PCCS: the hex text of the DER root CA CRL."""
        der = self.platform.crl("root").public_bytes(serialization.Encoding.DER)
        return 200, der.hex().encode("ascii"), "text/plain", {}

    def pckcert(self, version: int, query: dict[str, list[str]]) -> Response:
        """The platform's PCK leaf (the query's encrypted PPID/CPUSVN/PCESVN/PCE-ID are not checked)."""
        leaf, ca, root = self.platform.pck_chain()
        tcbm = self.platform.cpusvn().hex() + self.platform.pcesvn().to_bytes(2, "little").hex()
        headers = {PCK_CERT_ISSUER_CHAIN[version]: _chain_header(ca, root), "SGX-TCBm": tcbm.upper(),
                   "SGX-FMSPC": self.platform.fmspc.hex().upper(),
                   "SGX-PCK-Certificate-CA-Type": self.platform.pck_ca()}
        return 200, pki.cert_pem(leaf), "application/x-pem-file", headers

    def route(self, path: str) -> Callable[[int, dict[str, list[str]]], Response] | None:
        return {"tcb": self.tcb, "qe/identity": self.qe_identity, "pckcrl": self.pckcrl,
                "rootcacrl": self.rootcacrl, "pckcert": self.pckcert}.get(path)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "EnclaveKMS-SimulatedPCCS"

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        try:
            status, body, content_type, headers = self._answer(url.path, urllib.parse.parse_qs(url.query))
        except HttpError as exc:
            status, body, content_type, headers = exc.status, f"{exc}\n".encode(), "text/plain", {}
        except SimError as exc:
            _log.error("simulated PCCS: %s", exc)
            status, body, content_type, headers = 500, b"simulated platform error\n", "text/plain", {}
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Request-ID", secrets.token_hex(16))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _answer(self, path: str, query: dict[str, list[str]]) -> Response:
        if not path.startswith(PREFIX):
            raise HttpError(404, "not found")
        version_text, _, rest = path[len(PREFIX):].partition("/")
        if version_text not in ("3", "4"):
            raise HttpError(404, "API versions 3 and 4 are served")
        handler = self.server.routes.route(rest.rstrip("/"))
        if handler is None:
            raise HttpError(404, "not found")
        return handler(int(version_text), query)

    def log_message(self, format: str, *args: object) -> None:
        _log.debug("simulated PCCS: " + format, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], routes: _Routes) -> None:
        self.routes = routes
        super().__init__(address, _Handler)


def _loopback(host: str) -> None:
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError as exc:
        raise SimSettingError(f"cannot resolve {host!r}: {exc}") from exc
    if not infos or not all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos):
        raise SimSettingError(f"the simulated PCCS listens on loopback only, not {host!r}")


class PccsServer:
    """A running simulated PCCS; `url` is its base (append /sgx/certification/v4), stop() ends it."""

    def __init__(self, platform: SimPlatform, host: str = "127.0.0.1", port: int = 0) -> None:
        _loopback(host)
        self._server = _Server((host, port), _Routes(platform))
        bound_host, self.port = self._server.server_address[:2]
        shown = f"[{bound_host}]" if ":" in str(bound_host) else str(bound_host)
        self.url = f"http://{shown}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="sim-pccs", daemon=True)
        self._thread.start()

    def api_url(self, version: int = 4) -> str:
        return f"{self.url}{PREFIX}{version}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> PccsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(data_dir: str | Path, host: str = "127.0.0.1", port: int = 0) -> PccsServer:
    """Start a simulated PCCS for the platform in `data_dir` (provisioned if needed) in a thread."""
    return PccsServer(SimPlatform(data_dir), host, port)
