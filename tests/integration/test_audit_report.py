"""The auditor's access report: scripted activity by several users, and every figure of the report
checked against it; filters by period, dataset and person; a tampered log's report says so on its
first line and exits 4; the HTML renders and prints in a real headless Chromium with no request."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support import PASSPHRASE, REPO
from vault.door import Vault
from vault.errors import PolicyDenied

POLICY = (
    (REPO / "policies" / "default.toml")
    .read_text()
    .replace("approvals_required = 0", "approvals_required = 1")
)
OLIVIA, PETER, AARON = b"olivia's passphrase", b"peter's passphrase", b"aaron's passphrase"


def rows(tag: str, n: int = 12) -> str:
    lines = [f"ham\tsee you at {i} o'clock {tag}" for i in range(n)] + [
        f"spam\tWIN {i} now {tag}" for i in range(n)
    ]
    return "label\ttext\n" + "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def activity(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Imports, reads, a DP and a non-DP run, a refused run, a two-person export, a key removal."""
    root = tmp_path_factory.mktemp("report")
    (root / "clinic.tsv").write_text(rows("clinic"))
    (root / "bank.tsv").write_text(rows("bank", 8))
    vault = root / "vault"
    marks: dict[str, Any] = {"vault": vault, "root": root}
    with Vault.create(vault, passphrase=PASSPHRASE.encode(), policy_text=POLICY) as admin:
        for name, role, pw in (
            ("olivia", "operator", OLIVIA),
            ("peter", "operator", PETER),
            ("aaron", "auditor", AARON),
        ):
            admin.keys_add(name, role, pw)
        admin.import_dataset(root / "bank.tsv", name="bank", sensitivity="low")
    with Vault.open(vault, user="olivia", passphrase=OLIVIA) as olivia:
        olivia.import_dataset(root / "clinic.tsv", name="clinic", sensitivity="high")
        marks["after_imports"] = olivia.audit.entries()[-1]["time"]
        dp = olivia.train(
            {
                "dataset": "clinic",
                "model": "bow",
                "dp": True,
                "epsilon": 2.0,
                "epochs": 1,
                "batch_size": 8,
                "val_split": 0.25,
                "seed": 1,
            }
        )
        olivia.train(
            {"dataset": "bank", "model": "bow", "dp": False, "epochs": 1, "val_split": 0.25, "seed": 1}
        )
        with pytest.raises(PolicyDenied):
            olivia.train({"dataset": "clinic", "dp": True, "epsilon": 50.0})
        olivia.export(
            dp["model"], root / "release", approver="admin", approver_passphrase=PASSPHRASE.encode()
        )
        marks["model"], marks["epsilon"] = dp["model"], dp["epsilon"]
    with Vault.open(vault, user="admin", passphrase=PASSPHRASE.encode()) as admin:
        admin.sample("clinic", 3)
        admin.keys_remove("peter")
    with Vault.open(vault, user="aaron", passphrase=AARON) as aaron:
        aaron.datasets()
    return marks


def report_of(cli, vault: Path, *args: str) -> tuple[int, Any, str]:
    result = cli("audit", "report", "--vault", str(vault), "--format", "json", *args, isolation=None)
    return result.code, json.loads(result.out) if result.out.strip() else None, result.err


