"""`strongroom selftest`: commissioning checks of this install on this host (vault.selftest).

It runs outside the CLI's own isolation step: its steps start the real commands as child processes,
and each of those isolates itself as it would for an operator.
"""

from __future__ import annotations

import argparse
from typing import Any

from vault.cli import options


def register(subparsers: Any) -> None:
    help_text = "commissioning self-test: known answers, a vault round trip, DP training, the drills (exit 0: all pass)"
    p = subparsers.add_parser(
        "selftest",
        help=help_text,
        description=help_text + ". It works in a temporary directory that it removes, and never "
        "touches your vaults. Keep its output with the room's records.",
        parents=[options.JSON],
    )
    p.set_defaults(func=cmd_selftest)


def cmd_selftest(args: argparse.Namespace) -> int:
    from vault import selftest

    def line(step: selftest.Step) -> None:
        if not args.json:
            mark = "pass" if step.passed else "FAIL"
            print(f"{mark}  {step.seconds:7.2f} s  {step.name}: {step.detail}", flush=True)

    result = selftest.run(on_step=line)
    if args.json:
        options.emit_json(result)
    else:
        passed = sum(s["passed"] for s in result["steps"])
        print(
            f"selftest: {passed} of {len(result['steps'])} steps passed"
            + ("" if result["passed"] else " (exit 1)")
        )
    return 0 if result["passed"] else 1
