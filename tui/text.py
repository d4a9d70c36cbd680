"""Text from the vault, shown in widgets: escaped for the terminal and never read as markup.

Dataset and class names, records, file names, audit entries and error messages come from files and
people we do not trust. `shown()` gives a rich Text (never parsed as markup, so `[bold]` or
`[link=...]` stays literal) with control characters and bidi overrides written as escapes
(vault.terminal.safe); `literal()` gives a string for the APIs that parse markup (notify, a Static
with markup on).
"""

from __future__ import annotations

from rich.text import Text
from textual.markup import escape

from vault.terminal import safe


def shown(value: object, style: str = "", *, lines: bool = False) -> Text:
    """A Text showing `value` exactly as typed: controls escaped, markup not interpreted."""
    return Text(safe(value, lines=lines), style=style)


def literal(value: object, *, lines: bool = False) -> str:
    """`value` escaped for the terminal and for Textual markup, for APIs that read markup."""
    return escape(safe(value, lines=lines))


def safe_name(value: object) -> str:
    """`value` on one line with controls escaped, for Text.append and widgets with markup off."""
    return safe(value)


def safe_name_lines(value: object) -> str:
    """Like safe_name, keeping newlines and tabs: for multi-line text (a policy file, a card)."""
    return safe(value, lines=True)
