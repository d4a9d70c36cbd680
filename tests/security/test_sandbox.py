"""The whole-process sandbox, attacked as the issue's escapes did: from inside an isolated process,
against sentinels and files the test owns (never the host's real settings or processes)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support import REPO, last_json, run_python

SECRET = "hunter2-sandbox-" + uuid.uuid4().hex


def isolated(code: str, *args: str, env: dict[str, str] | None = None, cwd: Path = REPO) -> Any:
    """Run `code` after `isolate()` in a fresh interpreter; returns its last JSON line."""
    prelude = "from vault import netguard\nREPORT = netguard.isolate('guard', keep=KEEP)\n"
    script = "import json, os, sys\nKEEP = json.loads(sys.argv[1])\n" + prelude + code
    keep = json.dumps([str(a) for a in args])
    if env is None:
        proc = run_python(script, keep, cwd=cwd)
    else:
        base = {k: v for k, v in os.environ.items() if not k.startswith("STRONGROOM_")}
        proc = subprocess.run(
            [sys.executable, "-c", script, keep],
            cwd=cwd,
            env={**base, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )
    return last_json(proc)


def try_write(path: str) -> str:
    return f"""
try:
    with open({path!r}, "x") as f:
        f.write("planted")
    print(json.dumps("WROTE"))
except OSError as exc:
    print(json.dumps(f"{{type(exc).__name__}}: {{exc.strerror}}"))
"""


# ----------------------------------------------------------------------------- host-wide settings
def test_core_pattern_cannot_be_written_from_inside(namespaces: dict[str, Any]) -> None:
    """Writing the current value back is harmless outside; inside it must be refused."""
    code = """
path = "/proc/sys/kernel/core_pattern"
current = open(path).read()
try:
    with open(path, "w") as f:
        f.write(current)
    print(json.dumps("WROTE"))
except OSError as exc:
    print(json.dumps(f"{type(exc).__name__}: {exc.strerror}"))
"""
    outcome = isolated(code)
    assert outcome != "WROTE" and ("Permission" in outcome or "Read-only" in outcome), outcome


def test_a_host_process_cannot_be_signalled(namespaces: dict[str, Any]) -> None:
    sentinel = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        code = """
try:
    os.kill(int(sys.argv[2]), 15)
    print(json.dumps("SIGNALLED"))
except OSError as exc:
    print(json.dumps(f"{type(exc).__name__}: {exc.strerror}"))
