"""Collateral: the JSON file format, PCS response splitting, and the PCCS client with its cache."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from attest_testpki import vectors
from cryptography.hazmat.primitives import serialization

from kms.attestation import (
    AttestationPolicy,
    Collateral,
    CollateralCache,
    CollateralFetchError,
    PccsClient,
    PckCa,
    Step,
    dump_collateral_json,
    load_collateral_json,
    parse_collateral_json,
    split_signed_response,
    verify_quote,
)
from kms.attestation.errors import CollateralError

JULY = datetime(2025, 7, 1, tzinfo=UTC)
FMSPC = bytes.fromhex("00A067110000")
POLICY = AttestationPolicy(allow_any_enclave_insecure=True,
                           allowed_tcb_statuses=frozenset({"ConfigurationAndSWHardeningNeeded"}))


@pytest.fixture(scope="module")
def raw() -> dict[str, str]:
    return json.loads((vectors("dcap", "dcap-qvl") / "sgx_quote_collateral.json").read_text())


@pytest.fixture(scope="module")
def collateral(raw: dict[str, str]) -> Collateral:
    return parse_collateral_json(json.dumps(raw))


def test_json_round_trip(collateral: Collateral, tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(dump_collateral_json(collateral))
    again = load_collateral_json(path)
    assert again == collateral
    assert again.tcb_info.body == collateral.tcb_info.body


@pytest.mark.parametrize(("mutate", "text"), [
    (lambda d: d.pop("pck_crl"), "lacks string fields: pck_crl"),
    (lambda d: d.update(tcb_info_signature="zz"), "128 hex"),
    (lambda d: d.update(root_ca_crl="00ff"), "not a CRL"),
    (lambda d: d.update(tcb_info_issuer_chain="nope"), "PEM certificate chain"),
])
def test_malformed_collateral_file(raw: dict[str, str], mutate, text: str) -> None:
    data = dict(raw)
    mutate(data)
    with pytest.raises(CollateralError, match=text) as info:
        parse_collateral_json(json.dumps(data))
    assert info.value.step is Step.COLLATERAL_FORMAT


def test_missing_file_is_a_fetch_error(tmp_path: Path) -> None:
    with pytest.raises(CollateralFetchError):
        load_collateral_json(tmp_path / "absent.json")


def test_split_signed_response_keeps_exact_bytes() -> None:
    inner = b'{"b": 1,  "a":[1, 2]}'
    doc = split_signed_response(b' {"tcbInfo": ' + inner + b' , "signature":"' + b"ab" * 64 + b'"}\n', "tcbInfo")
    assert doc.body == inner and doc.signature == bytes([0xAB]) * 64
    for bad in (b'{"tcbInfo":{}}', b'{"tcbInfo":{},"signature":"' + b"ab" * 64 + b'","x":1}',
                b'{"tcbInfo":{},"tcbInfo":{},"signature":"' + b"ab" * 64 + b'"}', b'[]', b'{"tcbInfo":{'):
        with pytest.raises(CollateralError):
            split_signed_response(bad, "tcbInfo")


class FakePccs:
    """A PCCS/PCS stand-in serving the dcap-qvl collateral with v3 or v4 header names."""

    def __init__(self, raw: dict[str, str], collateral: Collateral, version: int) -> None:
        self.raw, self.collateral, self.version = raw, collateral, version
        self.requests: list[str] = []

    def respond(self, path: str, query: dict[str, list[str]]) -> tuple[int, bytes, dict[str, str]]:
        self.requests.append(path)
        prefix = f"/sgx/certification/v{self.version}/"
        quote = urllib.parse.quote
        if not path.startswith(prefix):
            return 404, b"", {}
        name = path[len(prefix):]
        if name == "pckcrl" and query.get("ca") == ["processor"]:
            crl = self.collateral.pck_crl
            body = crl.public_bytes(serialization.Encoding.DER if self.version == 4 else serialization.Encoding.PEM)
            return 200, body, {"SGX-PCK-CRL-Issuer-Chain": quote(self.raw["pck_crl_issuer_chain"])}
        if name == "tcb" and query.get("fmspc") == ["00A067110000"]:
            body = f'{{"tcbInfo":{self.raw["tcb_info"]},"signature":"{self.raw["tcb_info_signature"]}"}}'
            header = "TCB-Info-Issuer-Chain" if self.version == 4 else "SGX-TCB-Info-Issuer-Chain"
            return 200, body.encode(), {header: quote(self.raw["tcb_info_issuer_chain"])}
        if name == "qe/identity":
            body = f'{{"enclaveIdentity":{self.raw["qe_identity"]},"signature":"{self.raw["qe_identity_signature"]}"}}'
            chain = quote(self.raw["qe_identity_issuer_chain"])
            return 200, body.encode(), {"SGX-Enclave-Identity-Issuer-Chain": chain}
        if name == "rootcacrl":
            return 200, self.raw["root_ca_crl"].encode(), {}
        return 404, b"", {}


@pytest.fixture(params=[3, 4])
def pccs(request: pytest.FixtureRequest, raw: dict[str, str], collateral: Collateral) -> Iterator[tuple[FakePccs, str]]:
    fake = FakePccs(raw, collateral, request.param)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            status, body, headers = fake.respond(url.path, urllib.parse.parse_qs(url.query))
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}/sgx/certification/v{request.param}"
    finally:
        server.shutdown()
        server.server_close()


def test_pccs_client_fetches_the_same_collateral(pccs: tuple[FakePccs, str], collateral: Collateral) -> None:
    fake, url = pccs
    client = PccsClient(url)
    assert client.api_version == fake.version
    fetched = client.fetch(FMSPC, PckCa.PROCESSOR)
    assert dump_collateral_json(fetched) == dump_collateral_json(collateral)
    quote = (vectors("dcap", "dcap-qvl") / "sgx_quote").read_bytes()
    assert verify_quote(quote, client, POLICY, at=JULY).ok


def test_cache_respects_next_update(pccs: tuple[FakePccs, str], tmp_path: Path) -> None:
    fake, url = pccs
    client = PccsClient(url, cache=CollateralCache(tmp_path))
    client.collateral_for(FMSPC, PckCa.PROCESSOR, at=JULY)
    assert len(fake.requests) == 4
    client.collateral_for(FMSPC, PckCa.PROCESSOR, at=datetime(2025, 7, 19, 10, 0, tzinfo=UTC))
    assert len(fake.requests) == 4
    restarted = PccsClient(url, cache=CollateralCache(tmp_path))
    restarted.collateral_for(FMSPC, PckCa.PROCESSOR, at=JULY)
    assert len(fake.requests) == 4
    restarted.collateral_for(FMSPC, PckCa.PROCESSOR, at=datetime(2025, 7, 19, 10, 1, 18, tzinfo=UTC))
    assert len(fake.requests) == 8


def test_pccs_errors_are_fetch_failures(pccs: tuple[FakePccs, str]) -> None:
    fake, url = pccs
    quote = (vectors("dcap", "dcap-qvl") / "sgx_quote").read_bytes()
    other_version = 3 if fake.version == 4 else 4
    client = PccsClient(url.replace(f"/v{fake.version}", f"/v{other_version}"))
    result = verify_quote(quote, client, POLICY, at=JULY)
    assert result.failed_step is Step.COLLATERAL_FETCH and "HTTP 404" in result.message
    with pytest.raises(CollateralFetchError):
        PccsClient("http://127.0.0.1:9/", timeout=2).fetch(FMSPC, PckCa.PROCESSOR)


def test_pccs_url_forms() -> None:
    assert PccsClient("https://pccs.local:8081").base_url == "https://pccs.local:8081/sgx/certification/v4"
    assert PccsClient("https://pccs.local:8081/", api_version=3).base_url.endswith("/sgx/certification/v3")
    assert PccsClient("https://h/sgx/certification/v3/").api_version == 3
    pcs = PccsClient.intel_pcs()
    assert pcs.base_url == "https://api.trustedservices.intel.com/sgx/certification/v4"
    assert pcs.root_ca_crl_url == "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"
    for bad in ("ftp://h", "https://h/sgx/certification/v5"):
        with pytest.raises(ValueError):
            PccsClient(bad)
    with pytest.raises(ValueError):
        PccsClient("https://h/sgx/certification/v3", api_version=4)
