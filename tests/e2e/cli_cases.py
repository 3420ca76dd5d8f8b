"""Bad input for every `kms` command (tests/e2e/test_cli_errors.py runs them), and what each must answer: the exit
code (1: local or usage, 2: the server or a verification) and what its one-line error names (a flag, a setting,
a file). `{name}` in an argument is a path or value of the test's world (test_cli_errors.World).

Every command of kms.cli.build_parser() has an entry (a test fails when one is missing): `valid` makes the
command line parse and reach the point where it would act, and the generic cases below are added to it for every
command that has the flags they are about (--server, --credentials and the attestation policy, --output).
"""

from __future__ import annotations

from dataclasses import dataclass, field

ZERO32, ZERO16 = "00" * 32, "00" * 16


@dataclass(frozen=True)
class Case:
    argv: tuple[str, ...]
    code: int
    names: tuple[str, ...]                      # each appears in the one-line error
    env: dict[str, str] = field(default_factory=dict)
    absent: tuple[str, ...] = ()                # paths that must still not exist afterwards
    alone: bool = False                         # the case's argv without the command's `valid` arguments


def case(*argv: str, code: int = 1, names: str | tuple[str, ...], env: dict[str, str] | None = None,
         absent: tuple[str, ...] = (), alone: bool = False) -> Case:
    return Case(argv, code, (names,) if isinstance(names, str) else names, env or {}, absent, alone)


@dataclass(frozen=True)
class Command:
    valid: tuple[str, ...]
    cases: tuple[Case, ...]
    without: frozenset[str] = frozenset()       # generic case sets ("server", "identity", "output") left out


def cmd(*valid: str, cases: list[Case], without: tuple[str, ...] = ()) -> Command:
    """A command's entry: `valid` arguments, its own cases, and the generic sets that do not apply to it (say a
    command whose --server is meant to be the health port leaves out "server" and lists its own cases)."""
    return Command(valid, tuple(cases), frozenset(without))


# Added to every command that takes --server (a server that is down, the wrong ports, a bad address).
SERVER = (
    case("--server", "{down}", code=2, names=("--server", "{down}", "connection refused")),
    case("--server", "{health}", code=2, names=("--server", "{health}", "health port")),
    case("--server", "{metrics}", code=2, names=("--server", "{metrics}", "metrics port")),
    case("--server", "127.0.0.1:99999", names=("--server", "99999")),
    case(names=("--server", "KMS_SERVER"), env={"KMS_SERVER": "localhost"}),
)
# Added to every command that takes --credentials and the attestation policy flags.
IDENTITY = (
    case("--credentials", "{missing}", names=("--credentials", "{missing}")),
    case("--credentials", "{not_credentials}", names=("--credentials", "cert.pem")),
    case("--mrsigner", "zz", names="--mrsigner"),
    case("--mrsigner", ZERO32, code=2, names=("NOT trusted", "mrsigner")),
    case("--timeout", "0", names="--timeout"),
    case("--at", "yesterday", names="--at"),
    case(names="KMS_ALLOW_SIMULATION_INSECURE", env={"KMS_ALLOW_SIMULATION_INSECURE": "maybe"}),
    case(names="KMS_MRENCLAVE", env={"KMS_MRENCLAVE": "abc"}),
)
# Added to every command whose --output KMS_OUTPUT sets.
OUTPUT = (
    case("--output", "yaml", names="--output"),
    case(names=("--output", "KMS_OUTPUT"), env={"KMS_OUTPUT": "yaml"}),
)

