"""docs/session-protocol.md §9, client pitfalls, shown on a real RA-TLS certificate: parsers that sniff for PEM
(pyca's PEM loader; Node's crypto.X509Certificate, when Node is installed) return an embedded PCK certificate
instead of the RA-TLS one, and the documented fixes (DER only; wrap in PEM first; compare the DER) avoid it."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from kms.enclave.bridge import Enclave, MemoryStore
from kms.service.evidence import install_evidence
from kms.sim.qe import SimQuotingEnclave

NODE_PARSE = """
const {X509Certificate} = require('crypto');
const der = require('fs').readFileSync(process.argv[1]);
const pem = '-----BEGIN CERTIFICATE-----\\n' + der.toString('base64').match(/.{1,64}/g).join('\\n') +
            '\\n-----END CERTIFICATE-----\\n';
const show = (c) => ({subject: c.subject, same: c.raw.equals(der)});
console.log(JSON.stringify({sniffed: show(new X509Certificate(der)), wrapped: show(new X509Certificate(pem))}));
"""


@pytest.fixture(scope="module")
def certificate(build, tmp_path_factory) -> bytes:
    data = tmp_path_factory.mktemp("pitfalls") / "data"
    with Enclave(data, store=MemoryStore()) as enclave:
        return install_evidence(enclave, SimQuotingEnclave.open(data)).certificate


def _pem(der: bytes) -> bytes:
    body = base64.b64encode(der).decode()
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return ("-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n").encode()


def test_the_der_carries_pem_text_that_a_sniffing_parser_takes(certificate: bytes) -> None:
    assert b"-----BEGIN CERTIFICATE-----" in certificate  # the quote's PCK chain, inside the evidence
    sniffed = x509.load_pem_x509_certificate(certificate)  # the trap: no error, another certificate
    assert "PCK" in sniffed.subject.rfc4514_string()
    assert sniffed.public_bytes(serialization.Encoding.DER) != certificate
    for right in (x509.load_der_x509_certificate(certificate), x509.load_pem_x509_certificate(_pem(certificate))):
        assert right.public_bytes(serialization.Encoding.DER) == certificate  # the documented check
        assert "RA-TLS" in right.subject.rfc4514_string()
        assert any(ext.oid.dotted_string == "2.23.133.5.4.9" for ext in right.extensions)


def test_node_x509certificate_takes_the_pck_certificate_unless_given_pem(certificate: bytes, tmp_path: Path) -> None:
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.skip("Node.js is not installed (Debian: nodejs); the pyca test above shows the same trap")
    (tmp_path / "ratls.der").write_bytes(certificate)
    out = subprocess.run([node, "-e", NODE_PARSE, str(tmp_path / "ratls.der")], capture_output=True, text=True,
                         check=True, timeout=60)
    seen = json.loads(out.stdout)
    assert "PCK" in seen["sniffed"]["subject"] and not seen["sniffed"]["same"]
    assert "RA-TLS" in seen["wrapped"]["subject"] and seen["wrapped"]["same"]
