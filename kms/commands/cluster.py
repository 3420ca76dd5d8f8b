"""`kms cluster list|approve|remove|policy`: the domain's replicas and its replica policy (admins; docs/cluster.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from kms.client.cluster import TCB_STATUSES, Cluster
from kms.commands.admin import print_head
from kms.commands.common import LocalError, emit, head_line, make_client, run_command
from kms.commands.flags import checked, hex_bytes, uint16

COLUMNS = ("replica_id", "status", "isv_svn", "name", "this")


def register(groups: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    """Add the `kms cluster` group."""
    parser = groups.add_parser("cluster", help="list, approve and remove the domain's replicas; the replica policy")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    listing = sub.add_parser("list", parents=[parent], help="the replicas, their status and the policy (admins)")
    listing.set_defaults(func=run_command(_list))
    for name, what in (("approve", "let a pending replica receive the domain key and serve"),
                       ("remove", "remove a replica for good: refused from then on (not the one you are connected "
                                  "to, nor the last approved one)")):
        p = sub.add_parser(name, parents=[parent], help=f"{what} (admins)")
        p.add_argument("--replica-id", required=True, type=checked(hex_bytes(32)), metavar="HEX",
                       help="the replica: 64 hex digits, as `kms cluster list` prints")
        p.set_defaults(func=run_command(_approve if name == "approve" else _remove))
    policy = sub.add_parser("policy", parents=[parent], help="show or set the replica policy (admins)",
                            description="Without options: show it. A joining replica's enclave must always have the "
                                        "domain's MRSIGNER and ISVPRODID and must not be a DEBUG build; the policy "
                                        "adds the minimum ISVSVN, the TCB statuses its platform may have, and "
                                        "whether a replica that meets it joins without an admin's approval.")
    policy.add_argument("--min-isv-svn", type=checked(uint16), metavar="N",
                        help="lowest ISVSVN a replica may have (0..65535)")
    policy.add_argument("--tcb-status", action="append", choices=sorted(TCB_STATUSES), metavar="STATUS",
                        help="an allowed TCB status of a joining replica's platform, which each enclave evaluates "
                             "from the quote's signed collateral (TCB Info, QE Identity), never from its host "
                             f"(repeat; one of {', '.join(TCB_STATUSES)}; at init UpToDate; Revoked never joins)")
    policy.add_argument("--auto-join", action=argparse.BooleanOptionalAction, default=None,
                        help="approve a joining replica that meets the policy without an admin")
    policy.add_argument("--trust-root-insecure", action="append", metavar="PEM",
                        help="trust this quote root besides Intel's (repeat, at most 4; replaces the list): a "
                             "simulated platform's root-ca.pem, for development only")
    policy.set_defaults(func=run_command(_policy))


def _show(args: argparse.Namespace, cluster: Cluster, head: dict[str, str | None]) -> None:
    rows = [{**r.to_dict(), "this": "*" if r.replica_id == cluster.self_replica_id else ""}
            for r in cluster.replicas]
    if args.output == "json":
        emit(args, {"replicas": rows, "policy": cluster.policy.to_dict(),
                    "self_replica_id": cluster.self_replica_id.hex()})
    else:
        emit(args, rows, COLUMNS)
        p = cluster.policy
        print(f"policy: min ISVSVN {p.min_isv_svn}, TCB {', '.join(sorted(p.tcb_statuses))}, "
              f"auto-join {'on' if p.auto_join else 'off'}, extra roots (insecure) {len(p.extra_roots_insecure)}")
    print_head(head)


def _list(args: argparse.Namespace) -> None:
    with make_client(args) as client:
        cluster = client.list_replicas()
        head = head_line(client)
    _show(args, cluster, head)


def _approve(args: argparse.Namespace) -> None:
    replica = args.replica_id
    with make_client(args) as client:
        cluster = client.approve_replica(replica)
        head = head_line(client)
    _show(args, cluster, head)


def _remove(args: argparse.Namespace) -> None:
    replica = args.replica_id
    with make_client(args) as client:
        cluster = client.remove_replica(replica)
        head = head_line(client)
    _show(args, cluster, head)


def _roots(files: list[str]) -> list[bytes]:
    from kms.attestation import TrustAnchor

    out = []
    for name in files:
        try:
            out.append(TrustAnchor.load(Path(name).read_bytes(), simulated=True).public_point)
        except (OSError, ValueError) as exc:
            raise LocalError(f"--trust-root-insecure {name}: not a P-256 root certificate or key ({exc})") from exc
    if len(out) > 4:
        raise LocalError("--trust-root-insecure: at most 4 roots")
    return out


def _policy(args: argparse.Namespace) -> None:
    roots = _roots(args.trust_root_insecure) if args.trust_root_insecure else None
    with make_client(args) as client:
        cluster = client.list_replicas()
        if args.min_isv_svn is not None or args.tcb_status or args.auto_join is not None or roots is not None:
            now = cluster.policy
            cluster = client.set_replica_policy(
                now.min_isv_svn if args.min_isv_svn is None else args.min_isv_svn,
                args.tcb_status or now.tcb_statuses,
                auto_join=now.auto_join if args.auto_join is None else args.auto_join,
                extra_roots_insecure=now.extra_roots_insecure if roots is None else roots)
        head = head_line(client)
    _show(args, cluster, head)
