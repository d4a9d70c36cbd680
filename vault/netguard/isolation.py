"""`isolate()`: move this process into a network namespace with only loopback, hide the host's
Unix sockets behind private /tmp and /run, drop capabilities, then lock it in with Landlock and seccomp.

Call it first thing at process start: namespaces apply to the calling thread only, so it refuses to
run once a second thread exists (importing torch starts one). The order of the steps matters and
is explained at each one.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vault.errors import IsolationError, UsageError
from vault.netguard import _linux, _seccomp, guard

LEVELS = ("none", "guard", "namespace+seccomp")
TEST_SWITCH = "STRONGROOM_TEST_ISOLATION"

# Directories that hold runtime state and the Unix sockets of host services; each gets a fresh tmpfs.
MASKED_ROOTS = ("/tmp", "/var/tmp", "/run", "/dev/shm")
# As root, the capabilities that file access needs stay; everything else (sys_admin, net_admin,
# net_raw, sys_ptrace, dac_read_search, ...) goes from every set, for this process and its children.
ROOT_KEPT_CAPS = frozenset(
    {0, 1, 3, 4, 5, 6, 7, 14}
)  # chown dac_override fowner fsetid kill setgid setuid ipc_lock
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
NAMESPACE_HINT = (
    "run strongroom as root, or where unprivileged user namespaces are allowed "
    "(sysctl user.max_user_namespaces > 0; kernel.unprivileged_userns_clone=1 on Debian kernels; "
    "kernel.apparmor_restrict_unprivileged_userns=0 on Ubuntu), or in a container that permits unshare; "
    "otherwise an admin must set a policy whose [isolation] required is 'guard'"
)


@dataclass(frozen=True)
class IsolationReport:
    """What `isolate()` reached, as evidence for the audit log. `mode` is one of LEVELS."""

    mode: str
    layers: tuple[str, ...]
    required: str
    netns: str
    host_netns: str
    user_namespace: bool
    interfaces: tuple[dict[str, Any], ...]
    host_interfaces: tuple[dict[str, Any], ...]
    seccomp: dict[str, Any]
    landlock: dict[str, Any]
    capabilities: dict[str, Any]
    private_mounts: tuple[dict[str, Any], ...]
    host_unix_sockets: dict[str, Any]
    environment: dict[str, str]
    cache_dir: str
    closed_fds: tuple[dict[str, Any], ...] = ()
    warnings: tuple[str, ...] = ()
    waived_by_test_switch: bool = False
    pid: int = field(default_factory=os.getpid)
    inherited_from: int | None = None  # the isolated strongroom process this one was started by

    @property
    def isolated(self) -> bool:
        return self.mode != "none"

    def meets(self, required: str) -> bool:
        """True when the reached mode is at least `required` (one of LEVELS)."""
        return level_rank(self.mode) >= level_rank(required)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "isolated": self.isolated,
            "mode": self.mode,
            "layers": list(self.layers),
            "required": self.required,
            "netns": self.netns,
            "host_netns": self.host_netns,
            "user_namespace": self.user_namespace,
            "interfaces": [dict(i) for i in self.interfaces],
            "host_interfaces": [dict(i) for i in self.host_interfaces],
            "host_interfaces_up": sorted(str(i["name"]) for i in self.host_interfaces if i.get("up")),
            "seccomp": dict(self.seccomp),
            "landlock": dict(self.landlock),
            "capabilities": dict(self.capabilities),
            "private_mounts": [dict(m) for m in self.private_mounts],
            "host_unix_sockets": dict(self.host_unix_sockets),
            "environment": dict(self.environment),
            "cache_dir": self.cache_dir,
            "closed_fds": [dict(f) for f in self.closed_fds],
            "warnings": list(self.warnings),
            "pid": self.pid,
        }
        if self.waived_by_test_switch:
            data["waived_by_test_switch"] = True
        if self.inherited_from is not None:
            data["inherited_from"] = self.inherited_from
        return data


def level_rank(level: str) -> int:
    if level not in LEVELS:
        raise UsageError(f"unknown isolation level {level!r}", f"use one of: {', '.join(LEVELS)}")
    return LEVELS.index(level)


_report: IsolationReport | None = None


def current_report() -> IsolationReport | None:
    """The report of this process's isolation, or None when `isolate()` has not run."""
    return _report


