"""Reporting on the real dcap-qvl vector (QVL's behaviour): collateral that is not yet valid or expired still gets
its TCB status and advisories reported, with the collateral's window as its own result, and the verdict stays a
refusal; "all other checks passed" only when they did; `collateral=None` / `--no-collateral` checks every
signature up to the PCK chain and is never an acceptance."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from attest_testpki import flip, vectors
from cryptography.hazmat.primitives.asymmetric import ec

from kms import cli
from kms.attestation import (
    AttestationPolicy,
    Collateral,
    Step,
    TcbStatus,
    TrustAnchor,
    check_quote_signatures,
    load_collateral_json,
    parse_quote,
    verify_quote,
)

QVL_MRENCLAVE = "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"
QVL_MRSIGNER = "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6"
CSWH = TcbStatus.CONFIGURATION_AND_SW_HARDENING_NEEDED
ADVISORIES = ("INTEL-SA-00289", "INTEL-SA-00615")
JULY = datetime(2025, 7, 1, tzinfo=UTC)
ALL_PASSED = "all other checks passed"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.fixture(scope="module")
def qvl() -> tuple[bytes, Collateral]:
    d = vectors("dcap", "dcap-qvl")
    return (d / "sgx_quote").read_bytes(), load_collateral_json(d / "sgx_quote_collateral.json")


@pytest.fixture(scope="module")
def policy() -> AttestationPolicy:
    return AttestationPolicy.build(mrenclave=QVL_MRENCLAVE, mrsigner=QVL_MRSIGNER, isvprodid=0,
                                   allowed_tcb_statuses=("UpToDate", CSWH), report_data=b"Hello, world!")


def test_the_vector_windows_these_tests_pin_between(qvl: tuple[bytes, Collateral]) -> None:
    """The pinned times below are chosen against these dates of the real collateral."""
    _, collateral = qvl
    assert collateral.root_ca_crl.last_update_utc == at("2025-03-20T11:21:57+00:00")
    assert collateral.pck_crl.last_update_utc == at("2025-06-19T10:23:18+00:00")
    assert collateral.pck_crl.next_update_utc == at("2025-07-19T10:23:18+00:00")
    assert collateral.root_ca_crl.next_update_utc == at("2026-04-03T11:21:57+00:00")


# --- before the CRLs' thisUpdate ------------------------------------------------------------------

NOT_YET = [
    # before both CRLs' thisUpdate (and the 2025 TCB Signing certificate, TCB Info and QE Identity)
    pytest.param("2025-03-01T00:00:00+00:00", id="before-both-crls"),
    # the root CA CRL is current; before the PCK CRL's thisUpdate (10:23:18) and QE Identity's issueDate
    pytest.param("2025-06-19T10:00:00+00:00", id="before-the-pck-crl"),
]


@pytest.mark.parametrize("when", NOT_YET)
def test_not_yet_valid_collateral_reports_tcb_status_and_advisories(qvl: tuple[bytes, Collateral],
                                                                    policy: AttestationPolicy, when: str) -> None:
    quote, collateral = qvl
    result = verify_quote(quote, collateral, policy, at=at(when))
    assert not result.ok and result.failed_step is Step.COLLATERAL_NOT_YET_VALID
    # the latest start of everything checked is the TCB Info's issueDate
    assert "not valid before 2025-06-19T10:56:11Z (TCB Info)" in result.message and ALL_PASSED in result.message
    report = result.diagnostics
    assert report is not None
    assert report.tcb_status is CSWH and report.advisory_ids == ADVISORIES
    assert report.platform_tcb_status is CSWH and report.qe_tcb_status is TcbStatus.UP_TO_DATE
    assert report.collateral_status == "not_yet_valid" and report.collateral_not_yet_valid
    assert report.collateral_valid_from == at("2025-06-19T10:56:11+00:00")
    assert not report.collateral_expired
    info = result.to_dict()
    assert info["collateral_status"] == "not_yet_valid" and info["tcb_status"] == CSWH.value
    assert info["advisory_ids"] == list(ADVISORIES) and info["tcb_evaluated"] is True
    with pytest.raises(Exception, match="not valid before"):
        _ = result.tcb_status  # a rejected result never hands out accepted evidence


@pytest.mark.parametrize("when", NOT_YET)
def test_not_yet_valid_is_never_relaxed(qvl: tuple[bytes, Collateral], policy: AttestationPolicy, when: str) -> None:
    quote, collateral = qvl
    relaxed = dataclasses.replace(policy, allow_expired_collateral_insecure=True)
    result = verify_quote(quote, collateral, relaxed, at=at(when))
    assert not result.ok and result.failed_step is Step.COLLATERAL_NOT_YET_VALID


# --- after nextUpdate -------------------------------------------------------------------------------

EXPIRED = [
    # after the QE Identity's and the PCK CRL's nextUpdate, before the TCB Info's (10:56:11)
    pytest.param("2025-07-19T10:30:00+00:00", id="after-the-pck-crl"),
    pytest.param("2025-08-01T00:00:00+00:00", id="after-every-json-document"),
    # after the root CA CRL's nextUpdate too
    pytest.param("2026-05-01T00:00:00+00:00", id="after-both-crls"),
]


@pytest.mark.parametrize("when", EXPIRED)
def test_expired_collateral_reports_tcb_status_and_advisories(qvl: tuple[bytes, Collateral],
                                                              policy: AttestationPolicy, when: str) -> None:
    quote, collateral = qvl
    result = verify_quote(quote, collateral, policy, at=at(when))
    assert not result.ok and result.failed_step is Step.COLLATERAL_EXPIRY
    assert "collateral expired at 2025-07-19T10:01:18Z (QE Identity)" in result.message
    assert ALL_PASSED in result.message
    report = result.diagnostics
    assert report is not None and report.tcb_status is CSWH and report.advisory_ids == ADVISORIES
    assert report.collateral_status == "expired" and not report.collateral_not_yet_valid
    assert result.to_dict()["collateral_status"] == "expired"


def test_expired_collateral_stays_a_refusal_unless_relaxed(qvl: tuple[bytes, Collateral],
                                                           policy: AttestationPolicy) -> None:
    quote, collateral = qvl
    assert not verify_quote(quote, collateral, policy, at=at("2025-08-01T00:00:00+00:00"))
    relaxed = dataclasses.replace(policy, allow_expired_collateral_insecure=True)
    late = verify_quote(quote, collateral, relaxed, at=at("2025-08-01T00:00:00+00:00"))
    assert late.ok and late.verified.collateral_status == "expired" and late.tcb_status is CSWH


# --- "all other checks passed" only when they did ---------------------------------------------------

@pytest.mark.parametrize("when", ["2025-03-01T00:00:00+00:00", "2025-08-01T00:00:00+00:00"])
@pytest.mark.parametrize(("change", "step"), [
    pytest.param({"mrsigner": bytes(32)}, Step.POLICY_MRSIGNER, id="mrsigner"),
    pytest.param({"allowed_tcb_statuses": frozenset({TcbStatus.UP_TO_DATE})}, Step.POLICY_TCB_STATUS, id="tcb"),
    pytest.param({"report_data": b"other"}, Step.POLICY_REPORT_DATA, id="report-data"),
])
def test_a_policy_failure_comes_before_the_collateral_window(qvl: tuple[bytes, Collateral], policy: AttestationPolicy,
                                                             when: str, change: dict, step: Step) -> None:
    quote, collateral = qvl
    result = verify_quote(quote, collateral, dataclasses.replace(policy, **change), at=at(when))
    assert result.failed_step is step
    assert ALL_PASSED not in result.message
    report = result.diagnostics  # the collateral problem is still reported, as its own result
    assert report is not None and report.collateral_status in ("not_yet_valid", "expired")
    assert report.tcb_status is CSWH and report.advisory_ids == ADVISORIES


def test_a_current_collateral_reports_valid(qvl: tuple[bytes, Collateral], policy: AttestationPolicy) -> None:
    quote, collateral = qvl
    result = verify_quote(quote, collateral, policy, at=JULY)
    assert result.ok and result.verified.collateral_status == "valid"
    assert result.verified.collateral_valid_from == at("2025-06-19T10:56:11+00:00")


# --- without collateral -----------------------------------------------------------------------------

@pytest.mark.parametrize("when", ["2025-07-01T00:00:00+00:00", "2025-08-01T00:00:00+00:00"])
def test_without_collateral_signatures_verify_but_nothing_is_accepted(qvl: tuple[bytes, Collateral],
                                                                      policy: AttestationPolicy, when: str) -> None:
    quote, _ = qvl
    result = verify_quote(quote, None, policy, at=at(when))
    assert not result.ok and result.failed_step is Step.TCB_NOT_EVALUATED
    assert "every signature verifies up to the PCK chain" in result.message
    assert "NOT evaluated" in result.message and ALL_PASSED not in result.message
    assert result.diagnostics is None
    with pytest.raises(Exception, match="tcb_not_evaluated"):
        _ = result.identity
    signed = result.signatures
    assert signed is not None and signed.identity.mrenclave.hex() == QVL_MRENCLAVE
    assert signed.pck_chain_status == "valid" and signed.sgx_extension.fmspc.hex().upper() == "00A067110000"
    info = result.to_dict()
    assert info["tcb_evaluated"] is False and info["tcb_status"] is None and info["advisory_ids"] is None
    assert info["identity_signature_verified"] is True and info["pck_ca"] == "processor"


def test_without_collateral_every_signature_is_still_checked(qvl: tuple[bytes, Collateral],
                                                             policy: AttestationPolicy) -> None:
    quote, _ = qvl
    for offset, step in ((48 + 64, Step.ISV_SIGNATURE), (564 + 64, Step.QE_REPORT_SIGNATURE),
                         (500 + 10, Step.QE_REPORT_DATA), (1014 + 4, Step.QE_REPORT_DATA)):
        result = verify_quote(flip(quote, offset), None, policy, at=JULY)
        assert result.failed_step is step, result.message
        assert result.to_dict()["identity_signature_verified"] is False
    other = TrustAnchor.from_public_key(ec.generate_private_key(ec.SECP256R1()).public_key())
    assert verify_quote(quote, None, policy, at=JULY, trust_anchor=other).failed_step is Step.PCK_CHAIN
    assert verify_quote(quote[:-100], None, policy, at=JULY).failed_step is Step.QUOTE_FORMAT


def test_without_collateral_the_enclave_policy_applies_first(qvl: tuple[bytes, Collateral],
                                                             policy: AttestationPolicy) -> None:
    quote, _ = qvl
    result = verify_quote(quote, None, dataclasses.replace(policy, mrenclaves=frozenset({bytes(32)})), at=JULY)
    assert result.failed_step is Step.POLICY_MRENCLAVE
    # the TCB status is never a reason to pass or fail without collateral
    strict = dataclasses.replace(policy, allowed_tcb_statuses=frozenset({TcbStatus.UP_TO_DATE}))
    assert verify_quote(quote, None, strict, at=JULY).failed_step is Step.TCB_NOT_EVALUATED


def test_without_collateral_an_expired_pck_chain_is_said(qvl: tuple[bytes, Collateral],
                                                         policy: AttestationPolicy) -> None:
    quote, _ = qvl
    result = verify_quote(quote, None, policy, at=at("2034-01-01T00:00:00+00:00"))  # Processor CA ends 2033-05-21
    assert result.failed_step is Step.TCB_NOT_EVALUATED and "PCK chain expired at 2030-09-20" in result.message
    assert result.signatures is not None and result.signatures.pck_chain_status == "expired"


def test_check_quote_signatures_is_the_same_stage(qvl: tuple[bytes, Collateral]) -> None:
    quote, _ = qvl
    signed = check_quote_signatures(parse_quote(quote), at=JULY)
    assert signed.identity.report_data.startswith(b"Hello, world!") and not signed.simulated


def test_intel_sample_without_collateral() -> None:
    d = vectors("dcap", "intel-qvl-sample")
    from cryptography import x509

    chain = [x509.load_pem_x509_certificate((d / "pckCert.pem").read_bytes()),
             *x509.load_pem_x509_certificates((d / "pckSignChain.pem").read_bytes())]
    anchor = TrustAnchor.load((d / "trustedRootCaCert.pem").read_bytes())
    policy = AttestationPolicy(allow_any_enclave_insecure=True)
    quote = (d / "quote.dat").read_bytes()
    when = datetime(2025, 1, 1, tzinfo=UTC)
    result = verify_quote(quote, None, policy, at=when, trust_anchor=anchor, pck_chain=chain)
    assert result.failed_step is Step.TCB_NOT_EVALUATED, result.message
    assert verify_quote(quote, None, policy, at=when, pck_chain=chain).failed_step is Step.PCK_CHAIN


# --- the command line -------------------------------------------------------------------------------

def attest(argv: list[str]) -> int:
    return cli.main(["attest", *argv])


@pytest.fixture(scope="module")
def qvl_args() -> list[str]:
    d = vectors("dcap", "dcap-qvl")
    return ["verify-quote", "--quote", str(d / "sgx_quote"), "--mrenclave", QVL_MRENCLAVE,
            "--allow-tcb-status", CSWH.value]


def collateral_file() -> str:
    return str(vectors("dcap", "dcap-qvl") / "sgx_quote_collateral.json")


def test_cli_reports_not_yet_valid_collateral(qvl_args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert attest([*qvl_args, "--collateral", collateral_file(), "--at", "2025-03-01T00:00:00Z"]) == 2
    out = capsys.readouterr().out
    assert "result: REJECTED" in out and "failed step: collateral_not_yet_valid" in out
    assert f"tcb status: {CSWH.value}" in out and "advisories: INTEL-SA-00289, INTEL-SA-00615" in out
    assert "collateral: NOT YET VALID before 2025-06-19T10:56:11Z (TCB Info)" in out and ALL_PASSED in out


def test_cli_reports_expired_collateral_and_a_policy_failure(qvl_args: list[str],
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    args = [*qvl_args, "--collateral", collateral_file(), "--at", "2025-08-01T00:00:00Z"]
    assert attest(args) == 2
    out = capsys.readouterr().out
    assert "collateral: EXPIRED at 2025-07-19T10:01:18Z (QE Identity)" in out and ALL_PASSED in out
    assert attest([*args, "--mrsigner", "00" * 32]) == 2
    out = capsys.readouterr().out
    assert "failed step: policy_mrsigner" in out and ALL_PASSED not in out
    assert "collateral: EXPIRED at" in out and "advisories: INTEL-SA-00289, INTEL-SA-00615" in out
    assert attest([*args, "--allow-expired-collateral-insecure"]) == 0
    assert "result: ACCEPTED" in capsys.readouterr().out


def test_cli_no_collateral(qvl_args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert attest([*qvl_args, "--no-collateral", "--at", "2025-07-01T00:00:00Z"]) == 2
    out = capsys.readouterr().out
    assert "failed step: tcb_not_evaluated" in out and "tcb status: NOT EVALUATED" in out
    assert "no collateral was used" in out and "pck chain: valid" in out and "result: ACCEPTED" not in out
    assert attest([*qvl_args, "--no-collateral", "--at", "2025-07-01T00:00:00Z", "--output", "json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["failed_step"] == "tcb_not_evaluated"
    assert report["tcb_evaluated"] is False and report["identity_signature_verified"] is True
    assert attest([*qvl_args, "--no-collateral", "--at", "2025-07-01T00:00:00Z", "--mrsigner", "00" * 32]) == 2
    assert "failed step: policy_mrsigner" in capsys.readouterr().out


def test_cli_no_collateral_excludes_the_other_sources(qvl_args: list[str], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        attest([*qvl_args, "--no-collateral", "--collateral", collateral_file()])
    assert info.value.code == 1
    assert "not allowed with argument" in capsys.readouterr().err


def test_every_step_is_in_the_docs_table() -> None:
    """docs/attestation.md §2 lists each Step, in the enum's order (policy steps as `policy_*`)."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "attestation.md").read_text()
    table = text[text.index("| step | what is checked |"):text.index("Malformed certificates and CRLs")]
    first = [line.split("|")[1].strip() for line in table.splitlines()[2:] if line.startswith("|")]
    rows = [cell.strip("`") for cells in first for cell in cells.split(" / ")]
    listed = [r for r in rows if r != "policy_*"]
    steps = [s.value for s in Step if not s.value.startswith(("policy_", "ratls_"))]
    assert listed == steps
