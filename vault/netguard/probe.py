"""The fire drill: from inside the isolation, try every way out and report which layer stopped each.

`HostSentinel` (started before `isolate()`) listens on the host's loopback and on a Unix socket
under the host's /tmp from a process that stays outside, and counts what arrives: the proof that
nothing got through does not rest on error messages alone.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from vault.errors import IsolationError, UsageError
from vault.netguard import _linux, guard
from vault.netguard.guard import NetworkBlocked
from vault.netguard.isolation import current_report, isolate

DNS_NAME = "example.com"
DEFAULT_PROBE = "127.0.0.1:9"  # discard; used only when neither --probe nor a sentinel gives a target


class Blocked(Exception):
    """An attempt was stopped; `layer` names what stopped it."""

    def __init__(self, layer: str, error: str) -> None:
        super().__init__(error)
        self.layer = layer
        self.error = error


# ----------------------------------------------------------------------------- the host sentinel
@dataclass
class HostSentinel:
    """Listeners in a forked process that stays in the host's namespaces. Start it before `isolate()`."""

    tcp: tuple[str, int]
    unix_path: str
    pid: int
    _control: int
    _results: int
    _directory: str
    _stopped: dict[str, Any] | None = None

    @classmethod
    def start(cls) -> HostSentinel:
        if current_report() is not None:
            raise UsageError(
                "the host sentinel must start before isolate()",
                "start it first; inside the isolation it could not listen on the host",
            )
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.bind(("127.0.0.1", 0))
        tcp.listen(64)
        port = tcp.getsockname()[1]
        udp: socket.socket | None = _bound_udp(port)
        directory = tempfile.mkdtemp(
            prefix="strongroom-sentinel-", dir="/tmp" if os.path.isdir("/tmp") else None
        )
        os.chmod(directory, 0o755)
        unix_path = os.path.join(directory, "host.sock")
        unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        unix.bind(unix_path)
        os.chmod(unix_path, 0o777)
        unix.listen(64)
        control_r, control_w = os.pipe()
        results_r, results_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the sentinel: never returns
            os.close(control_w)
            os.close(results_r)
            code = 0
            try:
                _serve(tcp, udp, unix, control_r, results_w)
            except BaseException:
                code = 1
            finally:  # the sentinel stays on the host: it, not the isolated drill, can remove this
                shutil.rmtree(directory, ignore_errors=True)
            os._exit(code)
        for sock in (tcp, udp, unix):
            if sock is not None:
                sock.close()
        os.close(control_r)
        os.close(results_w)
        return cls(("127.0.0.1", port), unix_path, pid, control_w, results_r, directory)

    def stop(self) -> dict[str, Any]:
        """Stop listening; returns what arrived: {'tcp', 'unix', 'connections', 'datagrams', 'peers'}."""
        if self._stopped is not None:
            return self._stopped
        os.write(self._control, b"q")
        os.close(self._control)
        data = b""
        while chunk := os.read(self._results, 65536):
            data += chunk
        os.close(self._results)
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:  # inside a PID namespace the sentinel is the supervisor's child
            pass
        shutil.rmtree(self._directory, ignore_errors=True)  # when the drill ran without isolation
        counts = json.loads(data or b"{}")
        self._stopped = {
            "tcp": f"{self.tcp[0]}:{self.tcp[1]}",
            "unix": self.unix_path,
            "pid": self.pid,
            **counts,
        }
        return self._stopped


def _bound_udp(port: int) -> socket.socket | None:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        udp.bind(("127.0.0.1", port))
    except OSError:
        udp.close()
        return None
    return udp


def _serve(
    tcp: socket.socket, udp: socket.socket | None, unix: socket.socket, control: int, results: int
) -> None:
    counts: dict[str, Any] = {"connections": 0, "datagrams": 0, "unix_connections": 0, "peers": []}
    watched: list[Any] = [tcp, unix, control] + ([udp] if udp is not None else [])
    while True:
        ready, _, _ = select.select(watched, [], [])
        if control in ready:
            break
        for sock in ready:
            if sock is udp:
                _, peer = udp.recvfrom(65536)
                counts["datagrams"] += 1
                counts["peers"].append(f"udp {peer}")
                continue
            conn, peer = sock.accept()
            conn.close()
            key = "unix_connections" if sock is unix else "connections"
            counts[key] += 1
            counts["peers"].append(f"{'unix' if sock is unix else 'tcp'} {peer!r}")
    os.write(results, json.dumps(counts).encode())
    os.close(results)


# ----------------------------------------------------------------------------- the drill
def parse_probe(probe: str) -> tuple[str, int]:
    host, sep, port = probe.rpartition(":")
    if not sep or not port.isdigit() or not host or not 0 < int(port) < 65536:
        raise UsageError(
            f"--probe must be HOST:PORT, got {probe!r}", "e.g. --probe 127.0.0.1:8080 or [::1]:8080"
        )
    return host.strip("[]"), int(port)