def _stderr_warning(message: str) -> None:
    sys.stderr.write(f"strongroom: WARNING: {message}\n")
    sys.stderr.flush()


def isolate(
    required: str = "namespace+seccomp",
    *,
    keep: Iterable[str | os.PathLike[str]] = (),
    on_warning: Callable[[str], None] | None = None,
) -> IsolationReport:
    """Isolate this process at the strongest level the host allows; raise IsolationError below `required`.

    `keep`: paths under /tmp, /var/tmp, /run or /dev/shm that must stay reachable (the vault, files
    to import, an export directory). Each is bind-mounted back into the private tmpfs; one that does
    not exist yet is first created on the host as an empty directory, so what is written there
    survives the process. The interpreter's own paths and the working directory are kept as well.
    """
    global _report
    level_rank(required)
    warn = on_warning or _stderr_warning
    if _report is not None:
        if not _report.meets(required):
            raise IsolationError(
                f"this process is already isolated at {_report.mode!r}, below the required {required!r}",
                NAMESPACE_HINT,
            )
        return _report
    _refuse_if_threaded()

    warnings: list[str] = []
    host_netns = _linux.namespace_id("net")
    host_interfaces = _linux.host_interfaces()
    host_sockets = _linux.host_unix_sockets()
    closed = _close_network_fds(warnings)
    keeps = _plan_keeps(keep, warnings)

    namespaces = _enter_namespaces()
    layers: list[str] = []
    interfaces: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    netns_ok = mounts_ok = False
    if namespaces["ok"]:
        layers += ["userns"] if namespaces["user_namespace"] else []
        interfaces = _loopback_only(warnings)
        netns_ok = _linux.namespace_id("net") != host_netns and {i["name"] for i in interfaces} <= {"lo"}
        if netns_ok:
            layers.append("netns")
        else:
            warnings.append(f"the new network namespace shows unexpected interfaces: {interfaces}")
        mounts, mounts_ok = _mask_host_directories(keeps, warnings)
        if mounts_ok:
            layers.append("mountns")
    else:
        warnings.append(
            f"LOUD WARNING: network namespaces are unavailable here ({namespaces['error']}); strongroom runs "
            "at the weaker 'guard' level, where the host's interfaces and Unix sockets stay visible to this "
            "process and only seccomp (if available) and the in-process guard stand in the way. Fix: "
            + NAMESPACE_HINT
        )

    cache_dir, environment = _private_cache(mounts_ok)
    guard.install()
    capabilities = _drop_capabilities(namespaces, warnings)
    if capabilities.get("dropped"):
        layers.append("capabilities")
    landlock = _apply_landlock(warnings)
    if landlock.get("status") == "active":
        layers.append("landlock")
    seccomp = _apply_seccomp(warnings)
    seccomp_ok = seccomp.get("status") == "filter"
    if seccomp_ok:
        layers.append("seccomp")
    layers.append("guard")

    reachable = [e.path for e in host_sockets if _linux.is_socket_file(e.path)]
    if reachable:
        shown = ", ".join(reachable[:5]) + (" ..." if len(reachable) > 5 else "")
        warnings.append(f"{len(reachable)} Unix socket(s) of host processes remain reachable: {shown}")

    mode = "namespace+seccomp" if (netns_ok and mounts_ok and seccomp_ok) else "guard"
    report = IsolationReport(
        mode=mode,
        layers=tuple(layers),
        required=required,
        netns=_linux.namespace_id("net"),
        host_netns=host_netns,
        user_namespace=bool(namespaces.get("user_namespace")),
        interfaces=tuple(interfaces),
        host_interfaces=tuple(host_interfaces),
        seccomp=seccomp,
        landlock=landlock,
        capabilities=capabilities,
        private_mounts=tuple(mounts),
        host_unix_sockets={"seen": len(host_sockets), "reachable": reachable},
        environment=environment,
        cache_dir=cache_dir,
        closed_fds=tuple(closed),
        warnings=tuple(warnings),
        waived_by_test_switch=os.environ.get(TEST_SWITCH) == "waive",
    )
    _report = report
    _publish(report)
    for message in warnings:
        warn(message)
    if not report.meets(required):
        why = namespaces.get("error") or "; ".join(warnings) or "a layer failed"
        raise IsolationError(
            f"network isolation {required!r} is required but only {mode!r} could be reached: {why}",
            NAMESPACE_HINT,
            detail=report.to_json(),
        )
    return report


