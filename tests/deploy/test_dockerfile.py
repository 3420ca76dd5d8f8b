"""The Dockerfile keeps the signer key out of every layer, runs as a fixed non-root user, and agrees with
deploy/ and the package (UID, ports, KMS_BUILD_DIR). Static checks; the real build is test_image.py."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.deploy.conftest import API_PORT, HEALTH_PORT, KMS_UID, METRICS_PORT, REPO

DOCKERFILE = REPO / "Dockerfile"
SIGN_SCRIPT = REPO / "scripts" / "image" / "sign-enclave.sh"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, op: str) -> list[str]:
        return [args for o, args in self.instructions if o == op]


def parse(text: str) -> list[Stage]:
    """Dockerfile instructions per stage (continuation lines joined, comments dropped)."""
    logical, buf = [], ""
    for raw in text.splitlines():
        if not buf and raw.lstrip().startswith("#"):
            continue
        if raw.rstrip().endswith("\\"):
            buf += raw.rstrip()[:-1] + " "
            continue
        if buf and raw.lstrip().startswith("#"):
            continue
        buf += raw
        if buf.strip():
            logical.append(buf.strip())
        buf = ""
    stages: list[Stage] = []
    for line in logical:
        op, _, args = line.partition(" ")
        op = op.upper()
        if op == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?$", args.strip(), re.IGNORECASE)
            assert m, line
            stages.append(Stage(m.group(1), m.group(2)))
        elif stages:
            stages[-1].instructions.append((op, args.strip()))
    return stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse(DOCKERFILE.read_text())


def stage(stages: list[Stage], name: str) -> Stage:
    return next(s for s in stages if s.name == name)


def test_stages(stages) -> None:
    names = [s.name for s in stages]
    assert names[:3] == ["build", "runtime", "smoke"]
    assert stage(stages, "smoke").base == "runtime"
    assert stages[-1].base == "runtime"  # the default target is the runtime image, never the smoke stage
    assert stage(stages, "build").base == stage(stages, "runtime").base == "${BASE_IMAGE}"
    assert "ARG BASE_IMAGE=localhost/kms-debian:bookworm" in DOCKERFILE.read_text()
    build_image = (REPO / "scripts" / "build-image.sh").read_text()
    assert "BASE_IMAGE=localhost/kms-debian:bookworm" in build_image  # the tag podman import gives the base


def test_signer_key_reaches_only_one_run_as_a_secret(stages) -> None:
    text = DOCKERFILE.read_text()
    mentions = [(s.name, op, args) for s in stages for op, args in s.instructions if "signer" in args.lower()
                and op not in ("ARG", "LABEL")]
    assert len(mentions) == 1, mentions
    name, op, args = mentions[0]
    assert (name, op) == ("build", "RUN")
    assert "--mount=type=secret,id=signer,target=/run/secrets/signer" in args
    assert "--mount=type=tmpfs,target=/run/kms-signer" in args  # where an ephemeral key may be written
    assert "scripts/image/sign-enclave.sh" in args
    # no key material by COPY/ADD, ARG or ENV, and no --secret file left where a later layer could keep it
    for s in stages:
        for op, args in s.instructions:
            if op in ("COPY", "ADD"):
                assert not re.search(r"\.pem|\.key\b|\.local|signer", args, re.IGNORECASE), (s.name, op, args)
            if op in ("ENV", "ARG"):
                assert "KMS_SIGNER_KEY" not in args and "PRIVATE" not in args.upper(), (s.name, op, args)
    assert "KMS_SIGNER_KEY" not in text  # the key path is chosen inside sign-enclave.sh, never by the Dockerfile


def test_sign_script_writes_keys_only_to_the_tmpfs() -> None:
    script = SIGN_SCRIPT.read_text()
    assert 'SECRET=/run/secrets/signer' in script and 'EPHEMERAL_DIR=/run/kms-signer' in script
    assert 'key=$EPHEMERAL_DIR/dev-signer.pem' in script
    assert "refusing to write a key where a layer could keep it" in script  # checks the tmpfs is mounted
    # the only key paths it hands to make are the secret and the tmpfs
    assert re.findall(r'key=(\S+)', script) == ["$SECRET", "$EPHEMERAL_DIR/dev-signer.pem"]
    assert 'make -s sign PYTHON="$PYTHON" KMS_SIGNER_KEY="$key"' in script


def test_dockerignore_keeps_keys_and_host_builds_out() -> None:
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".local", "**/*.pem", "**/*.key", "build", ".venv", "data", ".git", "kms/enclave/_native*"} <= ignored


def test_labels_say_how_the_enclave_was_signed(stages) -> None:
    labels = " ".join(stage(stages, "runtime").all("LABEL"))
    assert 'io.enclave-kms.signer="${KMS_SIGNER}"' in labels
    assert 'io.enclave-kms.sgx-platform="simulated"' in labels
    assert "dev-ephemeral" in labels and "Not for production" in labels
    assert "ARG KMS_SIGNER=dev-ephemeral" in DOCKERFILE.read_text()


def test_runtime_runs_as_fixed_non_root_user(stages) -> None:
    runtime = stage(stages, "runtime")
    users = runtime.all("USER")
    assert users == [f"{KMS_UID}:{KMS_UID}"]  # numeric, so runAsNonRoot can check it
    assert runtime.instructions[-1][0] in ("ENTRYPOINT", "CMD") or "USER" in [o for o, _ in runtime.instructions]
    last_user = max(i for i, (o, _) in enumerate(runtime.instructions) if o == "USER")
    assert all(o != "RUN" for o, _ in runtime.instructions[last_user:])
    run = " ".join(runtime.all("RUN"))
    assert f"--uid {KMS_UID}" in run and f"--gid {KMS_UID}" in run
    assert f"install -d -o {KMS_UID} -g {KMS_UID} -m 0700 /var/lib/kms" in run
    assert runtime.all("ENTRYPOINT") == ['["/opt/kms/venv/bin/kms", "serve"]']
    assert runtime.all("VOLUME") == ['["/var/lib/kms"]']
    for s in stages:  # no stage after the build switches back to root
        if s.name != "build":
            assert all(u.split(":")[0] not in ("0", "root") for u in s.all("USER")), s.name


def test_runtime_has_runtime_libraries_only(stages) -> None:
    run = " ".join(stage(stages, "runtime").all("RUN"))
    assert "python3 libssl3 ca-certificates" in run
    for pkg in ("gcc", "make", "-dev", "nanopb", "protobuf-compiler", "clang"):
        assert pkg not in run, pkg
    copies = stage(stages, "runtime").all("COPY")
    assert copies == ["--from=build /opt/kms /opt/kms"]


def test_runtime_environment(stages, monkeypatch) -> None:
    env = " ".join(stage(stages, "runtime").all("ENV"))
    for item in ("KMS_BUILD_DIR=/opt/kms/build", "KMS_DATA_DIR=/var/lib/kms", f"KMS_LISTEN=0.0.0.0:{API_PORT}",
                 f"KMS_HEALTH_LISTEN=0.0.0.0:{HEALTH_PORT}", f"KMS_METRICS_LISTEN=0.0.0.0:{METRICS_PORT}",
                 "HOME=/tmp", "TMPDIR=/tmp", "PYTHONDONTWRITEBYTECODE=1"):
        assert item in env, item
    assert stage(stages, "runtime").all("EXPOSE") == [f"{API_PORT} {HEALTH_PORT} {METRICS_PORT}"]
    # the package finds the enclave through KMS_BUILD_DIR, and the build stage installs it there
    build_run = " ".join(stage(stages, "build").all("RUN"))
    for name in ("kms_enclave.so", "kms_enclave.sigstruct", "libkms_simcpu.so"):
        assert f"build/{name}" in build_run
    assert "/opt/kms/build/" in build_run
    from kms import paths

    monkeypatch.setenv("KMS_BUILD_DIR", "/opt/kms/build")
    assert paths.build_dir() == Path("/opt/kms/build")


def test_smoke_stage_runs_the_smoke_script(stages) -> None:
    smoke = stage(stages, "smoke")
    assert smoke.all("RUN") == ['KMS_SMOKE_RUN="${KMS_SMOKE_RUN}" sh /opt/kms-smoke/smoke.sh']
    assert "ARG KMS_SMOKE_RUN=" in [f"{o} {a}" for o, a in smoke.instructions]  # cache-busted per build
    assert "KMS_SMOKE_RUN=$(date" in (REPO / "scripts" / "build-image.sh").read_text()
    assert not smoke.all("USER")  # runs as the runtime image's user
    script = (REPO / "scripts" / "image" / "smoke.sh").read_text()
    for step in ("kms --help", "kms enclave measure", "kms attest show", "--allow-simulation-insecure",
                 "kms serve", "kms health", "kms admin init", "kms status", "kms key create", "kms encrypt",
                 "kms decrypt", "SIGTERM", "kms admin backup", "kms admin restore", "kms admin recover"):
        assert step in script, step