"""
        script = (
            "import json, os, sys\nKEEP = []\nfrom vault import netguard\nnetguard.isolate('guard')\n" + code
        )
        outcome = last_json(run_python(script, "[]", str(sentinel.pid)))
        assert outcome != "SIGNALLED"
        assert sentinel.poll() is None, "the host sentinel was killed from inside"
    finally:
        sentinel.kill()
        sentinel.wait()


@pytest.mark.parametrize(
    "where",
    ["site-packages", "source", "etc", "home"],
)
def test_planting_files_outside_the_vault_is_refused(where: str, namespaces: dict[str, Any]) -> None:
    name = f"zz_strongroom_planted_{uuid.uuid4().hex}"
    folder = {
        "site-packages": sysconfig.get_paths()["purelib"],
        "source": str(REPO / "vault"),
        "etc": "/etc",
        "home": os.path.expanduser("~"),
    }[where]
    target = os.path.join(folder, name + (".pth" if where == "site-packages" else ".py"))
    try:
        outcome = isolated(try_write(target))
        assert outcome != "WROTE", f"planted {target} from inside"
        assert not os.path.exists(target)
    finally:
        if os.path.exists(target):
            os.unlink(target)


def test_code_reached_under_tmp_stays_read_only(namespaces: dict[str, Any]) -> None:
    """Python, the source and sys.path live under /tmp in a checkout cloned there (as CI's may be):
    bound back into the private /tmp to stay importable, they must not become writable with it."""
    code_dir = Path(tempfile.mkdtemp(prefix="strongroom-code-", dir="/tmp"))
    try:
        (code_dir / "helper.py").write_text("VALUE = 1\n")
        script = "import json, sys\nfrom vault import netguard\nnetguard.isolate('guard')\n"
        script += "import helper\n" + try_write(str(code_dir / "planted.pth"))
        script += try_write("/tmp/scratch-" + uuid.uuid4().hex)  # the private tmpfs itself stays writable
        env = {k: v for k, v in os.environ.items() if not k.startswith("STRONGROOM_")}
        (code_dir / "lib").mkdir()  # a folder on sys.path inside another (a venv inside its checkout)
        env["PYTHONPATH"] = os.pathsep.join([str(code_dir / "lib"), str(code_dir), str(REPO)])
        proc = subprocess.run(
            [sys.executable, "-c", script], cwd=code_dir, env=env, capture_output=True, text=True, timeout=120
        )
        said = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('"')]
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert said[0] != "WROTE", "a folder on sys.path under /tmp was writable from inside"
        assert said[1] == "WROTE"
        assert not (code_dir / "planted.pth").exists()
        assert "could not make" not in proc.stderr, proc.stderr  # the nested folder is read-only too
    finally:
        shutil.rmtree(code_dir, ignore_errors=True)


def test_etc_shadow_cannot_be_read(namespaces: dict[str, Any]) -> None:
    if not os.path.exists("/etc/shadow"):
        pytest.skip("this host has no /etc/shadow")
    code = """
try:
    data = open("/etc/shadow", "rb").read()
    print(json.dumps("READ" if data else "EMPTY"))
except OSError as exc:
    print(json.dumps(f"{type(exc).__name__}: {exc.strerror}"))
"""
    assert isolated(code) not in ("READ",)


def test_vault_and_output_stay_writable(tmp_path: Path, namespaces: dict[str, Any]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    outcome = isolated(try_write(str(out / "model.bin")), str(out))
    assert outcome == "WROTE" and (out / "model.bin").read_text() == "planted"


# ----------------------------------------------------------------------------- the process itself
def test_capabilities_dropped_everywhere_with_no_new_privs(namespaces: dict[str, Any]) -> None:
    code = """
status = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines() if ":" in l)
print(json.dumps({k: status[k].strip() for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs")}))
"""
    status = isolated(code)
    assert all(int(status[k], 16) == 0 for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")), status
    assert status["NoNewPrivs"] == "1"


def test_verification_spreads_over_forked_children_inside(namespaces: dict[str, Any]) -> None:
    """audit verify forks children for the tree and the seals: the sandbox lets it, and a child's
    result comes back through its pipe (not computed again by the command itself)."""
    from vault.audit.forked import cores

    if cores() < 2:
        pytest.skip("one core: verification does not fork")
    code = """
from vault.audit.forked import Forked
jobs = [Forked(os.getpid) for _ in range(3)]
print(json.dumps({"parent": os.getpid(), "children": [job.result() for job in jobs]}))
"""
    seen = isolated(code)
    assert len(set(seen["children"])) == 3 and seen["parent"] not in seen["children"], seen


def test_seccomp_refuses_the_appliance_deny_list(namespaces: dict[str, Any]) -> None:
    code = """
import ctypes, errno
libc = ctypes.CDLL(None, use_errno=True)
calls = {"keyctl": 250, "add_key": 248, "request_key": 249, "userfaultfd": 323, "perf_event_open": 298}
seen = {}
for name, number in calls.items():
    r = libc.syscall(number, 0, 0, 0, 0, 0)
    seen[name] = errno.errorcode.get(ctypes.get_errno(), "?") if r < 0 else "OK"
print(json.dumps({"seen": seen, "denied": REPORT.seccomp.get("denied_syscalls", [])}))
"""
    if os.uname().machine != "x86_64":
        pytest.skip("syscall numbers in this test are x86_64's")
    out = isolated(code)
    assert all(v == "EPERM" for v in out["seen"].values()), out["seen"]
    assert {"keyctl", "add_key", "request_key", "userfaultfd", "perf_event_open"} <= set(out["denied"])


def test_no_core_dump_and_no_passphrase_in_any_environment(
    tmp_path: Path, namespaces: dict[str, Any]
) -> None:
    """The operator's `ulimit -c unlimited` and STRONGROOM_PASSPHRASE, as the issue found them."""
    code = """
import resource, subprocess
from tui.launcher import trainer_command, trainer_environment
block = open("/proc/self/environ", "rb").read()
child = subprocess.run([sys.executable, "-I", "-c", "print(open('/proc/self/environ','rb').read().hex())"],
                       capture_output=True, text=True)
trainer = subprocess.Popen(trainer_command(), env=trainer_environment(), stdin=subprocess.PIPE,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/")
trainer_environ = open(f"/proc/{trainer.pid}/environ", "rb").read() if True else b""
limits = open(f"/proc/{trainer.pid}/limits").read()
trainer.stdin.close(); trainer.wait()
secret = sys.argv[2].encode()
import ctypes
dumpable = ctypes.CDLL(None).prctl(3, 0, 0, 0, 0)
print(json.dumps({
    "in_os_environ": "STRONGROOM_PASSPHRASE" in os.environ,
    "in_environ_block": secret in block,
    "in_child": secret.hex() in child.stdout,
    "in_trainer": secret in trainer_environ,
    "trainer_core_limit": [l for l in limits.splitlines() if l.startswith("Max core file size")],
    "dumpable": dumpable,
    "core_limit": list(resource.getrlimit(resource.RLIMIT_CORE)),
}))
"""
    script = (
        "import json, os, sys, resource\n"
        "resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))\n"
        "from vault import netguard\nREPORT = netguard.isolate('guard')\n" + code
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith("STRONGROOM_")}
    proc = subprocess.run(
        [sys.executable, "-c", script, "[]", SECRET],
        cwd=REPO,
        env={**base, "STRONGROOM_PASSPHRASE": SECRET},
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = last_json(proc)
    assert out["dumpable"] == 0 and out["core_limit"] == [0, 0], out
    assert not out["in_os_environ"] and not out["in_environ_block"], out
    assert not out["in_child"] and not out["in_trainer"], out
    assert out["trainer_core_limit"] and out["trainer_core_limit"][0].split()[4:6] == ["0", "0"], out

    crash = (
        "import os, resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))\n"
        "from vault import netguard\nnetguard.isolate('guard', keep=[sys.argv[1]])\n"
        "os.chdir(sys.argv[1]); os.abort()\n"
    )
    crashed = subprocess.run(
        [sys.executable, "-c", crash, str(tmp_path)],
        cwd=REPO,
        env={**base, "STRONGROOM_PASSPHRASE": SECRET},
        capture_output=True,
        timeout=120,
    )
    assert crashed.returncode < 0, crashed.stderr  # ended by a signal (SIGABRT, or SIGSEGV as PID 1)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("core")], list(tmp_path.iterdir())


def test_the_passphrase_from_the_environment_still_opens_the_vault(cli: Any) -> None:
    """Taken out of the environment first thing, it is still the one the command uses."""
    assert cli("init").code == 0
    result = cli("datasets", "--json")
    assert result.code == 0, result.err


# ----------------------------------------------------------------------------- starting Python
PLANTED = """
import os
import signal
open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "PLANTED-RAN"), "w").write("ran")
raise SystemExit("planted module ran")
"""


def test_a_module_planted_in_the_working_directory_of_strongroom_tui_never_runs(tmp_path: Path) -> None:
    from tui.launcher import trainer_command
    from vault.cli.tui import tui_argv

    (tmp_path / "argparse.py").write_text(PLANTED)
    (tmp_path / "tui").mkdir()
    (tmp_path / "tui" / "__init__.py").write_text(PLANTED)
    (tmp_path / "tui" / "__main__.py").write_text(PLANTED)
    args = argparse.Namespace(vault=None, user=None, auditor=False, high_contrast=False)
    ui = subprocess.run(
        [*tui_argv(args), "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert not (tmp_path / "PLANTED-RAN").exists(), ui.stderr
    assert ui.returncode == 0 and "strongroom tui" in ui.stdout, ui.stderr
    assert "-I" in tui_argv(args)[1:3]
    trainer = trainer_command()
    assert "-I" in trainer[1:3]
    probe = subprocess.run(
        [trainer[0], "-I", "-c", "import argparse, tui; print(tui.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert not (tmp_path / "PLANTED-RAN").exists()
    assert probe.stdout.strip().startswith(str(REPO)), probe.stdout + probe.stderr


# ----------------------------------------------------------------------------- the drills
def test_netcheck_removes_its_sentinel_from_the_host_tmp(cli: Any, namespaces: dict[str, Any]) -> None:
    result = cli("netcheck", "--no-record", "--json")
    assert result.code == 0, result.err
    socket_path = result.json()["probe"]["sentinel"]["unix"]
    assert socket_path.startswith("/tmp/strongroom-sentinel-")
    assert not os.path.exists(os.path.dirname(socket_path)), "the sentinel's directory is left in /tmp"


def test_sandbox_check_contract_and_record(cli: Any, namespaces: dict[str, Any]) -> None:
    assert cli("init").code == 0
    result = cli("sandbox-check", "--json")
    out = result.json()
    assert set(out) >= {"mode", "all_blocked", "attempts"}
    assert len(out["attempts"]) >= 15
    assert all(set(a) >= {"name", "blocked", "detail"} for a in out["attempts"])
    through = [a for a in out["attempts"] if not a["blocked"]]
    assert result.code == 0 and out["all_blocked"] is True, through
    names = {a["name"] for a in out["attempts"]}
    assert {
        "write_core_pattern",
        "signal_host_process",
        "write_site_packages",
        "write_source_tree",
        "write_etc",
        "write_home",
        "read_etc_shadow",
        "create_setuid_file",
        "mknod",
        "mount",
        "ptrace_host_process",
        "load_kernel_module",
        "open_device",
        "raise_capability",
        "raw_socket",
        "exec_setuid_binary",
    } <= names
    entries = cli("audit", "show", "--json").json()
    drill = [e for e in entries if e["action"] == "network.sandbox_check"]
    assert drill and drill[-1]["outcome"] == "ok" and drill[-1]["detail"]["all_blocked"] is True
    assert len(drill[-1]["detail"]["attempts"]) == len(out["attempts"])


def test_sandbox_check_text_and_no_record(cli: Any, namespaces: dict[str, Any]) -> None:
    result = cli("sandbox-check", "--no-record")
    assert result.code == 0, result.out + result.err
    assert "escapes blocked" in result.out


def test_sandbox_check_without_isolation_reports_escapes() -> None:
    """The drill is honest: in a process that is not sandboxed (this host, as root) escapes get through."""
    if os.geteuid() != 0:
        pytest.skip("as an unprivileged user most escapes fail for want of rights, not for the sandbox")
    code = """
import json
from vault.netguard.sandbox import drill, exit_code
result = drill(isolate_first=False)
print(json.dumps({"result": result, "code": exit_code(result)}))
"""
    out = last_json(run_python(code))
    assert out["code"] == 6 and out["result"]["all_blocked"] is False
    through = {a["name"] for a in out["result"]["attempts"] if not a["blocked"]}
    assert {"write_core_pattern", "signal_host_process", "write_etc", "raise_capability"} <= through


def test_isolation_evidence_lists_every_layer(namespaces: dict[str, Any]) -> None:
    sandbox = namespaces["sandbox"]
    assert sandbox["dumpable"] == 0 and sandbox["core_limit"] == [0, 0]
    assert sandbox["no_new_privs"] is True
    assert set(sandbox["capabilities"]) == {"effective", "permitted", "inheritable", "bounding", "ambient"}
    assert all(v == "0x0" for v in sandbox["capabilities"].values())
    assert {"user", "mnt", "pid", "ipc", "uts", "net"} <= set(sandbox["namespaces"])
    assert sandbox["landlock"]["abi"] >= 1 or sandbox["landlock"]["status"] == "unavailable"
    assert "writable" in sandbox["filesystem"] and sandbox["filesystem"]["read_only_root"] in (True, False)


# ----------------------------------------------------------------------------- the PID namespace
SLEEPER = """
import sys, time
from vault import netguard
netguard.isolate('guard')
print(f"ready {__import__('os').getpid()}", flush=True)
time.sleep(300)
"""


def _inner_pid(outer: int) -> int:
    for _ in range(500):
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    status = Path(f"/proc/{entry}/status").read_text()
                except OSError:
                    continue
                if f"\nPPid:\t{outer}\n" in status:
                    return int(entry)
        time.sleep(0.01)
    raise AssertionError("the command's process inside the PID namespace was not found")


def _gone(pid: int) -> bool:
    for _ in range(500):
        try:
            state = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return True
        if "\nState:\tZ" in state:
            return True
        time.sleep(0.01)
    return False


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_the_command_ends_with_the_pid_its_caller_sees(
    how: signal.Signals, namespaces: dict[str, Any]
) -> None:
    """`kill -9` or `kill` of the pid a shell sees ends the command inside the PID namespace too."""
    if not namespaces["sandbox"]["namespaces"]["pid"]["new"]:
        pytest.skip("this host refuses a PID namespace")
    proc = subprocess.Popen([sys.executable, "-c", SLEEPER], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready 1"  # PID 1 of its own namespace
        inner = _inner_pid(proc.pid)
        os.kill(proc.pid, how)
        assert proc.wait(timeout=30) == -how
        assert _gone(inner), f"the command (host pid {inner}) outlived its supervisor"
    finally:
        proc.kill()
        proc.wait()


def _controlling_terminal() -> None:
    import fcntl
    import termios

    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def test_a_closed_terminal_ends_the_command_inside_too(namespaces: dict[str, Any]) -> None:
    """A terminal window closed (the pty hung up) signals its session leader alone, and the kernel
    sends that SIGHUP (si_code SI_KERNEL) to the supervisor only: the command inside must end too,
    not spin on a dead terminal (the TUI did, at a third of a core, after its tmux session went)."""
    if not namespaces["sandbox"]["namespaces"]["pid"]["new"]:
        pytest.skip("this host refuses a PID namespace")
    master, slave = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", SLEEPER],
        cwd=REPO,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
        preexec_fn=_controlling_terminal,
    )
    os.close(slave)
    try:
        said = b""
        # The whole line, newline included: hung up while its print is still writing, the command
        # ends by the write's error (exit 1) before the hangup's signal can end it.
        while b"ready 1\r\n" not in said:
            said += os.read(master, 1024)
        inner = _inner_pid(proc.pid)
        os.close(master)  # the terminal hangs up
        master = -1
        assert proc.wait(timeout=30) == -signal.SIGHUP
        assert _gone(inner), f"the command (host pid {inner}) outlived its terminal"
    finally:
        if master >= 0:
            os.close(master)
        proc.kill()
        proc.wait()


def test_host_processes_are_not_listed_inside(namespaces: dict[str, Any]) -> None:
    if not namespaces["sandbox"]["namespaces"]["pid"]["new"]:
        pytest.skip("this host refuses a PID namespace")
    code = """
pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
print(json.dumps({"me": os.getpid(), "pids": pids, "parent": os.getppid()}))
"""
    out = isolated(code)
    assert out["me"] == 1 and out["parent"] == 0 and out["pids"] == [1], out


@pytest.mark.parametrize("start", ["/", "/tmp", "/etc", str(REPO), sys.prefix])
def test_the_ui_never_makes_the_system_or_its_own_code_writable(start: str, monkeypatch: Any) -> None:
    """The TUI keeps the folder it started in writable for exports, unless it holds the system,
    Python or the source (started from `/`, everything would be)."""
    from tui.__main__ import ui_writable

    monkeypatch.chdir(start)
    args = argparse.Namespace(vault="/srv/vault")
    assert ui_writable(args) == [Path("/srv/vault")]


def test_the_ui_keeps_an_ordinary_starting_folder_writable(tmp_path: Path, monkeypatch: Any) -> None:
    from tui.__main__ import ui_writable

    monkeypatch.chdir(tmp_path)
    assert ui_writable(argparse.Namespace(vault=None)) == [tmp_path.resolve()]
