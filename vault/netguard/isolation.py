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

from vault.errors import IsolationError
from vault.netguard import _landlock, _linux, _pidns, _seccomp, guard, hardening, state
from vault.netguard import loopback as only_lo
from vault.netguard.mounts import fresh_proc, mask_host_directories, plan_keeps, seal_filesystem
from vault.vocabulary import LOOPBACK_ISOLATION, isolation_rank

# Namespaces entered besides the network and mount ones: System V IPC and the host name.
EXTRA_NAMESPACES = _linux.CLONE_NEWIPC | _linux.CLONE_NEWUTS
NAMESPACE_KINDS = ("user", "mnt", "pid", "ipc", "uts", "net", "cgroup")
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
NAMESPACE_HINT = (
    "run strongroom as root, or where unprivileged user namespaces are allowed "
    "(sysctl user.max_user_namespaces > 0; kernel.unprivileged_userns_clone=1 on Debian kernels; "
    "kernel.apparmor_restrict_unprivileged_userns=0 on Ubuntu), or in a container that permits unshare; "
    "otherwise an admin must set a policy whose [isolation] required is 'guard'"
)


@dataclass(frozen=True)
class IsolationReport:
    """What `isolate()` reached, as evidence for the audit log. `mode` is one of ISOLATION_LEVELS."""

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
    sandbox: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    waived_by_test_switch: bool = False
    pid: int = field(default_factory=os.getpid)
    inherited_from: int | None = None  # the isolated strongroom process this one was started by
    loopback_check: dict[str, Any] = field(default_factory=dict)  # the loopback level's interface check

    @property
    def isolated(self) -> bool:
        return self.mode != "none"

    def meets(self, required: str) -> bool:
        """True when the reached mode is at least `required` (one of ISOLATION_LEVELS)."""
        return isolation_rank(self.mode) >= isolation_rank(required)

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
            "sandbox": dict(self.sandbox),
            "warnings": list(self.warnings),
            "pid": self.pid,
        }
        if self.waived_by_test_switch:
            data["waived_by_test_switch"] = True
        if self.inherited_from is not None:
            data["inherited_from"] = self.inherited_from
        if self.loopback_check:
            data["loopback_check"] = dict(self.loopback_check)
        return data


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
    readable: Iterable[str | os.PathLike[str]] = (),
    on_warning: Callable[[str], None] | None = None,
    loopback: bool = False,
) -> IsolationReport:
    """Isolate this process at the strongest level the host allows; raise IsolationError below `required`.

    `loopback=True` asks for 'namespace+seccomp-loopback' instead of 'namespace+seccomp': internet
    sockets are allowed (Landlock leaves TCP alone, seccomp allows AF_INET/AF_INET6) only when the
    new network namespace was seen to hold nothing but `lo`, and `loopback_check` records what was
    seen; otherwise the plain filter is installed and the level is at most 'guard'.

    `keep`: paths under /tmp, /var/tmp, /run or /dev/shm that must stay reachable (the vault, files
    to import, an export directory). Each is bind-mounted back into the private tmpfs; one that does
    not exist yet is first created on the host as an empty directory, so what is written there
    survives the process. The interpreter's own paths and the working directory are kept as well.
    `keep` paths stay writable; `readable` ones (files to import) are reachable but read-only.
    Everything else is read-only, and only Python, the source and system libraries can be read.
    """
    global _report
    isolation_rank(required)
    warn = on_warning or _stderr_warning
    if _report is not None:
        if not _report.meets(required):
            raise IsolationError(
                f"this process is already isolated at {_report.mode!r}, below the required {required!r}",
                NAMESPACE_HINT,
            )
        return _report
    _refuse_if_threaded()

    process = hardening.harden()  # before anything parses input or starts a child
    warnings: list[str] = []
    keep, readable = list(keep), list(readable)
    host_ids = {kind: _linux.namespace_id(kind) for kind in NAMESPACE_KINDS}
    host_netns = _linux.namespace_id("net")
    host_interfaces = _linux.host_interfaces()
    host_sockets = _linux.host_unix_sockets()
    closed = _close_network_fds(warnings)
    keeps = plan_keeps([*keep, *readable], warnings)

    namespaces = _enter_namespaces()
    filesystem: dict[str, Any] = {
        "read_only_root": False,
        "writable": [],
        "unavailable": "no mount namespace",
    }
    layers: list[str] = []
    interfaces: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    netns_ok = mounts_ok = False
    pid_namespace: dict[str, Any] = {"new": False, "error": "no namespaces on this host"}
    if namespaces["ok"]:
        pid_namespace = _pidns.enter()  # from here on this is a forked child, PID 1 of its namespace
        layers += ["userns"] if namespaces["user_namespace"] else []
        interfaces = only_lo.bring_up_and_list(warnings)
        netns_ok = _linux.namespace_id("net") != host_netns and {i["name"] for i in interfaces} <= {"lo"}
        if netns_ok:
            layers.append("netns")
        else:
            warnings.append(f"the new network namespace shows unexpected interfaces: {interfaces}")
        mounts, mounts_ok = mask_host_directories(keeps, warnings)
        if mounts_ok and pid_namespace["new"]:
            pid_namespace["own_proc"] = fresh_proc(warnings)
            layers.append("pidns")
        if mounts_ok:
            layers.append("mountns")
            filesystem = seal_filesystem([os.fspath(p) for p in keep], warnings)
            if filesystem["read_only_root"]:
                layers.append("readonly-root")
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
    loopback_check: dict[str, Any] = {}
    if loopback:  # checked here, before any filter that would allow an internet socket is loaded
        names = [str(i["name"]) for i in interfaces]
        loopback_check = only_lo.evidence(names, where="isolate, before the seccomp filter")
        loopback_check["allowed"] = bool(netns_ok and mounts_ok and loopback_check["only_loopback"])
    tcp = bool(loopback_check.get("allowed"))
    landlock = _apply_landlock(warnings, keep=keep, readable=readable, private_tmp=mounts_ok, tcp=tcp)
    if landlock.get("status") == "active":
        layers.append("landlock")
    seccomp = _apply_seccomp(warnings, _seccomp.LOOPBACK_FAMILIES if tcp else _seccomp.ALLOWED_FAMILIES)
    seccomp_ok = seccomp.get("status") == "filter"
    if seccomp_ok:
        layers.append("seccomp")
    layers.append("guard")

    reachable = [e.path for e in host_sockets if _linux.is_socket_file(e.path)]
    if reachable:
        shown = ", ".join(reachable[:5]) + (" ..." if len(reachable) > 5 else "")
        warnings.append(f"{len(reachable)} Unix socket(s) of host processes remain reachable: {shown}")

    mode = "namespace+seccomp" if (netns_ok and mounts_ok and seccomp_ok) else "guard"
    if loopback and mode != "guard":
        mode = LOOPBACK_ISOLATION if tcp else "guard"
    if loopback and not tcp:
        warnings.append(f"the loopback level was refused: {loopback_check}")
    sandbox = _sandbox_evidence(process, host_ids, filesystem, capabilities, landlock, seccomp)
    sandbox["namespaces"]["pid"].update(pid_namespace)
    for layer, reason in sandbox["unavailable"].items():
        warnings.append(f"sandbox layer {layer} unavailable: {reason}")
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
        waived_by_test_switch=state.waived(),
        sandbox=sandbox,
        loopback_check=loopback_check,
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
    process = hardening.harden()
    status = _proc_status()
    netns = _linux.namespace_id("net")
    names = set(_linux.proc_net_dev_names())  # /proc/self/net: this process's namespace, not sysfs's
    checks = {
        "parent isolated with namespaces and seccomp": parent.get("mode")
        in ("namespace+seccomp", LOOPBACK_ISOLATION),
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
        sandbox={
            **dict(parent.get("sandbox") or {}),
            **process,
            "capabilities": _linux.capability_sets(),
            "no_new_privs": _linux.no_new_privs(),
            "python_isolated_mode": bool(sys.flags.isolated),
        },
        inherited_from=int(parent["pid"]) if parent.get("pid") is not None else None,
    )
    _report = report
    _publish(report)
    return report


