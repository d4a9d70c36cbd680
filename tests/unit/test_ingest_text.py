"""Text sources: CSV/TSV/JSONL round trips (hypothesis over awkward strings), column choice, and bad input."""

from __future__ import annotations

import codecs
import csv
import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from vault.errors import InputError, UsageError
from vault.ingest import ImportOptions, ImportProgress, decode, detect

# U+FEFF is left out: at the very start of a file it is the BOM, which is dropped by design.
CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\ufeff")
AWKWARD = st.text(alphabet=CHARS | st.sampled_from(",\"'\t\n\r;| "), max_size=30)
LABEL = st.text(alphabet=CHARS | st.sampled_from(',"\n\t '), min_size=1, max_size=8).filter(
    lambda s: s.strip() != ""
)
RECORDS = st.lists(st.tuples(AWKWARD, LABEL), min_size=2, max_size=12)
HYPOTHESIS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def csv_text(rows: list[list[str]], delimiter: str = ",") -> str:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter).writerows(rows)  # CRLF terminator: fields with CR get quoted
    return buffer.getvalue()


def write(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def check_round_trip(data, records: list[tuple[str, str]]) -> None:
    texts = [t for t, _ in records]
    labels = [label.strip() for _, label in records]
    assert data.kind == "text" and data.images is None
    assert data.texts == texts
    assert [data.classes[i] for i in data.labels] == labels
    assert set(data.classes) == set(labels)


# ---------------------------------------------------------------------------------------- round trips


@HYPOTHESIS
@given(records=RECORDS)
def test_csv_round_trip(tmp_path: Path, records: list[tuple[str, str]]) -> None:
    assume(len({label.strip() for _, label in records}) >= 2)
    path = write(tmp_path / "data.csv", csv_text([["text", "label"], *[list(r) for r in records]]))
    check_round_trip(decode(path), records)


@HYPOTHESIS
@given(records=RECORDS)
def test_quoted_tsv_round_trip(tmp_path: Path, records: list[tuple[str, str]]) -> None:
    assume(len({label.strip() for _, label in records}) >= 2)
    path = write(
        tmp_path / "data.tsv", csv_text([["label", "text"], *[[lab, t] for t, lab in records]], "\t")
    )
    check_round_trip(decode(path), records)


PLAIN = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\t\n\r\ufeff"), max_size=30
)


@HYPOTHESIS
@given(records=st.lists(st.tuples(PLAIN, PLAIN.filter(lambda s: s.strip() != "")), min_size=2, max_size=12))
def test_plain_tsv_round_trip(tmp_path: Path, records: list[tuple[str, str]]) -> None:
    assume(len({label.strip() for _, label in records}) >= 2)
    content = "".join(f"{label}\t{text}\n" for text, label in records)
    path = write(tmp_path / "plain.tsv", content)
    data = decode(path, ImportOptions(header=False, quoting=False, text_column=1, label_column=0))
    check_round_trip(data, records)


@HYPOTHESIS
@given(records=RECORDS, ascii_only=st.booleans())
def test_jsonl_round_trip(tmp_path: Path, records: list[tuple[str, str]], ascii_only: bool) -> None:
    assume(len({label.strip() for _, label in records}) >= 2)
    lines = [json.dumps({"label": label, "text": text}, ensure_ascii=ascii_only) for text, label in records]
    path = write(tmp_path / "data.jsonl", "\n".join(lines) + "\n")
    check_round_trip(decode(path), records)


def test_csv_fields_with_commas_quotes_and_newlines(tmp_path: Path) -> None:
    content = 'id,text,label\n1,"a, b","x"\n2,"say ""hi""\nnext line",y\n3,plain,x\n'
    data = decode(write(tmp_path / "d.csv", content))
    assert data.texts == ["a, b", 'say "hi"\nnext line', "plain"]
    assert data.classes == ["x", "y"] and data.labels.tolist() == [0, 1, 0]
    assert data.counts == {"x": 2, "y": 1}


def test_fields_longer_than_the_csv_default_limit(tmp_path: Path) -> None:
    long = "word, " * 40_000  # 240,000 characters; the csv module's default limit is 131,072
    data = decode(write(tmp_path / "d.csv", csv_text([["text", "label"], [long, "a"], ["short", "b"]])))
    assert data.texts == [long, "short"]


