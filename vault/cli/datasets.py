"""`strongroom import | datasets | show | delete`: datasets in the vault."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from vault.cli import options
from vault.errors import UsageError
from vault.terminal import safe
from vault.vocabulary import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_RECORDS,
    DEFAULT_SENSITIVITY,
    MAX_IMAGE_SIDE,
    SENSITIVITIES,
)


def register(sub: Any) -> None:
    def command(name: str, help_text: str, func: Any) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name, help=help_text, description=help_text, parents=[*options.VAULT, options.JSON]
        )
        p.set_defaults(func=func)
        return p

    p = command("import", "import a dataset (image folder, IDX, CSV/TSV/JSONL) as a new version", cmd_import)
    p.add_argument("source", type=Path, help="folder of class sub-folders, IDX images file, or text file")
    p.add_argument("--name", required=True, help="dataset name")
    p.add_argument(
        "--sensitivity",
        choices=SENSITIVITIES,
        default=DEFAULT_SENSITIVITY,
        help="how sensitive the records are (default: high)",
    )
    p.add_argument(
        "--format", choices=("image-folder", "idx", "csv", "tsv", "jsonl"), help="skip auto-detection"
    )
    p.add_argument(
        "--labels", type=Path, metavar="LABELS.idx", help="IDX labels file (with an IDX images file)"
    )
    p.add_argument(
        "--image-size",
        type=options.whole(1, MAX_IMAGE_SIDE),
        metavar="N",
        help="resize images to N x N (default: most common size)",
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
    p.add_argument(
        "--workers",
        type=options.whole(1, 64),
        metavar="N",
        help="image decoding processes (default: automatic)",
    )
    p.add_argument(
        "--max-records",
        type=options.whole(1),
        default=DEFAULT_MAX_RECORDS,
        metavar="N",
        help=f"refuse a source of more than N records (default {DEFAULT_MAX_RECORDS:,})",
    )
    p.add_argument(
        "--max-bytes",
        type=options.size,
        default=DEFAULT_MAX_BYTES,
        metavar="SIZE",
        help="refuse a source whose bytes on disk or decoded records exceed SIZE, e.g. 500MB, 40GiB "
        f"(default {options.human_size(DEFAULT_MAX_BYTES)})",
    )

    command("datasets", "list datasets", cmd_datasets)
    p = command("show", "show a dataset's metadata (records only with --sample, an audited read)", cmd_show)
    p.add_argument("name")
    p.add_argument(
        "--version",
        type=options.whole(1),
        dest="version",
        metavar="V",
        help="a version other than the latest",
    )
    p.add_argument(
        "--sample", type=options.whole(1), metavar="N", default=0, help="also show N records (audited)"
    )
    p = command("delete", "delete a dataset and destroy its keys", cmd_delete)
    p.add_argument("name")
    p.add_argument("--yes", action="store_true", help="do not ask to type the name (for scripts)")


def cmd_import(args: argparse.Namespace) -> int:
    from vault.ingest import ImportOptions

    text_column: Any = args.text_column
    label_column: Any = args.label_column
    if args.no_header:
        text_column = _index(text_column, "--text-column")
        label_column = _index(label_column, "--label-column")
    quoting = {"auto": None, "csv": True, "none": False}[args.quoting]
    import_options = ImportOptions(
        fmt=args.format,
        labels=args.labels,
        image_size=args.image_size,
        text_column=text_column,
        label_column=label_column,
        header=not args.no_header,
        quoting=quoting,
        workers=args.workers,
        max_records=args.max_records,
        max_bytes=args.max_bytes,
    )
    with options.open_vault(args) as v:
        info = v.import_dataset(
            args.source,
            name=args.name,
            sensitivity=args.sensitivity,
            options=import_options,
            on_event=options.progress(args),
        )
    if args.json:
        options.emit_json(info)
    else:
        print(
            f"imported {safe(info['name'])} v{info['version']}: {info['samples']} {info['kind']} records, "
            f"{len(info['classes'])} classes, {info['sensitivity']} sensitivity, {info['digest'][:19]}"
        )
        for overlap in info.get("overlaps", []):
            print(f"  {overlap['message']}")
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
    with options.open_vault(args) as v:
        rows = v.datasets()
    if args.json:
        options.emit_json(rows)
        return 0
    if not rows:
        print("no datasets yet (hint: `strongroom import SOURCE --name NAME`)")
        return 0
    print(
        options.table(
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
    with options.open_vault(args) as v:
        info = v.dataset(args.name, version=args.version)
        if args.sample:
            info["sample"] = v.sample(args.name, args.sample, version=args.version)["records"]
    if args.json:
        options.emit_json(info)
        return 0
    print(
        f"{safe(info['name'])} v{info['version']} ({info['kind']}, {info['format']}, "
        f"{info['sensitivity']} sensitivity)"
    )
    print(f"  samples  {info['samples']}   shape {info['shape']}   digest {info['digest']}")
    print(f"  created  {info['created']}   versions {info['versions']}")
    total = max(1, info["samples"])
    for cls, count in info["counts"].items():
        bar = "#" * int(30 * count / total)
        print(f"  {safe(cls)[:20]:<20} {count:>7}  {bar}")
    for rec in info.get("sample", []):
        if "text" in rec:
            print(f"  [{rec['index']}] {safe(rec['label'])}: {safe(rec['text'])[:100]}")
        else:
            print(
                f"  [{rec['index']}] {safe(rec['label'])}: image {len(rec['pixels'])}x{len(rec['pixels'][0])}x"
                f"{len(rec['pixels'][0][0])}"
            )
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError(f"deleting {args.name!r} needs confirmation", "pass --yes in scripts")
        typed = input(
            f"This destroys {safe(args.name)!r} and its keys; it cannot be undone.\nType the dataset's name to confirm: "
        )
        if typed.strip() != args.name:
            print("names differ; nothing was deleted", file=sys.stderr)
            return 1
    with options.open_vault(args) as v:
        result = v.delete_dataset(args.name)
    if args.json:
        options.emit_json(result)
    else:
        print(
            f"deleted {safe(result['name'])}: {result['versions']} version(s), keys destroyed, "
            f"{result['objects_removed']} objects removed"
        )
    return 0