def isolate_session(
    keep: Iterable[str | os.PathLike[str]] = (),
    *,
    readable: Iterable[str | os.PathLike[str]] = (),
    loopback: bool = False,
) -> IsolationReport:
    """Isolate at the strongest reachable level before the vault (and its policy) can be read.

    The policy lives inside the encrypted vault, so the process cannot know the required level yet:
    it takes the strongest, accepts 'guard' as a floor, and the Vault compares the report with its
    policy after unlock. `$STRONGROOM_VAULT` and `keep` stay reachable.
    """
    paths = list(keep)
    if os.environ.get("STRONGROOM_VAULT"):
        paths.append(os.environ["STRONGROOM_VAULT"])
    return isolate("guard", keep=paths, readable=readable, loopback=loopback)


def _publish(report: IsolationReport) -> None:
    state.set_report(report.to_json())


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


def _enter_namespaces() -> dict[str, Any]:
    """unshare(NEWNET|NEWNS) directly as root; otherwise (or when root lacks the right) via a user namespace."""
    errors: list[str] = []
    base = _linux.CLONE_NEWNET | _linux.CLONE_NEWNS
    if os.geteuid() == 0:
        for flags, name in ((base | EXTRA_NAMESPACES, "|CLONE_NEWIPC|CLONE_NEWUTS"), (base, "")):
            try:
                _linux.unshare(flags)
                return {"ok": True, "user_namespace": False, "error": "; ".join(errors) or None}
            except OSError as exc:
                errors.append(
                    f"unshare(CLONE_NEWNET|CLONE_NEWNS{name}) as root: {_linux.errno_name(exc.errno)}"
                )
    uid, gid = os.geteuid(), os.getegid()
    user = _linux.CLONE_NEWUSER | base
    for flags, name in ((user | EXTRA_NAMESPACES, "|CLONE_NEWIPC|CLONE_NEWUTS"), (user, "")):
        try:
            _linux.unshare(flags)
            break
        except OSError as exc:
            errors.append(
                f"unshare(CLONE_NEWUSER|CLONE_NEWNET|CLONE_NEWNS{name}): {_linux.errno_name(exc.errno)}"
            )
    else:
        return {"ok": False, "user_namespace": False, "error": "; ".join(errors)}
    try:
        _linux.map_ids_to_self(uid, gid)
    except OSError as exc:  # in a user namespace without an id map, files could not be created
        raise IsolationError(
            f"entered a user namespace but could not map uid {uid}/gid {gid} into it: {exc.strerror}",
            NAMESPACE_HINT,
        ) from None
    return {"ok": True, "user_namespace": True, "error": "; ".join(errors) or None}


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
        CUDA_CACHE_PATH=f"{cache}/nv",  # the home directory is read-only inside
        TRITON_CACHE_DIR=f"{cache}/triton",
    )
    if private_tmp:
        environment["TMPDIR"] = "/tmp"
        tempfile.tempdir = None
    os.environ.update(environment)
    return cache, environment


