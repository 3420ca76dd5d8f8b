#!/usr/bin/env bash
# Build the Enclave KMS container image and run its smoke stage, offline, with Debian's podman.
#
#   scripts/build-image.sh [--ref REF] [--tag NAME] [--signer KEY.pem] [--no-smoke]
#                          [--rebuild-base] [--timeout SECONDS] [--clean]
#
# No Docker engine and no registry needed: the Debian 12 base image is made from Debian's
# packages with debootstrap (variant minbase) and `podman import`, tagged with the name the
# Dockerfile's FROM uses (localhost/kms-debian:bookworm); then
#   podman --storage-driver vfs --cgroup-manager cgroupfs build --isolation chroot --network host
# builds the runtime image (--tag, default localhost/enclave-kms:dev) and its smoke stage
# (scripts/image/smoke.sh inside the image). Exits non-zero if any step or the smoke test fails;
# prints the image size and the enclave identity at the end.
#
# Options:
#   --ref REF        build from a git revision (git archive REF) instead of the working tree
#   --tag NAME       image name (default localhost/enclave-kms:dev)
#   --signer FILE    release signer key (RSA-3072, e=3), passed as the build secret 'signer';
#                    without it the enclave is signed with an ephemeral key (labels say so)
#   --no-smoke       build the runtime image only
#   --rebuild-base   debootstrap the base image again even if it exists
#   --timeout SECS   bound for each podman build (default 2400)
#   --clean          remove the images this script made (runtime, smoke, base, build cache) and exit
# Environment:
#   KMS_DEBIAN_MIRROR     Debian mirror for debootstrap and apt in the images (default http://deb.debian.org/debian)
#   KMS_PODMAN_GLOBAL     podman's global flags (default "--storage-driver vfs --cgroup-manager cgroupfs")
#   KMS_BUILD_CA_BUNDLE   PEM CA bundle for TLS to the package index inside the build, passed as the
#                         build secret 'ca-bundle' (default: /etc/ssl/certs/ca-certificates.crt if present)
#
# Root installs podman and debootstrap with apt-get when missing; other users are told which
# packages to install (and need root for debootstrap and vfs storage anyway).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

BASE_IMAGE=localhost/kms-debian:bookworm
SUITE=bookworm
TAG=localhost/enclave-kms:dev
REF=
SIGNER=
SMOKE=1
REBUILD_BASE=0
CLEAN=0
BUILD_TIMEOUT=2400
MIRROR=${KMS_DEBIAN_MIRROR:-http://deb.debian.org/debian}
read -r -a PODMAN_GLOBAL <<< "${KMS_PODMAN_GLOBAL:---storage-driver vfs --cgroup-manager cgroupfs}"
WORK=$ROOT/build/image

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "build-image: error: $*" >&2; exit 1; }
say() { printf '==> %s\n' "$*"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --ref) REF=${2:?--ref needs a revision}; shift 2 ;;
        --tag) TAG=${2:?--tag needs a name}; shift 2 ;;
        --signer) SIGNER=${2:?--signer needs a file}; shift 2 ;;
        --no-smoke) SMOKE=0; shift ;;
        --rebuild-base) REBUILD_BASE=1; shift ;;
        --timeout) BUILD_TIMEOUT=${2:?--timeout needs seconds}; shift 2 ;;
        --clean) CLEAN=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
case "$BUILD_TIMEOUT" in ''|*[!0-9]*) die "--timeout must be a number of seconds" ;; esac
SMOKE_TAG="${TAG%:*}:smoke"

# ---- tools -----------------------------------------------------------------------------------
need=()
command -v podman >/dev/null || need+=(podman)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        say "apt-get install ${need[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    else
        die "missing tools: ${need[*]}; install them with: sudo apt-get install -y ${need[*]}"
    fi
fi
[ "$(id -u)" -eq 0 ] || die "run as root (debootstrap and podman's vfs storage with chroot isolation need it)"
pod() { podman "${PODMAN_GLOBAL[@]}" "$@"; }