def _proc_status() -> dict[str, str]:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def inherit(parent: dict[str, Any], *, keep: Iterable[str | os.PathLike[str]] = ()) -> IsolationReport:
    """For a process started by an isolated strongroom process (the terminal UI's trainer).

    Namespaces, Landlock, the dropped capabilities and the seccomp filter pass to children and
    cannot be entered a second time (the filter refuses unshare and mount), so `isolate()` in such
    a child would report only 'guard'. This checks, in this process, that it is in the parent's
    private network namespace with nothing but loopback, under a seccomp filter with
    no_new_privs; then installs the in-process guard and reports the parent's level, naming the
    parent. When a check fails it isolates on its own (`isolate_session`) instead.
    """
    global _report
    if _report is not None:
        return _report
    status = _proc_status()
    netns = _linux.namespace_id("net")
    names = set(_linux.proc_net_dev_names())  # /proc/self/net: this process's namespace, not sysfs's
    checks = {
        "parent isolated with namespaces and seccomp": parent.get("mode") == "namespace+seccomp",
        "in the parent's network namespace": bool(parent.get("netns")) and netns == parent.get("netns"),
        "not the host's network namespace": netns != parent.get("host_netns"),
        "loopback only": names <= {"lo"},
        "seccomp filter active": status.get("Seccomp") == "2",
        "no_new_privs set": status.get("NoNewPrivs") == "1",
    }
    failed = [name for name, ok in checks.items() if not ok]
    if failed:
        _stderr_warning(f"not inheriting the parent's isolation ({', '.join(failed)}); isolating anew")
        return isolate_session(keep)
    guard.install()
    report = IsolationReport(
        mode=str(parent["mode"]),
        layers=tuple(parent.get("layers") or ()),
        required="guard",
        netns=netns,
        host_netns=str(parent.get("host_netns", "")),
        user_namespace=bool(parent.get("user_namespace")),
        interfaces=tuple({"name": name} for name in sorted(names)),
        host_interfaces=tuple(parent.get("host_interfaces") or ()),
        seccomp={
            **dict(parent.get("seccomp") or {}),
            "kernel": {k: status.get(k) for k in ("NoNewPrivs", "Seccomp", "Seccomp_filters")},
        },
        landlock=dict(parent.get("landlock") or {}),
        capabilities=dict(parent.get("capabilities") or {}),
        private_mounts=tuple(parent.get("private_mounts") or ()),
        host_unix_sockets=dict(parent.get("host_unix_sockets") or {}),
        environment=dict(parent.get("environment") or {}),
        cache_dir=str(parent.get("cache_dir", "")),
        inherited_from=int(parent["pid"]) if parent.get("pid") is not None else None,
    )
    _report = report
    _publish(report)
    return report


def isolate_session(keep: Iterable[str | os.PathLike[str]] = ()) -> IsolationReport:
    """Isolate at the strongest reachable level before the vault (and its policy) can be read.

    The policy lives inside the encrypted vault, so the process cannot know the required level yet:
    it takes the strongest, accepts 'guard' as a floor, and the Vault compares the report with its
    policy after unlock. `$STRONGROOM_VAULT` and `keep` stay reachable.
    """
    paths = list(keep)
    if os.environ.get("STRONGROOM_VAULT"):
        paths.append(os.environ["STRONGROOM_VAULT"])
    return isolate("guard", keep=paths)


def _publish(report: IsolationReport) -> None:
    try:
        from vault import netguard_state
    except ImportError:
        return
    netguard_state.set_report(report.to_json())


