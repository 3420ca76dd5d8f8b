#!/bin/sh
# Smoke test of the runtime image, run by the Dockerfile's `smoke` stage as the image's own
# non-root user, with the image's own environment (KMS_BUILD_DIR, KMS_DATA_DIR, HOME, TMPDIR):
#   1. the CLI starts;
#   2. the signed enclave's identity checks out (SIGSTRUCT signature, image hash);
#   3. the enclave loads on the simulated platform and its quote verifies end to end with the
#      simulated root allowed, and is refused without that allowance;
#   4. `kms serve` starts on the image's data volume, answers gRPC health on both ports (`kms health`),
#      and a real client round trip works: credentials, admin init, `kms status`, key create, encrypt, decrypt;
#   5. `kms admin backup` while serving; SIGTERM stops the server cleanly;
#   6. node loss drill: the backup restored into a new data directory (a new simulated platform,
#      so the sealed key cannot come along), `kms serve` there starts uninitialized, `kms admin
#      recover` with 2 of the 3 recovery shares restores the domain, and the old ciphertext decrypts;
#   7. nothing was written outside the data volume and /tmp (the image must run with a read-only
#      root filesystem).
# Any failure exits non-zero, which fails the image build.
set -eu

say() { printf '==> smoke: %s\n' "$*"; }
fail() { printf 'SMOKE FAILED: %s\n' "$*" >&2; exit 1; }

DATA=${KMS_DATA_DIR:-/var/lib/kms}
work=$(mktemp -d "${TMPDIR:-/tmp}/kms-smoke.XXXXXX")
marker=$work/.start
touch "$marker"
server_pid=
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT

[ "$(id -u)" != 0 ] || fail "running as root; the image must run as its non-root user"
say "user $(id -un 2>/dev/null || true) uid=$(id -u) gid=$(id -g); KMS_BUILD_DIR=${KMS_BUILD_DIR:-unset}"

say "the CLI starts"
kms --help >/dev/null
kms serve --help >/dev/null

say "enclave identity (SIGSTRUCT)"
kms enclave measure --image "$KMS_BUILD_DIR/kms_enclave.so" --sigstruct "$KMS_BUILD_DIR/kms_enclave.sigstruct" \
    --output json > "$work/measure.json"
python3 - "$work/measure.json" "$KMS_BUILD_DIR/identity.json" <<'PY'
import json, sys
m, published = (json.load(open(p)) for p in sys.argv[1:3])
assert m["signature_valid"] is True and m["image_matches"] is True, m
assert m["mrenclave"] == published["mrenclave"] and m["mrsigner"] == published["mrsigner"], (m, published)
print(f"    MRENCLAVE {m['mrenclave']}\n    MRSIGNER  {m['mrsigner']}  ISVSVN {m['isv_svn']}  "
      f"signer {published.get('signer')}")
PY
MRSIGNER=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["mrsigner"])' "$work/measure.json")

say "the enclave loads on the simulated platform; its evidence verifies (simulated root allowed)"
kms attest show --data-dir "$work/attest" --out-dir "$work/evidence" --output json > "$work/show.json" \
    2> "$work/show.err" || { cat "$work/show.err" >&2; fail "kms attest show"; }
python3 - "$work/show.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["ok"] is True and r["simulated"] is True and r["tcb_status"] == "UpToDate", r
PY
kms attest verify-quote --quote "$work/evidence/quote.bin" --collateral "$work/evidence/collateral.json" \
    --simulated-root "$work/evidence/root-ca.pem" --allow-simulation-insecure --mrsigner "$MRSIGNER" \
    > "$work/verify.txt" || fail "verify-quote with the simulated root allowed"
rc=0
kms attest verify-quote --quote "$work/evidence/quote.bin" --collateral "$work/evidence/collateral.json" \
    --simulated-root "$work/evidence/root-ca.pem" --mrsigner "$MRSIGNER" > "$work/refused.txt" 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "simulated evidence without --allow-simulation-insecure: exit $rc, expected 2 (refused)"

say "kms serve on $DATA (loopback, ports chosen by the OS)"
if [ ! -d "$DATA" ] || [ ! -w "$DATA" ]; then fail "data directory $DATA is missing or not writable"; fi
kms serve --listen 127.0.0.1:0 --health-listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 \
    --shutdown-delay-s 0 > "$work/serve.log" 2>&1 &
server_pid=$!
python3 - "$work/serve.log" "$work/serving.json" "$server_pid" <<'PY'
import json, os, sys, time
log, out, pid = sys.argv[1], sys.argv[2], int(sys.argv[3])
deadline = time.monotonic() + 90
while time.monotonic() < deadline:
    for line in open(log, errors="replace"):
        if line.startswith("{") and '"serving"' in line:
            event = json.loads(line)
            if event.get("event") == "serving":
                json.dump(event, open(out, "w"))
                sys.exit(0)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        break
    time.sleep(0.2)
print(open(log, errors="replace").read(), file=sys.stderr)
sys.exit("kms serve did not start")
PY
field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$work/serving.json" "$1"; }
API=$(field listen)
HEALTH=$(field health_listen)
[ "$(field simulated)" = True ] || fail "the server does not report the simulated platform"
[ "$(field mrsigner)" = "$MRSIGNER" ] || fail "the server's MRSIGNER differs from the image's"
say "gRPC health on the plaintext port $HEALTH and the API port $API (kms health)"
kms health --server "$API" --health-server "$HEALTH" || fail "kms health: the server is not serving on both ports"

