"""The in-process guard: an audit hook that refuses internet sockets and name lookups with a clear error.

It is not a barrier by itself (ctypes, C extensions and child processes never pass through it);
the kernel layers are. It exists so Python code fails with a message that names strongroom, and
so every attempt is counted and handed to a recorder (the Vault writes `network.blocked` entries).
"""

from __future__ import annotations

import datetime as dt
import errno
import socket
import sys
import sysconfig
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

Recorder = Callable[[dict[str, Any]], None]

# Audit events (CPython's socket module) that reach for the network, and what their arguments are.
_ADDRESS_EVENTS = {"socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg"}
_LOOKUP_EVENTS = {"socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr", "socket.getnameinfo"}
_ALLOWED_FAMILIES = {int(socket.AF_UNIX), -1}  # -1: socket(fileno=...) learns its family from the fd
_SKIP_MODULES = {"socket", __name__, "ssl", "selectors"}
_MAX_KEPT = 1000
_STDLIB = sysconfig.get_paths()["stdlib"]


class NetworkBlocked(PermissionError):
    """Raised in place of a network operation. A PermissionError (EACCES), so library code fails cleanly."""

    def __init__(self, destination: str, module: str = "?", event: str = "") -> None:
        super().__init__(errno.EACCES, f"network access blocked by strongroom: {destination} from {module}")
        self.destination = destination
        self.module = module
        self.event = event

    def __reduce__(self) -> tuple[Any, ...]:  # survives pickling into DataLoader workers and back
        return (type(self), (self.destination, self.module, self.event))


class _Guard:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.installed = False
        self.count = 0
        self.kept: list[dict[str, Any]] = []
        self.recorder: Recorder | None = None
        self.recorder_errors = 0
        self.local = threading.local()


_guard = _Guard()


def install() -> None:
    """Add the audit hook (once; audit hooks cannot be removed)."""
    with _guard.lock:
        if _guard.installed:
            return
        sys.addaudithook(_hook)
        _guard.installed = True


def installed() -> bool:
    return _guard.installed


def set_recorder(recorder: Recorder | None) -> None:
    """Call `recorder(attempt)` for every blocked attempt from now on (None stops it)."""
    _guard.recorder = recorder


def get_recorder() -> Recorder | None:
    return _guard.recorder


def blocked_count() -> int:
    return _guard.count


def blocked_attempts() -> list[dict[str, Any]]:
    """The blocked attempts of this process (the first 1000), oldest first."""
    with _guard.lock:
        return [dict(a) for a in _guard.kept]


@contextmanager
def drill(name: str) -> Iterator[None]:
    """Mark attempts made in this thread as part of the named fire drill (they are blocked all the same)."""
    previous = getattr(_guard.local, "drill", None)
    _guard.local.drill = name
    try:
        yield
    finally:
        _guard.local.drill = previous


def _family_name(family: Any) -> str:
    try:
        return socket.AddressFamily(family).name
    except (ValueError, TypeError):
        return f"family {family}"


def _type_name(kind: Any) -> str:
    try:
        return socket.SocketKind(int(kind) & 0xF).name
    except (ValueError, TypeError):
        return ""


def _is_ip_literal(host: str | bytes) -> bool:
    text = host.decode(errors="replace") if isinstance(host, bytes) else host
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, text)
            return True
        except OSError:
            continue
    return False


def _format_address(address: Any) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host = address[0]
        return f"[{host}]:{address[1]}" if isinstance(host, str) and ":" in host else f"{host}:{address[1]}"
    return repr(address)


def classify(event: str, args: tuple[Any, ...]) -> tuple[str, str] | None:
    """(destination, family name) when the event reaches for the network; None when it is allowed."""
    if event == "socket.__new__":
        family = args[1]
        if family in _ALLOWED_FAMILIES:
            return None
        kind = _type_name(args[2])
        return f"a new {_family_name(family)} {kind} socket".replace("  ", " "), _family_name(family)
    if event in _ADDRESS_EVENTS:
        sock, address = args[0], args[1]
        family = getattr(sock, "family", None)
        if family is not None and int(family) == socket.AF_UNIX:
            return None
        verb = event.split(".", 1)[1]
        return f"{verb} {_format_address(address)}", _family_name(family)
    if event in _LOOKUP_EVENTS:
        host = args[0]
        if event == "socket.getnameinfo":
            return f"reverse lookup {_format_address(host)}", "DNS"
        target = _format_address((host, args[1])) if event == "socket.getaddrinfo" else str(host)
        if isinstance(host, (str, bytes)) and _is_ip_literal(host):
            return target, "address"
        return f"name lookup {target}", "DNS"
    return None


def _caller() -> tuple[str, str, list[str]]:
    """(calling module, origin, stack): the first module outside socket and the guard, the first
    outside the standard library (the library that asked, e.g. torchvision), and the frames in between."""
    frame: FrameType | None = sys._getframe(2)
    module, origin, stack = "?", "", list[str]()
    depth = 0
    while frame is not None and depth < 64:
        depth += 1
        name = str(frame.f_globals.get("__name__", "?"))
        if module == "?" and name not in _SKIP_MODULES and not name.startswith("vault.netguard.guard"):
            module = name
        if module != "?":
            if len(stack) < 12:
                stack.append(f"{name}:{frame.f_code.co_name}:{frame.f_lineno}")
            filename = frame.f_code.co_filename
            if not origin and (not filename.startswith(_STDLIB) or "-packages" in filename):
                origin = name
        frame = frame.f_back
    return module, origin or module, stack


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if not event.startswith("socket.") or getattr(_guard.local, "busy", False):
        return
    found = classify(event, args)
    if found is None:
        return
    destination, family = found
    _guard.local.busy = True
    try:
        module, origin, stack = _caller()
        attempt: dict[str, Any] = {
            "event": event,
            "destination": destination,
            "family": family,
            "module": module,
            "origin": origin,
            "stack": stack,
            "at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
        drill_name = getattr(_guard.local, "drill", None)
        if drill_name:
            attempt["drill"] = drill_name
        with _guard.lock:
            _guard.count += 1
            attempt["number"] = _guard.count
            if len(_guard.kept) < _MAX_KEPT:
                _guard.kept.append(attempt)
        recorder = _guard.recorder
        if recorder is not None:
            try:
                recorder(dict(attempt))
            except Exception:  # the attempt is still refused; the gap is counted and reported
                _guard.recorder_errors += 1
    finally:
        _guard.local.busy = False
    raise NetworkBlocked(destination, module, event)


def recorder_errors() -> int:
    return _guard.recorder_errors
