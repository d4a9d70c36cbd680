"""The TUI's Train form and `strongroom train` send the same request when the user changes nothing:
one source of training defaults (vault.train.config.TrainConfig), so a run started from the UI is
the run the command line would start (the delta drift: the form used to send 1e-5 always, which
differs from the core's min(1e-5, 1/(10 n)) above 10,000 records and is refused above 100,000)."""

from __future__ import annotations

from tui.screens.train import DEFAULTS, parse_request
from vault.cli import build_parser
from vault.cli.train import request_from_args
from vault.door.training import parse_request as door_request


def _config(request: dict) -> object:
    return door_request(dict(request), None)[3]


def test_the_form_and_the_command_line_send_the_same_defaults() -> None:
    for dp, flag in ((True, "--dp"), (False, "--no-dp")):
        for model in ("auto", "cnn"):
            cli = request_from_args(build_parser().parse_args(["train", "digits", flag, "--model", model]))
            form = parse_request("digits", model, dp, dict(DEFAULTS))
            assert _config(form) == _config(cli), (dp, model)


def test_the_form_leaves_delta_to_the_core() -> None:
    assert parse_request("digits", "auto", True, dict(DEFAULTS)).get("delta") is None
