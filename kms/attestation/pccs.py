"""Collateral from a PCCS or Intel PCS (API v3 and v4), with a cache that respects nextUpdate."""

from __future__ import annotations

import re
import ssl
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives import hashes

from kms.attestation.chain import digest
from kms.attestation.collateral import (
    Collateral,
    collateral_from_parts,
    dump_collateral_json,
    parse_collateral_json,
    split_signed_response,
)
from kms.attestation.errors import AttestationError, CollateralFetchError
from kms.attestation.pck import PckCa

INTEL_PCS_BASE = "https://api.trustedservices.intel.com/sgx/certification/v{version}"
INTEL_ROOT_CA_CRL_URL = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"
PCK_CRL_ISSUER_CHAIN = "SGX-PCK-CRL-Issuer-Chain"
QE_IDENTITY_ISSUER_CHAIN = "SGX-Enclave-Identity-Issuer-Chain"
# The TCB Info issuer-chain header was renamed in API v4; the other name is accepted as a fallback.
TCB_INFO_ISSUER_CHAIN = {4: "TCB-Info-Issuer-Chain", 3: "SGX-TCB-Info-Issuer-Chain"}
MAX_RESPONSE_BYTES = 1 << 20
_VERSIONED = re.compile(r"/certification/v(\d+)$")


class CollateralCache:
    """Collateral by key, served only while the verification time is before its nextUpdate.

    In memory (bounded, least recently used first out), and optionally mirrored as collateral
    JSON files in `directory` so that restarts do not refetch.
    """

    def __init__(self, directory: str | Path | None = None, *, max_entries: int = 256) -> None:
        self._entries: OrderedDict[str, tuple[datetime, Collateral]] = OrderedDict()
        self._lock = threading.Lock()
        self._directory = Path(directory) if directory is not None else None
        self._max = max_entries

    def _path(self, key: str) -> Path | None:
        if self._directory is None:
            return None
        return self._directory / f"{digest(hashes.SHA256(), key.encode()).hex()[:32]}.json"

    def get(self, key: str, at: datetime) -> Collateral | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
        if entry is None:
            entry = self._load(key)
        if entry is None or at >= entry[0]:
            return None
        return entry[1]

    def _load(self, key: str) -> tuple[datetime, Collateral] | None:
        path = self._path(key)
        if path is None or not path.is_file():
            return None
        try:
            collateral = parse_collateral_json(path.read_bytes())
        except (OSError, AttestationError):
            return None
        next_update = collateral.next_update()
        if next_update is None:
            return None
        self._remember(key, next_update, collateral)
        return next_update, collateral

    def _remember(self, key: str, next_update: datetime, collateral: Collateral) -> None:
        with self._lock:
            self._entries[key] = (next_update, collateral)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def put(self, key: str, collateral: Collateral) -> None:
        next_update = collateral.next_update()
        if next_update is None:
            return
        self._remember(key, next_update, collateral)
        path = self._path(key)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(dump_collateral_json(collateral))
            tmp.replace(path)


