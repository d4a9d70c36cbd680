"""The `strongroom` command: a thin face over `vault.Vault`.

Exit codes: 0 ok, 1 error, 2 usage, 3 refused by policy, 4 integrity failure, 5 authentication
failed, 6 network isolation unavailable. Errors go to stderr as one line with a hint.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any

from vault import cli_common as common
from vault.errors import StrongroomError, UsageError

FEATURE_MODULES = (
    "vault.cli_audit",
    "vault.cli_net",
    "vault.cli_train",
    "vault.cli_policy",
    "vault.cli_export",
    "vault.cli_tui",
)
# Commands that never touch the vault's secrets or that must see the host as it is.
NO_ISOLATION = {"audit", "netcheck", "tui", None}


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # usage errors: one line with a hint, exit 2
        self.print_usage(sys.stderr)
        sys.stderr.write(f"strongroom: {message} (hint: `{self.prog} --help` shows the options)\n")
        raise SystemExit(2)


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
    path = common.vault_path(args)
    pw = common.passphrase(args, prompt=f"New passphrase for {common.user(args)}", confirm=True)
    with Vault.create(
        path, user=common.user(args), passphrase=pw, policy_text=policy_text, policy_source=source
    ) as v:
        info = {
            "vault": str(path),
            "vault_id": v.vault_id,
            "admin": v.user,
            "policy": v.policy.name,
            "policy_sha256": v.policy.sha256,
        }
    if args.json:
        common.emit_json(info)
    else:
        print(
            f"created vault {path} (id {info['vault_id']}), admin {info['admin']!r}, policy {info['policy']}"
        )
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from vault.ingest import ImportOptions

    text_column: Any = args.text_column
    label_column: Any = args.label_column
    if args.no_header:
        text_column = _index(text_column, "--text-column")
        label_column = _index(label_column, "--label-column")
    quoting = {"auto": None, "csv": True, "none": False}[args.quoting]
    options = ImportOptions(
        fmt=args.format,
        labels=args.labels,
        image_size=args.image_size,
        text_column=text_column,
        label_column=label_column,
        header=not args.no_header,
        quoting=quoting,
        workers=args.workers,
    )
    with common.open_vault(args) as v:
        info = v.import_dataset(
            args.source,
            name=args.name,
            sensitivity=args.sensitivity,
            options=options,
            on_event=common.progress(args),
        )
    if args.json:
        common.emit_json(info)
    else:
        print(
            f"imported {info['name']} v{info['version']}: {info['samples']} {info['kind']} records, "
            f"{len(info['classes'])} classes, {info['sensitivity']} sensitivity, {info['digest'][:19]}"
        )
    return 0


def _index(value: Any, flag: str) -> Any:
    if value is None:
        return None
    parts = str(value).split(",")
    if not all(p.strip().isdigit() for p in parts):
        raise UsageError(
            f"{flag} must be a 0-based column index with --no-header (got {value!r})", f"e.g. {flag} 1"
        )
    return int(parts[0]) if len(parts) == 1 else ",".join(p.strip() for p in parts)


def cmd_datasets(args: argparse.Namespace) -> int:
    with common.open_vault(args) as v:
        rows = v.datasets()
    if args.json:
        common.emit_json(rows)
        return 0
    if not rows:
        print("no datasets yet (hint: `strongroom import SOURCE --name NAME`)")
        return 0
    print(
        common.table(
            [
                [
                    r["name"],
                    str(r["version"]),
                    r["kind"],
                    str(r["samples"]),
                    str(len(r["classes"])),
                    r["sensitivity"],
                    r["digest"][7:19],
                ]
                for r in rows
            ],
            ["NAME", "VER", "KIND", "SAMPLES", "CLASSES", "SENSITIVITY", "DIGEST"],
        )
    )
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with common.open_vault(args) as v:
        info = v.dataset(args.name, version=args.version)
        if args.sample:
            info["sample"] = v.sample(args.name, args.sample, version=args.version)["records"]
    if args.json:
        common.emit_json(info)
        return 0
    print(
        f"{info['name']} v{info['version']} ({info['kind']}, {info['format']}, {info['sensitivity']} sensitivity)"
    )
    print(f"  samples  {info['samples']}   shape {info['shape']}   digest {info['digest']}")
    print(f"  created  {info['created']}   versions {info['versions']}")
    total = max(1, info["samples"])
    for cls, count in info["counts"].items():
        bar = "#" * int(30 * count / total)
        print(f"  {cls[:20]:<20} {count:>7}  {bar}")
    for rec in info.get("sample", []):
        if "text" in rec:
            print(f"  [{rec['index']}] {rec['label']}: {rec['text'][:100]}")
        else:
            print(
                f"  [{rec['index']}] {rec['label']}: image {len(rec['pixels'])}x{len(rec['pixels'][0])}x"
                f"{len(rec['pixels'][0][0])}"
            )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    with common.open_vault(args) as v:
        report = v.verify(on_event=common.progress(args))
    if args.json:
        common.emit_json(report)
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
            f"{report['models']} models authenticated, catalog and header intact"
            if report["ok"]
            else f"{word}: {sum(f['severity'] == 'error' for f in report['findings'])} problem(s)"
        )
    return 0 if report["ok"] else 4


def cmd_delete(args: argparse.Namespace) -> int:
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError(f"deleting {args.name!r} needs confirmation", "pass --yes in scripts")
        typed = input(
            f"This destroys {args.name!r} and its keys; it cannot be undone.\nType the dataset's name to confirm: "
        )
        if typed.strip() != args.name:
            print("names differ; nothing was deleted", file=sys.stderr)
            return 1
    with common.open_vault(args) as v:
        result = v.delete_dataset(args.name)
    if args.json:
        common.emit_json(result)
    else:
        print(
            f"deleted {result['name']}: {result['versions']} version(s), keys destroyed, "
            f"{result['objects_removed']} objects removed"
        )
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    with common.open_vault(args) as v:
        if args.keys_cmd == "list":
            rows = v.keys_list()
            if args.json:
                common.emit_json(rows)
            else:
                print(
                    common.table(
                        [
                            [
                                r["user"],
                                r["role"],
                                r["created"][:19],
                                f"argon2id m={r['kdf']['memory_kib']}KiB t={r['kdf']['iterations']} "
                                f"p={r['kdf']['lanes']}",
                            ]
                            for r in rows
                        ],
                        ["USER", "ROLE", "CREATED", "KDF"],
                    )
                )
            return 0
        if args.keys_cmd == "add":
            result = v.keys_add(
                args.name, args.role, common.new_passphrase(args, f"Passphrase for {args.name}")
            )
        elif args.keys_cmd == "remove":
            result = v.keys_remove(args.name)
        elif args.keys_cmd == "passwd":
            result = v.keys_passwd(common.new_passphrase(args))
        else:
            result = v.keys_rotate()
    if args.json:
        common.emit_json(result)
    else:
        print(", ".join(f"{k}: {val}" for k, val in result.items()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="strongroom",
        description="Strongroom: an encrypted vault for sensitive records; "
        "private training on this host; models out, never data.",
    )
    parser.add_argument("--version", action="version", version="strongroom 0.1.0")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    def command(name: str, help_text: str, func: Any) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        common.add_vault_options(p)
        p.add_argument("--json", action="store_true", help="print JSON for scripts")
        p.set_defaults(func=func)
        return p

    p = command("init", "create a new vault", cmd_init)
    p.add_argument("--policy", metavar="FILE", help="policy file (default: policies/default.toml)")

    p = command("import", "import a dataset (image folder, IDX, CSV/TSV/JSONL) as a new version", cmd_import)
    p.add_argument("source", type=Path, help="folder of class sub-folders, IDX images file, or text file")
    p.add_argument("--name", required=True, help="dataset name")
    p.add_argument(
        "--sensitivity",
        choices=("low", "medium", "high"),
        default="high",
        help="how sensitive the records are (default: high)",
    )
    p.add_argument(
        "--format", choices=("image-folder", "idx", "csv", "tsv", "jsonl"), help="skip auto-detection"
    )
    p.add_argument(
        "--labels", type=Path, metavar="LABELS.idx", help="IDX labels file (with an IDX images file)"
    )
    p.add_argument(
        "--image-size", type=int, metavar="N", help="resize images to N x N (default: most common size)"
    )
    p.add_argument(
        "--text-column",
        metavar="COL",
        help="text column: name, or 0-based index with --no-header (several joined with commas, e.g. 1,2)",
    )
    p.add_argument(
        "--label-column", metavar="COL", help="label column: name, or 0-based index with --no-header"
    )
    p.add_argument("--no-header", action="store_true", help="the text file has no header row")
    p.add_argument(
        "--quoting",
        choices=("auto", "csv", "none"),
        default="auto",
        help="TSV quoting: csv (RFC 4180 quotes), none (quotes are ordinary characters), "
        "auto (csv when the whole file parses that way; the default)",
    )
    p.add_argument("--workers", type=int, metavar="N", help="image decoding processes (default: automatic)")

    command("datasets", "list datasets", cmd_datasets)
    p = command("show", "show a dataset's metadata (records only with --sample, an audited read)", cmd_show)
    p.add_argument("name")
    p.add_argument("--version", type=int, dest="version", metavar="V", help="a version other than the latest")
    p.add_argument("--sample", type=int, metavar="N", default=0, help="also show N records (audited)")
    command("verify", "authenticate every object and the catalog", cmd_verify)
    p = command("delete", "delete a dataset and destroy its keys", cmd_delete)
    p.add_argument("name")
    p.add_argument("--yes", action="store_true", help="do not ask to type the name (for scripts)")

    keys_parser = sub.add_parser(
        "keys", help="manage users' key slots", description="manage users' key slots"
    )
    ksub = keys_parser.add_subparsers(dest="keys_cmd", metavar="ACTION", required=True, parser_class=Parser)

    def key_cmd(name: str, help_text: str) -> argparse.ArgumentParser:
        p = ksub.add_parser(name, help=help_text, description=help_text)
        common.add_vault_options(p)
        p.add_argument("--json", action="store_true", help="print JSON for scripts")
        p.add_argument(
            "--new-passphrase-file", type=Path, metavar="FILE", help="read the new passphrase from FILE"
        )
        p.set_defaults(func=cmd_keys)
        return p

    key_cmd("list", "list key slots")
    p = key_cmd("add", "add a user's key slot")
    p.add_argument("name")
    p.add_argument("--role", required=True, choices=("admin", "operator", "auditor"))
    p = key_cmd("remove", "remove a user's key slot")
    p.add_argument("name")
    key_cmd("passwd", "change your passphrase")
    key_cmd("rotate", "replace the master key and rewrap every data key")

    for module in FEATURE_MODULES:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                continue
            raise
        mod.register(sub, common)
    return parser


def paths_to_keep(args: argparse.Namespace) -> list[Path]:
    """Paths the command reads or writes, kept reachable inside the private /tmp and /run."""
    paths = [common.vault_path(args)]
    outputs = {"out"}  # may not exist yet: kept (created) so what is written there survives
    for name, value in vars(args).items():
        if name == "policy" and isinstance(value, str):
            value = Path(value)
        if isinstance(value, Path):
            given, real = value.expanduser().absolute(), value.expanduser().resolve()
            if real.exists() or name in outputs:
                paths.append(real)
                if given != real:  # reached through a symbolic link: keep the name the command uses too
                    paths.append(given)
    return paths


def report_error(exc: StrongroomError) -> None:
    sys.stderr.write(f"strongroom: {exc.title}" + (f" (hint: {exc.hint})" if exc.hint else "") + "\n")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.command not in NO_ISOLATION:
            from vault import netguard

            netguard.isolate_session(keep=paths_to_keep(args))
        return int(args.func(args) or 0)
    except StrongroomError as exc:
        report_error(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write(
            "strongroom: interrupted (hint: the vault is as it was before the command, or after it)\n"
        )
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
