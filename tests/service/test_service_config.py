"""Settings: defaults, precedence (file < env < flags), clear errors for bad values, `_insecure` naming."""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path

import pytest

from kms.commands.serve import add_arguments, settings_from_args
from kms.config import ENCLAVE_MAX_SESSIONS, FIELDS, SESSION_FRAME_MAX, ConfigError, Settings, load_settings


def test_defaults() -> None:
    s = load_settings(env={})
    assert s.listen == "127.0.0.1:7443" and s.health_listen == "127.0.0.1:7444"
    assert s.metrics_listen == "127.0.0.1:9464" and s.worker_count == s.enclave_tcs == 8
    assert not s.reflection and s.sim_pccs and s.max_sessions == ENCLAVE_MAX_SESSIONS
    assert s.insecure_settings() == {}


def test_precedence_file_env_flags(tmp_path: Path) -> None:
    cfg = tmp_path / "kms.toml"
    cfg.write_text('listen = "127.0.0.1:1"\nworkers = 2\nreflection = true\nsession_idle_timeout_s = 30\n')
    s = load_settings(cfg, env={"KMS_WORKERS": "3", "KMS_REFLECTION": "false"}, flags={"workers": "4"})
    assert (s.listen, s.workers, s.reflection, s.session_idle_timeout_s) == ("127.0.0.1:1", 4, False, 30.0)
    assert load_settings(env={"KMS_CONFIG": str(cfg)}).workers == 2


def test_flags_parse_through_argparse(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--data-dir", str(tmp_path), "--max-sessions", "7", "--reflection", "--no-sim-pccs"])
    s = settings_from_args(args, env={})
    assert (s.data_dir, s.max_sessions, s.reflection, s.sim_pccs) == (tmp_path, 7, True, False)


@pytest.mark.parametrize(("env", "message"), [
    ({"KMS_WORKERS": "9"}, "workers: 9 exceeds the enclave's 8 thread slots"),
    ({"KMS_ENCLAVE_TCS": "4", "KMS_WORKERS": "5"}, "exceeds the enclave's 4 thread slots"),
    ({"KMS_MAX_SESSIONS": "abc"}, "max_sessions (from environment KMS_MAX_SESSIONS): expected an integer"),
    ({"KMS_MAX_SESSIONS": "129"}, "max_sessions: 129 is outside 1..128"),
    ({"KMS_MAX_SESSIONS": "0"}, "max_sessions: 0 is outside"),
    ({"KMS_SESSION_IDLE_TIMEOUT_S": "601"}, "session_idle_timeout_s: 601 is outside 1..600"),
    ({"KMS_MAX_MESSAGE_BYTES": str(SESSION_FRAME_MAX + 1025)}, "max_message_bytes"),
    ({"KMS_REFLECTION": "maybe"}, "reflection (from environment KMS_REFLECTION): expected true or false"),
    ({"KMS_LISTEN": "7443"}, "listen: expected host:port"),
    ({"KMS_LISTEN": "kms.example:7443"}, "listen: host must be an IP address or localhost"),
    ({"KMS_HEALTH_LISTEN": "127.0.0.1:70000"}, "health_listen: port out of range"),
    ({"KMS_HEALTH_LISTEN": "127.0.0.1:7443"}, "health_listen: must differ from listen"),
    ({"KMS_LOG_LEVEL": "loud"}, "log_level: expected one of"),
    ({"KMS_COLLATERAL_URL": "file:///etc/passwd"}, "collateral_url: expected an http(s) URL"),
    ({"KMS_QUOTING": "sgx"}, "quoting: expected one of simulated, dcap, got 'sgx'"),
    ({"KMS_QUOTING": "dcap"}, "sim_pccs: the simulated PCCS serves collateral for the simulated platform only"),
    ({"KMS_MAX_QUEUED_ECALLS": "2"}, "max_queued_ecalls: 2 is below the 8 workers"),
    ({"KMS_SHUTDOWN_GRACE_S": "-1"}, "shutdown_grace_s: -1 is outside"),
])
def test_bad_values_are_rejected_with_clear_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env=env)
    assert message in str(info.value)


def test_bad_config_files(tmp_path: Path) -> None:
    cfg = tmp_path / "kms.toml"
    cfg.write_text('lsiten = "127.0.0.1:1"\n')
    with pytest.raises(ConfigError, match="unknown setting\\(s\\) lsiten"):
        load_settings(cfg, env={})
    cfg.write_text("workers = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(cfg, env={})
    cfg.write_text('workers = "2"\n')
    with pytest.raises(ConfigError, match=r"workers \(from config file .*\): expected an integer"):
        load_settings(cfg, env={})
    cfg.write_text("reflection = 1\n")
    with pytest.raises(ConfigError, match="expected true or false"):
        load_settings(cfg, env={})
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "missing.toml", env={})


def test_quoting_defaults_to_the_simulated_qe_and_dcap_needs_a_real_pccs() -> None:
    assert load_settings(env={}).quoting == "simulated"
    s = load_settings(env={"KMS_QUOTING": "dcap", "KMS_SIM_PCCS": "false",
                           "KMS_COLLATERAL_URL": "https://pccs.example:8081/sgx/certification/v4"})
    assert (s.quoting, s.sim_pccs) == ("dcap", False)
    assert load_settings(env={}, flags={"quoting": "dcap", "sim_pccs": False}).quoting == "dcap"


def test_operations_doc_lists_every_setting_with_its_environment_variable_and_flag() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "operations.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \| `(KMS_\w+)` \| `(--[\w-]+)` \|", doc, re.MULTILINE)
    assert sorted(name for name, _, _ in rows) == sorted(FIELDS), "docs/operations.md: the settings table differs"
    for name, env, flag in rows:
        assert (env, flag) == (f"KMS_{name.upper()}", "--" + name.replace("_", "-")), name


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        load_settings(env={}).workers = 3  # type: ignore[misc]


def test_loosening_settings_are_named_insecure_and_default_off() -> None:
    insecure = [f for f in dataclasses.fields(Settings) if f.name.endswith("_insecure")]
    assert insecure and all(f.default is False for f in insecure)
    s = load_settings(env={"KMS_ALLOW_WORLD_WRITABLE_DATA_DIR_INSECURE": "1"})
    assert s.insecure_settings() == {"allow_world_writable_data_dir_insecure": True}


def test_limits_match_the_enclave_build(build) -> None:
    from kms.enclave.bridge import SESSION_IN_MAX

    assert SESSION_FRAME_MAX == SESSION_IN_MAX
    header = (Path(__file__).parents[2] / "enclave" / "src" / "session.h").read_text()
    assert f"#define KMS_MAX_SESSIONS {ENCLAVE_MAX_SESSIONS}u" in header
    assert "#define KMS_SESSION_IDLE_SECONDS 600" in header
