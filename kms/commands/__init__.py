"""The client-side CLI groups: key, alias, data, data-key, re-encrypt, policy, grant, admin, agent, cluster,
credentials."""

from __future__ import annotations

from typing import Any

from kms.commands import access, admin, agent, aliases, cluster, credentials, data, envelope, health, keys, status
from kms.commands.common import connection_parent


def register(groups: Any) -> None:
    """Add the client commands to `kms`'s subparsers."""
    parent = connection_parent()
    keys.register(groups.add_parser(
        "key", help="create, import, list, describe, update, enable/disable, rotate and delete keys"), parent)
    data.register(groups, parent)
    envelope.register(groups, parent)
    aliases.register(groups.add_parser("alias", help="create, update, delete and list key aliases"), parent)
    access.register(groups, parent)
    admin.register_admin(groups.add_parser(
        "admin", help="initialize, recover, back up and restore the server; manage principals"), parent)
    agent.register(groups, parent)
    cluster.register(groups, parent)
    health.register(groups)
    status.register(groups)
    credentials.register(groups.add_parser(
        "credentials", help="client key pairs and certificates, and the domain and state head kept with them"))
