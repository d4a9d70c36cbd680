"""`strongroom policy show|set|check|test`: read, replace, dry-run and test the vault's policy.

`policy test FILE` runs the test cases written in the policy file itself and needs no vault.
`policy check` exits 0 when the action would be allowed and 3 when it would be refused.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from vault.cli import options
from vault.errors import InputError, NotFound
from vault.policy import ACTIONS, Decision, Policy
from vault.policy.engine import read_policy_text


def read_policy_file(path: Path) -> str:
    try:
        return read_policy_text(path)
    except FileNotFoundError:
        raise NotFound(
            f"policy file {path} does not exist", "check the path (e.g. policies/strict.toml)"
        ) from None
    except IsADirectoryError:
        raise InputError(f"{path} is a directory, not a policy file", "name a .toml file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"policy file {path} cannot be read: {exc}", "pass a UTF-8 TOML file") from None


def cmd_show(args: argparse.Namespace) -> int:
    with options.open_vault(args) as v:
        shown = v.policy_show()
    if args.json:
        options.emit_json(shown)
        return 0
    print(f"policy {shown['name']} (version {shown['version']})  sha256 {shown['sha256']}")
    if shown.get("description"):
        print(f"  {shown['description']}")
    print(f"  set {shown.get('set')} by {shown.get('set_by') or 'init'} from {shown.get('source')}")
    privacy = shown.get("privacy") or {}
    if privacy.get("card_metrics") == "noised":
        print(
            f"  card figures: noised (epsilon {privacy['card_metrics_epsilon']:g} a run, charged to the ledger)"
        )
    elif privacy.get("card_metrics"):
        print("  card figures: marked (exact, outside the DP guarantee)")
    print()
    rows = [
        [rule["id"], "✓ permit" if rule["effect"] == "permit" else "⊘ forbid", rule["text"]]
        for rule in shown["rules"]
    ]
    print(options.table(rows, ["RULE", "EFFECT", "WHAT IT SAYS"]))
    history = list(iter_history(shown))
    if history:
        print("\nhistory (newest first):")
        print("\n".join(history))
    return 0


def cmd_set(args: argparse.Namespace) -> int:
    text = read_policy_file(args.file)
    with options.open_vault(args) as v:
        result = v.policy_set(text, source=str(args.file))
    if args.json:
        options.emit_json(result)
    elif result["changed"]:
        print(
            f"policy set: {result['old_name']} {result['old_sha256'][:16]} -> {result['name']} "
            f"{result['sha256'][:16]} (audited)"
        )
    else:
        print(f"policy unchanged: {result['name']} {result['sha256'][:16]} is already the vault's policy")
    return 0


def decision_line(decision: Decision) -> str:
    mark = "✓ allowed" if decision.allowed else "✗ denied"
    return f"{mark} by {decision.rule}: {decision.reason}"


def cmd_check(args: argparse.Namespace) -> int:
    facts: dict[str, Any] = {}
    for name in ("dp", "epsilon", "delta", "model", "target"):
        value = getattr(args, name)
        if value is not None:
            facts[name] = value
    with options.open_vault(args) as v:
        decision = v.policy_check(
            args.action, dataset=args.dataset, as_user=args.as_user, approved_by=args.approved_by, **facts
        )
    if args.json:
        options.emit_json({**decision.to_json(), "dry_run": True})
    else:
        print(f"dry run: {decision_line(decision)}")
        for other in decision.facts.get("also_denied_by", []):
            print(f"  also denied by {other['rule']}: {other['reason']}")
    return 0 if decision.allowed else 3


def cmd_test(args: argparse.Namespace) -> int:
    policy = Policy.load(read_policy_file(args.file), source=str(args.file))
    results = policy.run_tests()
    passed = sum(result.passed for result in results)
    if args.json:
        options.emit_json(
            {
                "policy": policy.name,
                "sha256": policy.sha256,
                "source": str(args.file),
                "passed": passed,
                "failed": len(results) - passed,
                "ok": passed == len(results),
                "results": [result.to_json() for result in results],
            }
        )
    else:
        for result in results:
            mark = "✓ pass" if result.passed else "✗ FAIL"
            print(f"{mark}  {result.name}")
            if not result.passed:
                print(f"        {result.problem}")
        verdict = "ok" if passed == len(results) else "FAILED"
        print(f"{verdict}: {passed}/{len(results)} test case(s) of policy {policy.name} passed")
        if not results:
            print("(the file has no [[test]] cases)", file=sys.stderr)
    return 0 if passed == len(results) else 1


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "policy",
        help="show, set, dry-run and test the vault's policy",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(
        dest="policy_cmd", metavar="ACTION", required=True, parser_class=type(parser)
    )

    def action(name: str, help_text: str, func: Any, *, vault: bool = True) -> argparse.ArgumentParser:
        parents = [*options.VAULT, options.JSON] if vault else [options.JSON]
        p = actions.add_parser(name, help=help_text, description=help_text, parents=parents)
        p.set_defaults(func=func)
        return p

    action("show", "show the vault's policy: name, hash, every rule, who set it", cmd_show)
    p = action(
        "set", "replace the vault's policy with FILE (admin only; audited with old and new hash)", cmd_set
    )
    p.add_argument("file", type=Path, metavar="FILE")
    p = action(
        "check", "dry run: what would the policy decide, and by which rule (exit 3 if refused)", cmd_check
    )
    p.add_argument("action", choices=ACTIONS, metavar="ACTION", help=f"one of: {', '.join(ACTIONS)}")
    p.add_argument("--dataset", metavar="NAME", help="the dataset the action touches")
    dp = p.add_mutually_exclusive_group()
    dp.add_argument("--dp", dest="dp", action="store_true", default=None, help="a run with DP")
    dp.add_argument("--no-dp", dest="dp", action="store_false", help="a run without DP")
    p.add_argument("--epsilon", type=options.number(), metavar="E", help="the run's target epsilon")
    p.add_argument("--delta", type=options.number(below=1), metavar="D", help="the run's delta")
    p.add_argument("--model", metavar="M", help="model architecture (cnn, resnet18, bow, transformer)")
    p.add_argument("--target", metavar="ID", help="what the action is about (a user, a model id)")
    p.add_argument(
        "--approved-by",
        action="append",
        metavar="USER",
        default=[],
        help="for model.export: a user who would approve (repeatable; not authenticated in a dry run)",
    )
    p.add_argument("--as-user", metavar="U", help="decide for another user of this vault (their role)")
    p = action(
        "test", "run the [[test]] cases written in a policy FILE (needs no vault)", cmd_test, vault=False
    )
    p.add_argument("file", type=Path, metavar="FILE")


def iter_history(show: Mapping[str, Any]) -> Iterator[str]:
    """Lines describing a policy's history, newest first (for `policy show`)."""
    for entry in reversed(show.get("history") or []):
        yield (
            f"  replaced {entry.get('replaced')}: {entry.get('name')} {str(entry.get('sha256'))[:16]} "
            f"(set {entry.get('set')} by {entry.get('set_by') or 'init'})"
        )
