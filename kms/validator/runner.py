"""`kms validator run`: one KMS session for every configured validator, a signer thread each, SIGTERM to stop."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

from cryptography.hazmat.primitives.asymmetric import ed25519

from kms import errors
from kms.client.client import KmsClient
from kms.client.errors import ClientError, VerificationFailed
from kms.log import configure, get_logger
from kms.metrics_endpoint import MetricsServer
from kms.proto.enclave.v1 import boundary_pb2 as pb
from kms.validator import config as vconfig
from kms.validator.canonical import STEP_NAMES
from kms.validator.keyfiles import KeyFileError, load_or_create_identity
from kms.validator.kms_link import ValidatorLink
from kms.validator.privval import PrivvalHandler
from kms.validator.signer import ValidatorSigner, handler_observer
from kms.validator.watermark import SignerGuard, WatermarkError, WatermarkFile

_log = get_logger("kms.validator")
EXIT_OK, EXIT_LOCAL, EXIT_REMOTE = 0, 1, 2  # as every kms command: 1 local or configuration, 2 server or trust
# Verifies the KMS and opens the session from the [kms] table (as `kms` flags): raises VerificationFailed when
# the KMS is not trusted, ClientError when it is unreachable, ValidatorConfigError for bad settings.
Connect = Callable[[Sequence[str]], KmsClient]


class StartError(Exception):
    """A configured key cannot be used (not found, not granted, another chain): the signer does not start."""


def _connect(cfg: vconfig.SignerConfig, connect: Connect, stop: threading.Event) -> KmsClient | None:
    """Verify the KMS and open the session, retrying transport failures with backoff (never a verification)."""
    delay = cfg.backoff_min_s
    while not stop.is_set():
        try:
            return connect(cfg.kms_argv)
        except VerificationFailed:
            raise
        except ClientError as exc:
            _log.warning("validator: KMS not reachable, retrying", error=str(exc), retry_s=round(delay, 2))
        stop.wait(delay)
        delay = min(cfg.backoff_max_s, delay * 2)
    return None


def _guards(cfg: vconfig.SignerConfig) -> dict[str, SignerGuard]:
    """Each key's watermark, locked for this process; WatermarkError (the signer does not start) if unusable."""
    guards: dict[str, SignerGuard] = {}
    try:
        for entry in cfg.validators:
            guards[entry.key_id] = SignerGuard(WatermarkFile(cfg.state_dir, entry.chain_id, entry.key_id))
    except WatermarkError:
        for guard in guards.values():
            guard.file.close()
        raise
    return guards


def _check_watermark(guard: SignerGuard, state: pb.ValidatorStateExport) -> None:
    """Seed a missing watermark from the KMS's state; warn when the KMS's guard is behind the watermark."""
    if guard.current is None:
        guard.seed(state)
    elif (state.height, state.round, state.step) < guard.current.position:
        _log.warning("validator: the KMS's guard state is BEHIND this validator's watermark: its store was rolled "
                     "back or restored; nothing at or below the watermark will be signed", key_id=state.key_id,
                     kms_height=state.height, watermark_height=guard.current.height)


def _check_keys(link: ValidatorLink, cfg: vconfig.SignerConfig, guards: dict[str, SignerGuard]) -> None:
    """Log each key's guard position at start; a missing key or grant stops the start, a corrupt state does not."""
    for entry in cfg.validators:
        try:
            state = link.state(entry.key_id)
            key = link.public_key(entry.key_id)
        except errors.StoreError as exc:
            _log.error("validator: the guard state of this key is missing or corrupt; it will NOT sign until an "
                       "operator restores it (docs/validators.md)", chain=entry.chain_id, key_id=entry.key_id,
                       error=exc.code_name)
            continue
        except (errors.NotFound, errors.PermissionDenied, errors.KeyStateError, errors.InvalidRequest) as exc:
            raise StartError(f"validator key {entry.key_id} ({entry.chain_id}): {exc}") from exc
        except (ClientError, errors.KmsError) as exc:  # the signer will retry on each request
            _log.warning("validator: cannot check the key now", chain=entry.chain_id, key_id=entry.key_id,
                         error=str(exc))
            continue
        if state.chain_id != entry.chain_id:
            raise StartError(f"validator key {entry.key_id} signs for chain {state.chain_id!r}, "
                             f"not {entry.chain_id!r}")
        _check_watermark(guards[entry.key_id], state)
        _log.info("validator: key ready", chain=entry.chain_id, key_id=entry.key_id, key_type=key.key_type,
                  height=state.height, round=state.round, step=STEP_NAMES.get(state.step, "none"),
                  watermark_height=guards[entry.key_id].current.height)  # type: ignore[union-attr]


def _identities(cfg: vconfig.SignerConfig) -> dict[Path, ed25519.Ed25519PrivateKey]:
    out: dict[Path, ed25519.Ed25519PrivateKey] = {}
    for entry in cfg.validators:
        if entry.addr.scheme == "tcp" and entry.secret_key not in out:
            out[entry.secret_key] = load_or_create_identity(entry.secret_key)
    return out


def run(config_path: Path, connect: Connect, *, ready: threading.Event | None = None) -> int:
    """Run until SIGTERM/SIGINT; returns the exit code."""
    try:
        cfg = vconfig.load(config_path)
        configure(cfg.log_level)
        identities = _identities(cfg)
        guards = _guards(cfg)
    except (vconfig.ValidatorConfigError, KeyFileError, WatermarkError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_LOCAL
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        _log.info("validator: stopping", signal=signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    client: KmsClient | None = None
    signers: list[ValidatorSigner] = []
    metrics = None
    try:
        try:
            client = _connect(cfg, connect, stop)
            if client is None:
                return EXIT_OK
            link = ValidatorLink(client)
            _check_keys(link, cfg, guards)
        except VerificationFailed as exc:
            _log.error("validator: the KMS is NOT trusted, nothing was sent; not signing", error=str(exc))
            return EXIT_REMOTE
        except vconfig.ValidatorConfigError as exc:  # credentials or policy settings
            print(f"error: {config_path}: {exc}", file=sys.stderr)
            return EXIT_LOCAL
        except StartError as exc:
            _log.error("validator: cannot start", error=str(exc))
            return EXIT_REMOTE
        except WatermarkError as exc:  # a missing watermark that cannot be written
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_LOCAL
        if cfg.metrics_listen:
            metrics = MetricsServer(cfg.metrics_listen)
            _log.info("validator: metrics", metrics_listen=metrics.address)
        for entry in cfg.validators:
            handler = PrivvalHandler(link, entry.key_id, entry.chain_id, sign_extensions=entry.sign_extensions,
                                     observe=handler_observer(entry.key_id), guard=guards[entry.key_id])
            identity = identities.get(entry.secret_key) or ed25519.Ed25519PrivateKey.generate()
            signer = ValidatorSigner(entry, handler, identity, cfg)
            signers.append(signer)
            signer.start()
        _log.info("validator: running", validators=len(signers))
        if ready is not None:
            ready.set()
        while not stop.wait(1.0):
            pass
        return EXIT_OK
    finally:
        deadline = time.monotonic() + 10
        for s in signers:
            s.stop()
        for s in signers:
            s.join(max(0.1, deadline - time.monotonic()))
        if metrics is not None:
            metrics.stop()
        if client is not None:
            client.close()
        for guard in guards.values():
            guard.file.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _log.info("validator: stopped all signers")
