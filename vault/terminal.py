"""Text made safe for a terminal: control characters and bidi overrides shown escaped, never sent.

Records, file names, dataset and class names and audit entries come from people and files we do
not trust. Sent raw, an ESC starts a sequence that can set the window title (OSC 0), clear the
screen (CSI 2J), write the clipboard (OSC 52) or make a link; a bidi override (U+202E) reorders
what an auditor reads. Every face that writes to a terminal passes such text through `safe()`,
which writes each such character as a visible escape: ESC as the four characters \\x1b, U+202E as
\\u202e, a newline as \\n (so one value stays on one line and cannot forge a line of output).

What is escaped: C0 controls (U+0000-001F), DEL (U+007F), C1 controls (U+0080-009F, where U+009B
is a one-character CSI), the bidi embeddings, overrides and isolates (U+202A-202E, U+2066-2069),
and the line and paragraph separators (U+2028, U+2029). `lines=True` keeps newline and tab, for
text whose line breaks are ours. JSON output needs none of this: it keeps the exact data, with
controls written as JSON escapes (`json_safe_dumps`).
"""

from __future__ import annotations

import json
import re
from typing import Any, TextIO

_BIDI_AND_SEPARATORS = "\u2028\u2029\u202a-\u202e\u2066-\u2069"
_ONE_LINE = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI_AND_SEPARATORS}]")
_KEEP_LINES = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI_AND_SEPARATORS}]")  # newline, tab kept
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _SHORT:
        return _SHORT[char]
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def safe(value: object, *, lines: bool = False) -> str:
    """`value` as text with every control character and bidi override written as an escape.
    lines=True keeps newline and tab (for text whose line breaks are ours)."""
    text = value if isinstance(value, str) else str(value)
    return (_KEEP_LINES if lines else _ONE_LINE).sub(_escape, text)


def is_safe(text: str) -> bool:
    """True when `text` holds nothing that safe() would escape (newlines and tabs allowed)."""
    return _KEEP_LINES.search(text) is None


def json_safe_dumps(obj: Any, **kwargs: Any) -> str:
    """json.dumps whose output holds no raw control or bidi character: C0 controls are JSON escapes
    already; C1 controls and bidi overrides become \\uXXXX too. Parsing it gives the exact data."""
    text = json.dumps(obj, ensure_ascii=False, **kwargs)
    return _KEEP_LINES.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


class SafeStream:
    """A text stream that passes everything through safe(lines=True) on its way to `raw`: the last
    guard of a command's output, so no escape sequence reaches the terminal even from text that was
    not escaped where it was formatted. A carriage return is kept when it starts a write (a redrawn
    progress line)."""

    def __init__(self, raw: TextIO) -> None:
        self.raw = raw

    def write(self, text: str) -> int:
        lead = ""
        if text.startswith("\r"):
            lead, text = "\r", text[1:]
        self.raw.write(lead + safe(text, lines=True))
        return len(text) + len(lead)

    def __getattr__(self, name: str) -> Any:  # flush, isatty, fileno, encoding, buffer...
        return getattr(self.raw, name)
