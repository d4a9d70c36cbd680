"""Canonical JSON, byte for byte as docs/FORMAT.md defines it by rules (and where it parts from RFC 8785).

The header's signature, the content digests and the audit log's hashes are computed over these bytes,
so each rule the document states is pinned here by a known answer.
"""

from __future__ import annotations

import pytest

from vault.storage.files import canonical_json

CASES = [
    # literals and integers: exact decimal, any size
    (None, b"null"),
    (True, b"true"),
    (False, b"false"),
    (0, b"0"),
    (-5, b"-5"),
    (2**53 + 1, b"9007199254740993"),  # JCS: not an IEEE double, so no JCS encoding
    # floats: the shortest digits that read back as the same double; positional when the decimal
    # exponent is -5 < e < 16, always with a fraction; otherwise d[.ddd]e[+-]XX, at least two digits
    (1.0, b"1.0"),  # JCS: 1
    (-0.0, b"-0.0"),  # JCS: 0
    (0.1, b"0.1"),
    (1 / 3, b"0.3333333333333333"),
    (0.0001, b"0.0001"),
    (1e-05, b"1e-05"),  # JCS: 0.00001
    (1.5e-07, b"1.5e-07"),  # JCS: 1.5e-7
    (1e15, b"1000000000000000.0"),  # JCS: 1000000000000000
    (1e16, b"1e+16"),  # JCS: 10000000000000000
    (123456789012345678.0, b"1.2345678901234568e+17"),
    (5e-324, b"5e-324"),
    (1.7976931348623157e308, b"1.7976931348623157e+308"),
    # strings: the six short escapes, other controls as lowercase \u00XX, everything else raw UTF-8
    ('"\\/\b\f\n\r\t', b'"\\"\\\\/\\b\\f\\n\\r\\t"'),
    ("\x00\x1f", b'"\\u0000\\u001f"'),
    ("\x7f\u2028\u2029", '"\x7f\u2028\u2029"'.encode()),  # DEL and the line separators: raw
    ("é€😀", '"é€😀"'.encode()),
    # arrays and objects: no whitespace; keys by code point (= by their UTF-8 bytes)
    ([], b"[]"),
    ({}, b"{}"),
    ([1, "a", None, [True]], b'[1,"a",null,[true]]'),
    ({"b": 1, "a": {"d": [], "c": 0}}, b'{"a":{"c":0,"d":[]},"b":1}'),
    ({"a": 1, "B": 2, "é": 3, "": 4}, '{"":4,"B":2,"a":1,"é":3}'.encode()),
]


@pytest.mark.parametrize(("value", "expected"), CASES, ids=[repr(c[0])[:30] for c in CASES])
def test_canonical_json_known_answers(value: object, expected: bytes) -> None:
    assert canonical_json(value) == expected


def test_keys_sort_by_code_point_not_by_utf16_as_jcs_does() -> None:
    """U+FF01 sorts before U+1F600 by code point; JCS (UTF-16 code units: 0xFF01 > 0xD83D) puts it after."""
    value = {"\U0001f600": 2, "\uff01": 1}
    assert canonical_json(value) == '{"\uff01":1,"\U0001f600":2}'.encode()
    assert sorted(value, key=lambda k: k.encode("utf-16-be")) == ["\U0001f600", "\uff01"]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), {"x": [float("nan")]}])
def test_nan_and_infinities_are_refused(value: object) -> None:
    with pytest.raises(ValueError):
        canonical_json(value)


def test_a_lone_surrogate_is_refused() -> None:
    with pytest.raises(UnicodeEncodeError):
        canonical_json({"name": "\ud800"})