def netcheck(
    probe: str | None = None,
    *,
    unix_socket: str | None = None,
    sentinel: HostSentinel | None = None,
    timeout: float = 2.0,
) -> dict[str, Any]:
    """Run the drill in this process (isolated or not) and return the JSON-ready result.

    Targets: `probe` (HOST:PORT) or the sentinel's TCP listener; `unix_socket` or the sentinel's.
    The sentinel, when given, is stopped here and its counts are part of the verdict.
    """
    if probe is None and sentinel is not None:
        probe = f"{sentinel.tcp[0]}:{sentinel.tcp[1]}"
    host, port = parse_probe(probe or DEFAULT_PROBE)
    if unix_socket is None and sentinel is not None:
        unix_socket = sentinel.unix_path
    report = current_report()
    in_netns = report is not None and "netns" in report.layers
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    plan: list[tuple[str, str, Callable[[], Any]]] = [
        ("tcp_connect", target, lambda: _tcp(host, port, timeout)),
        ("dns_lookup", DNS_NAME, lambda: socket.getaddrinfo(DNS_NAME, 443)),
        ("udp_send", target, lambda: _udp(host, port)),
        ("urllib", f"http://{target}/", lambda: _urllib(target, timeout)),
        ("ctypes_socket", target, lambda: _ctypes_tcp(host, port, timeout, in_netns)),
        ("ctypes_dns", DNS_NAME, lambda: _ctypes_dns(DNS_NAME)),
        (
            "packet_socket",
            "AF_PACKET raw",
            lambda: _ctypes_socket_only(_linux.AF_PACKET, socket.SOCK_RAW, 0x0300),
        ),
        (
            "vsock_socket",
            "AF_VSOCK (hypervisor)",
            lambda: _ctypes_socket_only(_linux.AF_VSOCK, socket.SOCK_STREAM, 0),
        ),
        ("child_process", target, lambda: _child(_CHILD_CONNECT, host, port, timeout, in_netns)),
        (
            "escape_setns",
            f"/proc/1/ns/net then {target}",
            lambda: _child(_CHILD_SETNS, host, port, timeout, in_netns),
        ),
    ]
    if unix_socket:
        plan.append(("unix_socket", unix_socket, lambda: _unix(unix_socket, timeout)))
        via_proc = f"/proc/1/root{unix_socket}"
        plan.append(("unix_socket_via_proc", via_proc, lambda: _unix(via_proc, timeout)))
    attempts = []
    with guard.drill("netcheck"):
        for name, where, action in plan:
            attempts.append(_attempt(name, where, action, isolated=report is not None))
    seen = sentinel.stop() if sentinel is not None else None
    arrived = bool(
        seen and (seen.get("connections") or seen.get("datagrams") or seen.get("unix_connections"))
    )
    return {
        "isolated": bool(report and report.isolated),
        "mode": report.mode if report else "none",
        "layers": list(report.layers) if report else [],
        "probe": {
            "target": target,
            "unix_socket": unix_socket,
            "attempts": attempts,
            "all_blocked": all(a["blocked"] for a in attempts) and not arrived,
            "sentinel": seen,
        },
        "blocked_count": guard.blocked_count(),
        "evidence": report.to_json() if report else None,
    }


def _attempt(name: str, target: str, action: Callable[[], Any], *, isolated: bool) -> dict[str, Any]:
    result: dict[str, Any] = {"name": name, "target": target}
    try:
        detail = action()
    except NetworkBlocked as exc:
        return {**result, "blocked": True, "layer": "guard", "error": str(exc)}
    except Blocked as exc:
        return {**result, "blocked": True, "layer": exc.layer, "error": exc.error}
    except OSError as exc:
        reason = getattr(exc, "reason", None)  # urllib's URLError wraps the socket error
        if isinstance(reason, NetworkBlocked):
            return {**result, "blocked": True, "layer": "guard", "error": str(reason)}
        if isinstance(reason, OSError):
            return {
                **result,
                "blocked": True,
                "layer": _layer(reason.errno, isolated),
                "error": _describe(reason),
            }
        return {**result, "blocked": True, "layer": _layer(exc.errno, isolated), "error": _describe(exc)}
    return {
        **result,
        "blocked": False,
        "layer": None,
        "error": None,
        "got_through": detail if isinstance(detail, str) else "completed",
    }


def _layer(code: int | None, isolated: bool) -> str:
    if code in (errno.EACCES, errno.EPERM):
        return "seccomp" if isolated else "permission"
    if code in (errno.ECONNREFUSED, errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL):
        return "netns" if isolated else "nothing listening (not isolated)"
    if code == errno.ENOENT:
        return "mountns" if isolated else "absent"
    return "other"


