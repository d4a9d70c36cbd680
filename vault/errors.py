"""One small hierarchy of errors: each carries a title, a hint for the user and an exit code.

Exit codes are a contract with users' scripts:
0 ok, 1 error, 2 usage, 3 refused by policy, 4 integrity failure, 5 authentication failed,
6 network isolation unavailable.
"""

from __future__ import annotations

from typing import Any


class StrongroomError(Exception):
    """Base error. `title` says what went wrong, `hint` says what to do about it."""

    exit_code = 1

    def __init__(self, title: str, hint: str = "", *, detail: dict[str, Any] | None = None) -> None:
        super().__init__(title)
        self.title = title
        self.hint = hint
        self.detail = detail or {}

    def __str__(self) -> str:
        return f"{self.title} (hint: {self.hint})" if self.hint else self.title

    def to_json(self) -> dict[str, Any]:
        return {
            "error": type(self).__name__,
            "title": self.title,
            "hint": self.hint,
            "exit_code": self.exit_code,
            **({"detail": self.detail} if self.detail else {}),
        }


class UsageError(StrongroomError):
    """The command line or a request is malformed."""

    exit_code = 2


class InputError(StrongroomError):
    """Input data (a file to import, a policy file, ...) is unusable; nothing was changed."""

    exit_code = 1


class NotFound(StrongroomError):
    """A named dataset, model, user or vault does not exist."""

    exit_code = 1


class VaultBusy(StrongroomError):
    """Another process holds the vault's writer lock."""

    exit_code = 1


class PolicyDenied(StrongroomError):
    """The vault's policy refused the action; `detail['rule']` names the deciding rule."""

    exit_code = 3


class IntegrityError(StrongroomError):
    """Tampering or corruption was detected. Says only what is safe to say."""

    exit_code = 4


class AuthError(StrongroomError):
    """Authentication failed. The message never says whether the user or the passphrase was wrong."""

    exit_code = 5


class IsolationError(StrongroomError):
    """The network isolation that policy requires could not be reached."""

    exit_code = 6


class Cancelled(StrongroomError):
    """A long-running action was cancelled by the user."""

    exit_code = 1
