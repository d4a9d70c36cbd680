"""Reading `vault.json`, the header: says plainly when a directory is not a vault, and checks its shape.

Its authenticity is checked once a slot is open, against the authority the user's slot pinned
(format 2: `keyring.verify_header`; format 1: a MAC under the master key). The door reads the
header only through `Session.fresh_header`, which does both.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vault.errors import IntegrityError, NotFound
from vault.storage.layout import FORMAT_NAME, FORMAT_VERSION, HEADER_FILE, READABLE_VERSIONS


def read_header(root: Path) -> dict[str, Any]:
    """Read and shape-check `vault.json`; says plainly when `root` is not a vault."""
    header_path = root / HEADER_FILE
    if not root.exists():
        raise NotFound(
            f"no vault at {root}",
            "create one with `strongroom init`, or point --vault / STRONGROOM_VAULT at an existing vault",
        )
    if not header_path.is_file():
        raise NotFound(
            f"{root} is not a Strongroom vault (no {HEADER_FILE})",
            "point --vault / STRONGROOM_VAULT at a vault directory, or create one with `strongroom init`",
        )
    try:
        header = json.loads(header_path.read_text("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise IntegrityError(
            f"{header_path} is damaged (not valid JSON)",
            "restore vault.json from a backup; `strongroom verify` lists what else is affected",
        ) from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise NotFound(
            f"{root} is not a Strongroom vault ({HEADER_FILE} has another format)",
            "point --vault / STRONGROOM_VAULT at a vault directory",
        )
    version = header.get("version")
    if version not in READABLE_VERSIONS:
        raise IntegrityError(
            f"vault format version {version!r} is not supported (this build reads "
            f"{', '.join(map(str, READABLE_VERSIONS))} and writes {FORMAT_VERSION})",
            "open it with the Strongroom release that wrote it",
        )
    fields: tuple[tuple[str, type], ...] = (("vault_id", str), ("slots", list))
    if version == 1:
        fields += (("mac", str),)
    else:
        fields += (("signature", str), ("authority", str), ("generation", int), ("policy_sha256", str))
    for key, kind in fields:
        if not isinstance(header.get(key), kind):
            raise IntegrityError(
                f"{HEADER_FILE} field {key!r} is missing or damaged", "restore vault.json from a backup"
            )
    return header
