"""Network isolation with real sockets: isolated subprocesses try every way out while listeners on
the host's loopback and under the host's /tmp count what arrives."""

from __future__ import annotations

import errno
import json
import os
import pickle
import shutil
import socket
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support import CountingServer, UnixListener, last_json, run_python, unshare_refused
from vault.errors import UsageError
from vault.netguard import _seccomp, guard
from vault.netguard.guard import NetworkBlocked
from vault.netguard.isolation import IsolationReport
from vault.vocabulary import isolation_rank

# ----------------------------------------------------------------------------- the attempts
ATTEMPTS = r"""
import ctypes, errno, json, socket, subprocess, sys, urllib.request
port, isolated = int(sys.argv[1]), sys.argv[2] == "isolate"
report = None
if isolated:
    from vault import netguard
    report = netguard.isolate().to_json()
CHILD = '''
import socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2).close(); print("CONNECTED")
except OSError as e:
    print(f"{type(e).__name__} errno={e.errno}")
'''
results = {}
def attempt(name, action):
    try:
        action()
        results[name] = "CONNECTED"
    except Exception as exc:
        results[name] = f"{type(exc).__name__}: {exc}"
attempt("tcp", lambda: socket.create_connection(("127.0.0.1", port), timeout=2).close())
attempt("udp", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("127.0.0.1", port)))
attempt("urllib", lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2))
attempt("dns", lambda: socket.getaddrinfo("example.com", 443))
attempt("socketpair", lambda: socket.socketpair()[0].close())
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.socket(socket.AF_INET, socket.SOCK_STREAM, 0)
results["ctypes"] = "CREATED" if fd >= 0 else errno.errorcode[ctypes.get_errno()]
child = subprocess.run([sys.executable, "-c", CHILD, str(port)], capture_output=True, text=True)
results["child"] = (child.stdout or child.stderr).strip()[-300:]
blocked = netguard.blocked_attempts() if isolated else []
print(json.dumps({"results": results, "report": report, "blocked": blocked}))
"""


def test_unisolated_control_reaches_the_server(server: CountingServer) -> None:
    """The harness can see a breach: the same attempts without isolation do arrive."""
    out = last_json(run_python(ATTEMPTS, str(server.port), "control"))
    connections, datagrams = server.close()
    assert out["results"]["child"] == "CONNECTED"
    assert connections >= 3 and datagrams == 1  # tcp, urllib, child; one datagram


def test_isolated_process_reaches_nothing(server: CountingServer, namespaces: dict[str, Any]) -> None:
    out = last_json(run_python(ATTEMPTS, str(server.port), "isolate"))
    assert server.close() == (0, 0), "something inside the isolation reached the host's loopback"
    r = out["results"]
    prefix = "NetworkBlocked: [Errno 13] network access blocked by strongroom: "
    assert r["tcp"] == f"{prefix}127.0.0.1:{server.port} from __main__"
    assert r["udp"] == f"{prefix}a new AF_INET SOCK_DGRAM socket from __main__"
    assert r["dns"] == f"{prefix}name lookup example.com:443 from __main__"
    assert r["urllib"].startswith(
        "URLError: <urlopen error [Errno 13] network access blocked by strongroom: "
        f"127.0.0.1:{server.port} from http.client"
    )
    assert r["socketpair"] == "CONNECTED"  # AF_UNIX stays allowed
    assert r["ctypes"] == "EACCES"  # C code: refused by seccomp, below the guard
    assert r["child"] == f"PermissionError errno={errno.EACCES}"  # a fresh interpreter, no guard: seccomp
    blocked = out["blocked"]
    assert [b["module"] for b in blocked] == ["__main__", "__main__", "http.client", "__main__"]
    assert all(b["event"].startswith("socket.") and b["stack"] for b in blocked)
    assert [b["number"] for b in blocked] == [1, 2, 3, 4]


