"""`strongroom init | verify`: create a vault, and authenticate everything in it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from vault.audit.epochs import fingerprint as audit_fingerprint
from vault.cli import options
from vault.errors import UsageError


def register(sub: Any) -> None:
    p = sub.add_parser(
        "init",
        help="create a new vault",
        description="create a new vault",
        parents=[*options.VAULT, options.JSON],
    )
    p.add_argument("--policy", metavar="FILE", help="policy file (default: policies/default.toml)")
    p.set_defaults(func=cmd_init)
    p = sub.add_parser(
        "verify",
        help="authenticate every object and the catalog",
        description="authenticate every object and the catalog",
        parents=[*options.VAULT, options.JSON],
    )
    p.set_defaults(func=cmd_verify)


def cmd_init(args: argparse.Namespace) -> int:
    from vault.door import Vault

    policy_text = None
    source = "policies/default.toml"
    if args.policy:
        try:
            policy_text = Path(args.policy).read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(
                f"cannot read policy file {args.policy}: {exc}", "check the path (e.g. policies/strict.toml)"
            ) from None
        source = str(args.policy)
    path = options.vault_path(args)
    pw = options.passphrase(args, prompt=f"New passphrase for {options.user(args)}", confirm=True)
    with Vault.create(
        path, user=options.user(args), passphrase=pw, policy_text=policy_text, policy_source=source
    ) as v:
        info = {
            "vault": str(path),
            "vault_id": v.vault_id,
            "admin": v.user,
            "policy": v.policy.name,
            "policy_sha256": v.policy.sha256,
            "authority_fingerprint": v.authority_fingerprint,
            "audit_key_fingerprint": audit_fingerprint(v.audit.initial_key() or b""),
        }
    if args.json:
        options.emit_json(info)
    else:
        print(
            f"created vault {path} (id {info['vault_id']}), admin {info['admin']!r}, policy {info['policy']}\n"
            f"authority {info['authority_fingerprint']}\n"
            "  keep this fingerprint with the room's records: it is how anyone checks this vault's header, "
            "users and exported approvals\n"
            f"audit key {info['audit_key_fingerprint']}\n"
            "  the log's initial sealing key: save it with `strongroom audit key --out FILE` and check the log "
            "with `strongroom audit verify --key FILE`"
        )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    with options.open_vault(args) as v:
        report = v.verify(on_event=options.progress(args))
    if args.json:
        options.emit_json(report)
    else:
        for f in report["findings"]:
            mark = "✗" if f["severity"] == "error" else "!"
            print(
                f"{mark} {f['severity']}: {f['object']} ({f['kind']}): expected {f['expected']}, found {f['found']}: "
                f"{f['message']}"
            )
        word = "✓ verified" if report["ok"] else "✗ FAILED"
        print(
            f"{word}: {report['objects_checked']} objects in {report['datasets']} datasets and "
            f"{report['models']} models "
            + (
                "authenticated"
                if report["scope"] == "full"
                else "present with their recorded sizes (this role holds no data key to authenticate them)"
            )
            + ", catalog and header intact"
            if report["ok"]
            else f"{word}: {sum(f['severity'] == 'error' for f in report['findings'])} problem(s)"
        )
    return 0 if report["ok"] else 4
