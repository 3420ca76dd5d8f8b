"""The client-side CLI groups: key, encrypt/decrypt/sign/verify/public-key, admin, credentials."""

from __future__ import annotations

from typing import Any

from kms.commands import admin, data, keys
from kms.commands.common import connection_parent


def register(groups: Any) -> None:
    """Add the client commands to `kms`'s subparsers."""
    parent = connection_parent()
    keys.register(groups.add_parser("key", help="create, list, describe, enable/disable, rotate and grant keys"),
                  parent)
    data.register(groups, parent)
    admin.register_admin(groups.add_parser("admin", help="initialize the server; manage principals"), parent)
    admin.register_credentials(groups.add_parser("credentials", help="client key pairs and certificates"))
