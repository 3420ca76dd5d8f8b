"""Benchmark: envelope encryption of a large file (AWS Encryption SDK messages, kms.client.stream) in MiB/s, next
to plain AES-256-GCM of the same data with pyca in the same chunk size (the baseline: the cipher alone, no
format, no signature, in memory), and the peak RSS of `kms encrypt` / `kms decrypt` on that file.

Run: `./dev bench` or `.venv/bin/python -m tests.bench.bench_envelope [--mib N] [--rounds R]`. A real `kms serve`
on loopback gives the data key; every figure is the best of R rounds (default 3) over the same file, file to
file through the page cache. Figures depend on the machine (2 shared cores here): compare the rows of one run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kms.attestation import AttestationPolicy, TrustAnchor
from kms.client import ClientState, Credentials, KmsClient
from kms.client import stream as st
from tests.auditor import auditor_public

MIB = 1 << 20


def _best(rounds: int, fn) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def _baseline(path: Path, chunk: int, *, hashed: bool = False) -> None:
    """AES-256-GCM over the file in `chunk`-byte pieces, each with its own nonce (what a frame costs, bare); with
    `hashed`, SHA-384 over the ciphertext too (what the signed suite's signature adds per byte)."""
    aead, counter, digest = AESGCM(AESGCM.generate_key(256)), 0, hashes.Hash(hashes.SHA384())
    with path.open("rb") as f:
        while data := f.read(chunk):
            counter += 1
            sealed = aead.encrypt(counter.to_bytes(12, "big"), data, None)
            if hashed:
                digest.update(sealed)
    digest.finalize()


def _peak_rss_kib(env: dict[str, str], *args: str) -> int:
    proc = subprocess.Popen([sys.executable, "-m", "kms", *args], stdout=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"kms {' '.join(args)} failed")
    return usage.ru_maxrss


def main(argv: list[str] | None = None) -> int:
    from tests.e2e.server import REPO, ServerProcess

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=100, help="file size in MiB (default 100)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per row; the best is shown (default 3)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        server = ServerProcess(tmp / "data", "--housekeeping-interval-s=0", log_level="info")
        try:
            creds = Credentials.generate("bench")
            policy = AttestationPolicy.build(mrsigner=server.mrsigner, allow_simulation_insecure=True)
            anchor = TrustAnchor.load(server.root_pem.read_bytes(), simulated=True)
            plain, message, back = tmp / "plain.bin", tmp / "message.bin", tmp / "back.bin"
            with plain.open("wb") as f:
                for _ in range(args.mib):
                    f.write(os.urandom(MIB))
            creds.save(tmp / "creds")  # the CLI's credentials directory: pinned by init below
            with KmsClient(server.api, credentials=creds, policy=policy, trust_anchor=anchor, new_domain=True,
                           state=ClientState.for_credentials(tmp / "creds")) as client:
                client.init([os.urandom(32)], 1, auditor_public_keys=auditor_public())
                client.save_state()
                key = client.create_key().key_id

                def encrypt(frame: int) -> None:
                    with plain.open("rb") as src, message.open("wb") as dst:
                        client.encrypt_stream(key, src, dst, {"bench": "1"}, frame_length=frame)

                def decrypt() -> None:
                    with message.open("rb") as src, back.open("wb") as dst:
                        client.decrypt_stream(src, dst, {"bench": "1"})

                print(f"{args.mib} MiB file, best of {args.rounds}; MiB/s")
                print(f"{'row (file to file for envelope rows)':<58} {'MiB/s':>8}")
                for frame in (64 * 1024, st.FRAME_LENGTH, MIB):
                    base = args.mib / _best(args.rounds, lambda frame=frame: _baseline(plain, frame))
                    hashed = args.mib / _best(args.rounds, lambda frame=frame: _baseline(plain, frame, hashed=True))
                    enc = args.mib / _best(args.rounds, lambda frame=frame: encrypt(frame))
                    dec = args.mib / _best(args.rounds, decrypt)
                    mark = " (default)" if frame == st.FRAME_LENGTH else ""
                    print(f"{f'baseline: pyca AES-256-GCM, {frame // 1024} KiB chunks':<58} {base:>8.0f}")
                    print(f"{f'baseline: pyca AES-256-GCM + SHA-384, {frame // 1024} KiB chunks':<58} {hashed:>8.0f}")
                    print(f"{f'envelope encrypt_stream, {frame // 1024} KiB frames{mark}':<58} {enc:>8.0f}")
                    print(f"{f'envelope decrypt_stream, {frame // 1024} KiB frames{mark}':<58} {dec:>8.0f}")
            env = {k: v for k, v in os.environ.items() if not k.startswith("KMS_")}
            env.update(PYTHONPATH=str(REPO), KMS_SERVER=server.api, KMS_MRSIGNER=server.mrsigner.hex(),
                       KMS_SIMULATED_ROOT=str(server.root_pem), KMS_ALLOW_SIMULATION_INSECURE="1",
                       KMS_CREDENTIALS=str(tmp / "creds"))
            enc_rss = _peak_rss_kib(env, "encrypt", "--key-id", key, "--in", str(plain), "--out", str(message))
            dec_rss = _peak_rss_kib(env, "decrypt", "--in", str(message), "--out", str(back))
            small = tmp / "small.bin"
            small.write_bytes(os.urandom(MIB))
            base_rss = _peak_rss_kib(env, "encrypt", "--key-id", key, "--in", str(small), "--out", str(message))
            print(f"peak RSS: kms encrypt {enc_rss / 1024:.1f} MiB, kms decrypt {dec_rss / 1024:.1f} MiB of a "
                  f"{args.mib} MiB file; kms encrypt of a 1 MiB file {base_rss / 1024:.1f} MiB")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
