"""The vault through its one door: creation, unlock, import, load, delete, keys, tampering, locking."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import PASSPHRASE, REPO
from vault.errors import AuthError, InputError, IntegrityError, NotFound, StrongroomError, VaultBusy


def write_text_dataset(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("label\ttext\n" + "".join(f"{label}\t{text}\n" for label, text in rows), "utf-8")
    return path


def write_png_folder(root: Path, classes: dict[str, int], size: int = 8, seed: int = 0) -> Path:
    from PIL import Image

    rng = np.random.default_rng(seed)
    for cls, count in classes.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(
                root / cls / f"{i}.png"
            )
    return root


TEXT_ROWS = [
    ("ham", "see you at noon"),
    ("spam", "WIN a prize, call now"),
    ("ham", "ok, thanks!"),
    ("spam", "free entry: text WIN"),
    ("ham", "running late"),
    ("ham", "dinner?"),
]


def test_create_open_and_wrong_passphrase(new_vault, vault_path):
    from vault.door import Vault

    v = new_vault()
    assert v.role == "admin" and v.user == "admin"
    v.close()
    with Vault.open(vault_path, user="admin", passphrase=PASSPHRASE.encode()) as again:
        assert again.datasets() == []
    with pytest.raises(AuthError) as wrong:
        Vault.open(vault_path, user="admin", passphrase=b"not the passphrase")
    with pytest.raises(AuthError) as unknown:
        Vault.open(vault_path, user="mallory", passphrase=PASSPHRASE.encode())
    assert wrong.value.exit_code == 5
    assert str(wrong.value) == str(unknown.value)
    assert PASSPHRASE not in str(wrong.value)
    log = (vault_path / "audit" / "log.jsonl").read_text()
    assert "session.unlock_failed" in log and PASSPHRASE not in log


def test_not_a_vault_and_missing(tmp_path):
    from vault.door import Vault

    with pytest.raises(NotFound, match="no vault"):
        Vault.open(tmp_path / "absent", user="admin", passphrase=b"x" * 8)
    (tmp_path / "plain").mkdir()
    with pytest.raises(NotFound, match="not a Strongroom vault"):
        Vault.open(tmp_path / "plain", user="admin", passphrase=b"x" * 8)


def test_create_refuses_existing_directory(new_vault, vault_path):
    new_vault().close()
    from vault.door import Vault

    with pytest.raises(StrongroomError, match="already exists"):
        Vault.create(vault_path, passphrase=PASSPHRASE.encode())


@pytest.mark.parametrize(
    ("field", "value", "word"),
    [
        ("iterations", 0, "iterations"),
        ("memory_kib", 8 * 1024 * 1024, "memory"),
        ("lanes", 1000, "lanes"),
    ],
)
def test_kdf_parameters_outside_floor_or_ceiling_are_refused(new_vault, vault_path, field, value, word):
    from vault.door import Vault

    new_vault().close()
    header = json.loads((vault_path / "vault.json").read_text())
    header["slots"][0]["kdf"][field] = value
    (vault_path / "vault.json").write_text(json.dumps(header))
    with pytest.raises(IntegrityError, match=word):
        Vault.open(vault_path, user="admin", passphrase=PASSPHRASE.encode())


def test_edited_role_in_header_fails_authentication(new_vault, vault_path):
    from vault.door import Vault

    v = new_vault()
    v.keys_add("olivia", "operator", b"operator passphrase")
    v.close()
    header = json.loads((vault_path / "vault.json").read_text())
    for slot in header["slots"]:
        if slot["user"] == "olivia":
            slot["role"] = "admin"
    (vault_path / "vault.json").write_text(json.dumps(header))
    with pytest.raises(IntegrityError, match="vault.json"):
        Vault.open(vault_path, user="olivia", passphrase=b"operator passphrase")


def test_text_import_load_round_trip_and_versions(new_vault, tmp_path):
    v = new_vault()
    src = write_text_dataset(tmp_path / "sms.tsv", TEXT_ROWS)
    info = v.import_dataset(src, name="sms", sensitivity="medium")
    assert info["kind"] == "text" and info["samples"] == 6 and info["classes"] == ["ham", "spam"]
    assert info["version"] == 1 and info["digest"].startswith("sha256:")
    data = v._datasets.load("sms", purpose="train")
    assert data.x == [t for _, t in TEXT_ROWS]
    assert [data.classes[i] for i in data.y.tolist()] == [label for label, _ in TEXT_ROWS]
    again = v.import_dataset(src, name="sms", sensitivity="medium")
    assert (
        again["version"] == 2
        and again["digest"] == info["digest"]
        and again["ledger_id"] == info["ledger_id"]
    )
    listed = v.datasets()
    assert [d["name"] for d in listed] == ["sms"] and listed[0]["version"] == 2
    reads = [json.loads(line) for line in (v.path / "audit" / "log.jsonl").read_text().splitlines()]
    assert any(e["action"] == "dataset.read" and e["detail"]["purpose"] == "train" for e in reads)


def test_image_folder_import_round_trip(new_vault, tmp_path):
    from PIL import Image

    v = new_vault()
    root = write_png_folder(tmp_path / "imgs", {"cats": 3, "dogs": 4})
    info = v.import_dataset(root, name="pets")
    assert info["kind"] == "image" and info["samples"] == 7 and info["shape"] == [3, 8, 8]
    data = v._datasets.load("pets", purpose="train")
    first = np.asarray(Image.open(root / "cats" / "0.png").convert("RGB")).transpose(2, 0, 1)
    assert data.x.shape == (7, 3, 8, 8)
    assert any(np.array_equal(first, data.x[i].numpy()) for i in range(7))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.text(
            alphabet=st.characters(
                blacklist_categories=("Cs",),
                blacklist_characters="\r\n\t\x00\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029",
            ),
            min_size=1,
            max_size=40,
        ).filter(lambda s: s.strip() == s and s != ""),
        min_size=2,
        max_size=30,
    )
)
def test_text_shards_round_trip(texts):
    from vault.storage import shards

    labels = np.arange(len(texts), dtype=np.int64) % 2
    blobs = list(shards.text_shards(texts, labels))
    out: list[str] = []
    for start, stop, blob in blobs:
        content = shards.unpack("text", blob, "test")
        assert content.labels.tolist() == labels[start:stop].tolist()
        out.extend(content.texts or [])
    assert out == texts


@pytest.mark.parametrize("name", ["a/b", "..", "x..y", "bad\nname", "tab\tname", "", "-rf", "a|b", "a=b"])
def test_bad_dataset_names_are_refused_and_vault_unchanged(new_vault, tmp_path, name):
    v = new_vault()
    src = write_text_dataset(tmp_path / "t.tsv", TEXT_ROWS)
    before = (v.path / "catalog.sealed").read_bytes()
    with pytest.raises(InputError, match="invalid dataset name"):
        v.import_dataset(src, name=name)
    assert (v.path / "catalog.sealed").read_bytes() == before


def test_missing_source_is_refused(new_vault, tmp_path):
    v = new_vault()
    with pytest.raises(StrongroomError):
        v.import_dataset(tmp_path / "nope.csv", name="x")
    assert v.datasets() == []


def test_delete_shreds_keys_and_objects(new_vault, tmp_path):
    v = new_vault()
    v.import_dataset(write_text_dataset(tmp_path / "t.tsv", TEXT_ROWS), name="t")
    objects = list(v._session.objects.all_ids())
    assert objects
    v.delete_dataset("t")
    assert v.datasets() == []
    catalog = v._session.read_catalog()
    # Only the record index's set (keyed hashes, no record) stays: the budget follows the records.
    (kept,) = catalog["lineage"]["sets"].values()
    assert kept["deleted"] and list(v._session.objects.all_ids()) == [kept["object"]["id"]]
    assert "t" not in catalog["datasets"]
    assert catalog["ledger_index"]  # the budget follows the records, even after deletion
    with pytest.raises(NotFound):
        v._datasets.load("t", purpose="train")


def test_a_read_racing_a_delete_is_not_reported_as_damage(new_vault, vault_path, tmp_path):
    """Readers take no lock: an object deleted by another process between the reader's catalog
    snapshot and its read is 'not found', not an integrity failure; an object missing while the
    catalog still names it is."""
    from vault.door import Vault

    v = new_vault()
    v.import_dataset(write_text_dataset(tmp_path / "t.tsv", TEXT_ROWS), name="t")
    v.import_dataset(write_text_dataset(tmp_path / "u.tsv", TEXT_ROWS[::-1]), name="u")
    snapshot = v._session.read_catalog()
    version_t, version_u = (snapshot["datasets"][n]["versions"][0] for n in ("t", "u"))
    ref_t, key_t = version_t["shards"][0], v._session.data_key(version_t["wrapped_key"])
    ref_u, key_u = version_u["shards"][0], v._session.data_key(version_u["wrapped_key"])
    other = Vault.open(vault_path, user="admin", passphrase=PASSPHRASE.encode())
    try:
        other.delete_dataset("t")
    finally:
        other.close()
    with pytest.raises(NotFound, match="deleted by another process") as caught:
        v._session.get_object(ref_t, key_t)
    assert caught.value.exit_code == 1
    v._session.objects.path_of(ref_u["id"]).unlink()
    with pytest.raises(IntegrityError, match="is missing"):
        v._session.get_object(ref_u, key_u)


def test_flipped_byte_in_object_is_found_and_named(new_vault, tmp_path):
    v = new_vault()
    v.import_dataset(write_text_dataset(tmp_path / "t.tsv", TEXT_ROWS), name="t")
    object_id = v._session.read_catalog()["datasets"]["t"]["versions"][0]["shards"][0]["id"]
    path = v._session.objects.path_of(object_id)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    report = v.verify()
    assert not report["ok"]
    assert [f["object"] for f in report["findings"] if f["severity"] == "error"] == [object_id]
    with pytest.raises(IntegrityError, match=object_id):
        v._datasets.load("t", purpose="train")


def test_object_moved_to_another_name_fails(new_vault, tmp_path):
    v = new_vault()
    v.import_dataset(write_text_dataset(tmp_path / "a.tsv", TEXT_ROWS), name="a")
    v.import_dataset(write_text_dataset(tmp_path / "b.tsv", TEXT_ROWS[::-1]), name="b")
    ids = {
        name: v._session.read_catalog()["datasets"][name]["versions"][0]["shards"][0]["id"]
        for name in ("a", "b")
    }
    pa, pb = v._session.objects.path_of(ids["a"]), v._session.objects.path_of(ids["b"])
    pa.write_bytes(pb.read_bytes())
    with pytest.raises(IntegrityError):
        v._datasets.load("a", purpose="train")


def test_flipped_byte_in_catalog_refuses_to_open(new_vault, vault_path):
    from vault.door import Vault

    new_vault().close()
    path = vault_path / "catalog.sealed"
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x80
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="catalog"):
        Vault.open(vault_path, user="admin", passphrase=PASSPHRASE.encode())


def test_second_writer_is_told_the_vault_is_busy(new_vault, tmp_path):
    v = new_vault()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import fcntl, os, sys
            fd = os.open({str(v.path / "lock")!r}, os.O_RDWR)
            fcntl.flock(fd, fcntl.LOCK_EX)
            print("held", flush=True)
            sys.stdin.read()
        """),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(VaultBusy, match="busy"):
            v.import_dataset(write_text_dataset(tmp_path / "t.tsv", TEXT_ROWS), name="t")
    finally:
        holder.communicate("")
    assert v.datasets() == []


