# Enclave KMS container image: build (enclave + signature + wheel) -> runtime (non-root, slim) -> smoke.
#
#   scripts/build-image.sh                  build and smoke-test offline with podman (docs/deploy.md)
#   docker build --build-arg BASE_IMAGE=debian:bookworm-slim --target runtime -t enclave-kms .
#
# Release signing: the signer key is a build secret, mounted only into the one RUN that signs and
# never written to a layer:
#   podman build --secret id=signer,src=/secure/signer.pem --build-arg KMS_SIGNER=release \
#       --build-arg KMS_SIGNER_PUBKEY_SHA256=<sha256 of the DER public key> --target runtime .
# (the hash is checked against the secret, and keys the layer cache: secrets are not part of it).
# Without the secret the enclave is signed with an EPHEMERAL development key generated inside that
# RUN (on a tmpfs), and the image labels say so.
#
# The SGX platform is SIMULATED (libkms_simcpu.so): the image protects nothing (docs/simulation.md).
#
# Stages:
#   build    Debian 12 + the `dev` script's build packages; make enclave/python; sign; wheel; venv
#   runtime  Debian 12 + python3, libssl3; the venv, build/kms_enclave.so, .sigstruct, libkms_simcpu.so;
#            user kms (10001:10001); data volume /var/lib/kms; ENTRYPOINT kms serve
#   smoke    FROM runtime: scripts/image/smoke.sh (CLI, enclave identity, evidence, serve, encrypt/decrypt)

# The base is Debian 12 (bookworm). scripts/build-image.sh makes localhost/kms-debian:bookworm from
# Debian's packages with debootstrap (no registry needed); any Debian 12 image works.
ARG BASE_IMAGE=localhost/kms-debian:bookworm

# ---------------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS build
ARG DEBIAN_FRONTEND=noninteractive
# The `dev` script's APT_PACKAGES less clang (only the fuzzer needs it), and npm: the build fetches blst's
# sources by exact version and integrity (Makefile, docs/ethereum-keys.md).
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        make gcc libc6-dev pkg-config openssl libssl-dev libnanopb-dev nanopb protobuf-compiler \
        libgfshare-dev libjansson-dev libsqlite3-dev libjemalloc-dev python3 python3-venv python3-dev ca-certificates npm \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# Python dependencies first (cached until requirements.lock changes): every package of the lock
# (exact versions, each file's sha256 checked), downloaded once into /wheels and installed from there;
# the runtime venv below takes only the wheel's own dependencies from /wheels, so only locked versions.
# An optional secret 'ca-bundle' (a PEM CA bundle) is used for TLS to the package index, for
# networks that intercept TLS; like every secret it stays out of the layers.
COPY pyproject.toml requirements.lock ./
RUN --mount=type=secret,id=ca-bundle,target=/run/secrets/ca-bundle \
    set -eu; \
    if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi; \
    export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1; \
    python3 -m venv /opt/build-venv; \
    /opt/build-venv/bin/pip download -q -d /wheels --require-hashes -r requirements.lock; \
    /opt/build-venv/bin/pip install -q --no-index --find-links /wheels --require-hashes -r requirements.lock

COPY . .
# The enclave image, the simulated CPU, the cffi bridge and the protobuf modules (unsigned).
RUN make -s enclave python PYTHON=/opt/build-venv/bin/python

# Signing: the only step that sees the signer key (see scripts/image/sign-enclave.sh).
ARG KMS_SIGNER=dev-ephemeral
ARG KMS_SIGNER_PUBKEY_SHA256=
RUN --mount=type=secret,id=signer,target=/run/secrets/signer \
    --mount=type=tmpfs,target=/run/kms-signer \
    KMS_SIGNER="${KMS_SIGNER}" KMS_SIGNER_PUBKEY_SHA256="${KMS_SIGNER_PUBKEY_SHA256}" \
    PYTHON=/opt/build-venv/bin/python sh scripts/image/sign-enclave.sh

