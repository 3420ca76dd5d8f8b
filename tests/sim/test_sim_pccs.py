"""The simulated PCCS: PCS v3/v4 paths, headers, encodings and errors, and the collateral JSON file."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from kms.attestation import load_collateral_json, split_signed_response
from kms.attestation.tcb import parse_qe_identity, parse_tcb_info
from kms.sim import SimPlatform, SimSettingError, build_collateral
from kms.sim.pccs import PccsServer, serve
from kms.sim.pki import cert_pem


@pytest.fixture
def server(platform: SimPlatform) -> Iterator[PccsServer]:
    with serve(platform.data_dir) as running:
        yield running


def get(url: str) -> tuple[int, bytes, dict[str, str]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def signed_by(cert: x509.Certificate, signature: bytes, body: bytes) -> bool:
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(der, body, ec.ECDSA(hashes.SHA256()))
    return True


@pytest.mark.parametrize(("version", "header"), [(4, "TCB-Info-Issuer-Chain"), (3, "SGX-TCB-Info-Issuer-Chain")])
def test_tcb_info(server: PccsServer, platform: SimPlatform, version: int, header: str) -> None:
    status, body, headers = get(f"{server.api_url(version)}/tcb?fmspc={platform.fmspc.hex().upper()}")
    assert status == 200 and headers["Content-Type"] == "application/json" and headers["Request-ID"]
    assert urllib.parse.unquote(headers[header]).encode() == cert_pem(platform.tcb_signing, platform.root)
    doc = split_signed_response(body, "tcbInfo")
    assert signed_by(platform.tcb_signing, doc.signature, doc.body)
    info = parse_tcb_info(doc.body)
    assert info.version == 3 and info.id == "SGX" and info.fmspc == platform.fmspc and info.tcb_type == 0
    assert [lv.status for lv in info.levels][:2] == ["UpToDate", "SWHardeningNeeded"]
    assert json.loads(doc.body)["tcbLevels"][1]["advisoryIDs"] == ["INTEL-SA-00615"]
    assert get(f"{server.api_url(version)}/tcb?fmspc={platform.fmspc.hex()}")[0] == 200
    assert get(f"{server.api_url(version)}/tcb?fmspc=00906ED50000")[0] == 404
    assert get(f"{server.api_url(version)}/tcb")[0] == 400


def test_qe_identity(server: PccsServer, platform: SimPlatform) -> None:
    status, body, headers = get(f"{server.api_url()}/qe/identity")
    assert status == 200
    chain = urllib.parse.unquote(headers["SGX-Enclave-Identity-Issuer-Chain"]).encode()
    assert chain == cert_pem(platform.tcb_signing, platform.root)
    doc = split_signed_response(body, "enclaveIdentity")
    assert signed_by(platform.tcb_signing, doc.signature, doc.body)
    ident = parse_qe_identity(doc.body)
    assert ident.id == "QE" and ident.version == 2 and ident.isvprodid == 1
    assert ident.attributes.hex() == "11" + "0" * 30 and ident.miscselect_mask == b"\xff" * 4


@pytest.mark.parametrize("ca", ["processor", "platform"])
def test_pck_crl_pem_and_der(server: PccsServer, platform: SimPlatform, ca: str) -> None:
    status, body, headers = get(f"{server.api_url()}/pckcrl?ca={ca}")
    assert status == 200 and body.startswith(b"-----BEGIN X509 CRL-----")
    crl = x509.load_pem_x509_crl(body)
    assert crl.issuer == platform.cas[ca].subject and crl.is_signature_valid(platform.cas[ca].public_key())
    chain = urllib.parse.unquote(headers["SGX-PCK-CRL-Issuer-Chain"]).encode()
    assert chain == cert_pem(platform.cas[ca], platform.root)
    status, der, headers = get(f"{server.api_url()}/pckcrl?ca={ca}&encoding=der")
    assert status == 200 and headers["Content-Type"] == "application/pkix-crl"
    assert x509.load_der_x509_crl(der).issuer == crl.issuer
    assert get(f"{server.api_url(3)}/pckcrl?ca={ca}")[0] == 200


def test_root_ca_crl_is_hex_text_and_follows_revocations(server: PccsServer, platform: SimPlatform) -> None:
    status, body, _ = get(f"{server.api_url()}/rootcacrl")
    crl = x509.load_der_x509_crl(bytes.fromhex(body.decode("ascii")))
    assert status == 200 and crl.issuer == platform.root.subject and len(crl) == 0
    serial = platform.revoke_intermediate("processor")
    crl = x509.load_der_x509_crl(bytes.fromhex(get(f"{server.api_url()}/rootcacrl")[1].decode()))
    assert crl.get_revoked_certificate_by_serial_number(serial) is not None


def test_pck_certificate(server: PccsServer, platform: SimPlatform) -> None:
    status, body, headers = get(f"{server.api_url()}/pckcert?encrypted_ppid=00&cpusvn=00&pcesvn=0000&pceid=0000")
    leaf, ca, root = platform.pck_chain()
    assert status == 200 and x509.load_pem_x509_certificate(body) == leaf
    assert urllib.parse.unquote(headers["SGX-PCK-Certificate-Issuer-Chain"]).encode() == cert_pem(ca, root)
    assert headers["SGX-TCBm"] == "0F0F0204FF80060000000000000000000D00" and headers["SGX-FMSPC"] == "53494D000000"
    assert headers["SGX-PCK-Certificate-CA-Type"] == "processor"


@pytest.mark.parametrize("path", ["/", "/sgx/certification/v5/tcb?fmspc=53494D000000", "/sgx/certification/v4/nope",
                                  "/sgx/certification/v4/pckcrl?ca=socket", "/sgx/certification/v4/pckcrl",
                                  "/sgx/certification/v4/pckcrl?ca=processor&encoding=base64",
                                  "/sgx/certification/v4/tcb?fmspc=53494D000000&update=late"])
def test_bad_requests(server: PccsServer, path: str) -> None:
    assert get(server.url + path)[0] in (400, 404)


def test_loopback_only_and_stop_releases_the_port(platform: SimPlatform) -> None:
    with pytest.raises(SimSettingError, match="loopback"):
        serve(platform.data_dir, host="0.0.0.0")
    server = serve(platform.data_dir)
    port = server.port
    server.stop()
    with serve(platform.data_dir, port=port) as again:
        assert again.port == port


def test_collateral_json_file_has_the_nine_fields_and_loads(platform: SimPlatform, tmp_path) -> None:
    path = tmp_path / "collateral.json"
    sim = build_collateral(platform)
    sim.write_json(path)
    obj = json.loads(path.read_text())
    assert set(obj) == {"pck_crl_issuer_chain", "root_ca_crl", "pck_crl", "tcb_info_issuer_chain", "tcb_info",
                        "tcb_info_signature", "qe_identity_issuer_chain", "qe_identity", "qe_identity_signature"}
    assert obj["tcb_info"].encode() == sim.tcb_info and len(obj["tcb_info_signature"]) == 128
    bytes.fromhex(obj["root_ca_crl"])
    loaded = load_collateral_json(path)
    assert loaded.tcb_info.body == sim.tcb_info and loaded.qe_identity.body == sim.qe_identity
    der = serialization.Encoding.DER
    assert loaded.pck_crl.public_bytes(der) == sim.pck_crl and loaded.root_ca_crl.public_bytes(der) == sim.root_ca_crl
    assert split_signed_response(sim.tcb_info_response(), "tcbInfo").body == sim.tcb_info
