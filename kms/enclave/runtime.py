"""The process environment an enclave image needs on the simulated platform.

The enclave image links Debian's jemalloc, whose thread state is initial-exec TLS: the image
is flagged DF_STATIC_TLS and glibc loads it with dlopen only from the static TLS surplus it
sized when the process started (GLIBC_TUNABLES=glibc.rtld.optional_static_tls). A process that
will load enclaves calls ensure_static_tls() first: it re-executes the same command line with
the tunable added when it is missing (before any thread or server exists). ./dev and the
Dockerfile export it, so the re-exec is only a fallback. See docs/simulation.md.
"""

from __future__ import annotations

import os
import sys

TUNABLE = "glibc.rtld.optional_static_tls"
#: Bytes of static TLS surplus: about 90 enclave images (2.7 KiB each) loaded at once.
STATIC_TLS_BYTES = 262144
ENV = "GLIBC_TUNABLES"
_GUARD = "KMS_STATIC_TLS_REEXEC"


def static_tls_setting(value: str | None = None) -> int:
    """The optional_static_tls value in a GLIBC_TUNABLES string (the environment's by default); 0 if absent."""
    text = os.environ.get(ENV, "") if value is None else value
    for item in text.split(":"):
        name, _, number = item.partition("=")
        if name == TUNABLE:
            try:
                return int(number, 0)
            except ValueError:
                return 0
    return 0


def tunables_with_static_tls(value: str) -> str:
    """GLIBC_TUNABLES with optional_static_tls raised to STATIC_TLS_BYTES, other tunables kept."""
    items = [i for i in value.split(":") if i and not i.startswith(TUNABLE + "=")]
    return ":".join([*items, f"{TUNABLE}={STATIC_TLS_BYTES}"])


def ensure_static_tls() -> None:
    """Re-execute this Python process with enough static TLS for enclave images, if it lacks it.

    Returns normally when the setting is already there (or when a re-exec already happened and
    glibc still reports less, so that the caller gets the typed load error instead of a loop).
    """
    if static_tls_setting() >= STATIC_TLS_BYTES or os.environ.get(_GUARD):
        return
    env = dict(os.environ)
    env[ENV] = tunables_with_static_tls(env.get(ENV, ""))
    env[_GUARD] = "1"
    argv = list(getattr(sys, "orig_argv", []) or [sys.executable, *sys.argv])
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *argv[1:]], env)  # noqa: S606 - the same interpreter, same argv