mkdir -p "$WORK"
exec 9> "$WORK/.lock"
flock -n 9 || die "another build-image.sh is running (lock $WORK/.lock)"

if [ "$CLEAN" -eq 1 ]; then
    say "removing $TAG, $SMOKE_TAG, $BASE_IMAGE and podman's build cache"
    pod rmi -f "$TAG" "$SMOKE_TAG" "$BASE_IMAGE" >/dev/null 2>&1 || true
    pod image prune -f >/dev/null 2>&1 || true
    rm -rf "$WORK/context" "$WORK/rootfs" "$WORK/identity"
    exit 0
fi

started=$(date +%s)
elapsed() { echo $(( $(date +%s) - started ))s; }

# ---- base image: Debian 12 minbase from Debian's packages -------------------------------------
make_base() {
    local rootfs=$WORK/rootfs
    rm -rf "$rootfs"
    say "debootstrap --variant=minbase $SUITE ($MIRROR)"
    timeout -k 30 900 debootstrap --variant=minbase "$SUITE" "$rootfs" "$MIRROR" > "$WORK/debootstrap.log" 2>&1 \
        || { tail -20 "$WORK/debootstrap.log" >&2; die "debootstrap failed (log: $WORK/debootstrap.log)"; }
    # Apt sources: the release, its updates and security updates.
    rm -f "$rootfs/etc/apt/sources.list"
    cat > "$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${MIRROR%/debian}/debian-security
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    # Slim, as Debian's -slim images are: no documentation, manuals or translations, now or later.
    cat > "$rootfs/etc/dpkg/dpkg.cfg.d/01-kms-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF
    cat > "$rootfs/etc/apt/apt.conf.d/01-kms-slim" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
EOF
    find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
    rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/* \
        "$rootfs"/usr/share/lintian "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* \
        "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/* "$rootfs"/tmp/*
    say "podman import -> $BASE_IMAGE"
    pod rmi -f "$BASE_IMAGE" >/dev/null 2>&1 || true
    tar -C "$rootfs" --numeric-owner -c . | pod import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["/bin/bash"]' \
        --message "Debian $SUITE minbase (debootstrap from $MIRROR), slimmed" - "$BASE_IMAGE" >/dev/null
    rm -rf "$rootfs"
}

if [ "$REBUILD_BASE" -eq 1 ] || ! pod image exists "$BASE_IMAGE"; then
    make_base
else
    say "base image $BASE_IMAGE exists (--rebuild-base to make it again)"
fi

# ---- build context ------------------------------------------------------------------------------
if [ -n "$REF" ]; then
    CONTEXT=$WORK/context
    rm -rf "$CONTEXT"
    mkdir -p "$CONTEXT"
    say "context: git archive $REF ($(git rev-parse --short "$REF^{commit}"))"
    git archive --format=tar "$REF" | tar -x -C "$CONTEXT"
else
    CONTEXT=$ROOT
    say "context: the working tree ($ROOT, filtered by .dockerignore)"
fi
[ -f "$CONTEXT/Dockerfile" ] || die "no Dockerfile in $CONTEXT"

build_args=(--isolation chroot --network host --pull=never --layers -f "$CONTEXT/Dockerfile"
            --build-arg "BASE_IMAGE=$BASE_IMAGE")
if [ -n "$SIGNER" ]; then
    [ -r "$SIGNER" ] || die "cannot read signer key $SIGNER"
    fp=$(openssl pkey -in "$SIGNER" -pubout -outform DER | sha256sum | cut -d' ' -f1)
    build_args+=(--secret "id=signer,src=$SIGNER" --build-arg KMS_SIGNER=release
                 --build-arg "KMS_SIGNER_PUBKEY_SHA256=$fp")
    say "signer: release key $SIGNER (public key sha256 $fp)"
else
    build_args+=(--build-arg KMS_SIGNER=dev-ephemeral)
    say "signer: none given: the enclave is signed with an EPHEMERAL development key (labels say so)"
fi
CA_BUNDLE=${KMS_BUILD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
if [ -s "$CA_BUNDLE" ]; then
    build_args+=(--secret "id=ca-bundle,src=$CA_BUNDLE")
fi

run_build() {  # target, tag, log
    local target=$1 tag=$2 log=$3 rc=0
    say "podman build --target $target -t $tag (log: $log; at most ${BUILD_TIMEOUT}s)"
    timeout -k 30 "$BUILD_TIMEOUT" podman "${PODMAN_GLOBAL[@]}" build "${build_args[@]}" \
        --target "$target" -t "$tag" "$CONTEXT" > "$log" 2>&1 || rc=$?
    if [ "$rc" -ne 0 ]; then
        tail -60 "$log" >&2
        [ "$rc" -eq 124 ] && die "podman build --target $target timed out after ${BUILD_TIMEOUT}s"
        die "podman build --target $target failed (exit $rc; log: $log)"
    fi
}

run_build runtime "$TAG" "$WORK/build-runtime.log"
say "runtime image built ($(elapsed))"

# No private key may ship: no PEM private key file (text; libraries quote the armour line in binary
# data), and not the signer key's bytes anywhere, binary files included.
say "checking the runtime image for key material"
mnt=$(pod image mount "$TAG")
found=$(grep -rlIE --exclude-dir=proc --exclude-dir=sys -e '^-----BEGIN ([A-Z0-9]+ )?PRIVATE KEY-----$' \
        "$mnt" 2>/dev/null | sed "s|^$mnt||" | head -5 || true)
if [ -z "$found" ] && [ -n "$SIGNER" ]; then
    needle=$(sed -n 2p "$SIGNER")
    found=$(grep -rlF --exclude-dir=proc --exclude-dir=sys -e "$needle" "$mnt" 2>/dev/null | sed "s|^$mnt||" \
            | head -5 || true)
fi
pod image unmount "$TAG" >/dev/null || true
[ -z "$found" ] || die "private key material in the runtime image: $found"

if [ "$SMOKE" -eq 1 ]; then
    build_args+=(--build-arg "KMS_SMOKE_RUN=$(date +%s%N)")  # never a cached smoke result
    run_build smoke "$SMOKE_TAG" "$WORK/build-smoke.log"
    grep -E '^==> smoke:|^    ' "$WORK/build-smoke.log" || true
    grep -q '^==> smoke: passed' "$WORK/build-smoke.log" || die "the smoke stage did not report success"
    # The smoke image is the runtime image plus the test's leftovers: not kept.
    pod rmi "$SMOKE_TAG" >/dev/null 2>&1 || true
    say "smoke stage passed ($(elapsed))"
fi

# Build cache older than a day (vfs keeps a full copy per layer): bounded growth, recent cache kept.
pod image prune -f --filter until=24h >/dev/null 2>&1 || true

# ---- report ----------------------------------------------------------------------------------------
rm -rf "$WORK/identity"
mkdir -p "$WORK/identity"
cid=$(pod create --entrypoint /bin/true "$TAG")
pod cp "$cid:/opt/kms/build/identity.json" "$WORK/identity/identity.json" >/dev/null 2>&1 || true
pod rm -f "$cid" >/dev/null 2>&1 || true
size=$(pod image inspect --format '{{.Size}}' "$TAG")
echo
echo "image     $TAG"
echo "size      $size bytes ($(numfmt --to=iec-i --suffix=B "$size"))"
echo "labels    $(pod image inspect --format '{{index .Labels "io.enclave-kms.signer"}}' "$TAG") signer," \
     "platform $(pod image inspect --format '{{index .Labels "io.enclave-kms.sgx-platform"}}' "$TAG")"
if [ -s "$WORK/identity/identity.json" ]; then
    python3 - "$WORK/identity/identity.json" <<'PY'
import json, sys
i = json.load(open(sys.argv[1]))
print(f"MRENCLAVE {i['mrenclave']}\nMRSIGNER  {i['mrsigner']}\nISVPRODID {i['isv_prod_id']}  ISVSVN {i['isv_svn']}")
PY
    echo "identity  $WORK/identity/identity.json"
fi
echo "time      $(elapsed)"
