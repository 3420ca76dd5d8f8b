"""The keymanager API's keystores routes (GET|POST|DELETE /eth/v1/keystores), behind a bearer token read from a
file. Import: each EIP-2335 keystore with its password, sent to the enclave only inside
the attested session (it decrypts there), then the EIP-3076 interchange (when sent); the new keys are not served
until it is in, and are disabled again when it is refused. Delete: the key's history is exported, then the
key is disabled in the KMS (it can sign nothing more; an admin may destroy it later) and withdrawn here.

`remotekeys` is not served: it configures a validator client's own remote signers, and this process is the
remote signer itself (docs/ethereum.md)."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
from typing import Any

from aiohttp import web

from kms import errors
from kms.client.errors import ClientError
from kms.client.eth import IMPORT_BATCH
from kms.client.eth_formats import parse_interchange
from kms.client.types import KeyInfo
from kms.log import get_logger
from kms.validator.eth.convert import RequestError, hex_bytes
from kms.validator.eth.signer import SIGNER_KEY, EthSigner

_log = get_logger("kms.validator.eth")
TOKEN_KEY: web.AppKey[str] = web.AppKey("keymanager_token", str)
GVR_KEY: web.AppKey[bytes] = web.AppKey("genesis_validators_root", bytes)
_FAILURES = (errors.KmsError, ClientError)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"message": message}, status=status)


@web.middleware
async def _auth(request: web.Request, handler: Any) -> web.StreamResponse:
    if request.path.startswith("/eth/v1/"):
        given = request.headers.get("Authorization", "")
        if not given.startswith("Bearer "):
            return _error(401, "a bearer token is required (Authorization: Bearer <token>)")
        if not hmac.compare_digest(given[7:].strip().encode(), request.app[TOKEN_KEY].encode()):
            return _error(403, "the bearer token is not this keymanager's")
    return await handler(request)


async def _json(request: web.Request) -> dict:
    try:
        body = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise RequestError("the body must be a JSON object")
    return body


def _list(signer: EthSigner) -> list[dict]:
    return [{"validating_pubkey": "0x" + pub.hex(), "derivation_path": "", "readonly": False}
            for pub in sorted(signer.refresh())]


async def list_keystores(request: web.Request) -> web.Response:
    try:
        return web.json_response({"data": await asyncio.to_thread(_list, request.app[SIGNER_KEY])})
    except _FAILURES as exc:
        return _error(500, f"cannot list the keys: {exc}")


def _import_one(signer: EthSigner, gvr: bytes, known: set[bytes], text: Any, password: Any) -> dict[str, str]:
    try:
        if not isinstance(text, str) or not isinstance(password, str):
            raise RequestError("each keystore is a JSON string and each password a string")
        try:
            keystore = json.loads(text)
        except ValueError as exc:
            raise RequestError(f"the keystore is not JSON: {exc}") from None
        if not isinstance(keystore, dict):
            raise RequestError("the keystore is not a JSON object")
        pubkey = hex_bytes("0x" + str(keystore.get("pubkey", "")).removeprefix("0x"), "keystore.pubkey", length=48)
        if pubkey in known:
            return {"status": "duplicate", "message": ""}
        key_id = signer.client.eth_import_keystore(keystore, password, genesis_validators_root=gvr).key_id
        if bytes(signer.client.eth_public_key(key_id)) != pubkey:
            raise RequestError(f"the imported key {key_id}'s public key differs from the keystore's pubkey: "
                               "do not use it")
        known.add(pubkey)
        _log.info("eth keymanager: keystore imported", pubkey="0x" + pubkey.hex(), key_id=key_id)
        return {"status": "imported", "message": ""}
    except (RequestError, *_FAILURES) as exc:
        _log.warning("eth keymanager: keystore not imported", error=str(exc))
        return {"status": "error", "message": str(exc)}


def _import(signer: EthSigner, gvr: bytes, body: dict) -> list[dict[str, str]]:
    keystores, passwords = body.get("keystores"), body.get("passwords")
    if not isinstance(keystores, list) or not isinstance(passwords, list) or len(keystores) != len(passwords):
        raise RequestError("keystores and passwords: two arrays of the same length")
    unknown = set(body) - {"keystores", "passwords", "slashing_protection"}
    if unknown:
        raise RequestError(f"unknown field(s) {', '.join(sorted(unknown))}")
    interchange, named = None, set()
    if body.get("slashing_protection") is not None:
        try:
            interchange = json.loads(body["slashing_protection"])
            named = {pub for pub, _ in parse_interchange(interchange)[1]}
        except (TypeError, ValueError) as exc:   # EthFormatError is a ValueError
            raise RequestError(f"slashing_protection: not an EIP-3076 JSON string: {exc}") from None
    known = set(signer.all_keys())
    pending = {_pubkey_of(k) for k in keystores} - {None}
    signer.pending |= pending  # type: ignore[arg-type]  # not served until the history below is in
    try:
        out = [_import_one(signer, gvr, known, k, p) for k, p in zip(keystores, passwords, strict=True)]
        if interchange is not None:  # after the keys: the enclave skips the history of pubkeys it has no key for
            try:  # into the enabled key of each pubkey named (not a disabled twin of a key deleted before)
                keys = signer.all_keys()
                signer.client.eth_slashing_import(interchange, {pub: keys[pub].key_id for pub in named
                                                                if pub in keys and keys[pub].state == "ENABLED"})
            except Exception:
                _withdraw_new(signer, out, keystores)
                raise
    finally:
        signer.pending -= pending  # type: ignore[arg-type]
    signer.refresh()
    return out


def _pubkey_of(text: Any) -> bytes | None:
    try:
        return bytes.fromhex(str(json.loads(text).get("pubkey", "")).removeprefix("0x"))
    except (TypeError, ValueError, AttributeError):
        return None


def _withdraw_new(signer: EthSigner, out: list[dict[str, str]], keystores: list) -> None:
    """The history did not import: disable the keys just imported (they must not sign without it)."""
    keys = signer.all_keys()
    for status, text in zip(out, keystores, strict=True):
        info = keys.get(_pubkey_of(text) or b"")
        if status["status"] == "imported" and info is not None:
            signer.client.disable_key(info.key_id)
            status.update(status="error", message="imported, then disabled: its slashing protection was refused")


async def import_keystores(request: web.Request) -> web.Response:
    try:
        body = await _json(request)
        app = request.app
        return web.json_response({"data": await asyncio.to_thread(_import, app[SIGNER_KEY], app[GVR_KEY], body)})
    except (RequestError, errors.InvalidRequest, errors.InvalidKey, errors.DoubleSignRefused) as exc:
        return _error(400, str(exc))
    except _FAILURES as exc:
        return _error(500, f"import failed: {exc}")


def _export(signer: EthSigner, infos: list[KeyInfo], gvr: bytes) -> dict[str, Any]:
    """One EIP-3076 interchange of the keys (of one chain), exported IMPORT_BATCH keys per call."""
    out: dict[str, Any] = {"metadata": {"interchange_format_version": "5",
                                        "genesis_validators_root": infos[0].chain_id if infos else "0x" + gvr.hex()},
                           "data": []}
    for i in range(0, len(infos), IMPORT_BATCH):
        part = signer.client.eth_slashing_export([info.key_id for info in infos[i:i + IMPORT_BATCH]])
        out["metadata"], out["data"] = part["metadata"], out["data"] + part["data"]
    return out


def _delete(signer: EthSigner, gvr: bytes, body: dict) -> dict[str, Any]:
    """Export the history of the enabled keys named, then disable them, all under their guards' locks (the
    signatures in hand complete first, none starts after): the enclave exports no disabled key's history, so a key
    already disabled is `not_active` without it. Nothing is disabled when the export fails."""
    pubkeys = body.get("pubkeys")
    if not isinstance(pubkeys, list) or set(body) != {"pubkeys"}:
        raise RequestError("the body is {\"pubkeys\": [...]}")
    wanted = [hex_bytes(p, f"pubkeys[{i}]", length=48) for i, p in enumerate(pubkeys)]
    keys = signer.all_keys()
    active = sorted({pub for pub in wanted if pub in keys and keys[pub].state == "ENABLED"})
    if len({keys[pub].chain_id for pub in active}) > 1:
        raise RequestError("the keys named are of more than one chain: delete each chain's in its own request")
    statuses: dict[bytes, dict[str, str]] = {}
    with contextlib.ExitStack() as held:
        for pub in active:
            held.enter_context(signer.guard(pub).lock)
        interchange = _export(signer, [keys[pub] for pub in active], gvr)
        for pub in active:
            try:
                signer.client.disable_key(keys[pub].key_id)
                signer.withdraw(pub)
                statuses[pub] = {"status": "deleted", "message": ""}
                _log.warning("eth keymanager: key deleted (disabled in the KMS)", pubkey="0x" + pub.hex(),
                             key_id=keys[pub].key_id)
            except _FAILURES as exc:
                statuses[pub] = {"status": "error", "message": str(exc)}
    out = [statuses.get(pub) or {"status": "not_active" if pub in keys else "not_found", "message": ""}
           for pub in wanted]
    return {"data": out, "slashing_protection": json.dumps(interchange)}


async def delete_keystores(request: web.Request) -> web.Response:
    try:
        body = await _json(request)
        return web.json_response(await asyncio.to_thread(_delete, request.app[SIGNER_KEY], request.app[GVR_KEY], body))
    except RequestError as exc:
        return _error(400, str(exc))
    except _FAILURES as exc:
        return _error(500, f"delete failed: {exc}")


def add_routes(app: web.Application, token: str, genesis_validators_root: bytes) -> None:
    app[TOKEN_KEY], app[GVR_KEY] = token, genesis_validators_root
    app.middlewares.append(_auth)
    app.router.add_get("/eth/v1/keystores", list_keystores)
    app.router.add_post("/eth/v1/keystores", import_keystores)
    app.router.add_delete("/eth/v1/keystores", delete_keystores)