def _describe(exc: OSError) -> str:
    name = _linux.errno_name(exc.errno) if exc.errno else type(exc).__name__
    return f"{name}: {exc.strerror or exc}"


def _tcp(host: str, port: int, timeout: float) -> str:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect((host, port))
        return f"connected to {host}:{port}"


def _udp(host: str, port: int) -> str:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"strongroom netcheck", (host, port))
        return f"datagram sent to {host}:{port}"


def _urllib(target: str, timeout: float) -> str:
    import urllib.request  # here, not at the top: the Vault imports this module on every command

    with urllib.request.urlopen(f"http://{target}/", timeout=timeout) as response:  # noqa: S310 (the drill)
        return f"HTTP {response.status}"


def _unix(path: str, timeout: float) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                raise Blocked("mountns", _describe(exc)) from None
            if exc.errno in (errno.EACCES, errno.EPERM):
                raise Blocked("landlock+capabilities", _describe(exc)) from None
            raise
        return f"connected to {path}"


class _SockaddrIn(ctypes.Structure):
    _fields_ = [
        ("family", ctypes.c_ushort),
        ("port", ctypes.c_uint16),
        ("addr", ctypes.c_uint32),
        ("zero", ctypes.c_char * 8),
    ]


class _Timeval(ctypes.Structure):
    _fields_ = [("sec", ctypes.c_long), ("usec", ctypes.c_long)]


def _ctypes_tcp(host: str, port: int, timeout: float, in_netns: bool) -> str:
    """socket() and connect() through libc, as C code (torch's TCPStore, a native library) would."""
    fd, err = _linux.raw_socket(socket.AF_INET, socket.SOCK_STREAM)
    if fd < 0:
        raise Blocked(
            "seccomp" if err in (errno.EACCES, errno.EPERM) else "other",
            f"socket(AF_INET): {_linux.errno_name(err)}",
        )
    try:
        try:
            packed = socket.inet_aton(host)
        except OSError:
            return "created an AF_INET socket (probe host is not IPv4; connect not tried)"
        limit = _Timeval(int(timeout), int((timeout % 1) * 1e6))
        _linux.libc.setsockopt(
            fd, socket.SOL_SOCKET, socket.SO_SNDTIMEO, ctypes.byref(limit), ctypes.sizeof(limit)
        )
        address = _SockaddrIn(socket.AF_INET, socket.htons(port), int.from_bytes(packed, "little"), b"")
        if _linux.libc.connect(fd, ctypes.byref(address), ctypes.sizeof(address)) != 0:
            code = ctypes.get_errno()
            layer = "landlock" if code == errno.EACCES else ("netns" if in_netns else "refused")
            raise Blocked(layer, f"socket created, connect: {_linux.errno_name(code)}")
        return f"connected to {host}:{port} from C"
    finally:
        os.close(fd)


def _ctypes_socket_only(family: int, kind: int, proto: int) -> str:
    fd, err = _linux.raw_socket(family, kind, proto)
    if fd < 0:
        layer = "seccomp" if err in (errno.EACCES, errno.EPERM) else "kernel"
        raise Blocked(layer, f"socket(): {_linux.errno_name(err)}")
    os.close(fd)
    return "socket created"


def _ctypes_dns(name: str) -> str:
    """getaddrinfo() in libc: the resolver opens its own sockets, below the audit hook."""
    result = ctypes.c_void_p()
    _linux.libc.getaddrinfo.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p]
    _linux.libc.gai_strerror.restype = ctypes.c_char_p
    code = _linux.libc.getaddrinfo(name.encode(), b"443", None, ctypes.byref(result))
    if code == 0:
        _linux.libc.freeaddrinfo(result)
        return f"{name} resolved"
    err = ctypes.get_errno()
    text = _linux.libc.gai_strerror(code).decode()
    layer = "seccomp" if err in (errno.EACCES, errno.EPERM) else "kernel"
    raise Blocked(layer, f"getaddrinfo: {text} (errno {_linux.errno_name(err)})")


# Child processes are fresh interpreters without the audit hook: only the kernel layers apply.
_CHILD_CONNECT = """
import json, socket, sys
host, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
try:
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
except OSError as e:
    print(json.dumps({"reached": False, "stage": "socket", "errno": e.errno, "error": str(e)})); sys.exit()
s.settimeout(timeout)
try:
    s.connect((host, port)); print(json.dumps({"reached": True, "stage": "connect"}))
except OSError as e:
    print(json.dumps({"reached": False, "stage": "connect", "errno": e.errno, "error": str(e)}))
"""