def test_every_figure_matches_the_activity(activity: dict[str, Any], cli) -> None:
    with_probe = shutil.copytree(activity["vault"], activity["root"] / "probed")
    drill = cli("netcheck", "--vault", str(with_probe), "--timeout", "0.5", "--json", isolation="waive")
    assert drill.code in (0, 6), drill.err
    code, report, err = report_of(cli, with_probe)
    assert code == 0, err
    assert report["verification"]["ok"] and report["schema"] == "strongroom-access-report-v1"
    datasets = {d["name"]: d for d in report["datasets"]}
    clinic, bank = datasets["clinic"], datasets["bank"]
    assert [(i["actor"], i["records"], i["sensitivity"]) for i in clinic["imports"]] == [
        ("olivia", 24, "high")
    ]
    assert [(r["actor"], r["purpose"], r["records"]) for r in clinic["reads"]] == [
        ("olivia", "train", 24),
        ("admin", "sample", 24),
    ]
    assert clinic["records_read"] == 48 and clinic["readers"] == {"admin": 1, "olivia": 1}
    assert [(t["actor"], t["dp"], t["outcome"]) for t in clinic["trainings"]] == [("olivia", True, "ok")]
    assert clinic["trainings"][0]["epsilon"] == pytest.approx(activity["epsilon"])
    assert clinic["epsilon_spent"] == pytest.approx(activity["epsilon"], rel=1e-6)
    assert clinic["privacy_spent"][0]["cap"] == 20.0
    assert clinic["privacy_spent"][0]["actor"] == "olivia"  # whose run spent it
    assert [(t["dp"], t["outcome"]) for t in bank["trainings"]] == [(False, "ok")]
    assert bank["privacy_spent"][0]["unbounded"] is True
    [export] = report["exports"]
    assert (
        export["actor"] == "olivia" and export["model"] == activity["model"] and export["dataset"] == "clinic"
    )
    assert export["approvals"] == [{"user": "admin", "role": "admin"}] and export["epsilon"] == pytest.approx(
        activity["epsilon"]
    )
    refused = [r for r in report["refusals"] if not r["dry_run"]]
    assert [(r["actor"], r["action"], r["rule"]) for r in refused] == [
        ("olivia", "train", "privacy.max_epsilon_per_run")
    ]
    people = {p["name"]: p for p in report["people"]}
    assert [(c["change"], c["role"]) for c in people["peter"]["role_changes"]] == [
        ("add", "operator"),
        ("remove", "operator"),
    ]
    assert people["olivia"]["refusals"] and people["aaron"]["sessions"] == 1
    assert people["aaron"]["roles"] == ["auditor"]
    blocked = report["network_blocked"]
    assert blocked and all(b["drill"] for b in blocked) and all(b["destination"] for b in blocked)
    # every in-process session here ran with the tests' isolation waiver, and the report says so
    assert report["sessions_below_isolation"] and all(s["waived"] for s in report["sessions_below_isolation"])
    seqs = {e["seq"] for e in json.loads(cli("audit", "show", "--vault", str(with_probe), "--json").out)}
    for row in [*clinic["reads"], *clinic["trainings"], *report["exports"], *refused]:
        assert row["seq"] in seqs  # every figure points to a real entry


def test_filters_by_period_dataset_and_person(activity: dict[str, Any], cli) -> None:
    code, bank, _ = report_of(cli, activity["vault"], "--dataset", "bank")
    assert code == 0 and [d["name"] for d in bank["datasets"]] == ["bank"] and bank["exports"] == []
    code, olivia, _ = report_of(cli, activity["vault"], "--user", "olivia")
    people = {p["name"]: p for p in olivia["people"]}
    assert set(people) == {"olivia", "admin"}  # admin appears only for what was done to olivia's slot
    assert set(people["admin"]["actions"]) == {"keys.add"}
    assert [c["change"] for c in people["olivia"]["role_changes"]] == ["add"]
    assert all(r["actor"] == "olivia" for d in olivia["datasets"] for r in d["reads"])
    code, later, _ = report_of(cli, activity["vault"], "--since", activity["after_imports"])
    assert all(not d["imports"] or d["name"] == "clinic" for d in later["datasets"])
    assert later["entries"] < report_of(cli, activity["vault"])[1]["entries"]
    assert (
        cli(
            "audit",
            "report",
            "--vault",
            str(activity["vault"]),
            "--since",
            "2030-01-02",
            "--until",
            "2030-01-01",
        ).code
        == 2
    )


def test_a_tampered_log_gives_a_report_that_says_so_first_and_exits_4(
    activity: dict[str, Any], cli, tmp_path: Path
) -> None:
    vault = shutil.copytree(activity["vault"], tmp_path / "vault")
    log = vault / "audit" / "log.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    lines[5] = lines[5].replace(b'"ok"', b'"OK"', 1) if b'"ok"' in lines[5] else lines[5][:-2] + b" }\n"
    log.write_bytes(b"".join(lines))
    result = cli("audit", "report", "--vault", str(vault), isolation=None)
    assert result.code == 4
    assert result.out.splitlines()[0].startswith("✗ THE AUDIT LOG FAILS VERIFICATION")


