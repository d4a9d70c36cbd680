"""Typed readers for parsed TOML values that collect problems under their key path.

Every problem names where it is (`privacy.max_epsilon_per_run`) and what is wrong with it, so a
policy author can fix a file from the error alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time
from typing import Any

from vault.errors import InputError


class Problems:
    """Collects validation problems; `raise_if_any` turns them into one InputError."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[tuple[str, str]] = []

    def add(self, path: str, problem: str) -> None:
        self.items.append((path, problem))

    def raise_if_any(self, what: str = "policy") -> None:
        if not self.items:
            return
        path, problem = self.items[0]
        more = f" (and {len(self.items) - 1} more)" if len(self.items) > 1 else ""
        raise InputError(
            f"{what} {self.source}: {path}: {problem}{more}",
            "fix the named key and load the file again; docs/POLICIES.md lists every key",
            detail={
                "source": self.source,
                "key": path,
                "errors": [{"key": p, "problem": m} for p, m in self.items],
            },
        )


def type_name(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, Mapping):
        return "table"
    if isinstance(value, datetime | date | time):
        return "date/time"
    return type(value).__name__


def check_keys(problems: Problems, path: str, table: Mapping[str, Any], allowed: Iterable[str]) -> None:
    allowed_set = set(allowed)
    for key in table:
        if key not in allowed_set:
            where = f"{path}.{key}" if path else key
            problems.add(where, f"unknown key; expected one of: {', '.join(sorted(allowed_set))}")


def read_table(problems: Problems, path: str, value: object) -> Mapping[str, Any] | None:
    if isinstance(value, Mapping):
        return value
    problems.add(path, f"must be a table, got {type_name(value)}")
    return None


def read_str(
    problems: Problems, path: str, value: object, *, choices: Iterable[str] | None = None
) -> str | None:
    if not isinstance(value, str) or not value.strip():
        problems.add(path, f"must be a non-empty string, got {type_name(value)} {value!r}")
        return None
    if choices is not None:
        options = tuple(choices)
        if value not in options:
            problems.add(path, f"unknown value {value!r}; expected one of: {', '.join(options)}")
            return None
    return value


def read_bool(problems: Problems, path: str, value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    problems.add(path, f"must be true or false, got {type_name(value)} {value!r}")
    return None


def read_int(
    problems: Problems, path: str, value: object, *, minimum: int | None = None, maximum: int | None = None
) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        problems.add(path, f"must be an integer, got {type_name(value)} {value!r}")
        return None
    if minimum is not None and value < minimum:
        problems.add(path, f"must be at least {minimum}, got {value}")
        return None
    if maximum is not None and value > maximum:
        problems.add(path, f"must be at most {maximum}, got {value}")
        return None
    return value


def read_positive(
    problems: Problems, path: str, value: object, *, below: float | None = None
) -> float | None:
    """A finite number > 0 (and < `below` when given). Integers are accepted as floats."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        problems.add(path, f"must be a number, got {type_name(value)} {value!r}")
        return None
    number = float(value)
    if not math.isfinite(number):
        problems.add(path, f"must be a finite number, got {value!r}")
        return None
    if number <= 0:
        problems.add(path, f"must be greater than 0, got {value!r}")
        return None
    if below is not None and number >= below:
        problems.add(path, f"must be less than {below:g}, got {value!r}")
        return None
    return number


def read_str_list(
    problems: Problems, path: str, value: object, *, choices: Iterable[str] | None = None
) -> tuple[str, ...] | None:
    if not isinstance(value, list):
        problems.add(path, f"must be an array of strings, got {type_name(value)}")
        return None
    options = tuple(choices) if choices is not None else None
    items: list[str] = []
    ok = True
    for index, item in enumerate(value):
        where = f"{path}[{index}]"
        if not isinstance(item, str) or not item.strip():
            problems.add(where, f"must be a non-empty string, got {type_name(item)} {item!r}")
            ok = False
        elif options is not None and item not in options:
            problems.add(where, f"unknown value {item!r}; expected one of: {', '.join(options)}")
            ok = False
        elif item in items:
            problems.add(where, f"{item!r} is listed twice")
            ok = False
        else:
            items.append(item)
    return tuple(items) if ok else None


def read_instant(problems: Problems, path: str, value: object) -> datetime | None:
    """A TOML date, date-time or ISO 8601 string, as an aware UTC datetime (naive means UTC)."""
    try:
        return to_utc(value)
    except (TypeError, ValueError) as exc:
        problems.add(path, str(exc))
        return None


def to_utc(value: object) -> datetime:
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"must be an ISO 8601 date or date-time, got {value!r}") from None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(0, 0), tzinfo=UTC)
    raise TypeError(f"must be a date or date-time, got {type_name(value)} {value!r}")
