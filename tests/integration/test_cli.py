"""The `strongroom` command end to end, in real subprocesses, on the real public datasets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import PASSPHRASE

DATASET_KEYS = {"name", "version", "kind", "samples", "classes", "sensitivity", "digest"}


def init(cli) -> None:
    result = cli("init")
    assert result.code == 0, result.err


def test_init_import_list_show_verify_delete(cli, tmp_path):
    init(cli)
    src = tmp_path / "t.csv"
    src.write_text(
        "text,label\n" + "".join(f'"hello, number {i}",{"a" if i % 2 else "b"}\n' for i in range(20))
    )
    result = cli("import", str(src), "--name", "greetings", "--sensitivity", "low")
    assert result.code == 0, result.err
    listed = cli("datasets", "--json")
    assert listed.code == 0, listed.err
    rows = listed.json()
    assert isinstance(rows, list) and DATASET_KEYS <= set(rows[0])
    assert rows[0]["name"] == "greetings" and rows[0]["kind"] == "text" and rows[0]["samples"] == 20
    assert rows[0]["classes"] == ["a", "b"] and rows[0]["sensitivity"] == "low"
    shown = cli("show", "greetings", "--json").json()
    assert "sample" not in shown and "hello" not in json.dumps(shown)
    sampled = cli("show", "greetings", "--sample", "2", "--json").json()
    assert len(sampled["sample"]) == 2 and "hello" in sampled["sample"][0]["text"]
    assert cli("verify").code == 0
    refused = cli("delete", "greetings")
    assert refused.code == 2 and "--yes" in refused.err
    assert cli("delete", "greetings", "--yes").code == 0
    assert cli("datasets", "--json").json() == []


def test_exit_codes_and_one_line_errors(cli, tmp_path):
    init(cli)
    wrong = cli("datasets", env={"STRONGROOM_PASSPHRASE": "wrong passphrase!"})
    assert wrong.code == 5
    unknown = cli("datasets", env={"STRONGROOM_USER": "nobody"})
    assert unknown.code == 5 and unknown.err == wrong.err
    assert "wrong passphrase!" not in wrong.err
    assert len(wrong.err.strip().splitlines()) == 1 and "hint:" in wrong.err
    assert cli("no-such-command").code == 2
    assert cli("import").code == 2
    not_vault = cli("datasets", env={"STRONGROOM_VAULT": str(tmp_path)})
    assert not_vault.code == 1 and "not a Strongroom vault" in not_vault.err
    missing = cli("import", str(tmp_path / "absent.csv"), "--name", "x")
    assert missing.code == 1 and "absent.csv" in missing.err


def test_tampered_object_makes_verify_exit_4_naming_it(cli, vault_path, tmp_path):
    init(cli)
    src = tmp_path / "t.tsv"
    src.write_text("label\ttext\n" + "".join(f"{i % 2}\trecord {i}\n" for i in range(10)))
    assert cli("import", str(src), "--name", "t").code == 0
    obj = next(p for p in (vault_path / "objects").rglob("*") if p.is_file())
    data = bytearray(obj.read_bytes())
    data[100] ^= 0xFF
    obj.write_bytes(bytes(data))
    result = cli("verify")
    assert result.code == 4
    assert obj.name in result.out


def test_passphrase_file_and_no_passphrase(cli, tmp_path):
    init(cli)
    pw = tmp_path / "pw"

    pw.write_text(PASSPHRASE + "\n")
    ok = cli("datasets", "--passphrase-file", str(pw), env={"STRONGROOM_PASSPHRASE": ""})
    assert ok.code == 0, ok.err
    none = cli("datasets", env={"STRONGROOM_PASSPHRASE": ""})
    assert none.code == 2 and "STRONGROOM_PASSPHRASE" in none.err


@pytest.mark.slow
def test_real_datasets_import(cli, shared):
    init(cli)
    mnist = shared("datasets", "mnist")
    result = cli(
        "import",
        str(mnist / "t10k-images-idx3-ubyte.gz"),
        "--labels",
        str(mnist / "t10k-labels-idx1-ubyte.gz"),
        "--name",
        "mnist",
        "--json",
    )
    assert result.code == 0, result.err
    info = result.json()
    assert info["samples"] == 10_000 and info["shape"] == [1, 28, 28] and len(info["classes"]) == 10
    assert info["counts"]["0"] == 980 and info["counts"]["1"] == 1135

    sms = shared("datasets", "sms_spam_collection", "SMSSpamCollection")
    result = cli(
        "import",
        str(sms),
        "--format",
        "tsv",
        "--no-header",
        "--label-column",
        "0",
        "--text-column",
        "1",
        "--name",
        "sms",
        "--json",
    )
    assert result.code == 0, result.err
    assert result.json()["samples"] == 5574 and result.json()["counts"] == {"ham": 4827, "spam": 747}

    ag = shared("datasets", "ag_news", "test.csv")
    result = cli(
        "import",
        str(ag),
        "--format",
        "csv",
        "--no-header",
        "--label-column",
        "0",
        "--text-column",
        "1,2",
        "--name",
        "agnews",
        "--json",
    )
    assert result.code == 0, result.err
    assert result.json()["samples"] == 7600 and len(result.json()["classes"]) == 4

    cifar = shared("datasets", "cifar10_jpg_subset", "train")
    result = cli("import", str(cifar), "--name", "cifar", "--json")
    assert result.code == 0, result.err
    assert result.json()["kind"] == "image" and len(result.json()["classes"]) == 10
    assert result.json()["shape"] == [3, 32, 32]

    rows = cli("datasets", "--json").json()
    assert sorted(r["name"] for r in rows) == ["agnews", "cifar", "mnist", "sms"]
    assert cli("verify").code == 0


def test_keys_commands(cli, tmp_path: Path):
    init(cli)
    added = cli(
        "keys",
        "add",
        "olivia",
        "--role",
        "operator",
        env={"STRONGROOM_NEW_PASSPHRASE": "olivia's passphrase"},
    )
    assert added.code == 0, added.err
    listed = cli("keys", "list", "--json").json()
    assert {(k["user"], k["role"]) for k in listed} == {("admin", "admin"), ("olivia", "operator")}
    as_olivia = cli(
        "datasets", env={"STRONGROOM_USER": "olivia", "STRONGROOM_PASSPHRASE": "olivia's passphrase"}
    )
    assert as_olivia.code == 0, as_olivia.err
    assert cli("keys", "rotate").code == 0
    assert (
        cli(
            "datasets", env={"STRONGROOM_USER": "olivia", "STRONGROOM_PASSPHRASE": "olivia's passphrase"}
        ).code
        == 0
    )
    assert cli("keys", "remove", "olivia").code == 0
    assert (
        cli(
            "datasets", env={"STRONGROOM_USER": "olivia", "STRONGROOM_PASSPHRASE": "olivia's passphrase"}
        ).code
        == 5
    )