@pytest.mark.parametrize("fmt", ["md", "html", "json"])
def test_a_hand_written_line_with_words_where_numbers_belong_still_gives_the_report(
    activity: dict[str, Any], cli, tmp_path: Path, fmt: str
) -> None:
    """An insider who appends lines with text, an infinite number or a list where a record count, an
    epsilon or a cap belongs must not stop the auditor's report: it is made, says first that the log
    fails verification, shows what the lines hold, and counts only numbers."""
    vault = shutil.copytree(activity["vault"], tmp_path / "vault")
    log = vault / "audit" / "log.jsonl"
    seq = len(log.read_bytes().splitlines())
    before = json.loads(cli("audit", "report", "--vault", str(vault), "--format", "json", isolation=None).out)
    clinic = next(d for d in before["datasets"] if d["name"] == "clinic")
    forged = []
    for n, (action, detail) in enumerate(
        [
            ("dataset.read", {"purpose": "train", "version": 1, "samples": "many"}),
            ("dataset.read", {"purpose": "train", "version": 1, "samples": 1e400}),
            (
                "train.start",
                {"run": "forged", "model": "bow", "dp": True, "epsilon": "x", "epsilon_cap": [3]},
            ),
            ("train.end", {"run": "forged", "model": "m", "epsilon": {}, "ledger_epsilon": "lots"}),
        ]
    ):
        entry = {
            "v": 1,
            "seq": seq + n,
            "time": "2026-11-30T10:00:00.000000Z",
            "actor": "olivia",
            "role": "operator",
            "action": action,
            "subject": "clinic",
            "outcome": "ok",
            "detail": detail,
            "prev": "0" * 64,
        }
        forged.append(json.dumps(entry).replace("Infinity", "1e400"))
    with log.open("a") as out:
        out.write("\n".join(forged) + "\n")
    result = cli("audit", "report", "--vault", str(vault), "--format", fmt, isolation=None)
    assert result.code == 4, result.err
    assert "Traceback" not in result.err and result.err == ""
    if fmt == "json":
        report = json.loads(result.out, parse_constant=pytest.fail)  # strict JSON: no Infinity
        assert report["verification"]["ok"] is False
        after = next(d for d in report["datasets"] if d["name"] == "clinic")
        assert len(after["reads"]) == len(clinic["reads"]) + 2
        assert after["records_read"] == clinic["records_read"]  # neither "many" nor infinity is a count
        assert [r["records"] for r in after["reads"][-2:]] == ["many", "inf"]  # as the lines hold them
        assert after["trainings"][-1]["epsilon"] == {} and after["privacy_spent"][-1]["epsilon"] == "lots"
    elif fmt == "md":
        assert result.out.startswith("✗ THE AUDIT LOG FAILS VERIFICATION")
    else:
        assert '<p class="verdict bad">✗ THE AUDIT LOG FAILS VERIFICATION' in result.out
    if fmt != "json":
        assert "many" in result.out and "lots" in result.out


def test_the_report_states_the_epoch_chain_and_each_witness_and_what_was_checked(
    activity: dict[str, Any], cli, tmp_path: Path
) -> None:
    vault = shutil.copytree(activity["vault"], tmp_path / "vault")
    key, initial = tmp_path / "media" / "w.key", tmp_path / "initial.pem"
    key.parent.mkdir()
    assert cli("audit", "key", "--vault", str(vault), "--out", str(initial), isolation=None).code == 0
    code, report, err = report_of(cli, vault)
    assert code == 0, err
    sealed = report["verification"]
    assert sealed["epochs"] >= 1 and sealed["initial_key"] and sealed["initial_key_checked"] is False
    assert sealed["witnesses"] == [] and sealed["unsealed_seqs"] == []
    for step in (
        ("keygen", "--out", str(key), "--name", "witness.example/aaron"),
        ("cosign", "--key", str(key)),
    ):
        assert cli("audit", *step, "--vault", str(vault), isolation=None).code == 0
    entries = sum(1 for _ in (vault / "audit" / "log.jsonl").open("rb"))
    code, report, err = report_of(cli, vault, "--key", str(initial))
    assert code == 0, err
    (witness,) = report["verification"]["witnesses"]
    assert (witness["name"], witness["size"], witness["checked"]) == ("witness.example/aaron", entries, False)
    assert report["verification"]["initial_key_checked"] is True
    trusted = ("--witness", f"{key}.pub", "--checkpoint", f"{key}.checkpoint", "--key", str(initial))
    code, report, err = report_of(cli, vault, *trusted)
    assert code == 0, err
    assert report["verification"]["witnesses"][0]["checked"] is True
    markdown = cli("audit", "report", "--vault", str(vault), *trusted, isolation=None).out.splitlines()
    assert (
        markdown[2].startswith("Sealed in ")
        and "checked against the initial key the auditor keeps" in markdown[2]
    )
    assert (
        f"witness.example/aaron cosigned {entries} entries on " in markdown[2] and "(checked)" in markdown[2]
    )
    # a key that is not the log's: the report fails, and says so first
    other = tmp_path / "other.key"
    assert cli("audit", "keygen", "--out", str(other), "--vault", str(vault), isolation=None).code == 0
    code, report, _ = report_of(cli, vault, "--witness", f"{other}.pub", "--checkpoint", f"{key}.checkpoint")
    assert code == 4 and report["verification"]["ok"] is False
    assert report["verification"]["witnesses"][0]["checked"] is False