def test_keys_add_remove_passwd_rotate(new_vault, vault_path, tmp_path):
    from vault.door import Vault

    v = new_vault()
    v.import_dataset(write_text_dataset(tmp_path / "t.tsv", TEXT_ROWS), name="t")
    v.keys_add("olivia", "operator", b"olivia passphrase")
    v.keys_add("aud", "auditor", b"auditor passphrase")
    assert {(k["user"], k["role"]) for k in v.keys_list()} == {
        ("admin", "admin"),
        ("olivia", "operator"),
        ("aud", "auditor"),
    }
    with pytest.raises(InputError, match="last admin"):
        v.keys_remove("admin")
    result = v.keys_rotate()
    assert result["data_keys_rewrapped"] == 3  # the dataset's, the record index's and its one set's
    assert v._datasets.load("t", purpose="train").x[0] == TEXT_ROWS[0][1]
    # The record hashes stay comparable across a rotation: the same records are still found.
    again = v.import_dataset(write_text_dataset(tmp_path / "again.tsv", TEXT_ROWS[::-1]), name="again")
    assert [(o["dataset"], o["records"]) for o in again["overlaps"]] == [("t", len(TEXT_ROWS))]
    v.keys_passwd(b"a brand new passphrase")
    v.keys_remove("aud")
    v.close()
    with Vault.open(vault_path, user="olivia", passphrase=b"olivia passphrase") as o:
        assert o.role == "operator"
        assert o._datasets.load("t", purpose="train").x[0] == TEXT_ROWS[0][1]
    with pytest.raises(AuthError):
        Vault.open(vault_path, user="aud", passphrase=b"auditor passphrase")
    with pytest.raises(AuthError):
        Vault.open(vault_path, user="admin", passphrase=PASSPHRASE.encode())
    Vault.open(vault_path, user="admin", passphrase=b"a brand new passphrase").close()


