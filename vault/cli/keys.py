"""`strongroom keys list | add | remove | passwd | rotate`: users' key slots."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from vault.cli import options
from vault.vocabulary import ROLES


def register(sub: Any) -> None:
    keys_parser = sub.add_parser(
        "keys", help="manage users' key slots", description="manage users' key slots"
    )
    ksub = keys_parser.add_subparsers(
        dest="keys_cmd", metavar="ACTION", required=True, parser_class=type(keys_parser)
    )

    def key_cmd(name: str, help_text: str) -> argparse.ArgumentParser:
        p = ksub.add_parser(
            name, help=help_text, description=help_text, parents=[*options.VAULT, options.JSON]
        )
        p.add_argument(
            "--new-passphrase-file", type=Path, metavar="FILE", help="read the new passphrase from FILE"
        )
        p.set_defaults(func=cmd_keys)
        return p

    key_cmd("list", "list key slots")
    p = key_cmd("add", "add a user's key slot")
    p.add_argument("name")
    p.add_argument("--role", required=True, choices=ROLES)
    p = key_cmd("remove", "remove a user's key slot")
    p.add_argument("name")
    key_cmd("passwd", "change your passphrase")
    key_cmd("rotate", "replace the master key and rewrap every data key")


def cmd_keys(args: argparse.Namespace) -> int:
    with options.open_vault(args) as v:
        if args.keys_cmd == "list":
            rows = v.keys_list()
            if args.json:
                options.emit_json(rows)
            else:
                print(
                    options.table(
                        [
                            [
                                r["user"],
                                r["role"],
                                r["created"][:19],
                                f"argon2id m={r['kdf']['memory_kib']}KiB t={r['kdf']['iterations']} "
                                f"p={r['kdf']['lanes']}",
                                (r["fingerprint"] or "-")[:23],
                            ]
                            for r in rows
                        ],
                        ["USER", "ROLE", "CREATED", "KDF", "SIGNING KEY"],
                    )
                )
                if rows and rows[0]["authority_fingerprint"]:
                    print(f"authority {rows[0]['authority_fingerprint']} (signs the users, roles and policy)")
            return 0
        if args.keys_cmd == "add":
            result = v.keys_add(
                args.name, args.role, options.new_passphrase(args, f"Passphrase for {args.name}")
            )
        elif args.keys_cmd == "remove":
            result = v.keys_remove(args.name)
        elif args.keys_cmd == "passwd":
            result = v.keys_passwd(options.new_passphrase(args))
        else:
            result = v.keys_rotate()
    if args.json:
        options.emit_json(result)
    else:
        print(", ".join(f"{k}: {val}" for k, val in result.items()))
    return 0