# ----------------------------------------------------------------------------- the steps
def _refuse_if_threaded() -> None:
    tasks = _linux.task_count()
    if threading.active_count() > 1 or tasks > 1:
        names = sorted(t.name for t in threading.enumerate() if t is not threading.main_thread())
        raise IsolationError(
            f"too late to isolate: this process already runs {max(tasks, threading.active_count())} threads "
            f"({', '.join(names) or 'started by native code'}), and namespaces would cover only one of them",
            "call vault.netguard.isolate() first thing at process start, before importing torch or anything "
            "that starts threads",
            detail={"threads": names, "tasks": tasks},
        )


def _close_network_fds(warnings: list[str]) -> list[dict[str, Any]]:
    """Inherited non-Unix sockets stay in the host's namespace after unshare: close them (refuse for stdio)."""
    closed: list[dict[str, Any]] = []
    for fd in _linux.open_fds():
        family = _linux.socket_family(fd)
        if family is None or family == socket.AF_UNIX:
            continue
        name = guard._family_name(family)
        if fd <= 2:
            raise IsolationError(
                f"standard stream {fd} is a {name} socket inherited from the parent process",
                "run strongroom from a terminal, or with pipes or files for its standard streams",
            )
        os.close(fd)
        closed.append({"fd": fd, "family": name})
        warnings.append(f"closed inherited {name} socket on file descriptor {fd}")
    return closed


@dataclass(frozen=True)
class _Keep:
    real: str  # the directory or file to keep (resolved)
    targets: tuple[str, ...]  # where it must appear inside (its real and its given path)


def _masked_roots() -> list[str]:
    roots: list[str] = []
    for root in MASKED_ROOTS:
        if os.path.isdir(root) and not os.path.islink(root):
            real = os.path.realpath(root)
            if not any(_inside(real, r) or real == r for r in roots):
                roots.append(real)
    return roots


def _inside(path: str, root: str) -> bool:
    return path != root and path.startswith(root.rstrip("/") + "/")


def _plan_keeps(keep: Iterable[str | os.PathLike[str]], warnings: list[str]) -> list[_Keep]:
    roots = _masked_roots()
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
    plans: list[_Keep] = []
    for given, explicit in [(os.fspath(p), True) for p in keep] + [(p, False) for p in runtime if p]:
        path = os.path.abspath(os.path.expanduser(given))
        if not os.path.lexists(path):
            if not explicit or not any(_inside(path, r) for r in roots):
                continue
            os.makedirs(path, mode=0o700, exist_ok=True)
        real = os.path.realpath(path)
        if real in roots or path in roots:
            if explicit:
                warnings.append(f"cannot keep {given}: it is a whole private directory; keep a sub-directory")
            continue
        targets = tuple(dict.fromkeys(t for t in (real, path) if any(_inside(t, r) for r in roots)))
        if targets:
            plans.append(_Keep(real, targets))
    return plans


def _enter_namespaces() -> dict[str, Any]:
    """unshare(NEWNET|NEWNS) directly as root; otherwise (or when root lacks the right) via a user namespace."""
    errors: list[str] = []
    if os.geteuid() == 0:
        try:
            _linux.unshare(_linux.CLONE_NEWNET | _linux.CLONE_NEWNS)
            return {"ok": True, "user_namespace": False, "error": None}
        except OSError as exc:
            errors.append(f"unshare(CLONE_NEWNET|CLONE_NEWNS) as root: {_linux.errno_name(exc.errno)}")
    uid, gid = os.geteuid(), os.getegid()
    try:
        _linux.unshare(_linux.CLONE_NEWUSER | _linux.CLONE_NEWNET | _linux.CLONE_NEWNS)
    except OSError as exc:
        errors.append(f"unshare(CLONE_NEWUSER|CLONE_NEWNET|CLONE_NEWNS): {_linux.errno_name(exc.errno)}")
        return {"ok": False, "user_namespace": False, "error": "; ".join(errors)}
    try:
        _linux.map_ids_to_self(uid, gid)
    except OSError as exc:  # in a user namespace without an id map, files could not be created
        raise IsolationError(
            f"entered a user namespace but could not map uid {uid}/gid {gid} into it: {exc.strerror}",
            NAMESPACE_HINT,
        ) from None
    return {"ok": True, "user_namespace": True, "error": "; ".join(errors) or None}


