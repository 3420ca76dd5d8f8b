"""pytest plugin loaded with `-p tests.static_tls` (pyproject addopts), before pytest captures output.

Enclave images need static TLS that glibc sizes at process start (kms.enclave.runtime): when the
environment lacks GLIBC_TUNABLES=glibc.rtld.optional_static_tls, pytest is re-executed with it
here, while stdout and stderr are still the terminal's. ./dev exports it, so this is a fallback.
"""

from kms.enclave.runtime import ensure_static_tls

ensure_static_tls()