def test_markdown_and_html_escape_what_the_log_holds(tmp_path: Path) -> None:
    from vault.audit.report.render import render_html, render_markdown

    hostile = "x</td><script>alert(1)</script><img src=http://example.com/a.png>\x1b]52;c;AAAA\x07|`"
    report = {
        "schema": "strongroom-access-report-v1",
        "generated": "now",
        "origin": hostile,
        "verification": {
            "ok": True,
            "entries": 1,
            "signed_size": 1,
            "truncation_ruled_out": True,
            "message": "",
            "findings": [],
        },
        "scope": {"since": None, "until": None, "dataset": None, "user": None},
        "entries": 1,
        "first": None,
        "last": None,
        "datasets": [],
        "people": [
            {
                "name": hostile,
                "roles": [],
                "role_changes": [],
                "sessions": 0,
                "session_list": [],
                "failed_unlocks": [],
                "actions": {hostile: 1},
                "refusals": [],
            }
        ],
        "exports": [],
        "refusals": [],
        "network_blocked": [
            {
                "seq": 1,
                "time": None,
                "actor": "a",
                "destination": hostile,
                "family": None,
                "library": hostile,
                "drill": None,
            }
        ],
        "sessions_below_isolation": [],
    }
    page = render_html(report)
    assert "<script" not in page and "<img" not in page and "\x1b" not in page and "\x07" not in page
    text = render_markdown(report)
    assert "\x1b" not in text and "\x07" not in text and "x1b" in text and "\\|" in text


@pytest.mark.skipif(
    shutil.which("chromium") is None,
    reason="Chromium is absent (apt-get install chromium; .ci/run installs it)",
)
def test_the_html_renders_and_prints_in_chromium_with_no_request(
    activity: dict[str, Any], cli, tmp_path: Path
) -> None:
    page = tmp_path / "report.html"
    result = cli(
        "audit",
        "report",
        "--vault",
        str(activity["vault"]),
        "--format",
        "html",
        "--out",
        str(page),
        isolation=None,
    )
    assert result.code == 0, result.err
    html = page.read_text()
    assert "<svg" in html and "<script" not in html
    assert not re.findall(r"(?:src|href)\s*=", html) and "url(" not in html and "@import" not in html
    requests, printed = render_in_chromium(page, tmp_path, pdf=True)
    assert printed.startswith(b"%PDF") and printed.count(b"/Type /Page") + printed.count(b"/Type/Page") >= 2
    assert requests == [], requests  # nothing the page asked for; the browser's own traffic aside
    control = tmp_path / "control.html"  # the same detector sees a page's request for an outside image
    control.write_text('<html><body><img src="http://192.0.2.1/x.png">x</body></html>')
    assert render_in_chromium(control, tmp_path / "control")[0] == ["http://192.0.2.1/x.png"]
    dom = subprocess.run(
        [*BROWSER, f"--user-data-dir={tmp_path / 'dom'}", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert "<svg" in dom.stdout and "Access report" in dom.stdout


BROWSER = [
    "chromium",
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def render_in_chromium(page: Path, work: Path, *, pdf: bool = False) -> tuple[list[str], bytes]:
    """Load `page` in headless Chromium (printing it to PDF if asked); returns the URLs the page
    itself requested (from Chromium's NetLog: requests with a page initiator) and the PDF."""
    work.mkdir(parents=True, exist_ok=True)
    netlog, out = work / "net.json", work / "page.pdf"
    action = ["--no-pdf-header-footer", f"--print-to-pdf={out}"] if pdf else ["--dump-dom"]
    subprocess.run(
        [*BROWSER, f"--user-data-dir={work / 'profile'}", f"--log-net-log={netlog}", *action, page.as_uri()],
        capture_output=True,
        timeout=180,
    )
    log = read_netlog(netlog)
    types = {number: name for name, number in log["constants"]["logEventTypes"].items()}
    starts = [e.get("params", {}) for e in log["events"] if types.get(e["type"]) == "URL_REQUEST_START_JOB"]
    requested = [
        str(p["url"])
        for p in starts
        if "url" in p
        and p.get("initiator") != "not an origin"  # the browser's own requests
        and not str(p["url"]).startswith(("file:", "data:"))
    ]
    return requested, out.read_bytes() if pdf and out.exists() else b""


def read_netlog(path: Path) -> dict[str, Any]:
    """Chromium's NetLog (JSON); a log cut short at exit lacks its closing brackets."""
    text = path.read_text()
    try:
        return dict(json.loads(text))
    except json.JSONDecodeError:
        return dict(json.loads(text.rstrip().rstrip(",") + "]}"))
