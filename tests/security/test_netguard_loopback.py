"""The loopback level (`namespace+seccomp-loopback`), for runs across several processes: internet
sockets exist only in a namespace checked to hold nothing but `lo`. From inside a training process
the drill reaches nothing on the host (a counting listener on its loopback and on its own address);
an interface moved into the namespace from outside stops the next process before its first socket;
a policy that requires the plain level refuses the loopback level."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import REPO, CountingServer, close_counting, last_json, run_python
from vault.vocabulary import LOOPBACK_ISOLATION

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _needs_namespaces(namespaces: dict[str, Any]) -> None:  # skips where the host forbids unshare
    return None


SEVERAL = r"""
import json, os, sys, tempfile
from vault import netguard
if __name__ == "__main__":
    report = netguard.isolate("namespace+seccomp-loopback", loopback=True)
    import torch.multiprocessing as mp
    from tests.security import dist_probe
    context = mp.get_context("spawn")
    out = context.Queue()
    store = os.path.join(tempfile.mkdtemp(), "store")
    targets = sys.argv[1:]
    mp.start_processes(dist_probe.rank, args=(2, store, report.to_json(), targets, out), nprocs=2,
                       start_method="spawn")
    ranks = sorted((out.get(timeout=60) for _ in range(2)), key=lambda r: r["rank"])
    from vault.netguard import _seccomp
    print(json.dumps({"mode": report.mode, "check": report.loopback_check, "ranks": ranks,
                      "selftest": report.seccomp.get("selftest"), "families": report.seccomp.get("socket_families_allowed"),
                      "landlock_net": report.landlock.get("handled_net")}))
"""


def host_address() -> str | None:
    """An address of this host outside loopback (eth0's), when it has one."""
    proc = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True)
    for name, address in re.findall(r"^\d+:\s+(\S+)\s+inet\s+([0-9.]+)/", proc.stdout, re.M):
        if name != "lo":
            return address
    return None


def test_from_inside_a_training_process_the_drill_reaches_nothing(server: CountingServer) -> None:
    if not shutil.which("ip"):
        pytest.skip("iproute2 (`ip`) is needed to find the host's own address")
    targets = [f"127.0.0.1:{server.port}"]
    outside = host_address()
    listener = None
    if outside:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind((outside, 0))
        listener.listen(16)
        listener.setblocking(False)
        targets.append(f"{outside}:{listener.getsockname()[1]}")
    proc = subprocess.run(
        [sys.executable, "-c", SEVERAL, *targets],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={k: v for k, v in os.environ.items() if not k.startswith("STRONGROOM_")},
    )
    arrived = close_counting(listener) if listener is not None else 0
    out = last_json(proc)
    assert server.close() == (0, 0), "a training process reached the host's loopback"
    assert arrived == 0, "a training process reached the host's own address"
    assert out["mode"] == LOOPBACK_ISOLATION
    assert out["check"]["interfaces_seen"] == ["lo"] and out["check"]["allowed"]
    assert set(out["families"]) == {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"}
    assert out["landlock_net"] in (None, "0x0")
    # every family the level does not need, and every netlink protocol but routing, stay refused
    assert out["selftest"] and all(v in ("EACCES", "EPERM") for v in out["selftest"].values()), out[
        "selftest"
    ]
    assert "AF_PACKET" in out["selftest"] and "AF_NETLINK/sock_diag" in out["selftest"]
    assert [r["all_reduce"] for r in out["ranks"]] == [3.0, 3.0], "the process group did not work"
    for r in out["ranks"]:
        assert r["check"]["interfaces_seen"] == ["lo"]
        for target, drill in r["drills"].items():
            got_through = [a for a in drill["attempts"] if not a["blocked"]]
            assert drill["all_blocked"] and not got_through, (target, got_through)


WAITS = r"""
import json, sys
from vault import netguard
from vault.netguard import loopback
report = netguard.isolate("namespace+seccomp-loopback", loopback=True)
print(json.dumps({"ready": report.loopback_check}), flush=True)
sys.stdin.readline()
out = {}
try:
    loopback.confirm(where="before the process group")
    out["confirm"] = "passed"
except Exception as exc:
    out["confirm"] = f"{type(exc).__name__}: {exc}"
from vault.train.distributed import join_group
try:
    join_group(0, 1, "gloo", "/tmp/store", report.to_json())
    out["join"] = "joined"
except Exception as exc:
    out["join"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(out), flush=True)
"""


def test_an_interface_moved_into_the_namespace_stops_the_next_process(tmp_path: Path) -> None:
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("needs root and iproute2 to move an interface into another namespace")
    proc = subprocess.Popen(
        [sys.executable, "-c", WAITS],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("STRONGROOM_")},
    )
    name = f"srt{os.getpid() % 10000}"
    try:
        ready = json.loads(proc.stdout.readline())["ready"]
        assert ready["interfaces_seen"] == ["lo"] and ready["allowed"]
        # unshare(CLONE_NEWNET) ran in this very process before it forked into its PID namespace
        made = subprocess.run(
            [
                "ip",
                "link",
                "add",
                f"{name}a",
                "type",
                "veth",
                "peer",
                "name",
                f"{name}b",
                "netns",
                str(proc.pid),
            ],
            capture_output=True,
            text=True,
        )
        if made.returncode != 0:
            pytest.skip(f"this host cannot make a veth pair: {made.stderr.strip()}")
        proc.stdin.write("go\n")
        proc.stdin.flush()
        out = json.loads(proc.stdout.readline())
    finally:
        subprocess.run(["ip", "link", "del", f"{name}a"], capture_output=True)
        proc.kill()
        proc.wait()
    assert out["confirm"].startswith("IsolationError") and f"{name}b" in out["confirm"], out
    assert out["join"].startswith("IsolationError") and f"{name}b" in out["join"], out


def test_a_plain_session_keeps_internet_sockets_refused() -> None:
    proc = run_python(
        """
        import json
        from vault import netguard
        report = netguard.isolate()
        print(json.dumps({"mode": report.mode, "check": report.loopback_check,
                          "families": report.seccomp.get("socket_families_allowed"),
                          "selftest": report.seccomp.get("selftest")}))
        """,
        cwd=Path("/"),
    )
    out = last_json(proc)
    assert out["mode"] == "namespace+seccomp" and out["check"] == {}
    assert out["families"] == ["AF_UNIX"]
    assert {k: v for k, v in out["selftest"].items() if k.startswith("AF_INET")} == {
        "AF_INET": "EACCES",
        "AF_INET6": "EACCES",
    }
