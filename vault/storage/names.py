"""Names of datasets and users become parts of object contexts, paths and screens: refuse the tricks."""

from __future__ import annotations

from vault.errors import InputError
from vault.terminal import safe


def check_name(name: str, what: str = "dataset") -> str:
    """Names become parts of contexts and screens: refuse path tricks and control characters."""
    bad = (
        not name
        or len(name) > 64
        or "/" in name
        or "\\" in name
        or name in (".", "..")
        or ".." in name
        or name.startswith("-")
        or safe(name) != name  # control characters (C0, DEL, C1) and bidi overrides
        or "|" in name
        or "=" in name
    )
    if bad:
        raise InputError(
            f"invalid {what} name {name!r}",
            "use 1-64 characters without '/', '\\', '..', '|', '=', control characters or a leading '-', "
            "e.g. clinic-xrays-2026",
        )
    return name