def test_report_is_evidence(namespaces: dict[str, Any]) -> None:
    report = namespaces
    assert report["isolated"] is True and report["mode"] == "namespace+seccomp"
    assert {"netns", "mountns", "seccomp", "guard"} <= set(report["layers"])
    assert report["netns"].startswith("net:[") and report["netns"] != report["host_netns"]
    assert report["host_netns"] == os.readlink("/proc/self/ns/net")
    assert report["interfaces"] == [{"name": "lo", "up": True}]
    host = {p.name for p in Path("/sys/class/net").iterdir() if p.name != "lo"}
    assert {i["name"] for i in report["host_interfaces"]} == host
    assert report["seccomp"]["status"] == "filter"
    assert set(report["seccomp"]["selftest"].values()) == {"EACCES"}
    assert report["seccomp"]["kernel"]["Seccomp"] == 2
    assert {"setns", "mount", "io_uring_setup", "ptrace"} <= set(report["seccomp"]["denied_syscalls"])
    seccomp = report["seccomp"]
    assert seccomp["socket_families_allowed"] == ["AF_UNIX"] and seccomp["bad_arch_action"] == "kill process"
    assert seccomp["clone3"] == "ENOSYS (the C library falls back to clone, whose flags are checked)"
    assert seccomp["clone_namespace_flags_refused"] == sorted(_seccomp.CLONE_NAMESPACE_FLAGS)
    denied, unknown = set(seccomp["denied_syscalls"]), set(seccomp["unknown_syscalls"])
    assert denied | unknown >= set(_seccomp.DENIED_SYSCALLS) and not denied & unknown
    assert set(seccomp["setid_mode_refused"]) | unknown >= set(_seccomp.SETID_MODE_ARGUMENT)
    assert {"chmod", "fchmodat"} <= set(seccomp["setid_mode_refused"])
    assert {m["target"] for m in report["private_mounts"] if m["kind"] == "tmpfs"} >= {"/tmp", "/run"}
    assert report["environment"]["HF_HUB_OFFLINE"] == "1"
    assert report["environment"]["TORCH_HOME"].startswith("/tmp/strongroom-cache")
    if os.geteuid() == 0:
        assert (
            "sys_admin" in report["capabilities"]["dropped"]
            and "net_raw" in report["capabilities"]["dropped"]
        )


def test_host_unix_sockets_unreachable_but_kept_paths_stay(
    tmp_path: Path, namespaces: dict[str, Any]
) -> None:
    assert str(tmp_path).startswith("/tmp/"), "this test needs pytest's tmp_path under /tmp"
    (tmp_path / "host").mkdir()
    listener = UnixListener(str(tmp_path / "host" / "service.sock"))
    abstract_name = f"strongroom-test-{uuid.uuid4().hex}"
    abstract = UnixListener("\0" + abstract_name)
    vault_dir = tmp_path / "vault"
    vault_dir.mkdir()
    (vault_dir / "already-there").write_text("host data")
    export_dir = tmp_path / "not-yet" / "export"
    code = r"""
    import json, os, socket, sys
    from vault import netguard
    listener, abstract, vault_dir, export_dir = sys.argv[1:5]
    report = netguard.isolate(keep=[vault_dir, export_dir])
    def connect(address):
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(address); return "CONNECTED"
        except OSError as e:
            return errno_name(e.errno)
        finally:
            s.close()
    def errno_name(code):
        import errno; return errno.errorcode[code]
    out = {
        "direct": connect(listener),
        "via_proc": connect(f"/proc/{os.getppid()}/root{listener}"),
        "abstract": connect("\0" + abstract),
        "host_dir_visible": os.path.exists(os.path.dirname(listener)),
        "vault_listing": sorted(os.listdir(vault_dir)),
        "tmp_listing": sorted(os.listdir("/tmp")),
        "mounts": report.to_json()["private_mounts"],
    }
    open(os.path.join(vault_dir, "written-inside"), "w").write("kept")
    open(os.path.join(export_dir, "model.bin"), "w").write("exported")
    print(json.dumps(out))
    """
    out = last_json(run_python(code, listener.address, abstract_name, str(vault_dir), str(export_dir)))
    assert listener.close() == 0 and abstract.close() == 0
    assert out["direct"] == "ENOENT"  # the host's /tmp is behind a private tmpfs
    # /proc/PID/root of a host process: not even listed in the PID namespace's own /proc (ENOENT), or
    # refused by Landlock and the dropped capabilities where no PID namespace could be made (EACCES)
    assert out["via_proc"] in ("ENOENT", "EACCES")
    assert out["abstract"] == "ECONNREFUSED"  # abstract names live in the host's network namespace
    assert out["host_dir_visible"] is False
    assert out["vault_listing"] == ["already-there"]
    # Only what was kept: the test's paths, the cache, and the working directory and interpreter when a
    # checkout itself lives under /tmp (the interpreter's paths and the working directory are kept too).
    kept = {tmp_path.parts[2], "strongroom-cache"}
    for path in (Path.cwd(), Path(sys.prefix), Path(sys.executable)):
        if path.parts[:2] == ("/", "tmp") and len(path.parts) > 2:
            kept.add(path.parts[2])
    assert out["tmp_listing"] == sorted(kept)
    assert (vault_dir / "written-inside").read_text() == "kept"
    assert (export_dir / "model.bin").read_text() == "exported"  # created on the host before masking
    binds = {m["target"] for m in out["mounts"] if m["kind"] == "bind"}
    assert {str(vault_dir), str(export_dir)} <= binds


