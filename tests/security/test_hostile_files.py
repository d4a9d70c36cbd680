"""Hostile sources refused with a clear error, before memory is taken: symbolic links that leave an
image folder or loop, records and bytes over the import's caps, IDX headers that claim more than
the cap, and a CSV field that must not cost many times its size."""

from __future__ import annotations

import gzip
import os
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vault.errors import InputError
from vault.ingest import ImportOptions, decode, detect


def image(path: Path, value: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((4, 4), value, np.uint8)).save(path)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    for cls in ("cats", "dogs"):
        for i in range(3):
            image(root / cls / f"{i}.png", i)
    return root


def refused(source: Path, *words: str, options: ImportOptions | None = None) -> InputError:
    for step in (detect, decode):
        with pytest.raises(InputError) as caught:
            step(source, options or ImportOptions())
        for word in words:
            assert word in caught.value.title + " " + caught.value.hint, caught.value
    return caught.value


# ----------------------------------------------------------------------------- symbolic links
def test_a_link_to_a_file_outside_the_folder_is_refused(folder: Path) -> None:
    secret = folder.parent / "secret.png"
    image(secret, 99)
    (folder / "cats" / "x.png").symlink_to(secret)
    error = refused(folder, "photos/cats/x.png", "leaves")
    assert "copy" in error.hint


def test_a_class_folder_linked_from_outside_is_refused(folder: Path, tmp_path: Path) -> None:
    for i in range(2):
        image(tmp_path / "elsewhere" / f"{i}.png", i)
    (folder / "birds").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    refused(folder, "photos/birds", "leaves")


def test_a_link_to_etc_hostname_is_refused_without_opening_it(folder: Path) -> None:
    (folder / "dogs" / "h.jpg").symlink_to("/etc/hostname")
    refused(folder, "photos/dogs/h.jpg", "leaves")


@pytest.mark.parametrize("where", ["file", "class"])
def test_a_link_to_itself_gives_a_clear_error(folder: Path, where: str) -> None:
    link = folder / "cats" / "loop.png" if where == "file" else folder / "loop"
    link.symlink_to(link.name)
    refused(folder, "loop", "symbolic link")


def test_two_links_pointing_at_each_other_give_a_clear_error(folder: Path) -> None:
    (folder / "cats" / "a.png").symlink_to("b.png")
    (folder / "cats" / "b.png").symlink_to("a.png")
    refused(folder, "photos/cats/a.png", "symbolic link")


def test_a_dangling_link_gives_a_clear_error(folder: Path) -> None:
    (folder / "cats" / "gone.png").symlink_to(folder / "nowhere.png")
    refused(folder, "photos/cats/gone.png")


def test_links_that_stay_inside_the_folder_still_import(folder: Path) -> None:
    (folder / "dogs" / "copy.png").symlink_to(folder / "cats" / "0.png")
    data = decode(folder, ImportOptions())
    assert data.samples == 7


def test_the_self_link_reaches_the_cli_as_one_line_without_a_traceback(cli, folder: Path) -> None:
    assert cli("init").code == 0
    (folder / "cats" / "loop.png").symlink_to("loop.png")
    result = cli("import", str(folder), "--name", "pets")
    assert result.code == 1 and "Traceback" not in result.err
    assert len(result.err.strip().splitlines()) == 1 and "loop.png" in result.err
    assert cli("datasets", "--json").json() == []  # all or nothing


# ----------------------------------------------------------------------------- caps
def test_records_over_the_cap_name_the_limit_and_the_flag(folder: Path, tmp_path: Path) -> None:
    error = refused(folder, "--max-records", "5", options=ImportOptions(max_records=5))
    assert "6" in error.title
    text = tmp_path / "t.csv"
    text.write_text("text,label\n" + "".join(f"r{i},{i % 2}\n" for i in range(10)))
    refused(text, "--max-records", options=ImportOptions(max_records=9))
    assert decode(text, ImportOptions(max_records=10)).samples == 10


def test_bytes_over_the_cap_name_the_limit_and_the_flag(folder: Path, tmp_path: Path) -> None:
    refused(folder, "--max-bytes", options=ImportOptions(max_bytes=100))
    text = tmp_path / "t.csv"
    text.write_text("text,label\n" + "".join(f"r{i},{i % 2}\n" for i in range(10)))
    refused(text, "--max-bytes", options=ImportOptions(max_bytes=50))


