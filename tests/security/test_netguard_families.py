"""Every socket family but AF_UNIX refused to native code: socket(2) called through libc (ctypes, as
a C extension would) for AF_INET, AF_INET6, AF_PACKET and AF_NETLINK, in the isolated process and
in a child it starts, with listeners on the host's 127.0.0.1 and ::1 counting what arrives. Both in
full isolation and in the guard-only fallback of a host that forbids namespaces, where seccomp is
the only barrier below the Python guard."""

from __future__ import annotations

import errno
import socket
from typing import Any

import pytest

from tests.support import CountingServer, close_counting, last_json, run_python

# socket(2) and connect(2) through libc, no Python socket object (the in-process guard never sees it)
PROBE = r"""
import ctypes, errno, json, socket, struct, sys

def probe(port4, port6):
    libc = ctypes.CDLL(None, use_errno=True)

    def attempt(family, kind, proto=0, address=None):
        fd = libc.socket(family, kind, proto)
        if fd < 0:
            return errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
        try:
            if address is None:
                return "CREATED"
            if libc.connect(fd, address, len(address)) == 0:
                return "CONNECTED"
            return "CREATED, connect " + errno.errorcode.get(ctypes.get_errno(), "?")
        finally:
            libc.close(fd)

    sin = struct.pack("=H", socket.AF_INET) + struct.pack(">H", port4) + socket.inet_aton("127.0.0.1") + bytes(8)
    sin6 = (struct.pack("=H", socket.AF_INET6) + struct.pack(">H", port6) + bytes(4)
            + socket.inet_pton(socket.AF_INET6, "::1") + bytes(4))
    return {
        "AF_INET tcp": attempt(socket.AF_INET, socket.SOCK_STREAM, 0, sin),
        "AF_INET6 tcp": attempt(socket.AF_INET6, socket.SOCK_STREAM, 0, sin6),
        "AF_INET6 udp": attempt(socket.AF_INET6, socket.SOCK_DGRAM),
        "AF_PACKET raw": attempt(17, socket.SOCK_RAW, socket.htons(0x0003)),  # ETH_P_ALL
        "AF_NETLINK route": attempt(socket.AF_NETLINK, socket.SOCK_RAW, 0),  # NETLINK_ROUTE
    }

if __name__ == "__main__":
    print(json.dumps(probe(int(sys.argv[1]), int(sys.argv[2]))))
"""

# A host that forbids namespaces, as Docker's default seccomp profile does (unshare: EPERM).
FORBID_UNSHARE = r"""
import errno, pyseccomp as sc
flt = sc.SyscallFilter(sc.ALLOW)
flt.add_rule(sc.ERRNO(errno.EPERM), "unshare")
flt.load()
"""

SCRIPT = r"""
import json, subprocess, sys
mode, port4, port6 = sys.argv[1], sys.argv[2], sys.argv[3]
PROBE = sys.argv[4]
if mode == "guard-only":
    exec(sys.argv[5])
report = None
if mode != "control":
    from vault import netguard
    required = "namespace+seccomp" if mode == "isolated" else "guard"
    report = netguard.isolate(required, on_warning=lambda message: None).to_json()
space = {"__name__": "probe"}
exec(PROBE, space)
here = space["probe"](int(port4), int(port6))
child = subprocess.run([sys.executable, "-c", PROBE, port4, port6], capture_output=True, text=True)
print(json.dumps({"report": report, "ctypes": here,
                  "child": json.loads(child.stdout) if child.returncode == 0 else child.stderr[-500:]}))
"""


class Listener6:
    """TCP on the host's ::1; connections wait in the backlog and are counted at the end."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        self.sock.bind(("::1", 0))
        self.sock.listen(16)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.count = 0

    def close(self) -> int:
        if self.sock.fileno() < 0:
            return self.count
        self.count = close_counting(self.sock)
        return self.count


@pytest.fixture
def listener6() -> Any:
    try:
        listener = Listener6()
    except OSError as exc:  # no IPv6 loopback on this host: nothing to reach either
        pytest.skip(f"the host has no IPv6 loopback: {exc}")
    yield listener
    listener.close()


def attempts(mode: str, server: CountingServer, listener6: Listener6) -> dict[str, Any]:
    extra = [FORBID_UNSHARE] if mode == "guard-only" else []
    return last_json(run_python(SCRIPT, mode, str(server.port), str(listener6.port), PROBE, *extra))


def test_without_isolation_native_code_reaches_both_loopbacks(
    server: CountingServer, listener6: Listener6
) -> None:
    """The harness sees a breach: the same calls unisolated connect over IPv4 and IPv6."""
    out = attempts("control", server, listener6)
    for where in ("ctypes", "child"):
        assert out[where]["AF_INET tcp"] == "CONNECTED", out
        assert out[where]["AF_INET6 tcp"] == "CONNECTED", out
        assert out[where]["AF_INET6 udp"] == "CREATED" and out[where]["AF_NETLINK route"] == "CREATED"
    assert server.close()[0] == 2 and listener6.close() == 2


@pytest.mark.parametrize("mode", ["isolated", "guard-only"])
def test_native_code_gets_no_socket_but_af_unix(
    mode: str, server: CountingServer, listener6: Listener6, request: pytest.FixtureRequest
) -> None:
    if mode == "isolated":
        request.getfixturevalue("namespaces")  # skips only where the host refuses unshare itself
    out = attempts(mode, server, listener6)
    report = out["report"]
    if mode == "isolated":
        assert report["mode"] == "namespace+seccomp"
    else:  # seccomp is the barrier here: no namespace, the host's own loopbacks one connect away
        assert report["mode"] == "guard" and "netns" not in report["layers"] and "seccomp" in report["layers"]
        assert report["netns"] == report["host_netns"]
    refused = errno.errorcode[errno.EACCES]
    for where in ("ctypes", "child"):
        assert isinstance(out[where], dict), out[where]
        assert out[where] == dict.fromkeys(out[where], refused), (where, out[where])
    assert set(out["ctypes"]) == {
        "AF_INET tcp",
        "AF_INET6 tcp",
        "AF_INET6 udp",
        "AF_PACKET raw",
        "AF_NETLINK route",
    }
    assert server.close() == (0, 0) and listener6.close() == 0