class PccsClient:
    """Fetches collateral from a PCCS (`https://host:8081/sgx/certification/v4`) or Intel PCS."""

    def __init__(
        self,
        base_url: str,
        *,
        api_version: int | None = None,
        root_ca_crl_url: str | None = None,
        update: str | None = None,
        timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
        cache: CollateralCache | None = None,
    ) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"PCCS URL must be http(s)://host[:port][/sgx/certification/vN]: {base_url!r}")
        base = base_url.rstrip("/")
        match = _VERSIONED.search(parsed.path.rstrip("/"))
        if match is None:
            base = f"{base}/sgx/certification/v{api_version or 4}"
        elif api_version is not None and int(match.group(1)) != api_version:
            raise ValueError(f"URL names API v{match.group(1)}, but api_version={api_version}")
        self.api_version = int(match.group(1)) if match else (api_version or 4)
        if self.api_version not in (3, 4):
            raise ValueError(f"PCS/PCCS API v{self.api_version} is not supported (3, 4)")
        if update is not None and update not in ("standard", "early"):
            raise ValueError("update must be 'standard' or 'early'")
        self.base_url = base
        self.root_ca_crl_url = root_ca_crl_url
        self.update = update
        self.timeout = timeout
        self.ssl_context = ssl_context
        self.cache = cache if cache is not None else CollateralCache()

    @classmethod
    def intel_pcs(cls, *, api_version: int = 4, **kwargs: object) -> PccsClient:
        """Intel's PCS; it serves no `rootcacrl`, so the root CA CRL comes from Intel's CDP."""
        kwargs.setdefault("root_ca_crl_url", INTEL_ROOT_CA_CRL_URL)
        return cls(INTEL_PCS_BASE.format(version=api_version), **kwargs)  # type: ignore[arg-type]

    def _get(self, url: str) -> tuple[bytes, dict[str, str]]:
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise CollateralFetchError(f"refusing to fetch collateral from a non-HTTP URL: {url}")
        request = urllib.request.Request(url, headers={"Accept": "*/*", "User-Agent": "enclave-kms"})  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self.ssl_context) as resp:  # noqa: S310
                body = resp.read(MAX_RESPONSE_BYTES + 1)
                headers = {k.lower(): v for k, v in resp.headers.items()}
        except urllib.error.HTTPError as exc:
            raise CollateralFetchError(f"GET {url}: HTTP {exc.code} {exc.reason}") from exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise CollateralFetchError(f"GET {url}: {exc}") from exc
        if len(body) > MAX_RESPONSE_BYTES:
            raise CollateralFetchError(f"GET {url}: response larger than {MAX_RESPONSE_BYTES} bytes")
        return body, headers

    @staticmethod
    def _header(headers: dict[str, str], names: tuple[str, ...], url: str) -> str:
        for name in names:
            if name.lower() in headers:
                return urllib.parse.unquote(headers[name.lower()])
        raise CollateralFetchError(f"GET {url}: response lacks the {names[0]} header")

    def _url(self, path: str, **query: str | None) -> str:
        params = {k: v for k, v in query.items() if v is not None}
        return f"{self.base_url}/{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")

    def fetch(self, fmspc: bytes, ca: PckCa) -> Collateral:
        """Fetch a fresh collateral set (no cache). Nothing is verified here."""
        v4 = self.api_version == 4
        update = self.update if v4 else None
        crl_url = self._url("pckcrl", ca=ca.value, encoding="der" if v4 else None)
        pck_crl, crl_headers = self._get(crl_url)
        tcb_url = self._url("tcb", fmspc=fmspc.hex().upper(), update=update)
        tcb_body, tcb_headers = self._get(tcb_url)
        tcb_names = (TCB_INFO_ISSUER_CHAIN[self.api_version], TCB_INFO_ISSUER_CHAIN[7 - self.api_version])
        qe_url = self._url("qe/identity", update=update)
        qe_body, qe_headers = self._get(qe_url)
        root_url = self.root_ca_crl_url or self._url("rootcacrl")
        root_crl, _ = self._get(root_url)
        return collateral_from_parts(
            pck_crl_issuer_chain=self._header(crl_headers, (PCK_CRL_ISSUER_CHAIN,), crl_url),
            root_ca_crl=root_crl,
            pck_crl=pck_crl,
            tcb_info_issuer_chain=self._header(tcb_headers, tcb_names, tcb_url),
            tcb_info=split_signed_response(tcb_body, "tcbInfo"),
            qe_identity_issuer_chain=self._header(qe_headers, (QE_IDENTITY_ISSUER_CHAIN,), qe_url),
            qe_identity=split_signed_response(qe_body, "enclaveIdentity"),
        )

    def collateral_for(self, fmspc: bytes, ca: PckCa, *, at: datetime) -> Collateral:
        """Cached collateral while `at` is before its earliest nextUpdate, else a fresh fetch."""
        key = f"{self.base_url}|{fmspc.hex()}|{ca.value}|{self.update or ''}"
        cached = self.cache.get(key, at)
        if cached is not None:
            return cached
        collateral = self.fetch(fmspc, ca)
        self.cache.put(key, collateral)
        return collateral
