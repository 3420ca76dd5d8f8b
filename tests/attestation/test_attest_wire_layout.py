"""docs/attestation.md §2a, the quote byte layout, held to the parser and to real quotes: Intel's synthetic
sample, the dcap-qvl production quote (../shared/vectors, read there) and a fresh simulated quote. Each
documented offset must hold the field the parser reads, and the documented encodings must verify."""

from __future__ import annotations

import hashlib
import operator
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from kms.attestation import quote as quote_module
from kms.attestation.quote import REPORT_BODY_FIELDS, Quote, parse_quote
from tests.conftest import vectors_dir

ATTESTATION_MD = Path(__file__).resolve().parents[2] / "docs" / "attestation.md"


def layout(name: str) -> list[dict[str, str]]:
    """The rows of one marked table: offset, size, field, encoding, parsed."""
    text = ATTESTATION_MD.read_text()
    begin = f"<!-- quote layout: {name} -->"
    table = text[text.index(begin):text.index("<!-- end quote layout -->", text.index(begin))]
    rows = []
    for line in table.splitlines()[3:]:
        offset, size, field, encoding, parsed = (cell.strip() for cell in line.strip("|").split(" | "))
        rows.append({"offset": offset, "size": size, "field": field, "encoding": encoding,
                     "parsed": parsed.strip("`")})
    return rows


def _number(expr: str, n: int, m: int) -> int:
    """'1014+N', 'N', 'M', '432' with N, M the quote's QE auth data and certification data sizes."""
    sizes = {"N": n, "M": m}
    return sum(sizes[term] if term in sizes else int(term) for term in expr.split("+"))


def _expected(q: Quote, parsed: str) -> bytes | int:
    if match := re.fullmatch(r"len\(([\w.]+)\)(?: - (\d+))?", parsed):
        return len(operator.attrgetter(match.group(1))(q)) - int(match.group(2) or 0)
    return operator.attrgetter(parsed)(q)


def _quotes(tmp_path: Path) -> dict[str, bytes]:
    from kms.enclave.bridge import Enclave, MemoryStore
    from kms.service.evidence import install_evidence
    from kms.sim.qe import SimQuotingEnclave

    qvl, sample = vectors_dir("dcap", "dcap-qvl"), vectors_dir("dcap", "intel-qvl-sample")
    with Enclave(tmp_path / "data", store=MemoryStore()) as enclave:
        simulated = install_evidence(enclave, SimQuotingEnclave.open(tmp_path / "data")).quote
    return {"dcap-qvl": (qvl / "sgx_quote").read_bytes(), "intel-sample": (sample / "quote.dat").read_bytes(),
            "simulated": simulated}


@pytest.fixture(scope="module")
def quotes(build, tmp_path_factory) -> dict[str, bytes]:
    return _quotes(tmp_path_factory.mktemp("quotes"))


def test_the_report_body_table_is_the_parsers() -> None:
    rows = layout("report body")
    documented = {r["parsed"]: (int(r["offset"]), int(r["size"])) for r in rows if r["parsed"] != "\u2013"}
    assert documented == REPORT_BODY_FIELDS
    position = 0
    for row in rows:  # the rows tile the 384 bytes, reserved ones included
        assert int(row["offset"]) == position, row
        position += int(row["size"])
    assert position == quote_module.REPORT_BODY_SIZE


def test_the_quote_table_matches_the_parsers_constants() -> None:
    rows = {r["field"]: r for r in layout("quote v3")}
    assert int(rows["ISV enclave report body"]["offset"]) == quote_module.HEADER_SIZE
    assert int(rows["ISV enclave report body"]["size"]) == quote_module.REPORT_BODY_SIZE
    assert _number(rows["certification data"]["offset"], 0, 0) == quote_module.V3_MIN_SIZE
    assert quote_module.INTEL_QE_VENDOR_ID.hex() in rows["QE vendor ID"]["encoding"]


@pytest.mark.parametrize("name", ["dcap-qvl", "intel-sample", "simulated"])
def test_every_documented_offset_holds_the_parsed_field(quotes, name: str) -> None:
    raw = quotes[name]
    q = parse_quote(raw)
    n, m = len(q.qe_auth_data), len(q.cert_data)
    end = 0
    for row in layout("quote v3"):
        at, size = _number(row["offset"], n, m), _number(row["size"], n, m)
        field = raw[at:at + size]
        expected = _expected(q, row["parsed"])
        if isinstance(expected, int):
            assert int.from_bytes(field, "little") == expected, row
        else:
            assert field == expected, row
        end = max(end, at + size)
    assert end == len(raw)  # nothing undocumented after the certification data
    for offset, body in ((48, q.body), (564, q.qe_report)):
        for row in layout("report body"):
            at, size = offset + int(row["offset"]), int(row["size"])
            if row["parsed"] == "\u2013":
                assert raw[at:at + size] == bytes(size), (name, row)  # reserved: zero, as documented
            else:
                value = getattr(body, row["parsed"])
                assert (int.from_bytes(raw[at:at + size], "little") if isinstance(value, int)
                        else raw[at:at + size]) == value, row


def _rs(signature: bytes) -> bytes:
    return encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))


@pytest.mark.parametrize("name", ["dcap-qvl", "simulated"])
def test_the_documented_encodings_verify(quotes, name: str) -> None:
    """Read only as §2a says: r || s and x || y big-endian, the signed regions, the QE binding."""
    raw = quotes[name]
    attestation_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + raw[500:564])
    attestation_key.verify(_rs(raw[436:500]), raw[0:432], ec.ECDSA(hashes.SHA256()))
    n = int.from_bytes(raw[1012:1014], "little")
    assert raw[564 + 320:564 + 352] == hashlib.sha256(raw[500:564] + raw[1014:1014 + n]).digest()
    pck_leaf = parse_quote(raw).embedded_pck_chain()[0].public_key()
    pck_leaf.verify(_rs(raw[948:1012]), raw[564:948], ec.ECDSA(hashes.SHA256()))


def test_the_absolute_offsets_in_the_text_are_the_tables() -> None:
    text = ATTESTATION_MD.read_text()
    sentence = text[text.index("So in a v3 or v4 quote"):]
    sentence = sentence[:sentence.index("Verify the signatures")]
    names = {r["field"]: r for r in layout("report body")}
    found = re.findall(r"([A-Z]+)\s+(?:are\s+)?at\s+(\d+)", sentence)
    assert len(found) == 6
    for field, offset in found:
        assert int(offset) == quote_module.HEADER_SIZE + int(names[field]["offset"]), field