def test_isolate_after_a_thread_started_refuses() -> None:
    code = r"""
    import json, threading
    from vault import netguard
    from vault.errors import IsolationError
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait, name="early-worker")
    worker.start()
    try:
        netguard.isolate()
        print(json.dumps({"isolated": True}))
    except IsolationError as e:
        print(json.dumps({"title": e.title, "hint": e.hint, "code": e.exit_code,
                          "netns": open("/proc/self/ns/net") and __import__("os").readlink("/proc/self/ns/net")}))
    finally:
        stop.set()
    """
    out = last_json(run_python(code))
    assert out["code"] == 6
    assert out["title"].startswith("too late to isolate: this process already runs 2 threads (early-worker)")
    assert "before importing torch" in out["hint"]
    assert out["netns"] == os.readlink("/proc/self/ns/net")  # nothing was half-done


# A host that forbids namespaces, as Docker's default seccomp profile does: unshare fails with EPERM.
FORBID = r"""
import errno, sys, pyseccomp as sc
flt = sc.SyscallFilter(sc.ALLOW)
flt.add_rule(sc.ERRNO(errno.EPERM), "unshare")
if any(arg.endswith("no-seccomp") for arg in sys.argv):
    flt.add_rule(sc.ERRNO(errno.EINVAL), "seccomp")
    flt.add_rule(sc.ERRNO(errno.EINVAL), "prctl", sc.Arg(0, sc.EQ, 22))  # PR_SET_SECCOMP
flt.load()
"""


@pytest.mark.parametrize("host", ["no-namespaces", "no-namespaces-no-seccomp"])
def test_guard_fallback_where_the_host_forbids_namespaces(server: CountingServer, host: str) -> None:
    code = (
        FORBID
        + r"""
import json, socket, subprocess
from vault import netguard
warnings = []
report = netguard.isolate("guard", on_warning=warnings.append)
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
    tcp = "CONNECTED"
except OSError as e:
    tcp = str(e)
child = subprocess.run([sys.executable, "-c", "import socket,sys; socket.create_connection(('127.0.0.1', "
                        "int(sys.argv[1])), timeout=2); print('CONNECTED')", sys.argv[1]], capture_output=True,
                       text=True)
print(json.dumps({"report": report.to_json(), "warnings": warnings, "tcp": tcp,
                  "child": child.stdout.strip() or child.stderr.strip().splitlines()[-1]}))
"""
    )
    out = last_json(run_python(code, str(server.port), host))
    connections, _ = server.close()
    report = out["report"]
    assert report["mode"] == "guard" and report["isolated"] is True
    assert "netns" not in report["layers"] and "guard" in report["layers"]
    assert report["netns"] == report["host_netns"]
    assert any(
        w.startswith("LOUD WARNING: network namespaces are unavailable here (unshare(")
        for w in out["warnings"]
    )
    assert (
        out["tcp"]
        == f"[Errno 13] network access blocked by strongroom: 127.0.0.1:{server.port} from __main__"
    )
    if host == "no-namespaces":
        assert "seccomp" in report["layers"]
    else:
        assert report["seccomp"]["status"] == "unavailable" and "seccomp" not in report["layers"]
    if {"seccomp", "landlock"} & set(report["layers"]):  # a kernel layer still stops children
        assert "PermissionError" in out["child"] and connections == 0
    else:
        assert out["child"] == "CONNECTED" and connections == 1  # the guard alone cannot stop a child