def idx(path: Path, type_code: int, dims: tuple[int, ...], payload: bytes, *, gz: bool = False) -> Path:
    data = struct.pack(">BBBB", 0, 0, type_code, len(dims)) + struct.pack(f">{len(dims)}I", *dims) + payload
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def test_an_idx_header_claiming_more_than_the_cap_is_refused_before_reading(tmp_path: Path) -> None:
    images = idx(tmp_path / "img.gz", 8, (4_000_000_000, 28, 28), b"\0" * 4096, gz=True)
    labels = idx(tmp_path / "lab.gz", 8, (4_000_000_000,), b"\0" * 4096, gz=True)
    tracemalloc.start()
    try:
        with pytest.raises(InputError) as caught:
            decode(images, ImportOptions(labels=labels))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "--max-records" in caught.value.hint or "--max-bytes" in caught.value.hint
    assert peak < 8 * 2**20


def test_an_idx_gzip_bomb_within_the_ratio_is_refused_by_the_byte_cap(tmp_path: Path) -> None:
    n = 20_000
    images = idx(tmp_path / "img.gz", 8, (n, 28, 28), bytes(n * 784), gz=True)
    labels = idx(tmp_path / "lab.gz", 8, (n,), bytes(i % 2 for i in range(n)), gz=True)
    error = refused(images, "--max-bytes", options=ImportOptions(labels=labels, max_bytes=10 * 2**20))
    assert "15.0 MiB" in error.title or "15679" in error.title.replace(",", "")


def test_idx_with_one_byte_too_many_after_gzip_is_refused(tmp_path: Path) -> None:
    images = idx(tmp_path / "img.gz", 8, (4, 2, 2), bytes(17), gz=True)
    labels = idx(tmp_path / "lab.gz", 8, (4,), bytes([0, 1, 0, 1]), gz=True)
    refused(images, "more data after the", options=ImportOptions(labels=labels))


# ----------------------------------------------------------------------------- CSV fields
def test_a_huge_csv_field_costs_a_few_times_its_size_not_twelve(tmp_path: Path) -> None:
    size = 8 * 2**20  # the 50 MB field, scaled down; the ratio is what is checked
    source = tmp_path / "big.csv"
    source.write_text('text,label\n"' + "x" * size + '",a\nsmall,b\n')
    tracemalloc.start()
    try:
        data = decode(source, ImportOptions())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert data.texts is not None and len(data.texts[0]) == size and data.texts[1] == "small"
    assert peak < 4 * size, f"peak {peak / size:.1f} times the field"


def test_a_csv_field_over_the_limit_names_the_limit(tmp_path: Path, monkeypatch) -> None:
    from vault.ingest import text

    monkeypatch.setattr(text, "FIELD_LIMIT", 1000)
    source = tmp_path / "big.csv"
    source.write_text('text,label\n"' + "x" * 2000 + '",a\nsmall,b\n')
    error = refused(source, "1,000 characters")
    assert "line 2" in error.title


def test_quoted_fields_parse_the_same_by_either_reader(tmp_path: Path, monkeypatch) -> None:
    """The reader for huge fields gives what the csv module gives, on every quoting it allows."""
    rows = [
        ['he said ""hi""', "a"],
        ["multi\nline\r\nfield", "b"],
        ["plain", "a"],
        ["", "b"],
        ["com,ma", "a"],
        ['ab"c', "b"],
    ]
    lines = []
    for text_cell, label in rows:
        cell = text_cell if text_cell in ("plain", "", 'ab"c') else f'"{text_cell}"'
        lines.append(f"{cell},{label}")
    body = "text,label\r\n" + "\r\n".join(lines) + "\r\n\r\nlast,a"
    source = tmp_path / "q.csv"
    source.write_bytes(body.encode())
    from vault.ingest import text

    small = decode(source, ImportOptions())
    monkeypatch.setattr(text, "CSV_MODULE_FIELD_LIMIT", 1)  # every file goes to the long-field reader
    big = decode(source, ImportOptions())
    assert big.texts == small.texts and list(big.labels) == list(small.labels)
    assert big.notes == small.notes