_CHILD_SETNS = """
import ctypes, json, os, socket, sys
host, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
libc = ctypes.CDLL(None, use_errno=True)
try:
    fd = os.open("/proc/1/ns/net", os.O_RDONLY)
except OSError as e:
    print(json.dumps({"reached": False, "stage": "open", "errno": e.errno, "error": str(e)})); sys.exit()
if libc.setns(fd, 0x40000000) != 0:
    code = ctypes.get_errno()
    print(json.dumps({"reached": False, "stage": "setns", "errno": code, "error": os.strerror(code)})); sys.exit()
try:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout); s.connect((host, port))
    print(json.dumps({"reached": True, "stage": "connect"}))
except OSError as e:
    print(json.dumps({"reached": True, "stage": "escaped", "errno": e.errno, "error": str(e)}))
"""

_STAGE_LAYER = {"socket": "seccomp", "open": "landlock+capabilities", "setns": "seccomp"}


def _child(code: str, host: str, port: int, timeout: float, in_netns: bool) -> str:
    try:
        proc = subprocess.run(
            [sys.executable, "-I", "-c", code, host, str(port), str(timeout)],
            capture_output=True,
            text=True,
            timeout=timeout + 30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise Blocked("inconclusive", f"the child process did not start: {exc}") from None
    try:
        outcome = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise Blocked("other", f"child exited {proc.returncode}: {proc.stderr.strip()[-300:]}") from None
    if outcome["reached"]:
        return f"child process got through ({outcome['stage']}: {outcome.get('error') or 'connected'})"
    stage, code_ = outcome["stage"], outcome.get("errno")
    layer = _STAGE_LAYER.get(stage) or _layer(code_, in_netns)
    if stage == "socket" and code_ not in (errno.EACCES, errno.EPERM):
        layer = "other"
    raise Blocked(layer, f"child process, {stage}: {outcome.get('error')}")


def isolated_drill(
    probe: str | None = None,
    *,
    unix_socket: str | None = None,
    keep: Iterable[str | os.PathLike[str]] = (),
    required: str = "guard",
    timeout: float = 2.0,
    inside: Callable[[], Callable[..., dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """Start a sentinel for whatever target is missing, isolate, then run the drill.

    `inside`, when given, runs after isolation and returns the function that runs the drill
    (the CLI opens the vault there and returns the Vault's recording `netcheck`).
    """
    needs_sentinel = (probe is None or unix_socket is None) and current_report() is None
    sentinel = HostSentinel.start() if needs_sentinel else None
    try:
        isolate(required, keep=keep)
        run = inside() if inside is not None else netcheck
    except BaseException:
        if sentinel is not None:
            sentinel.stop()
        raise
    return run(probe, unix_socket=unix_socket, sentinel=sentinel, timeout=timeout)


def exit_code(result: dict[str, Any]) -> int:
    """0 when isolated and every attempt was blocked; 6 (isolation missing or breached) otherwise."""
    return 0 if result["isolated"] and result["probe"]["all_blocked"] else IsolationError.exit_code


def format_text(result: dict[str, Any]) -> str:
    """The drill as a few lines for a terminal; glyph and word together, never colour alone."""
    evidence = result.get("evidence") or {}
    lines = [f"isolation: {result['mode']} (layers: {' '.join(result['layers']) or 'none'})"]
    if evidence:
        inside = (
            ", ".join(f"{i['name']} ({'up' if i['up'] else 'down'})" for i in evidence["interfaces"])
            or "none"
        )
        host_up = ", ".join(evidence["host_interfaces_up"]) or "none"
        lines.append(
            f"namespace {evidence['netns']} (host {evidence['host_netns']}); inside: {inside}; "
            f"host interfaces up outside: {host_up}"
        )
    probe = result["probe"]
    width = max(len(a["name"]) for a in probe["attempts"])
    for a in probe["attempts"]:
        mark = "✓ blocked" if a["blocked"] else "✗ THROUGH"
        how = f"by {a['layer']}: {a['error']}" if a["blocked"] else a.get("got_through", "")
        lines.append(f"  {mark}  {a['name']:<{width}}  {a['target']}")
        lines.append(f"  {'':9}  {'':<{width}}  {how}")
    seen = probe.get("sentinel")
    if seen:
        lines.append(
            f"host sentinel ({seen['tcp']}, {seen['unix']}): {seen.get('connections', 0)} TCP "
            f"connection(s), {seen.get('datagrams', 0)} datagram(s), "
            f"{seen.get('unix_connections', 0)} Unix connection(s) arrived"
        )
    total = len(probe["attempts"])
    through = sum(not a["blocked"] for a in probe["attempts"])
    if exit_code(result) == 0:
        lines.append(f"✓ all {total} attempts blocked; nothing reached the host")
    elif not result["isolated"]:
        lines.append(f"✗ NOT ISOLATED: {through} of {total} attempts got through")
    else:
        lines.append(f"✗ BREACH: {through} of {total} attempts got through")
    return "\n".join(lines)