def test_required_level_unreachable_exits_6_with_the_fix() -> None:
    code = (
        FORBID
        + r"""
from vault.netguard.__main__ import main
raise SystemExit(main(["report", "--require", "namespace+seccomp"]))
"""
    )
    proc = run_python(code)
    assert proc.returncode == 6
    assert (
        "network isolation 'namespace+seccomp' is required but only 'guard' could be reached" in proc.stderr
    )
    assert "unshare(CLONE_NEWUSER|CLONE_NEWNET|CLONE_NEWNS): EPERM" in proc.stderr
    assert "user namespaces" in proc.stderr and "'guard'" in proc.stderr


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv"),
    reason="needs root and setpriv to become an unprivileged user",
)
def test_unprivileged_user_isolates_through_a_user_namespace(namespaces: dict[str, Any]) -> None:
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    refused = unshare_refused(prefix=nobody)
    if refused:
        pytest.skip(f"unprivileged user namespaces are disabled here: {refused}")
    proc = run_python(
        "from vault.netguard.__main__ import main; raise SystemExit(main(['report']))",
        cwd=Path("/"),
        prefix=nobody,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["mode"] == "namespace+seccomp" and report["user_namespace"] is True
    assert report["layers"][0] == "userns" and report["interfaces"] == [{"name": "lo", "up": True}]
    assert report["capabilities"]["kept"] == []


def test_second_isolate_returns_the_same_report_and_refuses_a_stronger_one() -> None:
    code = (
        FORBID
        + r"""
import json
from vault import netguard
from vault.errors import IsolationError
first = netguard.isolate("guard", on_warning=lambda m: None)
again = netguard.isolate("guard")
try:
    netguard.isolate("namespace+seccomp")
    stronger = "accepted"
except IsolationError as e:
    stronger = e.title
print(json.dumps({"same": first is again, "stronger": stronger}))
"""
    )
    out = last_json(run_python(code))
    assert out == {
        "same": True,
        "stronger": "this process is already isolated at 'guard', below the required 'namespace+seccomp'",
    }


# ----------------------------------------------------------------------------- the fire drill
def test_netcheck_cli_contract_against_my_listeners(
    cli: Any, server: CountingServer, tmp_path: Path, namespaces: dict[str, Any]
) -> None:
    listener = UnixListener(str(tmp_path / "host.sock"))
    result = cli(
        "netcheck",
        "--json",
        "--no-record",
        "--probe",
        f"127.0.0.1:{server.port}",
        "--unix-socket",
        listener.address,
    )
    assert server.close() == (0, 0) and listener.close() == 0
    assert result.code == 0, result.err
    out = result.json()
    assert out["isolated"] is True and out["mode"] == "namespace+seccomp" and "seccomp" in out["layers"]
    probe = out["probe"]
    assert probe["all_blocked"] is True and probe["sentinel"] is None
    names = {a["name"]: a for a in probe["attempts"]}
    assert set(names) == {
        "tcp_connect",
        "dns_lookup",
        "udp_send",
        "urllib",
        "ctypes_socket",
        "ctypes_dns",
        "packet_socket",
        "vsock_socket",
        "child_process",
        "escape_setns",
        "unix_socket",
        "unix_socket_via_proc",
    }
    assert all(set(a) >= {"name", "target", "blocked", "error"} and a["blocked"] for a in probe["attempts"])
    assert names["tcp_connect"]["layer"] == "guard" and names["ctypes_socket"]["layer"] == "seccomp"
    assert names["child_process"]["layer"] == "seccomp" and names["unix_socket"]["layer"] == "mountns"
    assert names["unix_socket"]["target"] == listener.address


def test_netcheck_text_output_with_its_own_sentinel(cli: Any, namespaces: dict[str, Any]) -> None:
    result = cli("netcheck", "--no-record")
    assert result.code == 0, result.err
    assert "isolation: namespace+seccomp" in result.out
    assert "✓ all 12 attempts blocked; nothing reached the host" in result.out
    assert "0 TCP connection(s), 0 datagram(s), 0 Unix connection(s) arrived" in result.out


def test_netcheck_records_the_drill_in_the_audit_log(cli: Any, namespaces: dict[str, Any]) -> None:
    assert cli("init").code == 0
    result = cli("netcheck", "--json")
    assert result.code == 0, result.err
    entries = cli("audit", "show", "--json").json()
    actions = [e["action"] for e in entries]
    start = actions.index("network.isolation", actions.index("session.unlock"))
    evidence = entries[start]["detail"]
    assert evidence["mode"] == "namespace+seccomp" and evidence["interfaces"] == [{"name": "lo", "up": True}]
    assert "host_interfaces" in evidence and evidence["seccomp"]["status"] == "filter"
    blocked = [e for e in entries if e["action"] == "network.blocked"]
    assert len(blocked) == 4 and all(
        e["detail"]["drill"] == "netcheck" and e["outcome"] == "denied" for e in blocked
    )
    drill = next(e for e in entries if e["action"] == "network.netcheck")
    assert drill["outcome"] == "ok" and drill["detail"]["all_blocked"] is True
    assert drill["detail"]["sentinel"]["connections"] == 0
    end = [e for e in entries if e["action"] == "session.end"][-1]
    assert end["detail"]["network_blocked"] == 4


def test_drill_without_isolation_fails_and_says_so() -> None:
    code = r"""
    import json, sys
    from vault.netguard.probe import HostSentinel, exit_code, netcheck
    sentinel = HostSentinel.start()
    result = netcheck(sentinel=sentinel, timeout=2)
    print(json.dumps({"result": result, "code": exit_code(result)}))
    """
    out = last_json(run_python(code))
    result = out["result"]
    assert out["code"] == 6 and result["isolated"] is False and result["mode"] == "none"
    assert result["probe"]["all_blocked"] is False
    through = {a["name"] for a in result["probe"]["attempts"] if not a["blocked"]}
    assert {"tcp_connect", "ctypes_socket", "child_process", "unix_socket"} <= through
    assert result["probe"]["sentinel"]["connections"] >= 3


# ----------------------------------------------------------------------------- pure parts, in-process
def test_guard_classifies_without_being_installed() -> None:
    unix = socket.socket(socket.AF_UNIX)
    inet = socket.socket(socket.AF_INET)
    try:
        assert guard.classify("socket.__new__", (None, socket.AF_UNIX, socket.SOCK_STREAM, 0)) is None
        assert guard.classify("socket.__new__", (None, -1, -1, -1)) is None
        assert guard.classify("socket.__new__", (None, socket.AF_INET6, socket.SOCK_STREAM, 0)) == (
            "a new AF_INET6 SOCK_STREAM socket",
            "AF_INET6",
        )
        assert guard.classify("socket.connect", (unix, "/run/x.sock")) is None
        assert guard.classify("socket.connect", (inet, ("10.0.0.1", 443))) == (
            "connect 10.0.0.1:443",
            "AF_INET",
        )
        assert guard.classify("socket.sendto", (inet, ("::1", 53))) == ("sendto [::1]:53", "AF_INET")
        assert guard.classify("socket.getaddrinfo", ("example.com", 80, 0, 0, 0)) == (
            "name lookup example.com:80",
            "DNS",
        )
        assert guard.classify("socket.getaddrinfo", ("127.0.0.1", 80, 0, 0, 0)) == ("127.0.0.1:80", "address")
        assert guard.classify("socket.gethostbyname", ("example.org",)) == ("name lookup example.org", "DNS")
        assert guard.classify("socket.gethostname", ()) is None
        assert guard.classify("open", ("/etc/passwd", "r", 0)) is None
    finally:
        unix.close()
        inet.close()


def test_network_blocked_is_a_clean_permission_error() -> None:
    exc = NetworkBlocked("10.0.0.1:443", "requests.adapters", "socket.connect")
    assert isinstance(exc, PermissionError) and isinstance(exc, OSError) and exc.errno == errno.EACCES
    assert str(exc) == "[Errno 13] network access blocked by strongroom: 10.0.0.1:443 from requests.adapters"
    back = pickle.loads(pickle.dumps(exc))
    assert (back.destination, back.module, back.event, str(back)) == (
        exc.destination,
        exc.module,
        exc.event,
        str(exc),
    )


def report_at(mode: str) -> IsolationReport:
    return IsolationReport(
        mode=mode,
        layers=(),
        required="guard",
        netns="net:[1]",
        host_netns="net:[1]",
        user_namespace=False,
        interfaces=(),
        host_interfaces=(),
        seccomp={},
        landlock={},
        capabilities={},
        private_mounts=(),
        host_unix_sockets={},
        environment={},
        cache_dir="",
    )


def test_meets_orders_the_levels() -> None:
    strong, weak, none = report_at("namespace+seccomp"), report_at("guard"), report_at("none")
    assert strong.meets("namespace+seccomp") and strong.meets("guard") and strong.meets("none")
    assert weak.meets("guard") and not weak.meets("namespace+seccomp")
    assert not none.meets("guard") and none.isolated is False and weak.isolated is True
    assert strong.to_json()["mode"] == "namespace+seccomp" and "waived_by_test_switch" not in strong.to_json()
    with pytest.raises(UsageError, match="unknown isolation level 'namespace'"):
        isolation_rank("namespace")


INHERIT = r"""
import json, subprocess, sys
from vault import netguard
parent = netguard.isolate().to_json()
CHILD = '''
import json, sys
from vault import netguard
parent, how = json.loads(sys.argv[1]), sys.argv[2]
if how == "inherit":
    report = netguard.inherit(parent)
elif how == "forged":
    report = netguard.inherit({**parent, "netns": "net:[1]"})
else:
    report = netguard.isolate_session()
print(json.dumps(report.to_json()))
'''
out = {"parent": parent}
for how in ("fresh", "inherit", "forged"):
    child = subprocess.run([sys.executable, "-c", CHILD, json.dumps(parent), how], capture_output=True, text=True)
    out[how] = json.loads(child.stdout.strip().splitlines()[-1])
    out[how + "_stderr"] = child.stderr
print(json.dumps(out))
"""


def test_a_child_of_an_isolated_process_inherits_its_isolation(namespaces: dict[str, Any]) -> None:
    """The terminal UI starts its trainer from inside its own isolation. Seccomp there refuses a
    second unshare, so a plain isolate() in the child can reach only 'guard' (the policy then
    refused every training run from the UI). inherit() checks the child really is inside the
    parent's namespace under seccomp and reports the parent's level; a forged report is not taken."""
    out = last_json(run_python(INHERIT))
    parent = out["parent"]
    assert parent["mode"] == "namespace+seccomp"
    assert out["fresh"]["mode"] == "guard"
    inherited = out["inherit"]
    assert inherited["mode"] == "namespace+seccomp" and inherited["inherited_from"] == parent["pid"]
    assert inherited["netns"] == parent["netns"] != inherited["host_netns"]
    assert inherited["interfaces"] == [{"name": "lo"}]
    assert inherited["seccomp"]["kernel"]["Seccomp"] == "2"
    assert out["forged"]["mode"] == "guard" and "not inheriting" in out["forged_stderr"]


WORKERS = r"""
import json, os, subprocess, sys, threading
from vault import netguard
report = netguard.isolate().to_json()
out = {"mode": report["mode"]}
box = []
thread = threading.Thread(target=lambda: box.append("ran"))
thread.start(); thread.join()
out["thread"] = box == ["ran"]
pid = os.fork()
if pid == 0:
    os._exit(7)
out["fork"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 7
out["child"] = subprocess.run([sys.executable, "-c", "print('up')"], capture_output=True, text=True).stdout
print(json.dumps(out))
"""


def test_an_isolated_process_still_starts_threads_and_children(namespaces: dict[str, Any]) -> None:
    """The filter refuses clone() only with namespace flags: training needs threads (data loaders,
    intra-op pools) and forked workers inside the isolation."""
    out = last_json(run_python(WORKERS))
    assert out == {"mode": "namespace+seccomp", "thread": True, "fork": True, "child": "up\n"}


SYSCALLS = r"""
import ctypes, errno, json, os, sys, tempfile
from vault import netguard
report = netguard.isolate().to_json()
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def call(*args):
    ret = libc.syscall(*[ctypes.c_long(a) for a in args])
    if ret == 0 and args[0] == 56:  # a clone that went through: the child leaves at once
        os._exit(0)
    return "OK" if ret >= 0 else errno.errorcode[ctypes.get_errno()]
out = {"mode": report["mode"]}
out["clone3"] = call(435, 0, 0)
out["clone_newnet"] = call(56, 0x40000000 | 17, 0, 0, 0, 0)
out["clone_newuser"] = call(56, 0x10000000 | 17, 0, 0, 0, 0)
path = tempfile.mkdtemp() + "/f"
open(path, "w").close()
def chmod(mode):
    try:
        os.chmod(path, mode); return "OK"
    except OSError as exc:
        return errno.errorcode[exc.errno]
out["chmod"] = [chmod(0o755), chmod(0o4755), chmod(0o2755), chmod(0o644)]
print(json.dumps(out))
"""


def test_the_filter_refuses_namespace_clones_clone3_and_setid_modes_only(namespaces: dict[str, Any]) -> None:
    out = last_json(run_python(SYSCALLS))
    assert out == {
        "mode": "namespace+seccomp",
        "clone3": "ENOSYS",
        "clone_newnet": "EPERM",
        "clone_newuser": "EPERM",
        "chmod": ["OK", "EPERM", "EPERM", "OK"],
    }
