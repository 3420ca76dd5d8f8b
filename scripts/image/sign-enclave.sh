#!/bin/sh
# Build stage only (Dockerfile): sign build/kms_enclave.so into build/kms_enclave.sigstruct.
#
# The signer key reaches this script in exactly one way: a build secret mounted for the one
# RUN that calls it (`--secret id=signer,src=KEY.pem` -> /run/secrets/signer). Without one,
# an ephemeral development key is generated on a tmpfs mount of the same RUN
# (/run/kms-signer) and is gone when the RUN ends: it never reaches a layer, and every such
# build has a different MRSIGNER (so data sealed by one such image cannot be unsealed by the
# next). The image labels say which kind of signer was used (KMS_SIGNER build argument);
# this script refuses a mismatch, so the labels cannot lie.
#
# Environment (build arguments): KMS_SIGNER=dev-ephemeral|release, KMS_SIGNER_PUBKEY_SHA256
# (optional for release: SHA-256 of the signer's public key in DER SubjectPublicKeyInfo, as
# `openssl pkey -pubout -outform DER | sha256sum` prints it; the build fails if the secret
# does not match it), PYTHON (the build virtual environment's interpreter).
set -eu

SECRET=/run/secrets/signer
EPHEMERAL_DIR=/run/kms-signer
PYTHON=${PYTHON:-/opt/build-venv/bin/python}
KMS_SIGNER=${KMS_SIGNER:-dev-ephemeral}
KMS_SIGNER_PUBKEY_SHA256=${KMS_SIGNER_PUBKEY_SHA256:-}

if [ -s "$SECRET" ]; then
    if [ "$KMS_SIGNER" != release ]; then
        echo "error: a signer secret was given but KMS_SIGNER=$KMS_SIGNER; pass --build-arg KMS_SIGNER=release" >&2
        exit 1
    fi
    key=$SECRET
    if [ -n "$KMS_SIGNER_PUBKEY_SHA256" ]; then
        got=$(openssl pkey -in "$key" -pubout -outform DER | sha256sum | cut -d' ' -f1)
        if [ "$got" != "$KMS_SIGNER_PUBKEY_SHA256" ]; then
            echo "error: the signer secret's public key hashes to $got, not KMS_SIGNER_PUBKEY_SHA256=$KMS_SIGNER_PUBKEY_SHA256" >&2
            exit 1
        fi
    fi
    echo "==> signing the enclave with the release signer key (build secret 'signer')"
else
    if [ "$KMS_SIGNER" != dev-ephemeral ]; then
        echo "error: KMS_SIGNER=$KMS_SIGNER but no build secret 'signer' was given (--secret id=signer,src=KEY.pem)" >&2
        exit 1
    fi
    if ! mountpoint -q "$EPHEMERAL_DIR" 2>/dev/null && ! grep -q " $EPHEMERAL_DIR " /proc/mounts; then
        echo "error: $EPHEMERAL_DIR is not a tmpfs mount; refusing to write a key where a layer could keep it" >&2
        exit 1
    fi
    key=$EPHEMERAL_DIR/dev-signer.pem
    echo "################################################################################"
    echo "# WARNING: no signer secret given: signing the enclave with an EPHEMERAL"
    echo "# development key generated for this build only (discarded when this step ends)."
    echo "# MRSIGNER changes with every such build; not for production."
    echo "################################################################################"
fi

make -s sign PYTHON="$PYTHON" KMS_SIGNER_KEY="$key"
# The identity of what was signed, published with the image (it is public: hashes only).
"$PYTHON" -m kms enclave measure --image build/kms_enclave.so --sigstruct build/kms_enclave.sigstruct \
    --output json > build/identity.json
"$PYTHON" - build/identity.json "$KMS_SIGNER" <<'PY'
import json, sys
path, signer = sys.argv[1], sys.argv[2]
ident = json.load(open(path))
assert ident["signature_valid"] and ident["image_matches"], ident
ident["signer"] = signer
json.dump(ident, open(path, "w"), indent=2, sort_keys=True)
print(f"==> MRENCLAVE {ident['mrenclave']}  MRSIGNER {ident['mrsigner']}  "
      f"ISVPRODID {ident['isv_prod_id']}  ISVSVN {ident['isv_svn']}  signer {signer}")
PY
