"""The mount namespace half of isolation: fresh tmpfs over the directories that hold host services'
Unix sockets and runtime state, with the paths a command needs bound back in place."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vault.netguard import _linux

# Directories that hold runtime state and the Unix sockets of host services; each gets a fresh tmpfs.
MASKED_ROOTS = ("/tmp", "/var/tmp", "/run", "/dev/shm")


@dataclass(frozen=True)
class Keep:
    real: str  # the directory or file to keep (resolved)
    targets: tuple[str, ...]  # where it must appear inside (its real and its given path)


def masked_roots() -> list[str]:
    roots: list[str] = []
    for root in MASKED_ROOTS:
        if os.path.isdir(root) and not os.path.islink(root):
            real = os.path.realpath(root)
            if not any(inside(real, r) or real == r for r in roots):
                roots.append(real)
    return roots


def inside(path: str, root: str) -> bool:
    return path != root and path.startswith(root.rstrip("/") + "/")


def plan_keeps(keep: Iterable[str | os.PathLike[str]], warnings: list[str]) -> list[Keep]:
    roots = masked_roots()
    runtime = [
        sys.prefix,
        sys.exec_prefix,
        sys.base_prefix,
        str(Path(__file__).resolve().parents[2]),
        *sys.path,
    ]
    try:
        runtime.append(os.getcwd())
    except OSError:
        pass
    plans: list[Keep] = []
    for given, explicit in [(os.fspath(p), True) for p in keep] + [(p, False) for p in runtime if p]:
        path = os.path.abspath(os.path.expanduser(given))
        if not os.path.lexists(path):
            if not explicit or not any(inside(path, r) for r in roots):
                continue
            os.makedirs(path, mode=0o700, exist_ok=True)
        real = os.path.realpath(path)
        if real in roots or path in roots:
            if explicit:
                warnings.append(f"cannot keep {given}: it is a whole private directory; keep a sub-directory")
            continue
        targets = tuple(dict.fromkeys(t for t in (real, path) if any(inside(t, r) for r in roots)))
        if targets:
            plans.append(Keep(real, targets))
    return plans


def mask_host_directories(keeps: list[Keep], warnings: list[str]) -> tuple[list[dict[str, Any]], bool]:
    """Fresh tmpfs over /tmp, /var/tmp, /run and /dev/shm, then the kept paths bound back in place.

    Mounts are made private first so nothing propagates back to the host. Kept paths are opened
    (O_PATH) after unshare and before the tmpfs covers them: a bind needs a source in this namespace.
    """
    mounts: list[dict[str, Any]] = []
    try:
        _linux.mount(None, "/", None, _linux.MS_REC | _linux.MS_PRIVATE)
    except OSError as exc:
        warnings.append(f"could not make mounts private: {exc.strerror}; host directories stay visible")
        return mounts, False
    sources: list[tuple[Keep, int]] = []
    for plan in keeps:
        try:
            sources.append((plan, os.open(plan.real, os.O_PATH | os.O_CLOEXEC)))
        except OSError as exc:
            warnings.append(f"cannot keep {plan.real}: {exc.strerror}")
    ok = True
    try:
        for root in masked_roots():
            mode = "0755" if root == "/run" else "1777"
            try:
                _linux.mount("tmpfs", root, "tmpfs", _linux.MS_NOSUID | _linux.MS_NODEV, f"mode={mode}")
                mounts.append({"target": root, "kind": "tmpfs"})
            except OSError as exc:
                ok = False
                warnings.append(f"could not mount a private tmpfs on {root}: {exc.strerror}")
        bound: list[str] = []
        for plan, fd in sources:
            for target in plan.targets:
                if any(target == b or inside(target, b) for b in bound):
                    continue
                try:
                    _make_mountpoint(target, os.path.isdir(f"/proc/self/fd/{fd}"))
                    _linux.mount(f"/proc/self/fd/{fd}", target, None, _linux.MS_BIND | _linux.MS_REC)
                except OSError as exc:
                    ok = False
                    warnings.append(f"could not keep {target} reachable: {exc.strerror}")
                    continue
                bound.append(target)
                mounts.append({"target": target, "kind": "bind", "source": plan.real})
    finally:
        for _, fd in sources:
            os.close(fd)
    _reenter_working_directory(warnings)
    return mounts, ok


def _make_mountpoint(target: str, is_dir: bool) -> None:
    if is_dir:
        os.makedirs(target, mode=0o755, exist_ok=True)
        return
    os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
    if not os.path.exists(target):
        with open(target, "x"):
            pass


def _reenter_working_directory(warnings: list[str]) -> None:
    """The old working directory is still referenced by inode; resolve it again through the new mounts."""
    try:
        cwd = os.getcwd()
        os.chdir(cwd)
    except OSError:
        os.chdir("/")
        warnings.append("the working directory is not reachable inside the isolation; working from /")
        return
    if cwd in masked_roots():
        warnings.append(
            f"the working directory {cwd} is now a private, empty directory; name files by "
            "paths outside it, or start strongroom from another directory"
        )


def fresh_proc(warnings: list[str]) -> bool:
    """In a new PID namespace, a /proc of its own: the host's processes are not listed there."""
    try:
        _linux.mount("proc", "/proc", "proc", _linux.MS_NOSUID | _linux.MS_NODEV | _linux.MS_NOEXEC)
    except OSError as exc:
        warnings.append(
            f"could not mount a /proc of the PID namespace: {exc.strerror}; host processes stay listed"
        )
        return False
    return True