def test_interrupted_rotation_is_finished_on_open(new_vault, vault_path, tmp_path):
    """A crash after the header commit but before the catalog rename rolls forward."""
    from vault.door import Vault
    from vault.storage.layout import CATALOG_NEXT

    v = new_vault()
    v.import_dataset(write_text_dataset(tmp_path / "t.tsv", TEXT_ROWS), name="t")
    old_catalog = (vault_path / "catalog.sealed").read_bytes()
    v.keys_rotate()
    new_catalog = (vault_path / "catalog.sealed").read_bytes()
    v.close()
    # Recreate the moment between the header write and the rename.
    (vault_path / CATALOG_NEXT).write_bytes(new_catalog)
    (vault_path / "catalog.sealed").write_bytes(old_catalog)
    with Vault.open(vault_path, user="admin", passphrase=PASSPHRASE.encode()) as again:
        assert again._datasets.load("t", purpose="train").x[0] == TEXT_ROWS[0][1]
    assert not (vault_path / CATALOG_NEXT).exists()


def test_canary_records_never_reach_disk_in_plaintext(new_vault, tmp_path):
    import secrets
    import tempfile

    canary_text = f"CANARY-{secrets.token_hex(12)}"  # made now, so it exists in no source file
    canary_two = f"canary-{secrets.token_hex(12)}"
    rows = [("ham", f"{canary_text} {i}") for i in range(4)] + [("spam", f"WIN NOW {canary_two}")] * 3
    v = new_vault()
    v.import_dataset(write_text_dataset(tmp_path / "src.tsv", rows), name="secret")
    pixels_root = tmp_path / "pix"
    from PIL import Image

    pattern = np.frombuffer(secrets.token_bytes(256), dtype=np.uint8).reshape(16, 16)
    for cls in ("a", "b"):
        (pixels_root / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(pattern).save(pixels_root / cls / f"{i}.png")
    v.import_dataset(pixels_root, name="pix")
    assert v._datasets.load("secret", purpose="train").x[0].startswith(canary_text)
    v._datasets.load("pix", purpose="train")
    needles = [canary_text.encode(), canary_two.encode(), pattern.tobytes()[:32]]
    files = [f for f in v.path.rglob("*") if f.is_file()]
    for folder, _, names in os.walk(tempfile.gettempdir()):  # os.walk skips folders that vanish meanwhile
        files += [Path(folder, name) for name in names if not Path(folder, name).is_relative_to(tmp_path)]
    scanned = 0
    for f in files:
        try:  # other processes' temp files may come and go while we look
            if not f.is_file() or f.stat().st_size > 64 * 2**20:
                continue
            blob = f.read_bytes()
        except OSError:
            continue
        scanned += 1
        for needle in needles:
            assert needle not in blob, f"plaintext found in {f}"
    assert scanned > 3


def test_vault_format_known_answer_vector():
    """A vault written by this format version (tests/vectors/vault-v1) still opens and reads back."""
    from vault.door import Vault

    kat = REPO / "tests" / "vectors" / "vault-v1"
    expected = json.loads((kat / "EXPECTED.json").read_text())
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "v"
        shutil.copytree(kat / "vault", copy)
        with Vault.open(copy, user=expected["user"], passphrase=expected["passphrase"].encode()) as v:
            data = v._datasets.load(expected["dataset"], purpose="verify")
            assert data.x == expected["texts"]
            assert [data.classes[i] for i in data.y.tolist()] == expected["labels"]
            assert data.digest == expected["digest"]
            assert v.verify()["ok"]