def _loopback_only(warnings: list[str]) -> list[dict[str, Any]]:
    """Bring `lo` up inside the new namespace (SIOCSIFFLAGS) and list what is there. The AF_INET socket
    used for the ioctl is created and closed here, before the guard and seccomp exist."""
    found: list[dict[str, Any]] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            _linux.bring_up(sock, "lo")
        except OSError as exc:
            warnings.append(f"could not bring loopback up inside the namespace: {exc.strerror}")
        for name in _linux.proc_net_dev_names():
            try:
                flags = _linux.interface_flags(sock, name)
            except OSError:
                flags = 0
            found.append({"name": name, "up": bool(flags & _linux.IFF_UP)})
    return found


def _mask_host_directories(keeps: list[_Keep], warnings: list[str]) -> tuple[list[dict[str, Any]], bool]:
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
    sources: list[tuple[_Keep, int]] = []
    for plan in keeps:
        try:
            sources.append((plan, os.open(plan.real, os.O_PATH | os.O_CLOEXEC)))
        except OSError as exc:
            warnings.append(f"cannot keep {plan.real}: {exc.strerror}")
    ok = True
    try:
        for root in _masked_roots():
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
                if any(target == b or _inside(target, b) for b in bound):
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
    if cwd in _masked_roots():
        warnings.append(
            f"the working directory {cwd} is now a private, empty directory; name files by "
            "paths outside it, or start strongroom from another directory"
        )


def _private_cache(private_tmp: bool) -> tuple[str, dict[str, str]]:
    """Caches and temp files go to process-private space; hubs are told they are offline."""
    if private_tmp:
        cache = "/tmp/strongroom-cache"
        os.makedirs(cache, mode=0o700, exist_ok=True)
    else:
        cache = tempfile.mkdtemp(prefix="strongroom-cache-")
        atexit.register(shutil.rmtree, cache, True)
    environment = dict(
        OFFLINE_ENV,
        TORCH_HOME=f"{cache}/torch",
        XDG_CACHE_HOME=f"{cache}/xdg",
        HF_HOME=f"{cache}/huggingface",
    )
    if private_tmp:
        environment["TMPDIR"] = "/tmp"
        tempfile.tempdir = None
    os.environ.update(environment)
    return cache, environment


def _drop_capabilities(namespaces: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
    keep = ROOT_KEPT_CAPS if os.geteuid() == 0 and not namespaces.get("user_namespace") else frozenset()
    try:
        dropped = _linux.restrict_caps(keep)
    except OSError as exc:
        warnings.append(f"could not drop capabilities: {exc.strerror}")
        return {"dropped": [], "kept": [], "error": str(exc)}
    return {
        "dropped": [_linux.cap_name(c) for c in dropped],
        "kept": sorted(_linux.cap_name(c) for c in keep),
        "effective": hex(_linux.effective_caps()),
    }


def _apply_landlock(warnings: list[str]) -> dict[str, Any]:
    abi = _linux.landlock_abi()
    if abi < 1:
        warnings.append(
            "Landlock is unavailable: a root process outside strongroom holding no more "
            "capabilities than it does could be reached through /proc/PID/root"
        )
        return {"status": "unavailable", "abi": 0}
    try:
        denies = _linux.landlock_restrict(abi)
    except OSError as exc:
        warnings.append(f"Landlock could not be applied: {exc.strerror}")
        return {"status": "failed", "abi": abi, "error": str(exc)}
    return {"status": "active", "abi": abi, "denies": denies}


def _apply_seccomp(warnings: list[str]) -> dict[str, Any]:
    try:
        installed = _seccomp.install()
    except OSError as exc:
        warnings.append(
            f"seccomp filter unavailable: {exc.strerror or exc}; C code and child processes "
            "are not stopped by the kernel from creating internet sockets"
        )
        return {"status": "unavailable", "error": str(exc.strerror or exc)}
    selftest = _seccomp.selftest()
    status = "filter" if all(v in ("EACCES", "EPERM") for v in selftest.values()) else "ineffective"
    if status != "filter":
        warnings.append(f"the seccomp filter did not refuse every network family: {selftest}")
    return {"status": status, **installed, "selftest": selftest, "kernel": _seccomp.kernel_status()}