COMMANDS: dict[str, Command] = {
    "enclave keygen": cmd("--out", "{tmp}/signer.pem", cases=[
        case("--out", "{file}", names="{file}"),
        case("--out", "{file}/signer.pem", names="{file}/signer.pem")]),
    "enclave sign": cmd("--key", "{garbage}", "--config", "{garbage}", "--image", "{garbage}", "--out", "{tmp}/s",
                        cases=[
        case("--config", "{missing}", names="{missing}"),
        case("--config", "{garbage}", names="{garbage}"),
        case("--config", "{repo}/enclave/config/enclave.toml", "--key", "{missing}", names="{missing}"),
        case("--config", "{repo}/enclave/config/enclave.toml", "--key", "{garbage}", names="{garbage}")]),
    "enclave measure": cmd("--sigstruct", "{repo}/build/kms_enclave.sigstruct", cases=[
        case("--sigstruct", "{missing}", names="{missing}"),
        case("--sigstruct", "{garbage}", code=2, names="{garbage}"),
        case("--image", "{missing}", names="{missing}")]),
    "serve": cmd(cases=[
        case("--workers", "many", names=("workers", "--workers")),
        case("--enclave-tcs", "0", names="enclave_tcs"),
        case("--listen", "127.0.0.1:99999", names="listen"),
        case("--listen", "127.0.0.1:7000", "--health-listen", "127.0.0.1:7000", names="health_listen"),
        case("--log-level", "loud", names="log_level"),
        case("--reflection", "--config", "{missing}", names="{missing}"),
        case("--config", "{garbage}", names="{garbage}"),
        case("--config", "{unknown_setting_toml}", names="colour"),
        case("--config", "{bad_value_toml}", names=("enclave_tcs", "{bad_value_toml}")),
        case(names=("shutdown_grace_s", "KMS_SHUTDOWN_GRACE_S"), env={"KMS_SHUTDOWN_GRACE_S": "soon"}),
        case(names=("sim_pccs", "KMS_SIM_PCCS"), env={"KMS_SIM_PCCS": "perhaps"}),
        case(names=("KMS_CONFIG", "{missing}"), env={"KMS_CONFIG": "{missing}"})]),
    "attest verify-quote": cmd("--quote", "{garbage}", "--collateral", "{garbage}", "--mrsigner", "{mrsigner}", cases=[
        case("--quote", "{missing}", names="{missing}"),
        case("--collateral", "{missing}", names="{missing}"),
        case("--collateral", "{garbage}", names=("--collateral", "{garbage}")),
        case("--report-data", "zz", names="--report-data"),
        case("--pck-chain", "{garbage}", names=("--pck-chain", "{garbage}")),
        case("--at", "2025-01-01", names="--at"),
        case("--mrsigner", "abc", names="--mrsigner")]),
    "attest verify-cert": cmd("--cert", "{garbage}", "--collateral", "{garbage}", "--mrsigner", "{mrsigner}", cases=[
        case("--cert", "{missing}", names="{missing}"),
        case("--nonce", "zz", names="--nonce"),
        case("--isvprodid", "-1", names="--isvprodid")]),
    "attest show": cmd("--data-dir", "{tmp}/attest-data", cases=[
        case("--out-dir", "{file}/sub", names="{file}")]),
    "audit keygen": cmd("--out", "{tmp}/auditor-new", cases=[
        case("--out", "{file}", names="{file}")]),
    "audit export": cmd("--out", "{tmp}/export.jsonl", cases=[
        case("--data-dir", "{missing}", names=("--data-dir", "{missing}"), absent=("{missing}",)),
        case("--file", "{missing}", names="{missing}"),
        case("--file", "{garbage}", names=("--file", "{garbage}")),
        case("--data-dir", "{data}", "--auditor-key", "{auditor_key}", names="--cert"),
        case("--file", "{export}", "--auditor-key", "{garbage}", "--audit-key", ZERO32, names="{garbage}"),
        case("--file", "{export}", "--audit-key", "zz", "--auditor-key", "{auditor_key}", names="--audit-key"),
        case("--file", "{export}", "--out", "{file}/x", names="{file}/x")]),
    "audit verify": cmd("--file", "{export}", "--audit-key", "{audit_key}", cases=[
        case("--file", "{missing}", names="{missing}"),
        case("--file", "{garbage}", names=("--file", "{garbage}")),
        case("--audit-key", "zz", names="--audit-key"),
        case("--audit-key", ZERO32, code=2, names=("broken", "signature")),
        case("--head", "seven", names="--head"),
        case("--head", "1:" + ZERO32, code=2, names="head"),
        case("--auditor-key", "{garbage}", names="{garbage}")]),
    "sim init": cmd("--data-dir", "{tmp}/sim", cases=[
        case("--data-dir", "{file}", names="{file}"),
        case("--pck-ca", "intel", names="--pck-ca")]),
    "sim set-tcb": cmd("--data-dir", "{tmp}/sim", cases=[
        case("Perfect", names="LEVEL"),
        case("UpToDate", "--qe-svn", "many", names="--qe-svn"),
        case("UpToDate", "--data-dir", "{file}", names="{file}")]),
    "sim revoke": cmd("--data-dir", "{tmp}/sim", cases=[
        case("--serial", "zz", "--crl", "root", names="--serial"),
        case("--serial", "10", names="--crl")]),
    "sim collateral": cmd("--out", "{tmp}/collateral.json", "--data-dir", "{tmp}/sim", cases=[
        case("--out", "{file}/collateral.json", names="{file}/collateral.json")]),
    "sim pccs": cmd("--data-dir", "{tmp}/sim", cases=[
        case("--port", "99999", names="--port"),
        case("--host", "192.0.2.1", names="--host")]),
    "key create": cmd(cases=[
        case("--spec", "AES_512", names="--spec"),
        case("--usage", "PAINT", names="--usage")]),
    "key list": cmd(cases=[case("--page-size", "0", names="--page-size")]),
    "key describe": cmd("--key-id", "{aes}", cases=[
        case("--key-id", "no-such-key", code=2, names="no-such-key"),
        case("{aes}", names=("unrecognized", "{aes}"))]),
    "key enable": cmd("--key-id", "{aes}", cases=[case("--key-id", "", code=2, names="key")]),
    "key disable": cmd("--key-id", "{aes}", cases=[case("--key-id", "alias/none", code=2, names="alias/none")]),
    "key rotate": cmd("--key-id", "{ed}", cases=[case("--key-id", "no-such-key", code=2, names="no-such-key")]),
    "key schedule-deletion": cmd("--key-id", "{aes}", cases=[
        case("--pending-window-days", "3", names="--pending-window-days")]),
    "key cancel-deletion": cmd("--key-id", "{aes}", cases=[
        case("--key-id", "no-such-key", code=2, names="no-such-key")]),
    "key update": cmd("--key-id", "{aes}", "--description", "x", cases=[
        case("--min-decrypt-version", "one", names="--min-decrypt-version"),
        case("--rotation-period-days", "-1", names="--rotation-period-days")]),
    "key import": cmd("--spec", "AES", "--material", "{file}", cases=[
        case("--material", "{missing}", names="{missing}"),
        case("--spec", "ED25519", "--material", "{garbage}", names="--material"),
        case("--spec", "NOPE", names="--spec"),
        case("--usage", "PAINT", names="--usage")]),
    "encrypt": cmd("--key-id", "{aes}", "--in", "{file}", cases=[
        case("--in", "{missing}", names="{missing}"),
        case("--context", "app", names="--context"),
        case("--context", "a=1", "--context", "a=2", names="--context"),
        case("--envelope", "sometimes", names="--envelope"),
        case("--envelope", "always", names="--out"),  # an envelope message is binary: it needs --out
        case("--key-id", "{ed}", code=2, names="INVALID_KEY_USAGE")]),
    "decrypt": cmd("--in", "{file}", cases=[
        case("--in", "{missing}", names="{missing}"),
        case("--in", "{garbage}", "--in-base64", names=("base64", "{garbage}")),
        case("--in", "{garbage}", code=2, names="INVALID_CIPHERTEXT")]),
    "sign": cmd("--key-id", "{ed}", "--in", "{file}", cases=[
        case("--algorithm", "ROT13", names="--algorithm"),
        case("--in", "{missing}", names="{missing}"),
        case("--key-id", "{aes}", names="SYMMETRIC_DEFAULT")]),
    "verify": cmd("--key-id", "{ed}", "--in", "{file}", "--signature", "{file}", cases=[
        case("--signature", "{missing}", names="{missing}"),
        case("--signature", "{garbage}", "--signature-base64", names="base64"),
        case("--key-version", "two", names="--key-version"),
        case("--signature", "{file}", code=2, names="NOT valid")]),
    "public-key": cmd("--key-id", "{ed}", cases=[
        case("--key-id", "{aes}", code=2, names="INVALID_KEY_USAGE"),
        case("--out", "{file}/pub.der", names="{file}/pub.der")]),
    "data-key generate": cmd("--key-id", "{aes}", cases=[
        case("--bytes", "8", names="--bytes"),
        case("--pair", "RSA_512", names="--pair"),
        case("--plaintext-out", "{file}/dk", names="{file}/dk")]),
    "re-encrypt": cmd("--in", "{file}", "--destination-key-id", "{aes}", cases=[
        case("--in", "{missing}", names="{missing}"),
        case("--destination-context", "a=1", "--no-destination-context", names="--no-destination-context"),
        case("--source-context", "x", names="--source-context")]),
    "alias create": cmd("no-prefix", "--key-id", "{aes}", cases=[case(code=2, names="no-prefix")]),
    "alias update": cmd("alias/none", "--key-id", "{aes}", cases=[
        case(code=2, names=("ALIAS_NOT_FOUND", "alias/none"))]),
    "alias delete": cmd("alias/none", cases=[case(code=2, names=("ALIAS_NOT_FOUND", "alias/none"))]),
    "alias list": cmd(cases=[case("extra", names="extra")]),
    "policy put": cmd("--key-id", "{aes}", "--file", "{policy}", cases=[
        case("--file", "{missing}", names="{missing}"),
        case("--file", "{garbage}", names="{garbage}")]),
    "policy check": cmd("--file", "{policy}", cases=[
        case("--file", "{missing}", names="{missing}"),
        case("--file", "{garbage}", names="{garbage}"),
        case("--output", "yaml", names="--output")]),
    "grant create": cmd("--key-id", "{aes}", "--principal-id", ZERO32, "--operations", "*", cases=[
        case("--operations", "steal", names=("--operations", "steal")),
        case("--principal-id", "zz", names="--principal-id"),
        case("--expires-at", "tomorrow", names="--expires-at"),
        case("--expires-in", "-5", names="--expires-in"),
        case("--condition", "tenant", names="--condition")]),
    "grant list": cmd("--key-id", "{aes}", cases=[case("--key-id", "no-such-key", code=2, names="no-such-key")]),
    "grant revoke": cmd("--key-id", "{aes}", "--grant-id", ZERO16, cases=[
        case("--grant-id", "zz", names="--grant-id"),
        case("--grant-id", ZERO16, code=2, names="NOT_FOUND")]),
    "admin init": cmd("--new-domain", "--recovery-keys", "1", "--recovery-dir", "{tmp}/recovery-new",
                      "--auditor-key", "{auditor_pub}", cases=[
        case("--auditor-key", "{garbage}", names=("--auditor-key", "{garbage}")),
        case("--recovery-keys", "11", names="--recovery-keys"),
        case("--threshold", "2", names="--threshold"),
        case("--audit-bodies-in-clear-insecure", names="--audit-bodies-in-clear-insecure")]),
    "admin principal add": cmd("--principal-id", ZERO32, "--name", "x", cases=[
        case("--principal-id", "abc", names="--principal-id"),
        case("--role", "root", names="--role")]),
    "admin principal remove": cmd("--principal-id", ZERO32, cases=[
        case("--principal-id", "abc", names="--principal-id"),
        case("--principal-id", ZERO32, code=2, names=("--principal-id", ZERO32))]),
    "admin principal list": cmd(cases=[case("--principal-id", ZERO32, names="--principal-id")]),
    "admin auditors set": cmd("--auditor-key", "{auditor_pub}", cases=[
        case("--auditor-key", "{missing}", names="{missing}"),
        case("--auditor-key", "{auditor_pub}", "--auditor-key", "{auditor_pub}", names="twice")]),
    "cluster list": cmd(cases=[case("--replica-id", ZERO32, names="--replica-id")]),
    "cluster approve": cmd("--replica-id", ZERO32, cases=[
        case("--replica-id", "abcd", names="--replica-id"),
        case("--replica-id", ZERO32, code=2, names=ZERO32)]),
    "cluster remove": cmd("--replica-id", ZERO32, cases=[
        case("--replica-id", "zz", names="--replica-id"),
        case(code=1, names="--replica-id", alone=True)]),
    "cluster policy": cmd(cases=[
        case("--min-isv-svn", "70000", names="--min-isv-svn"),
        case("--tcb-status", "Revoked", names="--tcb-status"),
        case("--trust-root-insecure", "{garbage}", names="--trust-root-insecure")]),
    "admin identity": cmd(cases=[case("--key-id", "{aes}", names="--key-id")]),
    "admin recover": cmd("--domain-id", "{domain}", "--share", "{share}", "--recovery-key", "{recovery_key}", cases=[
        case("--domain-id", "zz", names="--domain-id"),
        case("--domain-id", "{domain}", "--share", "{missing}", "--recovery-key", "{recovery_key}", names="{missing}",
             alone=True),
        case("--domain-id", "{domain}", "--share", "{share}", "--recovery-key", "{garbage}", names="{garbage}",
             alone=True),
        case("--domain-id", ZERO16, names=("--new-domain", ZERO16))]),
    "admin backup": cmd("--data-dir", "{data}", "--out", "{tmp}/backup", cases=[
        case("--data-dir", "{missing}", names="{missing}", absent=("{missing}",)),
        case("--out", "{file}", names="{file}")]),
    "admin restore": cmd("--in", "{garbage}", "--data-dir", "{tmp}/restored", cases=[
        case("--in", "{missing}", names="{missing}"),
        case("--in", "{garbage}", names="{garbage}"),
        case("--data-dir", "{data}", names="{data}")]),
    "credentials new": cmd("--out", "{tmp}/new-creds", cases=[
        case("--out", "{creds}", names="{creds}"),
        case("--domain", "zz", names="--domain"),
        case("--from", "{missing}", names="{missing}")]),
    "credentials show": cmd(cases=[
        case("--credentials", "{missing}", names="{missing}"),
        case("--credentials", "{not_credentials}", names="cert.pem"),
        case(names="KMS_CREDENTIALS", env={"KMS_CREDENTIALS": ""})]),
    "credentials pin": cmd("--domain", "{domain}", cases=[
        case("--domain", "zz", names="--domain"),
        case("--domain", ZERO16, names="--replace"),
        case("--credentials", "{missing}", names="{missing}")]),
    "credentials forget-head": cmd(cases=[
        case("--domain", "abc", names="--domain"),
        case("--credentials", "{missing}", names="{missing}")]),
    "health": cmd("--server", "{api}", "--health-server", "{health}", without=("server",), cases=[
        case("--server", "{down}", code=2, names="{down}"),
        case("--server", "127.0.0.1:99999", names=("--server", "99999")),
        case("--health-server", "no-port", names="--health-server"),
        case("--timeout", "0", names="--timeout")]),
    "status": cmd(cases=[case("--server", "{down}", code=2, names="{down}")]),
    "agent": cmd("--socket", "{tmp}/agent.sock", without=("server", "identity"), cases=[
        case("--socket-mode", "644", names="--socket-mode"),
        case("--workers", "many", names="--workers"),
        case("--log-level", "loud", names="--log-level")]),
    "validator run": cmd("--config", "{missing}", cases=[
        case("--config", "{missing}", names="{missing}"),
        case("--config", "{garbage}", names="{garbage}"),
        case("--config", "{validator_bad_server}", names=("server", "{validator_bad_server}"))]),
    "validator eth serve": cmd("--config", "{missing}", cases=[
        case("--config", "{missing}", names="{missing}"),
        case("--config", "{garbage}", names="{garbage}"),
        case("--config", "{eth_remote}", names=("listen", "listen_remote_insecure")),
        case("--config", "{eth_bad_server}", names=("server", "{eth_bad_server}"))]),
    "validator eth create": cmd("--genesis-validators-root", ZERO32, cases=[
        case("--genesis-validators-root", "0x1234", names="--genesis-validators-root")]),
    "validator eth import-keystore": cmd("--keystore", "{eth_keystore}", "--password-file", "{file}",
                                         "--genesis-validators-root", ZERO32, cases=[
        case(names=("--keystore", "{eth_keystore}", "wrong password")),
        case("--keystore", "{missing}", names="{missing}"),
        case("--keystore", "{garbage}", names=("--keystore", "{garbage}")),
        case("--password-file", "{missing}", names="{missing}"),
        case("--slashing-protection", "{eth_interchange}", names=("--slashing-protection", "not 0x" + ZERO32)),
        case("--keystore", "{eth_keystore}", "--genesis-validators-root", ZERO32, alone=True,
             names=("--password-file", "--password-env")),
        case("--keystore", "{eth_keystore}", "--password-env", "KMS_TEST_NO_SUCH_VAR", "--genesis-validators-root",
             ZERO32, alone=True, names=("--password-env", "KMS_TEST_NO_SUCH_VAR"))]),
    "validator eth public-key": cmd("--key-id", "{eth}", cases=[
        case("--key-id", "{aes}", names=("{aes}", "BLS12_381")),
        case("--key-id", "no-such-key", code=2, names="no-such-key")]),
    "validator eth list": cmd(cases=[case("--server", "{down}", code=2, names="{down}")]),
    "validator eth status": cmd("--key-id", "{eth}", cases=[
        case("--key-id", "{aes}", names=("{aes}", "BLS12_381"))]),
    "validator eth export-slashing": cmd("--key-id", "{eth}", "--out", "{tmp}/interchange.json", cases=[
        case("--key-id", "{aes}", code=2, names="{aes}", absent=("{tmp}/interchange.json",)),
        case("--out", "{file}/interchange.json", names="{file}/interchange.json")]),
    "validator eth import-slashing": cmd("--file", "{eth_interchange}", cases=[
        case("--file", "{missing}", names="{missing}"),
        case("--file", "{garbage}", names=("--file", "{garbage}")),
        case("--file", "{eth_interchange_other}", names=("--file", "{eth}", "refused"))]),
    "validator status": cmd("--key-id", "{validator}", cases=[
        case("--key-id", "{aes}", code=2, names="{aes}")]),
    "validator create": cmd("--chain-id", "test-1", cases=[
        case("--spec", "rsa", names="--spec"),
        case("--chain-id", "", code=2, names="INVALID_ARGUMENT")]),
    "validator import": cmd("--key", "{validator_key}", "--state", "{validator_state}", "--chain-id", "test-1", cases=[
        case("--key", "{missing}", names="{missing}"),
        case("--key", "{garbage}", names="{garbage}")]),
    "validator import-state": cmd("--export", "{state_export}", cases=[
        case("--export", "{missing}", names="{missing}"),
        case("--export", "{garbage}", names="--export")]),
}
