"""`kms agent`: the attested local gateway (kms.agent; docs/agent.md). The connection and policy flags are every
client command's; --server takes several addresses (comma-separated) to fail over between. Secrets (the bearer
token, the PKCS#11 PIN) come from a file or the environment, never from a flag."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from kms import log, paths
from kms.commands.common import EXIT_LOCAL, EXIT_REMOTE, LocalError, make_client
from kms.config import LOG_LEVELS

if TYPE_CHECKING:   # the agent (gRPC server, health, reflection) is imported when it runs, not with the CLI
    from kms.agent.runner import Agent

TOKEN_ENV = "KMS_AGENT_TOKEN"  # noqa: S105 - the name of a variable, not a secret
PIN_ENV = "KMS_AGENT_PIN"


def register(groups: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:
    p = groups.add_parser("agent", parents=[parent], help="serve the KMS, verified, as plain gRPC on a local socket",
                          description="Verifies the KMS (policy, domain pin, freshness) and serves every operation "
                                      "as unary gRPC (agent.proto) to local callers, as this agent's principal. "
                                      "See docs/agent.md.")
    env = os.environ
    g = p.add_argument_group("agent")
    g.add_argument("--socket", type=Path, default=env.get("KMS_AGENT_SOCKET", str(paths.home() / "agent.sock")),
                   help="the gRPC unix socket (env KMS_AGENT_SOCKET; default <KMS home>/agent.sock)")
    g.add_argument("--socket-mode", choices=("600", "660"), default="600", help="mode of the sockets (default 600)")
    g.add_argument("--allow-uid", type=int, action="append", default=None, metavar="UID",
                   help="a uid allowed to connect (SO_PEERCRED; repeatable; default: the agent's own uid)")
    g.add_argument("--tcp-listen", default="", metavar="HOST:PORT",
                   help=f"also serve on loopback TCP; callers send 'authorization: Bearer <token>' (token from "
                        f"--token-file or env {TOKEN_ENV})")
    g.add_argument("--token-file", type=Path, metavar="FILE", help="the TCP bearer token (its first line)")
    g.add_argument("--p11-socket", type=Path, metavar="PATH", help="serve the PKCS#11 module's protocol here")
    g.add_argument("--p11-pin-file", type=Path, metavar="FILE",
                   help=f"the PKCS#11 PIN (its first line; or env {PIN_ENV}; none: any login succeeds)")
    g.add_argument("--p11-token-label", default="Enclave KMS", help="the PKCS#11 token label (up to 32 bytes)")
    g.add_argument("--metrics-listen", default="", metavar="HOST:PORT", help="Prometheus /metrics ('' disables)")
    g.add_argument("--recheck-s", type=float, default=5.0,
                   help="seconds between verifications of servers that are down or were refused (default 5)")
    g.add_argument("--workers", type=int, default=16, help="threads serving gRPC calls (default 16)")
    g.add_argument("--no-reflection", dest="reflection", action="store_false", help="turn gRPC reflection off")
    g.add_argument("--log-level", choices=LOG_LEVELS, default="info", help="log level (default info)")
    p.set_defaults(func=_run)


def _secret(path: Path | None, env_name: str, what: str) -> str | None:
    if path is not None:
        try:
            text = path.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise LocalError(f"cannot read the {what} from {path}: {exc}") from exc
        value = text[0] if text else ""
    else:
        value = os.environ.get(env_name)
        if value is None:
            return None
    if not value:
        raise LocalError(f"the {what} is empty")
    return value


def _agent(args: argparse.Namespace) -> Agent:
    from kms.agent.pool import ServerPool
    from kms.agent.runner import Agent, AgentSettings

    # One client over every address (and every record of a DNS name): one state, so the highest head seen on
    # any server is what the next one must know.
    client = make_client(args, retries=1, connect=False, recheck_s=args.recheck_s)
    domain = client.domain_id
    assert domain is not None  # make_client refuses credentials that are not pinned
    token = _secret(args.token_file, TOKEN_ENV, "bearer token")
    settings = AgentSettings(
        socket=args.socket, socket_mode=int(args.socket_mode, 8),
        allow_uids=frozenset(args.allow_uid if args.allow_uid is not None else [os.getuid()]),
        tcp_listen=args.tcp_listen, token=None if token is None else token.encode(),
        p11_socket=args.p11_socket, p11_pin=_secret(args.p11_pin_file, PIN_ENV, "PKCS#11 PIN"),
        p11_label=args.p11_token_label, metrics_listen=args.metrics_listen, reflection=args.reflection,
        recheck_s=args.recheck_s, workers=args.workers)
    return Agent(settings, ServerPool(client), domain)


def _run(args: argparse.Namespace) -> int:
    """0 after a clean shutdown; 1 for settings that cannot work; 2 when it cannot start."""
    from kms.agent.runner import AgentStartError, run
    from kms.agent.sockets import SocketError

    log.configure(args.log_level)
    for name, value in sorted(vars(args).items()):
        if name.endswith("_insecure") and value:
            log.get_logger("kms.agent").warning("insecure setting enabled", setting=name, value=value)
    if args.recheck_s <= 0 or not 1 <= args.workers <= 256:
        print("error: --recheck-s must be > 0 and --workers 1..256", file=sys.stderr)
        return EXIT_LOCAL
    try:
        agent = _agent(args)
    except (LocalError, AgentStartError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_LOCAL
    try:
        return run(agent)
    except (AgentStartError, SocketError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_REMOTE
