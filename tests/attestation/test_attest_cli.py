"""`kms attest verify-quote|verify-cert`: output and exit codes (0 accepted, 2 rejected, 1 local)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from attest_testpki import MRENCLAVE, NOW, SynthPlatform, pem, vectors

from kms import cli
from kms.attestation import dump_collateral_json

QVL_MRENCLAVE = "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"


def main(argv: list[str]) -> int:
    return cli.main(["attest", *argv])


@pytest.fixture(scope="module")
def qvl() -> list[str]:
    d = vectors("dcap", "dcap-qvl")
    return ["verify-quote", "--quote", str(d / "sgx_quote"), "--collateral", str(d / "sgx_quote_collateral.json"),
            "--mrenclave", QVL_MRENCLAVE, "--allow-tcb-status", "ConfigurationAndSWHardeningNeeded"]


def test_accepted_quote_exits_0(qvl: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*qvl, "--at", "2025-07-01T00:00:00Z"]) == 0
    out = capsys.readouterr().out
    assert "result: ACCEPTED" in out and "INTEL-SA-00289, INTEL-SA-00615" in out and QVL_MRENCLAVE in out


def test_expired_collateral_exits_2_with_json(qvl: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*qvl, "--at", "2025-08-01T00:00:00Z", "--output", "json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["failed_step"] == "collateral_expiry"
    assert report["tcb_status"] == "ConfigurationAndSWHardeningNeeded"
    assert main([*qvl, "--at", "2025-08-01T00:00:00Z", "--allow-expired-collateral-insecure"]) == 0


def test_policy_and_chain_failures_exit_2(qvl: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*qvl, "--at", "2025-07-01T00:00:00Z", "--mrsigner", "00" * 32]) == 2
    assert "failed step: policy_mrsigner" in capsys.readouterr().out
    root = vectors("dcap", "intel-qvl-sample") / "trustedRootCaCert.pem"
    assert main([*qvl, "--at", "2025-07-01T00:00:00Z", "--root", str(root)]) == 2
    assert "failed step: pck_chain" in capsys.readouterr().out


def test_usage_and_local_errors_exit_1(qvl: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["verify-quote", "--quote", "x"])
    assert info.value.code == 1
    assert main([*qvl, "--at", "2025-07-01"]) == 1
    assert main([*qvl[:2], str(tmp_path / "missing"), *qvl[3:]]) == 1
    assert main(["verify-quote", "--quote", qvl[2], "--collateral", qvl[4]]) == 1
    assert "allow_any_enclave_insecure" in capsys.readouterr().err


def test_hex_quote_and_intel_sample_with_pck_chain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = vectors("dcap", "intel-qvl-sample")
    (tmp_path / "quote.hex").write_text((d / "quote.dat").read_bytes().hex())
    (tmp_path / "chain.pem").write_bytes((d / "pckCert.pem").read_bytes() + (d / "pckSignChain.pem").read_bytes())
    from kms.attestation import collateral_from_parts, split_signed_response

    read = lambda name: (d / name).read_bytes()  # noqa: E731
    collateral = collateral_from_parts(
        pck_crl_issuer_chain=read("pckSignChain.pem"), root_ca_crl=read("rootCaCrl.der"),
        pck_crl=read("intermediateCaCrl.der"), tcb_info_issuer_chain=read("tcbSignChain.pem"),
        tcb_info=split_signed_response(read("tcbInfo.json"), "tcbInfo"),
        qe_identity_issuer_chain=read("tcbSignChain.pem"),
        qe_identity=split_signed_response(read("qeIdentity.json"), "enclaveIdentity"))
    (tmp_path / "collateral.json").write_text(dump_collateral_json(collateral))
    args = ["verify-quote", "--quote", str(tmp_path / "quote.hex"), "--collateral", str(tmp_path / "collateral.json"),
            "--pck-chain", str(tmp_path / "chain.pem"), "--at", "2025-01-01T00:00:00Z", "--allow-any-enclave-insecure"]
    assert main([*args, "--root", str(d / "trustedRootCaCert.pem")]) == 0
    assert "tcb status: UpToDate" in capsys.readouterr().out
    assert main(args) == 2


def test_verify_cert_and_simulated_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import test_attest_ratls as ratls
    from cryptography.hazmat.primitives.asymmetric import ec

    p = SynthPlatform()
    key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "cert.der").write_bytes(ratls.dice_cert(p, key))
    (tmp_path / "root.pem").write_bytes(pem(p.root))
    (tmp_path / "collateral.json").write_text(dump_collateral_json(p.collateral()))
    base = ["verify-cert", "--cert", str(tmp_path / "cert.der"), "--collateral", str(tmp_path / "collateral.json"),
            "--at", NOW.isoformat(), "--mrenclave", MRENCLAVE.hex()]
    assert main([*base, "--root", str(tmp_path / "root.pem")]) == 0
    assert main([*base, "--simulated-root", str(tmp_path / "root.pem")]) == 2
    assert "policy_simulation" in capsys.readouterr().out
    assert main([*base, "--simulated-root", str(tmp_path / "root.pem"), "--allow-simulation-insecure"]) == 0
    assert main([*base, "--root", str(tmp_path / "root.pem"), "--nonce", "00"]) == 2