def test_bom_and_crlf_are_tolerated(tmp_path: Path) -> None:
    content = codecs.BOM_UTF8 + "text,label\r\nhéllo,a\r\nwörld,b\r\n".encode()
    data = decode(write(tmp_path / "d.csv", content))
    assert data.texts == ["héllo", "wörld"] and data.classes == ["a", "b"]


def test_several_text_columns_are_joined_with_a_space(tmp_path: Path) -> None:
    path = write(tmp_path / "news.csv", '"3","Title one","Body one"\n"1","Title two","Body two"\n')
    data = decode(path, ImportOptions(header=False, text_column="1,2", label_column=0))
    assert data.texts == ["Title one Body one", "Title two Body two"]
    assert data.classes == ["1", "3"]
    by_list = decode(path, ImportOptions(header=False, text_column=[2, 1], label_column="0"))
    assert by_list.texts[0] == "Body one Title one"
    named = write(tmp_path / "named.csv", "cls,title,body\n3,T1,B1\n1,T2,B2\n")
    assert decode(named, ImportOptions(text_column="title,body", label_column="cls")).texts == [
        "T1 B1",
        "T2 B2",
    ]


def test_numeric_labels_sort_numerically(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "text,label\na,10\nb,9\nc,2\nd,10\n")
    data = decode(path)
    assert data.classes == ["2", "9", "10"]
    assert data.labels.tolist() == [2, 1, 0, 2]


def test_labels_are_stripped(tmp_path: Path) -> None:
    data = decode(write(tmp_path / "d.csv", "text,label\na, spam \nb,spam\nc,ham\n"))
    assert data.classes == ["ham", "spam"] and data.counts == {"ham": 1, "spam": 2}


def test_columns_by_name_are_case_insensitive_and_obvious_ones_are_found(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "Id,Message,Category\n1,hello,a\n2,bye,b\n")
    data = decode(path)
    assert data.texts == ["hello", "bye"]
    assert any("columns used" in note for note in data.notes)
    assert decode(path, ImportOptions(text_column="message", label_column="CATEGORY")).texts == [
        "hello",
        "bye",
    ]
    two = write(tmp_path / "two.csv", "body_of_mail,label\nx,a\ny,b\n")
    assert decode(two).texts == ["x", "y"]  # one label name in a two-column file: the other is the text


def test_headerless_two_column_file_guesses_only_when_obvious(tmp_path: Path) -> None:
    rows = "".join(f"{'spam' if i % 3 else 'ham'}\tmessage number {i} with words\n" for i in range(30))
    data = decode(write(tmp_path / "sms", rows), ImportOptions(header=False))
    assert data.classes == ["ham", "spam"] and data.samples == 30
    assert any("columns chosen automatically" in note for note in data.notes)
    even = write(tmp_path / "even.tsv", "a\tb\nc\td\n")
    with pytest.raises(UsageError, match="cannot tell which column"):
        decode(even, ImportOptions(header=False))
    assert decode(even, ImportOptions(header=False, label_column=0)).texts == ["b", "d"]