def _drop_capabilities(namespaces: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
    """Every capability from every set, as root too: what root could still do is what its uid owns,
    and the read-only root and Landlock take that away."""
    keep: frozenset[int] = frozenset()
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


def landlock_paths(
    keep: Iterable[str | os.PathLike[str]], readable: Iterable[str | os.PathLike[str]], private_tmp: bool
) -> tuple[list[str], list[str]]:
    """What Landlock lets this process read and write (see `_landlock`)."""
    source = str(Path(__file__).resolve().parents[2])
    read = [
        *_landlock.SYSTEM_READ,
        *_landlock.ETC_READ,
        sys.prefix,
        sys.exec_prefix,
        sys.base_prefix,
        sys.base_exec_prefix,
        source,
        *(p for p in sys.path if p and os.path.isabs(p) and p not in (os.sep, _cwd())),
        *(os.fspath(p) for p in readable),
    ]
    write = [*_landlock.DEVICES, *_landlock.accelerator_devices(), *(os.fspath(p) for p in keep)]
    if private_tmp:  # the host's own /tmp stays out of reach when no private tmpfs covers it
        write += ["/tmp", "/var/tmp", "/run", "/dev/shm"]
    else:
        write.append(tempfile.gettempdir())
    return read, write


def _cwd() -> str:
    try:
        return os.getcwd()
    except OSError:
        return os.sep


def _apply_landlock(
    warnings: list[str],
    *,
    keep: Iterable[str | os.PathLike[str]] = (),
    readable: Iterable[str | os.PathLike[str]] = (),
    private_tmp: bool = False,
    tcp: bool = False,
) -> dict[str, Any]:
    abi = _linux.landlock_abi()
    if abi < 1:
        warnings.append(
            "Landlock is unavailable: a root process outside strongroom holding no more "
            "capabilities than it does could be reached through /proc/PID/root"
        )
        return {"status": "unavailable", "abi": 0}
    read, write = landlock_paths(keep, readable, private_tmp)
    try:
        applied = _landlock.restrict(abi, read=read, write=write, tcp=tcp)
    except OSError as exc:
        warnings.append(f"Landlock could not be applied: {exc.strerror}")
        return {"status": "failed", "abi": abi, "error": str(exc)}
    return {"status": "active", **applied}


def _sandbox_evidence(
    process: dict[str, Any],
    host_ids: dict[str, str],
    filesystem: dict[str, Any],
    capabilities: dict[str, Any],
    landlock: dict[str, Any],
    seccomp: dict[str, Any],
) -> dict[str, Any]:
    """Every layer as a property checkable from outside (systemd-analyze security's list)."""
    namespaces = {}
    for kind, host in host_ids.items():
        now = _linux.namespace_id(kind)
        namespaces[kind] = {"id": now, "new": now != host}
    sets = _linux.capability_sets()
    unavailable: dict[str, str] = {}
    for kind in ("mnt", "ipc", "uts", "net"):
        if not namespaces[kind]["new"]:
            unavailable[f"{kind} namespace"] = "unshare refused by the host"
    if not filesystem.get("read_only_root"):
        unavailable["read-only root"] = str(
            filesystem.get("unavailable") or filesystem.get("failed") or "failed"
        )
    if any(int(v, 16) for v in sets.values()):
        unavailable["capabilities"] = f"some remain: {sets}"
    if landlock.get("status") != "active":
        unavailable["landlock"] = str(landlock.get("error") or landlock.get("status"))
    elif "signal" not in landlock.get("scopes", []):
        unavailable["landlock scopes"] = f"the kernel's Landlock ABI {landlock.get('abi')} is below 6"
    if seccomp.get("status") != "filter":
        unavailable["seccomp"] = str(seccomp.get("error") or seccomp.get("status"))
    if not namespaces["pid"]["new"]:
        unavailable["pid namespace"] = "not entered (unshare refused by the host)"
    return {
        **process,
        "namespaces": namespaces,
        "filesystem": filesystem,
        "capabilities": sets,
        "no_new_privs": _linux.no_new_privs(),
        "landlock": {
            k: landlock.get(k) for k in ("status", "abi", "scopes", "rules", "handled_fs") if k in landlock
        },
        "seccomp": {
            "status": seccomp.get("status"),
            "denied_syscalls": seccomp.get("denied_syscalls", []),
            "setid_mode_refused": seccomp.get("setid_mode_refused", []),
        },
        "python_isolated_mode": bool(sys.flags.isolated),
        "unavailable": unavailable,
    }


def _apply_seccomp(warnings: list[str], families: tuple[str, ...]) -> dict[str, Any]:
    try:
        installed = _seccomp.install(families)
    except OSError as exc:
        warnings.append(
            f"seccomp filter unavailable: {exc.strerror or exc}; C code and child processes "
            "are not stopped by the kernel from creating internet sockets"
        )
        return {"status": "unavailable", "error": str(exc.strerror or exc)}
    selftest = _seccomp.selftest(families)
    status = "filter" if all(v in ("EACCES", "EPERM") for v in selftest.values()) else "ineffective"
    if status != "filter":
        warnings.append(f"the seccomp filter did not refuse every network family: {selftest}")
    return {"status": status, **installed, "selftest": selftest, "kernel": _seccomp.kernel_status()}