# The wheel (kms/ with the bridge and the generated protobuf modules), installed into the runtime
# virtual environment with its dependencies from /wheels; pip and setuptools are not needed at run time.
RUN set -eu; \
    /opt/build-venv/bin/pip wheel -q --no-deps --no-build-isolation -w /dist .; \
    python3 -m venv /opt/kms/venv; \
    /opt/kms/venv/bin/pip install -q --no-index --find-links /wheels /dist/enclave_kms-*.whl; \
    /opt/kms/venv/bin/pip uninstall -q -y pip setuptools; \
    install -d -m 0755 /opt/kms/build; \
    install -m 0644 build/kms_enclave.so build/kms_enclave.sigstruct build/libkms_simcpu.so \
        build/identity.json /opt/kms/build/; \
    /opt/kms/venv/bin/python -c 'import kms.enclave.bridge, kms.api.server'

# ---------------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS runtime
ARG DEBIAN_FRONTEND=noninteractive
ARG KMS_SIGNER=dev-ephemeral
ARG KMS_SIGNER_PUBKEY_SHA256=
# Fixed UID/GID 10001 (deploy/ sets the same runAsUser/runAsGroup/fsGroup).
# Runtime libraries only: python3 for the front end, libssl3 for the simulated CPU (the enclave
# image links its own static OpenSSL and jemalloc),
# ca-certificates for TLS to a PCCS.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 libssl3 ca-certificates \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log \
 && groupadd --system --gid 10001 kms \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/kms --no-create-home \
        --shell /usr/sbin/nologin kms \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/kms

COPY --from=build /opt/kms /opt/kms

LABEL org.opencontainers.image.title="Enclave KMS" \
      org.opencontainers.image.description="Key-management service inside an SGX enclave (SIMULATED SGX platform: protects nothing)" \
      org.opencontainers.image.licenses="Apache-2.0" \
      io.enclave-kms.sgx-platform="simulated" \
      io.enclave-kms.signer="${KMS_SIGNER}" \
      io.enclave-kms.signer.pubkey-sha256="${KMS_SIGNER_PUBKEY_SHA256}" \
      io.enclave-kms.warning="SIMULATED SGX platform: nothing is protected. Signer '${KMS_SIGNER}': dev-ephemeral means an enclave signed with a throw-away key generated during the build (MRSIGNER differs per build; sealed data does not survive an image rebuild). Not for production." \
      io.enclave-kms.identity="/opt/kms/build/identity.json"

# Read-only-root friendly: the service writes only to its data volume; HOME and TMPDIR point at
# /tmp (mount a tmpfs/emptyDir there); Python writes no bytecode.
# GLIBC_TUNABLES: static TLS for the enclave image's jemalloc (docs/simulation.md).
ENV PATH=/opt/kms/venv/bin:/usr/local/bin:/usr/bin:/bin \
    GLIBC_TUNABLES=glibc.rtld.optional_static_tls=262144 \
    KMS_BUILD_DIR=/opt/kms/build \
    KMS_DATA_DIR=/var/lib/kms \
    KMS_LISTEN=0.0.0.0:7443 \
    KMS_HEALTH_LISTEN=0.0.0.0:7444 \
    KMS_METRICS_LISTEN=0.0.0.0:9464 \
    HOME=/tmp \
    TMPDIR=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /opt/kms
VOLUME ["/var/lib/kms"]
# 7443 gRPC API (sessions are TLS inside the enclave), 7444 plaintext gRPC health, 9464 metrics
EXPOSE 7443 7444 9464
USER 10001:10001
ENTRYPOINT ["/opt/kms/venv/bin/kms", "serve"]

# ---------------------------------------------------------------------------------------------------
FROM runtime AS smoke
COPY scripts/image/smoke.sh /opt/kms-smoke/smoke.sh
# A new value per build (build-image.sh passes one) keeps the layer cache from skipping the test.
ARG KMS_SMOKE_RUN=
RUN KMS_SMOKE_RUN="${KMS_SMOKE_RUN}" sh /opt/kms-smoke/smoke.sh

# The default target is the runtime image.
FROM runtime