def test_jsonl_arrays_and_integer_labels(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", '[1, "first"]\n\n[2, "second"]\n')
    data = decode(path, ImportOptions(text_column=1, label_column=0))
    assert data.texts == ["first", "second"] and data.classes == ["1", "2"]
    objects = write(
        tmp_path / "o.jsonl", '{"review": "good", "sentiment": 1}\n{"review": "bad", "sentiment": 0}\n'
    )
    assert decode(objects).classes == ["0", "1"]


def test_tsv_with_stray_quotes_falls_back_to_plain(tmp_path: Path) -> None:
    content = 'ham\t"Happy day" I said\nspam\tWin "big" now\nham\t"quoted"\n'
    data = decode(write(tmp_path / "sms.tsv", content), ImportOptions(header=False, label_column=0))
    assert data.texts == ['"Happy day" I said', 'Win "big" now', '"quoted"']
    assert any("plain TSV" in note for note in data.notes)
    forced = decode(
        tmp_path / "sms.tsv", ImportOptions(header=False, quoting=False, text_column=1, label_column=0)
    )
    assert forced.texts == data.texts
    with pytest.raises(InputError, match="malformed quoted field"):
        decode(tmp_path / "sms.tsv", ImportOptions(header=False, quoting=True, label_column=0))


def test_format_sniffed_from_content(tmp_path: Path) -> None:
    assert detect(write(tmp_path / "a", "text,label\nx,1\ny,2\n")).fmt == "csv"
    assert detect(write(tmp_path / "b", "text\tlabel\nx\t1\ny\t2\n")).fmt == "tsv"
    assert (
        detect(write(tmp_path / "c.txt", '{"text": "x", "label": 1}\n{"text": "y", "label": 2}\n')).fmt
        == "jsonl"
    )
    mislabelled = write(tmp_path / "tabs.csv", "text\tlabel\nx\t1\ny\t2\n")
    assert decode(mislabelled, ImportOptions(fmt="tsv")).texts == ["x", "y"]  # --format beats the suffix
    with pytest.raises(UsageError, match="cannot tell the format"):
        detect(write(tmp_path / "d", "just words\nmore words\n"))


def test_progress_events(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "text,label\n" + "".join(f"t{i},{i % 2}\n" for i in range(1000)))
    events: list[ImportProgress] = []
    decode(path, on_event=events.append)
    assert events[-1].stage == "parse" and events[-1].done == events[-1].total
    assert len(events) < 20


# ---------------------------------------------------------------------------------------- bad input


def refused(path: Path, title: str, options: ImportOptions | None = None, error: type = InputError):
    for call in (detect, decode):
        with pytest.raises(error) as caught:
            call(path, options or ImportOptions())
        assert title in caught.value.title, caught.value.title
        assert caught.value.hint
    return caught.value


SECRET = "Patient Zed diagnosed"


def test_missing_named_column_lists_the_available_ones(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", f"id,body,label\n1,{SECRET},a\n2,x,b\n")
    err = refused(path, "d.csv has no column named 'text'", ImportOptions(text_column="text"))
    assert err.hint == "available columns: 0: id, 1: body, 2: label"
    err = refused(
        path, "d.csv has no column 7: its rows have 3 field(s)", ImportOptions(text_column=7, label_column=2)
    )
    assert SECRET not in str(err)


def test_first_row_that_is_data_is_not_listed_as_column_names(tmp_path: Path) -> None:
    path = write(tmp_path / "d.tsv", f"ham\t{SECRET}, and a long message follows here\nspam\tWin\n")
    err = refused(path, "cannot tell which column of d.tsv", error=UsageError)
    assert SECRET not in str(err) and "--no-header" in err.hint
    err = refused(path, "has no column named 'text'", ImportOptions(text_column="text", label_column="ham"))
    assert SECRET not in str(err) and "0-based indexes 0 to 1" in err.hint


def test_names_need_a_header(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "x,1\ny,2\n")
    refused(
        path,
        "--text-column 'text': d.csv has no header row",
        ImportOptions(header=False, text_column="text", label_column=1),
        UsageError,
    )


def test_ambiguous_columns_ask_for_flags(tmp_path: Path) -> None:
    path = write(tmp_path / "news.csv", '"3","Title","Body"\n"1","T","B"\n')
    err = refused(
        path,
        "cannot tell which column of news.csv holds the text and which the label",
        ImportOptions(header=False),
        UsageError,
    )
    assert "--text-column" in err.hint and "--label-column" in err.hint
    assert err.exit_code == 2


def test_non_utf8_names_line_and_offset(tmp_path: Path) -> None:
    content = b"text,label\nfine,a\n" + b"caf\xe9 au lait,b\n"
    err = refused(
        write(tmp_path / "latin.csv", content),
        "latin.csv is not UTF-8: invalid continuation byte at line 3, byte 4 of that line (file offset 21)",
    )
    assert "iconv" in err.hint
    assert err.detail == {"file": "latin.csv", "line": 3, "offset": 21}
    with_bom = codecs.BOM_UTF8 + b"text,label\n\xff,a\n"
    refused(
        write(tmp_path / "bom.csv", with_bom),
        "invalid start byte at line 2, byte 1 of that line (file offset 14)",
    )
    refused(
        write(tmp_path / "cut.jsonl", b'{"text": "x", "label": "a"}\n' + "é".encode()[:1]),
        "unexpected end of data at line 2",
    )


def test_row_without_a_label(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", f"text,label\nok,a\n{SECRET}\nfine,b\n")
    err = refused(path, "d.csv row 2 (line 3) has no label (column 1, 'label' is missing)")
    assert SECRET not in str(err)
    assert err.detail == {"file": "d.csv", "row": 2, "line": 3}
    jsonl = write(
        tmp_path / "d.jsonl", '{"text": "a", "label": "x"}\n{"text": "b"}\n{"text": "c", "label": null}\n'
    )
    refused(jsonl, "d.jsonl row 2 (line 2) has no label (key 'label' is missing)")


def test_empty_label(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", 'text,label\nok,a\n"multi\nline",b\nthird,  \n')
    refused(path, "d.csv row 3 (line 5) has an empty label")
    refused(
        write(tmp_path / "e.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "label": ""}\n'),
        "e.jsonl row 2 (line 2) has an empty label",
    )


def test_row_with_extra_fields(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", f"text,label\nok,a\n{SECRET}, unquoted,b\n")
    err = refused(path, "d.csv row 2 (line 3) has 3 fields; the header has 2")
    assert "quote fields" in err.hint and SECRET not in str(err)


def test_unterminated_quote(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", 'text,label\nok,a\n"never closed,b\nmore,c\n')
    refused(path, "d.csv line 3: malformed quoted field")


def test_invalid_jsonl(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", '{"text": "a", "label": "x"}\n{"text": "' + SECRET + '", label: 1}\n')
    err = refused(path, "d.jsonl line 2 is not valid JSON: Expecting property name enclosed in double quotes")
    assert SECRET not in str(err)
    refused(
        write(tmp_path / "n.jsonl", '{"text": "a", "label": "x"}\n42\n'),
        "line 2 holds a JSON number, not an object",
    )
    refused(
        write(tmp_path / "m.jsonl", '{"text": "a", "label": "x"}\n["b", "y"]\n'),
        "line 2 holds a JSON array, but line 1 holds a object",
    )
    refused(
        write(tmp_path / "f.jsonl", '{"text": "a", "label": 1.5}\n{"text": "b", "label": "y"}\n'),
        "row 1 (line 1): the label is a JSON number",
    )
    refused(
        write(tmp_path / "t.jsonl", '{"text": 5, "label": "x"}\n{"text": "b", "label": "y"}\n'),
        "the text (key 'text') is a JSON number, not a string",
    )


def test_no_records_and_one_class(tmp_path: Path) -> None:
    refused(write(tmp_path / "header-only.csv", "text,label\n"), "header-only.csv holds no records")
    refused(write(tmp_path / "empty.jsonl", "\n\n"), "empty.jsonl holds no records")
    refused(write(tmp_path / "one.csv", "text,label\na,x\nb,x\n"), "one.csv has only one label value (x)")


def test_one_sample_per_class_is_fine(tmp_path: Path) -> None:
    assert decode(write(tmp_path / "d.csv", "text,label\na,x\nb,y\n")).counts == {"x": 1, "y": 1}


def test_option_problems_are_usage_errors(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "text,label\na,x\nb,y\n")
    for options, message in [
        (ImportOptions(text_column=-1), "column indexes start at 0"),
        (ImportOptions(label_column="text,label"), "--label-column names one column"),
        (ImportOptions(text_column="text", label_column="text"), "the label column is also a text column"),
        (ImportOptions(image_size=32), "--image-size only applies to images"),
        (ImportOptions(labels=tmp_path / "l", fmt="csv"), "--labels only applies to IDX sources"),
    ]:
        with pytest.raises(UsageError, match=message):
            decode(path, options)


def test_binary_and_compressed_files_are_not_text(tmp_path: Path) -> None:
    refused(write(tmp_path / "blob", b"\x89PNG\r\n\x1a\n\0\0\0"), "blob looks binary")
    refused(
        write(tmp_path / "data.gz", b"\x1f\x8b\x08\0\0\0"), "data.gz is compressed but is not an IDX file"
    )
