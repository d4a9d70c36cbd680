"""Escape sequences from imported records never reach the terminal: a TSV whose class names, text
and file name hold OSC 0 (window title), CSI 2J (clear), OSC 52 (clipboard), a C1 CSI and a bidi
override goes through `import`, `show --sample`, `datasets`, `audit show` and an error message, as
real subprocesses; no ESC (nor C1 control nor override) comes out, the escaped form does, and
`--json` still gives the exact data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vault.terminal import json_safe_dumps, safe

TITLE = "\x1b]0;owned\x07"
CLEAR = "\x1b[2J"
CLIPBOARD = "\x1b]52;c;cm0gLXJmIH4=\x07"
C1_CSI = "\x9b31m"
OVERRIDE = "\u202egnp.exe"
CLASS_A = f"spam{TITLE}{CLEAR}"
CLASS_B = f"ham{CLIPBOARD}{OVERRIDE}"
HOSTILE = ("\x1b", "\x07", "\x9b", "\u202e")


def _clean(stream: str) -> None:
    leaked = [repr(c) for c in HOSTILE if c in stream]
    assert not leaked, f"raw {leaked} reached the terminal: {stream[:400]!r}"


@pytest.fixture
def hostile(cli, tmp_path: Path) -> Path:
    assert cli("init").code == 0
    source = tmp_path / f"rec{CLEAR}ords.tsv"
    rows = [f"text{C1_CSI} {i} {TITLE}{CLIPBOARD}\t{CLASS_A if i % 2 else CLASS_B}" for i in range(20)]
    source.write_text("text\tlabel\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return source


def test_show_datasets_and_audit_show_send_no_escape_sequence(cli, hostile: Path) -> None:
    imported = cli("import", str(hostile), "--name", "mail", "--format", "tsv", "--quoting", "none")
    assert imported.code == 0, imported.err
    _clean(imported.out + imported.err)
    for args in (("show", "mail", "--sample", "4"), ("datasets",), ("audit", "show")):
        result = cli(*args)
        assert result.code == 0, result.err
        _clean(result.out + result.err)
    shown = cli("show", "mail", "--sample", "4").out
    assert safe(CLASS_A)[:20] in shown and "\\x1b]0;owned\\x07" in shown
    assert "\\x1b]52;c;" in shown and "\\u202e" in shown and "\\x9b31m" in shown


def test_json_output_keeps_the_exact_data_without_raw_controls(cli, hostile: Path) -> None:
    assert cli("import", str(hostile), "--name", "mail", "--format", "tsv", "--quoting", "none").code == 0
    shown = cli("show", "mail", "--sample", "2", "--json")
    _clean(shown.out)
    info = shown.json()
    assert info["classes"] == sorted([CLASS_A, CLASS_B])
    assert info["sample"][0]["text"].startswith(f"text{C1_CSI} 0 {TITLE}")
    audit = cli("audit", "show", "--json")
    _clean(audit.out)
    assert any(e["detail"].get("source") == hostile.name for e in audit.json())


def test_error_messages_escape_file_names(cli, tmp_path: Path) -> None:
    assert cli("init").code == 0
    bad = tmp_path / f"one{TITLE}\nstrongroom: ok{OVERRIDE}.csv"
    bad.write_text("text,label\nonly,one\n", encoding="utf-8")
    result = cli("import", str(bad), "--name", "x")
    assert result.code == 1
    _clean(result.err)
    assert len(result.err.strip().splitlines()) == 1, result.err  # the newline cannot forge a line
    assert "\\x1b]0;owned\\x07\\nstrongroom: ok\\u202e" in result.err


def test_usage_errors_escape_what_was_typed(cli) -> None:
    result = cli("import", "x.csv", "--name", "n", "--sensitivity", f"high{CLEAR}")
    assert result.code == 2
    _clean(result.err)
    assert "\\x1b[2J" in result.err


def test_safe_escapes_every_control_and_override() -> None:
    hostile = "".join(map(chr, [*range(0x20), 0x7F, *range(0x80, 0xA0), *range(0x202A, 0x202F)]))
    hostile += "\u2066\u2067\u2068\u2069\u2028\u2029"
    shown = safe(hostile)
    assert shown.isprintable() and shown.isascii()
    assert safe("a\tb\nc", lines=True) == "a\tb\nc" and safe("a\tb\nc") == "a\\tb\\nc"
    assert safe("ünïcödé ✓ 日本") == "ünïcödé ✓ 日本"
    dumped = json_safe_dumps({"k": hostile})
    assert dumped.isascii() and json.loads(dumped) == {"k": hostile}


@pytest.mark.parametrize("name", ["mail\x9b2J", "\u202etxt.exe", "a\u2066b", "a\x1bb", "a\nb"])
def test_dataset_names_refuse_controls_and_overrides(name: str) -> None:
    from vault.errors import InputError
    from vault.storage.names import check_name

    with pytest.raises(InputError) as caught:
        check_name(name)
    assert safe(caught.value.title) == caught.value.title  # the refusal itself shows it escaped
