"""A privacy budget as a bar with numbers, a glyph and a word, so colour is never the only signal."""

from __future__ import annotations

from rich.text import Text

FULL, EMPTY = "█", "░"


def budget_state(spent: float | None, cap: float | None, unbounded: bool = False) -> tuple[str, str, str]:
    """(glyph, word, style) for a ledger: within cap, nearly spent (>= 80%), over cap, unbounded, no cap."""
    if unbounded or spent is None:
        return "✗", "unbounded (a run without DP)", "bold red"
    if cap is None:
        return "○", "no cap", ""
    if spent > cap:
        return "✗", "over cap", "bold red"
    if cap > 0 and spent >= 0.8 * cap:
        return "▲", "nearly spent", "bold yellow"
    return "✓", "within cap", "green"


def ledger_bar(spent: float | None, cap: float | None, *, unbounded: bool = False, width: int = 24) -> Text:
    """`[████████░░░░] 2.31 / 6.00 ε  ✓ within cap` (or the unbounded / no-cap forms)."""
    glyph, word, style = budget_state(spent, cap, unbounded)
    text = Text()
    if unbounded or spent is None:
        text.append("[" + FULL * width + "] ", style="bold")
        text.append("ε = ∞ ")
    elif cap is None:
        text.append("[" + EMPTY * width + "] ")
        text.append(f"{spent:.2f} ε spent ")
    else:
        filled = min(width, round(width * spent / cap)) if cap > 0 else width
        text.append("[" + FULL * filled + EMPTY * (width - filled) + "] ")
        text.append(f"{spent:.2f} / {cap:.2f} ε ")
    text.append(f"{glyph} {word}", style=style)
    return text


def remaining(spent: float | None, cap: float | None, unbounded: bool = False) -> str:
    """The budget left as a short cell: '3.69 ε', '∅ none' (no DP run), 'no cap'."""
    if unbounded or spent is None:
        return "✗ none"
    if cap is None:
        return "○ no cap"
    left = cap - spent
    return f"✓ {left:.2f} ε" if left > 0.2 * cap else (f"▲ {left:.2f} ε" if left > 0 else "✗ 0 ε")


def target_bar(spent: float, target: float, *, width: int = 16) -> Text:
    """A run's epsilon so far against its own target: `[████░░] 1.20 of 3.00 ε target`."""
    filled = min(width, round(width * spent / target)) if target > 0 else width
    text = Text("[" + FULL * filled + EMPTY * (width - filled) + "] ")
    text.append(f"{spent:.2f} of {target:.2f} ε target")
    return text
