"""`kms validator eth serve`: verify the KMS and open the attested session, open each key's watermark,
then serve the HTTP API until SIGTERM/SIGINT. Exit codes as every kms command: 0, 1 local or configuration,
2 the KMS (unreachable, not trusted, refusing)."""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from pathlib import Path

from aiohttp import web

from kms import errors
from kms.client.errors import ClientError, VerificationFailed
from kms.log import configure, get_logger
from kms.metrics_endpoint import MetricsServer
from kms.validator.config import ValidatorConfigError
from kms.validator.eth.config import EthConfig, load
from kms.validator.eth.http import HttpSettings, make_app
from kms.validator.eth.signer import EthSigner
from kms.validator.runner import EXIT_LOCAL, EXIT_OK, EXIT_REMOTE, Connect
from kms.validator.watermark import WatermarkError

_log = get_logger("kms.validator.eth")


async def _serve(app: web.Application, cfg: EthConfig, ready: threading.Event | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, cfg.host, cfg.port, reuse_address=True)
        await site.start()
        port = runner.addresses[0][1]
        _log.info("eth: serving the Web3Signer-compatible API", listen=f"{cfg.host}:{port}", preset=cfg.preset,
                  keymanager=cfg.keymanager_token is not None)
        if ready is not None:
            ready.set()
        await stop.wait()
        _log.info("eth: stopping")
    finally:
        await runner.cleanup()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def _open_keys(signer: EthSigner) -> None:
    for pubkey, key_id in signer.refresh().items():
        guard = signer.guard(pubkey)
        mark = guard.current
        _log.info("eth: key ready", key_id=key_id, pubkey="0x" + pubkey.hex(), block_slot=mark and mark.block_slot,
                  source_epoch=mark and mark.source_epoch, target_epoch=mark and mark.target_epoch)


def run(config_path: Path, connect: Connect, *, ready: threading.Event | None = None) -> int:
    """Run until SIGTERM/SIGINT; returns the exit code."""
    try:
        cfg = load(config_path)
    except ValidatorConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_LOCAL
    configure(cfg.log_level)
    if cfg.listen_remote_insecure:
        _log.warning("eth: listen_remote_insecure: the signing API (which has no authentication) is served on "
                     "a non-loopback address", listen=f"{cfg.host}:{cfg.port}")
    try:
        client = connect(cfg.kms_argv)
    except VerificationFailed as exc:
        _log.error("eth: the KMS is NOT trusted, nothing was sent; not signing", error=str(exc))
        return EXIT_REMOTE
    except ValidatorConfigError as exc:
        print(f"error: {config_path}: {exc}", file=sys.stderr)
        return EXIT_LOCAL
    except ClientError as exc:
        _log.error("eth: the KMS is not reachable", error=str(exc))
        return EXIT_REMOTE
    signer = EthSigner(client, cfg.state_dir)
    metrics = None
    try:
        try:
            _open_keys(signer)
        except WatermarkError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_LOCAL
        except (errors.KmsError, ClientError) as exc:
            _log.error("eth: cannot read the keys or their slashing-protection history", error=str(exc))
            return EXIT_REMOTE
        if cfg.metrics_listen:
            metrics = MetricsServer(cfg.metrics_listen)
            _log.info("eth: metrics", metrics_listen=metrics.address)
        settings = HttpSettings(cfg.preset, cfg.genesis_fork_version, cfg.keymanager_token,
                                cfg.genesis_validators_root)
        try:
            asyncio.run(_serve(make_app(signer, settings), cfg, ready))
        except OSError as exc:
            print(f"error: [eth] listen {cfg.host}:{cfg.port}: {exc}", file=sys.stderr)
            return EXIT_LOCAL
        return EXIT_OK
    finally:
        if metrics is not None:
            metrics.stop()
        signer.close()
        client.close()
