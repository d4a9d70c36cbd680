"""Where things live in a vault directory, and the format's name and version.

<vault>/vault.json            the header: format, key slots (see keyring)
<vault>/catalog.sealed        the encrypted catalog (see catalog)
<vault>/catalog.next.sealed   a rotation's new catalog, until its header commits
<vault>/objects/<2 hex>/<id>  sealed objects (see objects)
<vault>/audit/                the signed audit log (see vault.audit)
<vault>/lock                  one writer at a time
<vault>/runs/<run>.lock       held by the process of a training run while it runs
"""

from __future__ import annotations

import os
from pathlib import Path

FORMAT_NAME = "strongroom-vault"
FORMAT_VERSION = 2  # what this build writes; format 1 is read, and upgraded at an admin's unlock
READABLE_VERSIONS = (1, 2)
HEADER_FILE = "vault.json"
CATALOG_FILE = "catalog.sealed"
CATALOG_NEXT = "catalog.next.sealed"
LOCK_FILE = "lock"
RUNS_DIR = "runs"
OBJECTS_DIR = "objects"
AUDIT_DIR = "audit"
TMP_PREFIX = ".tmp-"


def default_vault_path() -> Path:
    """`$STRONGROOM_VAULT`, else `<user data dir>/strongroom/vault` (XDG_DATA_HOME on Linux)."""
    env = os.environ.get("STRONGROOM_VAULT")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "strongroom" / "vault"
