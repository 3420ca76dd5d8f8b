"""The Web3Signer-compatible HTTP API (aiohttp): signing, public keys, upcheck, healthcheck, highWatermark, and
the keymanager keystores routes when a bearer token is configured (kms.validator.eth.keymanager).

Statuses as Web3Signer's: 200 (application/json {"signature"} when Accept lists it or */*, else text/plain
hex), 400 malformed or inconsistent (a signing root that differs from the enclave's), 404 unknown key, 412
refused by slashing protection (either side of the guard), 500 the KMS or the watermark failed; and 403 when
the key's policy refuses the type (a voluntary exit not allowed), which Web3Signer has no case for. Errors are
JSON {"message": ...}. One log line and one counter increment per decision, without data bytes.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import Counter, Histogram

from kms import errors
from kms.client.errors import ClientError
from kms.log import get_logger
from kms.validator.eth.convert import RequestError, hex_bytes
from kms.validator.eth.requests import TYPES, SignRequest, parse
from kms.validator.eth.signer import SIGNER_KEY, EthSigner, UnknownKey
from kms.validator.watermark import Regression, WatermarkError

SIGNATURES = Counter("kms_eth_signatures_total", "Ethereum signing decisions of `kms validator eth serve`, by "
                     "request type and outcome (signed, refused, bad_request, not_found, forbidden, error).",
                     ("type", "outcome"))
LATENCY = Histogram("kms_eth_sign_seconds", "Time to answer a signing request (seconds), by request type.",
                    ("type",), buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10))
_log = get_logger("kms.validator.eth")
SETTINGS_KEY: web.AppKey[Any] = web.AppKey("settings", object)
MAX_BODY = 4 * 1024 * 1024  # a full phase0/altair block with every list at its limit stays far below


@dataclass(frozen=True)
class HttpSettings:
    preset: str = "mainnet"
    genesis_fork_version: bytes = bytes(4)
    keymanager_token: str | None = None  # None: the keymanager routes are not served
    genesis_validators_root: bytes = bytes(32)  # the chain keys imported through the keymanager sign for


def error(status: int, message: str) -> web.Response:
    return web.json_response({"message": message}, status=status)


def wants_json(request: web.Request, *, any_type: bool = False) -> bool:
    """Whether the Accept header lists application/json (or, with `any_type`, */*) with a q above 0. The signing
    route passes any_type as Web3Signer does (its JSON answer for */*: clients that send no Accept of their own,
    such as Lodestar before 1.18, parse the body as JSON); no Accept header or text/plain alone gets text/plain."""
    for part in request.headers.get("Accept", "").split(","):
        media, *params = [p.strip().lower() for p in part.split(";")]
        if media == "application/json" or (any_type and media == "*/*"):
            if not any(p.replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000") for p in params):
                return True
    return False


def outcome_of(exc: BaseException) -> tuple[int, str]:
    """The HTTP status and metric outcome of a refused or failed signing request."""
    if isinstance(exc, RequestError | errors.InvalidRequest | errors.Unsupported | errors.InvalidKey):
        return 400, "bad_request"
    if isinstance(exc, UnknownKey | errors.NotFound):
        return 404, "not_found"
    if isinstance(exc, Regression | errors.DoubleSignRefused | errors.SlashingProtectionRefused):
        return 412, "refused"
    if isinstance(exc, errors.PermissionDenied | errors.KeyStateError):
        return 403, "forbidden"
    return 500, "error"


def _log_decision(pubkey: str, req: SignRequest | None, kind: str, outcome: str, reason: str, ms: float) -> None:
    fields: dict[str, Any] = {"pubkey": pubkey, "type": kind, "outcome": outcome, "ms": round(ms, 2)}
    if req is not None:
        fields.update({k: v for k, v in (("slot", req.slot), ("epoch", req.epoch), ("source_epoch", req.source_epoch),
                                         ("target_epoch", req.target_epoch)) if v is not None})
    if reason:
        fields["reason"] = reason
    level = _log.info if outcome == "signed" else _log.error if outcome == "error" else _log.warning
    level("eth signature", **fields)


async def sign(request: web.Request) -> web.Response:
    started = time.monotonic()
    signer, settings = request.app[SIGNER_KEY], request.app[SETTINGS_KEY]
    ident, kind, req = request.match_info["identifier"], "unknown", None
    try:
        pubkey = hex_bytes(ident, "identifier", length=48)
        try:
            body = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError) as exc:
            raise RequestError(f"the body is not JSON: {exc}") from None
        if isinstance(body, dict) and isinstance(body.get("type"), str):
            kind = body["type"] if len(body["type"]) <= 64 else "unknown"
        req = parse(body, preset=settings.preset, genesis_fork_version=settings.genesis_fork_version)
        signature = await asyncio.to_thread(signer.sign, pubkey, req)
    except (RequestError, UnknownKey, Regression, WatermarkError, errors.KmsError, ClientError) as exc:
        status, outcome = outcome_of(exc)
        kind = kind if kind in TYPES else "unknown"
        SIGNATURES.labels(type=kind, outcome=outcome).inc()
        _log_decision(ident[:98], req, kind, outcome, str(exc), (time.monotonic() - started) * 1000)
        return error(status, str(exc) if status != 500 else f"signing failed: {exc}")
    SIGNATURES.labels(type=kind, outcome="signed").inc()
    LATENCY.labels(type=kind).observe(time.monotonic() - started)
    _log_decision(ident, req, kind, "signed", "", (time.monotonic() - started) * 1000)
    text = "0x" + signature.hex()
    if wants_json(request, any_type=True):
        return web.json_response({"signature": text})
    return web.Response(text=text, content_type="text/plain")


async def public_keys(request: web.Request) -> web.Response:
    try:
        keys = await asyncio.to_thread(request.app[SIGNER_KEY].refresh)
    except (errors.KmsError, ClientError) as exc:
        return error(500, f"cannot list the keys: {exc}")
    return web.json_response(sorted("0x" + k.hex() for k in keys))


async def upcheck(request: web.Request) -> web.Response:
    if wants_json(request):  # Lodestar's upcheck asks for JSON and reads `status`
        return web.json_response({"status": "OK"})
    return web.Response(text="OK", content_type="text/plain", charset="utf-8")


async def healthcheck(request: web.Request) -> web.Response:
    try:
        keys = await asyncio.to_thread(request.app[SIGNER_KEY].refresh)
        checks, up = [{"id": "kms", "status": "UP"}, {"id": "keys", "status": "UP", "count": len(keys)}], True
    except (errors.KmsError, ClientError) as exc:
        checks, up = [{"id": "kms", "status": "DOWN", "error": str(exc)}], False
    status = "UP" if up else "DOWN"
    return web.json_response({"status": status, "checks": checks, "outcome": status}, status=200 if up else 503)


async def high_watermark(_request: web.Request) -> web.Response:
    """No high watermark (an upper bound set by an operator) exists here: the guard keeps low watermarks."""
    return web.json_response({})


def make_app(signer: EthSigner, settings: HttpSettings) -> web.Application:
    """The aiohttp application; the keymanager routes only with a token."""
    app = web.Application(client_max_size=MAX_BODY)
    app[SIGNER_KEY], app[SETTINGS_KEY] = signer, settings
    app.router.add_post("/api/v1/eth2/sign/{identifier}", sign)
    app.router.add_get("/api/v1/eth2/publicKeys", public_keys)
    app.router.add_get("/api/v1/eth2/highWatermark", high_watermark)
    app.router.add_get("/upcheck", upcheck)
    app.router.add_get("/healthcheck", healthcheck)
    if settings.keymanager_token is not None:
        from kms.validator.eth.keymanager import add_routes

        add_routes(app, settings.keymanager_token, settings.genesis_validators_root)
    return app
