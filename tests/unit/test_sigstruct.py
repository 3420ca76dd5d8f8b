"""SIGSTRUCT layout, signature (pyca and the openssl CLI), q1/q2, identity, tampering and the `kms enclave` CLI."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from kms.enclave import sigstruct as ss

REPO = Path(__file__).resolve().parents[2]
IMAGE = b"\x7fELF fake enclave image\x00" + bytes(range(256)) * 8
EPOCH_2024_01_15 = "1705312800"  # 2024-01-15T10:00:00Z
CONFIG = ss.EnclaveConfig(isv_prod_id=0x1234, isv_svn=0x5678, debug=True, tcs_num=4,
                          misc_select=0x11, misc_mask=0xFFFFFFF0, xfrm=0x7, xfrm_mask=0x3)


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=3, key_size=3072)


@pytest.fixture()
def blob(key: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch) -> bytes:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH_2024_01_15)
    return ss.sign_image(IMAGE, CONFIG, key)


def u(blob: bytes, fmt: str, off: int) -> int:
    return struct.unpack_from("<" + fmt, blob, off)[0]


def le(blob: bytes, off: int) -> int:
    return int.from_bytes(blob[off:off + 384], "little")


def test_layout_field_by_field(blob: bytes, key: rsa.RSAPrivateKey) -> None:
    n = key.public_key().public_numbers().n
    assert len(blob) == 1808
    assert blob[0:16] == bytes.fromhex("06000000E10000000000010000000000")
    assert u(blob, "I", 16) == 0  # vendor
    assert u(blob, "I", 20) == 0x20240115  # BCD date
    assert blob[24:40] == bytes.fromhex("01010000600000006000000001000000")
    assert u(blob, "I", 40) == 0  # swdefined
    assert blob[44:128] == bytes(84)
    assert le(blob, 128) == n
    assert u(blob, "I", 512) == 3
    assert le(blob, 516) < n and le(blob, 516) != 0
    assert u(blob, "I", 900) == 0x11 and u(blob, "I", 904) == 0xFFFFFFF0
    assert blob[908:928] == bytes(20)
    assert u(blob, "Q", 928) == ss.FLAG_MODE64BIT | ss.FLAG_DEBUG
    assert u(blob, "Q", 936) == 0x7
    assert u(blob, "Q", 944) == ss.ATTRIBUTE_MASK_FLAGS == 0xFFFFFFFFFFFFFFFF
    assert u(blob, "Q", 952) == 0x3
    assert blob[960:992] == hashlib.sha256(IMAGE).digest()
    assert blob[992:1024] == bytes(32)
    assert u(blob, "H", 1024) == 0x1234 and u(blob, "H", 1026) == 0x5678
    assert blob[1028:1040] == bytes(12)
    assert le(blob, 1040) > 0 and le(blob, 1424) > 0


def test_parse_round_trip_and_properties(blob: bytes, key: rsa.RSAPrivateKey) -> None:
    s = ss.parse(blob)
    assert s.to_bytes() == blob
    assert (s.isv_prod_id, s.isv_svn, s.debug, s.date_iso) == (0x1234, 0x5678, True, "2024-01-15")
    assert s.mrenclave == hashlib.sha256(IMAGE).digest()
    assert s.signed_data() == blob[0:128] + blob[900:1028]
    assert ss.verify(blob, IMAGE) == s


def test_production_flags(key: rsa.RSAPrivateKey) -> None:
    cfg = ss.EnclaveConfig(isv_prod_id=1, isv_svn=1, debug=False, tcs_num=8)
    s = ss.parse(ss.sign_image(IMAGE, cfg, key))
    assert s.attributes_flags == ss.FLAG_MODE64BIT and not s.debug
    assert (s.misc_select, s.misc_mask, s.attributes_xfrm) == (0, 0xFFFFFFFF, 0x3)


def test_mrsigner_is_sha256_of_le_modulus(blob: bytes, key: rsa.RSAPrivateKey) -> None:
    n = key.public_key().public_numbers().n
    expected = hashlib.sha256(n.to_bytes(384, "little")).digest()
    assert ss.parse(blob).mrsigner == expected == ss.mrsigner_of(key) == ss.mrsigner_of(key.public_key())


def test_signature_verifies_with_pyca(blob: bytes, key: rsa.RSAPrivateKey) -> None:
    sig_be = blob[516:900][::-1]
    key.public_key().verify(sig_be, blob[0:128] + blob[900:1028], padding.PKCS1v15(), hashes.SHA256())


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl command line not installed")
def test_signature_verifies_with_openssl_cli(blob: bytes, tmp_path: Path) -> None:
    """Rebuild the public key from the stored modulus with openssl alone, then verify with `openssl dgst`."""
    n = le(blob, 128)
    e = u(blob, "I", 512)
    (tmp_path / "key.cnf").write_text(f"asn1=SEQUENCE:k\n[k]\nn=INTEGER:0x{n:X}\ne=INTEGER:{e}\n")
    run = lambda *a: subprocess.run(["openssl", *a], capture_output=True, text=True)  # noqa: E731
    r = run("asn1parse", "-genconf", str(tmp_path / "key.cnf"), "-out", str(tmp_path / "key.der"), "-noout")
    assert r.returncode == 0, r.stderr
    r = run("rsa", "-RSAPublicKey_in", "-inform", "DER", "-in", str(tmp_path / "key.der"),
            "-pubout", "-out", str(tmp_path / "pub.pem"))
    assert r.returncode == 0, r.stderr
    (tmp_path / "sig.bin").write_bytes(blob[516:900][::-1])
    (tmp_path / "msg.bin").write_bytes(blob[0:128] + blob[900:1028])
    verify = ("dgst", "-sha256", "-verify", str(tmp_path / "pub.pem"), "-signature", str(tmp_path / "sig.bin"))
    r = run(*verify, str(tmp_path / "msg.bin"))
    assert r.returncode == 0 and "Verified OK" in r.stdout, r.stdout + r.stderr
    (tmp_path / "bad.bin").write_bytes(blob[0:128] + blob[900:1026] + b"\x00\x01")  # ISVSVN changed
    assert run(*verify, str(tmp_path / "bad.bin")).returncode != 0


def test_q1_q2_definitions(blob: bytes) -> None:
    n, s, q1, q2 = le(blob, 128), le(blob, 516), le(blob, 1040), le(blob, 1424)
    assert q1 == s * s // n
    assert q2 == (s ** 3 - q1 * s * n) // n
    r1 = s * s - q1 * n  # what EINIT recomputes: s^2 mod n, then s^3 mod n, with no division
    assert 0 <= r1 < n and 0 <= r1 * s - q2 * n < n
    assert r1 * s - q2 * n == pow(s, 3, n)


@pytest.mark.parametrize(("offset", "check"), [
    (0, "header1"), (30, "header2"), (16, "vendor"), (20, "signature"), (44, "signature"),  # header
    (200, "signature"), (512, "exponent"), (600, "signature"),  # modulus, exponent, signature
    (900, "signature"), (944, "signature"), (970, "signature"), (1026, "signature"),  # body
    (1030, "reserved"), (1100, "q1q2"), (1500, "q1q2"),
])
def test_flipped_byte_is_refused(blob: bytes, offset: int, check: str) -> None:
    bad = bytearray(blob)
    bad[offset] ^= 0x01
    with pytest.raises(ss.SigStructError) as e:
        ss.verify(bytes(bad), IMAGE)
    assert e.value.check == check


def test_wrong_size_and_headers_refused_by_parse(blob: bytes) -> None:
    for bad in (blob[:-1], blob + b"\x00", b""):
        with pytest.raises(ss.SigStructError, match="size"):
            ss.parse(bad)
    with pytest.raises(ss.SigStructError, match="header2"):
        ss.parse(blob[:24] + bytes(16) + blob[40:])


def test_image_mismatch_refused(blob: bytes) -> None:
    with pytest.raises(ss.SigStructError) as e:
        ss.verify(blob, IMAGE + b"\x00")
    assert e.value.check == "image"
    ss.verify(blob)  # without an image only the signature is checked


def test_wrong_exponent_or_size_key_refused(tmp_path: Path) -> None:
    cfg = ss.EnclaveConfig(isv_prod_id=1, isv_svn=1, debug=False, tcs_num=1)
    for bad_key in (rsa.generate_private_key(65537, 3072), rsa.generate_private_key(3, 2048)):
        with pytest.raises(ss.SignerKeyError, match="exponent 3"):
            ss.sign_image(IMAGE, cfg, bad_key)


def test_generate_signer_key(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "signer.pem"
    key = ss.generate_signer_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    loaded = ss.load_signer_key(path)
    assert loaded.key_size == 3072 and loaded.public_key().public_numbers().e == 3
    assert ss.mrsigner_of(loaded) == ss.mrsigner_of(key)
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        ss.generate_signer_key(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["signer.pem"]  # no temp file left


def test_load_config_repo_file_and_ranges(tmp_path: Path) -> None:
    cfg = ss.load_config(REPO / "enclave" / "config" / "enclave.toml")
    assert 1 <= cfg.tcs_num <= 64 and isinstance(cfg.debug, bool)
    base = "isv_prod_id = 1\nisv_svn = 2\ndebug = false\ntcs_num = 8\n"
    ok = tmp_path / "ok.toml"
    ok.write_text(base)
    assert ss.load_config(ok) == ss.EnclaveConfig(1, 2, False, 8)
    for bad in ("isv_svn = 65536", "isv_prod_id = -1", "tcs_num = 0", "tcs_num = 65", 'debug = "no"',
                "isv_svn = true", "xfrm = 1", "misc_mask = 0x100000000", "isv_svm = 3", "= broken"):
        p = tmp_path / "bad.toml"
        p.write_text("\n".join(line for line in base.splitlines() if line.split(" =")[0] != bad.split(" =")[0])
                     + "\n" + bad + "\n")
        with pytest.raises(ss.ConfigError):
            ss.load_config(p)
    with pytest.raises(ss.ConfigError, match="missing"):
        (tmp_path / "short.toml").write_text("isv_prod_id = 1\n")
        ss.load_config(tmp_path / "short.toml")
    with pytest.raises(ss.ConfigError, match="cannot read"):
        ss.load_config(tmp_path / "absent.toml")


def test_date_from_source_date_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    assert ss.build_date() == 0x19700101
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "soon")
    with pytest.raises(ss.ConfigError):
        ss.build_date()
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    assert 0x20240101 <= ss.build_date() <= 0x99991231


# ---- the CLI, end to end through `python -m kms enclave ...` -------------------------------------


def kms(*args: str, cwd: Path = REPO, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "SOURCE_DATE_EPOCH": EPOCH_2024_01_15, **extra}
    return subprocess.run([sys.executable, "-m", "kms", "enclave", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def one_line_error(r: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_cli_keygen_sign_measure(tmp_path: Path) -> None:
    keyfile, image, out = tmp_path / ".local" / "dev.pem", tmp_path / "enclave.so", tmp_path / "e.sigstruct"
    image.write_bytes(IMAGE)
    cfg = tmp_path / "enclave.toml"
    cfg.write_text("isv_prod_id = 7\nisv_svn = 3\ndebug = false\ntcs_num = 2\n")

    r = kms("keygen", "--out", str(keyfile))
    assert r.returncode == 0, r.stderr
    mrsigner = r.stdout.strip()
    assert stat.S_IMODE(keyfile.stat().st_mode) == 0o600
    assert mrsigner == ss.mrsigner_of(ss.load_signer_key(keyfile)).hex()
    r = kms("keygen", "--out", str(keyfile))
    assert r.returncode == 1 and "refusing to overwrite" in r.stderr
    one_line_error(r)

    r = kms("sign", "--key", str(keyfile), "--config", str(cfg), "--image", str(image), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert ss.verify(out.read_bytes(), IMAGE).isv_svn == 3

    r = kms("measure", "--image", str(image), "--sigstruct", str(out), "--output", "json")
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout)
    assert m["mrenclave"] == hashlib.sha256(IMAGE).hexdigest() and m["mrsigner"] == mrsigner
    assert (m["isv_prod_id"], m["isv_svn"], m["debug"], m["date"]) == (7, 3, False, "2024-01-15")
    assert m["signature_valid"] is True and m["image_matches"] is True

    r = kms("measure", "--image", str(image), "--sigstruct", str(out))  # table
    assert r.returncode == 0 and mrsigner in r.stdout and "MRENCLAVE" in r.stdout

    (tmp_path / "build").mkdir()  # defaults: $KMS_BUILD_DIR/kms_enclave.so and .sigstruct, whatever the cwd
    shutil.copy(out, tmp_path / "build" / "kms_enclave.sigstruct")
    (tmp_path / "build" / "kms_enclave.so").write_bytes(IMAGE + b"patched")
    r = kms("measure", "--output", "json", cwd=tmp_path / "build", KMS_BUILD_DIR=str(tmp_path / "build"))
    assert r.returncode == 2 and "does not match" in r.stderr
    m = json.loads(r.stdout)
    assert m["signature_valid"] is True and m["image_matches"] is False

    bad = bytearray(out.read_bytes())
    bad[1026] ^= 0xFF  # ISVSVN
    (tmp_path / "bad.sigstruct").write_bytes(bytes(bad))
    r = kms("measure", "--sigstruct", str(tmp_path / "bad.sigstruct"), "--output", "json", cwd=tmp_path / "build")
    assert r.returncode == 2 and json.loads(r.stdout)["signature_valid"] is False

    (tmp_path / "short.sigstruct").write_bytes(bytes(bad[:1000]))
    r = kms("measure", "--sigstruct", str(tmp_path / "short.sigstruct"))
    assert r.returncode == 2
    one_line_error(r)


def test_cli_local_errors(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing")
    for args in (("measure", "--sigstruct", missing),
                 ("sign", "--key", missing, "--config", "enclave/config/enclave.toml", "--image", missing,
                  "--out", str(tmp_path / "o")),
                 ("keygen", "--out", "/proc/forbidden/key.pem")):
        r = kms(*args)
        assert r.returncode == 1, (args, r.stderr)
        one_line_error(r)
    weak = tmp_path / "weak.pem"
    from cryptography.hazmat.primitives import serialization as ser
    weak.write_bytes(rsa.generate_private_key(65537, 3072).private_bytes(
        ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption()))
    (tmp_path / "img").write_bytes(IMAGE)
    r = kms("sign", "--key", str(weak), "--config", "enclave/config/enclave.toml", "--image",
            str(tmp_path / "img"), "--out", str(tmp_path / "o"))
    assert r.returncode == 1 and "exponent 3" in r.stderr and not (tmp_path / "o").exists()
    one_line_error(r)
    r = kms("sign", "--key", str(weak))
    assert r.returncode == 1 and "required" in r.stderr


def test_measure_finds_the_build_from_any_directory(build: Path, tmp_path: Path) -> None:
    """`kms enclave measure` without flags, run outside the checkout: the checkout's build, not ./build."""
    env = {k: v for k, v in os.environ.items() if k != "KMS_BUILD_DIR"}
    r = subprocess.run([sys.executable, "-m", "kms", "enclave", "measure", "--output", "json"], cwd=tmp_path,
                       env={**env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout)
    assert m["image_matches"] is True and m["sigstruct"] == str(build / "kms_enclave.sigstruct")