say "client round trip: credentials, admin init, key create, encrypt, decrypt"
export KMS_SERVER="$API" KMS_MRSIGNER="$MRSIGNER" KMS_SIMULATED_ROOT="$DATA/sgx-sim/root-ca.pem"
export KMS_ALLOW_SIMULATION_INSECURE=1 KMS_CREDENTIALS="$work/admin"
cd "$work"
kms credentials new --out "$work/admin" --output json > creds.json
kms audit keygen --out auditor --output json > auditor.json
kms admin init --recovery-keys 3 --recovery-dir recovery --auditor-key auditor/auditor.pub --output json > init.json
[ -s recovery/shares/share-0.json ] || fail "admin init wrote no recovery shares"
kms status --output json > status.json || fail "kms status: the evidence or the state head was refused"
python3 - init.json status.json <<'PY'
import json, sys
init, status = (json.load(open(p)) for p in sys.argv[1:3])
assert status["verified"] is True and status["simulated"] is True, status
assert status["domain_id"] == init["domain_id"] and status["state_head"], (init, status)
print(f"    kms status: evidence verified, domain {status['domain_id']}, state head {status['state_head']}")
PY
KEY=$(kms key create --description smoke --output json | python3 -c 'import json,sys; print(json.load(sys.stdin)["key_id"])')
printf 'the image smoke test plaintext\n' > plain.txt
kms encrypt --key-id "$KEY" --in plain.txt --context stage=smoke --out cipher.bin
if cmp -s plain.txt cipher.bin || grep -q "smoke test plaintext" cipher.bin; then fail "ciphertext contains the plaintext"; fi
kms decrypt --in cipher.bin --context stage=smoke --out decrypted.txt
cmp plain.txt decrypted.txt || fail "decrypt did not return the plaintext"
rc=0
kms decrypt --in cipher.bin --context stage=other --out - > /dev/null 2>&1 || rc=$?
[ "$rc" != 0 ] || fail "decrypt with the wrong context succeeded"
say "    key $KEY: encrypt/decrypt round trip ok; wrong context refused"

say "backup while serving (kms admin backup)"
kms admin backup --data-dir "$DATA" --out "$work/kms.backup" > /dev/null

say "SIGTERM: graceful shutdown"
kill -TERM "$server_pid"
rc=0
wait "$server_pid" || rc=$?
server_pid=
[ "$rc" = 0 ] || { cat "$work/serve.log" >&2; fail "kms serve exited $rc after SIGTERM"; }
[ -s "$DATA/domain-key.sealed" ] || fail "no sealed domain key in $DATA"

say "node loss drill: restore the backup on a new (simulated) platform, recover with 2 of 3 shares, decrypt"
NODE2=$work/node2
mkdir -m 0700 "$NODE2"
kms admin restore --in "$work/kms.backup" --data-dir "$NODE2" > /dev/null
kms serve --data-dir "$NODE2" --listen 127.0.0.1:0 --health-listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 \
    --shutdown-delay-s 0 > "$work/serve2.log" 2>&1 &
server_pid=$!
python3 - "$work/serve2.log" "$work/serving.json" "$server_pid" <<'PY'
import json, os, sys, time
log, out, pid = sys.argv[1], sys.argv[2], int(sys.argv[3])
deadline = time.monotonic() + 90
while time.monotonic() < deadline:
    for line in open(log, errors="replace"):
        if line.startswith("{") and '"serving"' in line and json.loads(line).get("event") == "serving":
            json.dump(json.loads(line), open(out, "w"))
            sys.exit(0)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        break
    time.sleep(0.2)
print(open(log, errors="replace").read(), file=sys.stderr)
sys.exit("kms serve (node 2) did not start")
PY
[ "$(field initialized)" = False ] || fail "a restored store must start without a domain key (it is sealed per node)"
KMS_SERVER=$(field listen)
export KMS_SERVER KMS_SIMULATED_ROOT="$NODE2/sgx-sim/root-ca.pem"
DOMAIN=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["domain_id"])' init.json)
kms admin recover --domain-id "$DOMAIN" --share recovery/shares/share-0.json \
    --recovery-key recovery/keys/recovery-0.key --share recovery/shares/share-2.json \
    --recovery-key recovery/keys/recovery-2.key > /dev/null
kms decrypt --in cipher.bin --context stage=smoke --out decrypted2.txt
cmp plain.txt decrypted2.txt || fail "the recovered node did not decrypt the old ciphertext"
kill -TERM "$server_pid"
rc=0
wait "$server_pid" || rc=$?
server_pid=
[ "$rc" = 0 ] || fail "kms serve (node 2) exited $rc after SIGTERM"
[ -s "$NODE2/domain-key.sealed" ] || fail "the recovered domain key was not sealed on node 2"
cmp -s "$NODE2/domain-key.sealed" "$DATA/domain-key.sealed" && fail "node 2 holds node 1's sealed blob"
say "    recovered domain $DOMAIN on a new platform; old ciphertext decrypts"

say "nothing written outside $DATA and /tmp"
written=$(find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp \
    -o -path "$DATA" \) -prune -o -newer "$marker" -print 2>/dev/null | head -20)
[ -z "$written" ] || fail "files written outside the data volume and /tmp: $written"
say "passed"
