"""EIP-2335 keystore import through a real server (heap 512 MiB: a standard scrypt keystore takes 256 MiB in the
enclave): every case of ../shared/vectors/eth2/eip2335/cases.json decrypts to its secret and pubkey, or is refused
as stated (a wrong password, an unsupported version, KDF, PRF, cipher or checksum, dklen below 32, a missing
field); the password normalisation cases; and the documented KDF cost bound."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from py_ecc.bls import G2ProofOfPossession as bls

from kms import errors
from kms.client import EthFormatError, KmsClient
from kms.client.eth_formats import normalize_password
from tests.e2e.server import ServerProcess
from tests.eth.conftest import vectors
from tests.validator.harness import Domain, KmsServer

GVR = bytes(32)


class BigHeapServer(KmsServer):
    def start(self) -> None:
        self.proc = ServerProcess(self.data_dir, f"--listen={self.api}", "--enclave-heap-mib=512", log_level="info")


@pytest.fixture(scope="module")
def admin(build: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KmsClient]:
    server = BigHeapServer(tmp_path_factory.mktemp("eth-keystore") / "data")
    try:
        domain = Domain(server, tmp_path_factory.mktemp("domain"))
        with server.client(domain.admin) as client:
            yield client
    finally:
        server.stop()


def _cases() -> dict:
    return json.loads((vectors("eth2") / "eip2335" / "cases.json").read_text())


def test_password_normalization():
    for case in _cases()["password_normalization_cases"]:
        assert "0x" + normalize_password(case["password"]).hex() == case["expected_utf8_hex"], case


# what each refusal kind raises: the SDK's parse (nothing sent) or the enclave's typed error
ERRORS = {"unsupported_version": EthFormatError, "missing_crypto": EthFormatError, "missing_version": EthFormatError,
          "invalid_json_missing_kdf_params": EthFormatError, "unsupported_kdf_function": EthFormatError,
          "unsupported_checksum_function": errors.Unsupported, "unsupported_cipher_function": errors.Unsupported,
          "unsupported_pbkdf2_prf": errors.Unsupported, "dklen_too_small": errors.InvalidRequest}


def test_every_keystore_case(admin):
    folder = vectors("eth2") / "eip2335"
    cases = _cases()["keystore_cases"]
    assert len(cases) == 18
    for case in cases:
        keystore = json.loads((folder / case["file"]).read_text())
        if "password_utf8_after_nfkd_and_strip_hex" in case:
            assert "0x" + normalize_password(case["password"]).hex() == case["password_utf8_after_nfkd_and_strip_hex"]
        if case["expect"] == "ok":
            info = admin.eth_import_keystore(keystore, case["password"], genesis_validators_root=GVR)
            pk = admin.eth_public_key(info.key_id)
            assert "0x" + pk.hex() == case["pubkey"], case["file"]
            assert pk == bls.SkToPk(int(case["secret"], 16))
            assert info.spec == "BLS12_381" and info.origin == "ORIGIN_IMPORTED"
        elif case["expect"] == "wrong_password":
            with pytest.raises(errors.InvalidSignature):
                admin.eth_import_keystore(keystore, case["password"], genesis_validators_root=GVR)
        else:
            with pytest.raises(ERRORS[case["error_kind"]]):
                admin.eth_import_keystore(keystore, case["password"], genesis_validators_root=GVR)


def test_pubkey_must_match_and_cost_is_bounded(admin):
    folder = vectors("eth2") / "eip2335"
    keystore = json.loads((folder / "pbkdf2_keystore.json").read_text())
    password = _cases()["keystore_cases"][0]["password"]  # the ERC's, NFKD-normalised to "testpassword🔑"
    other = dict(keystore, pubkey=bls.SkToPk(5).hex())
    with pytest.raises(errors.InvalidKey):  # the decrypted key is not the keystore's pubkey
        admin.eth_import_keystore(other, password, genesis_validators_root=GVR)
    costly = json.loads(json.dumps(keystore))
    costly["crypto"]["kdf"]["params"]["c"] = (1 << 22) + 1
    with pytest.raises(errors.Unsupported):
        admin.eth_import_keystore(costly, password, genesis_validators_root=GVR)
    scrypt = json.loads((folder / "scrypt_keystore.json").read_text())
    scrypt["crypto"]["kdf"]["params"]["n"] = 1 << 19  # 512 MiB at r = 8
    with pytest.raises(errors.Unsupported):
        admin.eth_import_keystore(scrypt, password, genesis_validators_root=GVR)