# ----------------------------------------------------------------------------- the read-only root
_MOUNT_FLAGS = {
    "nosuid": _linux.MS_NOSUID,
    "nodev": _linux.MS_NODEV,
    "noexec": _linux.MS_NOEXEC,
    "noatime": _linux.MS_NOATIME,
    "nodiratime": _linux.MS_NODIRATIME,
    "relatime": _linux.MS_RELATIME,
}
# Kernel tunables: bound read-only over themselves (ProtectKernelTunables), whatever else happens.
TUNABLES = ("/proc/sys", "/proc/sysrq-trigger", "/sys")
# Device and process filesystems stay as they are (a read-only mount would not stop device writes,
# and ptys are made there); what they expose is limited by the capabilities and Landlock.
LEFT_AS_IS = ("/dev", "/proc")


def _unescape(field: str) -> str:
    return field.encode().decode("unicode_escape").encode("latin-1").decode(errors="surrogateescape")


def mount_table() -> list[tuple[str, int]]:
    """(mount point, per-mount flags) of every mount of this namespace, parents first."""
    table: list[tuple[str, int]] = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return table
    for line in lines:
        fields = line.split()
        if len(fields) < 6:
            continue
        flags = 0
        for option in fields[5].split(","):
            flags |= _MOUNT_FLAGS.get(option, 0)
        table.append((_unescape(fields[4]), flags))
    return table


def _remount_read_only(target: str, flags: int) -> None:
    _linux.mount(None, target, None, _linux.MS_REMOUNT | _linux.MS_BIND | _linux.MS_RDONLY | flags)


def _reaches_read_only(path: str) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def seal_filesystem(writable: Iterable[str], warnings: list[str]) -> dict[str, Any]:
    """Everything read-only but the private tmpfs and `writable` (ProtectSystem=strict).

    Each writable path is first bound over itself, so that it is a mount of its own that stays
    writable while the mount it lives on turns read-only. Call after `mask_host_directories`.
    """
    kept: list[str] = []
    for given in writable:
        path = os.path.realpath(given)
        if not os.path.isdir(path) or path in kept:
            continue
        try:
            _linux.mount(path, path, None, _linux.MS_BIND | _linux.MS_REC)
        except OSError as exc:
            warnings.append(f"could not keep {path} writable: {exc.strerror}")
            continue
        kept.append(path)
    private = masked_roots()
    tunables: list[str] = []
    for target in TUNABLES:
        if not os.path.exists(target):
            continue
        try:
            _linux.mount(target, target, None, _linux.MS_BIND | _linux.MS_REC)
            flags = dict(mount_table()).get(target, 0)
            _remount_read_only(target, flags)
            tunables.append(target)
        except OSError as exc:
            warnings.append(f"could not make {target} read-only: {exc.strerror}")
    read_only: list[str] = []
    refused: list[tuple[str, str]] = []
    for target, flags in mount_table():
        # The private tmpfs roots and the writable paths stay writable; what was bound back inside
        # a private root to stay reachable (Python, the source, sys.path, the working directory
        # and the command's inputs, when they live under /tmp) turns read-only like the rest.
        if target in private or any(target == k or inside(target, k) for k in kept) or target in TUNABLES:
            continue
        if any(target == p or inside(target, p) for p in LEFT_AS_IS):
            continue
        try:
            _remount_read_only(target, flags)
            read_only.append(target)
        except OSError as exc:
            refused.append((target, exc.strerror))
    # A mount shadowed by a later bind over a folder above it (the source bound back over its venv)
    # cannot be remounted; what its path reaches is the covering mount, checked once all are done.
    failed = [f"{target}: {reason}" for target, reason in refused if not _reaches_read_only(target)]
    if failed:
        warnings.append(f"could not make {len(failed)} mount(s) read-only: {', '.join(failed[:5])}")
    return {
        "read_only_root": "/" in read_only,
        "read_only_mounts": len(read_only),
        "writable": sorted(set(kept) | set(private)),
        "tunables_read_only": tunables,
        "failed": failed,
    }