@pytest.mark.parametrize(
    "body",
    [
        'text,label\n"he said "hi"",a\nok,b\n',
        'text,label\nok,a\n"never closed,b\n',
        'text,label\nok,a\n"ends in a doubled quote"",b',
        'text,label\nok,a\n\n\n"x"y,b\n',
    ],
)
def test_malformed_quoting_gives_the_same_error_by_either_reader(tmp_path: Path, monkeypatch, body) -> None:
    from vault.ingest import text

    source = tmp_path / "bad.csv"
    source.write_text(body)
    with pytest.raises(InputError) as small:
        decode(source, ImportOptions())
    monkeypatch.setattr(text, "CSV_MODULE_FIELD_LIMIT", 1)
    with pytest.raises(InputError) as big:
        decode(source, ImportOptions())
    assert big.value.title == small.value.title and big.value.detail == small.value.detail


def test_os_level_loop_error_is_not_a_traceback_for_the_source_itself(tmp_path: Path) -> None:
    loop = tmp_path / "loop"
    os.symlink("loop", loop)
    with pytest.raises(InputError):
        decode(loop, ImportOptions())


def test_an_image_over_the_pixel_limit_is_refused_from_its_header(folder: Path) -> None:
    """PIL only warns between its limit and twice it; the import refuses at the limit itself."""
    wide = Image.new("1", (12_000, 8_000))  # 96 million pixels in a few kilobytes of PNG
    wide.save(folder / "cats" / "wide.png")
    tracemalloc.start()
    try:
        error = refused(folder, "photos/cats/wide.png", "pixels")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert f"{Image.MAX_IMAGE_PIXELS:,}" in error.title + error.hint
    assert peak < 32 * 2**20


# ----------------------------------------------------------------------------- nesting, FIFOs, policy files
def test_deeply_nested_jsonl_is_a_clear_error_not_a_recursion_traceback(tmp_path: Path) -> None:
    source = tmp_path / "deep.jsonl"
    source.write_text('{"text": "a", "label": "x"}\n' + "[" * 200_000 + "]" * 200_000 + "\n")
    error = refused(source, "line 2", "nest")
    assert "RecursionError" not in error.title


def test_deeply_nested_policy_is_a_clear_error(tmp_path: Path) -> None:
    from vault.policy import Policy

    policy = tmp_path / "deep.toml"
    policy.write_text("[policy]\nname = 'x'\nbad = " + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(InputError) as caught:
        Policy.from_file(policy)
    assert "nest" in caught.value.title


def test_a_huge_policy_file_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    from vault.policy import Policy

    policy = tmp_path / "huge.toml"
    policy.write_text("[policy]\nname = 'x'\n" + "# filler\n" * 300_000)
    with pytest.raises(InputError) as caught:
        Policy.from_file(policy)
    assert "MiB" in caught.value.title


def test_a_fifo_in_an_image_folder_is_refused_instead_of_blocking(folder: Path) -> None:
    from tests.support import run_python

    os.mkfifo(folder / "cats" / "pipe.png")
    proc = run_python(
        """
        import sys
        from pathlib import Path
        from vault.errors import InputError
        from vault.ingest import ImportOptions, decode
        try:
            decode(Path(sys.argv[1]), ImportOptions())
        except InputError as exc:
            print(exc.title)
        """,
        str(folder),
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "photos/cats/pipe.png" in proc.stdout and "not a regular file" in proc.stdout


def test_a_folder_of_many_tiny_files_is_refused_while_it_is_listed(folder: Path) -> None:
    """The record cap stops the listing itself: a class folder of 20,000 files under a cap of 100
    is refused without building the whole list (and without opening a file)."""
    crowd = folder / "cats"
    for i in range(20_000):
        (crowd / f"{i:05}.png").touch()
    tracemalloc.start()
    try:
        error = refused(folder, "--max-records", options=ImportOptions(max_records=100))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "4,096" in error.title or "4096" in error.title
    assert peak < 8 * 2**20


def test_a_passphrase_file_that_never_ends_is_refused(cli) -> None:
    result = cli(
        "datasets", "--passphrase-file", "/dev/zero", env={"STRONGROOM_PASSPHRASE": None}, timeout=60
    )
    assert result.code == 2 and "Traceback" not in result.err
    assert "/dev/zero" in result.err and "first line" in result.err


def test_labels_too_long_or_too_many_are_refused(tmp_path: Path) -> None:
    long_label = tmp_path / "long.csv"
    long_label.write_text("text,label\na," + "x" * 5000 + "\nb,y\n")
    refused(long_label, "row 1", "label", "1,000 characters")
    many = tmp_path / "many.csv"
    many.write_text("text,label\n" + "".join(f"t,{i}\n" for i in range(100_001)))
    refused(many, "100,000")
