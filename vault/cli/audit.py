"""`strongroom audit show|verify|checkpoint`: the auditor's commands, which need no passphrase.

They read `<vault>/audit/` directly and never open the vault, so an officer without access to the
data can list, verify and save the signed record. `verify` exits 0 when intact, 4 otherwise.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

from vault.audit import AuditLog, parse_time
from vault.audit.checkpoint import verify_checkpoint
from vault.audit.epochs import fingerprint, key_pem, load_key_pem
from vault.audit.reader import parse_until
from vault.audit.witness import keygen, parse_vkey
from vault.cli import options
from vault.errors import IntegrityError, NotFound, StrongroomError, UsageError
from vault.storage.files import atomic_write
from vault.storage.layout import AUDIT_DIR
from vault.terminal import safe

EXIT_TAMPERED = IntegrityError.exit_code


def register(subparsers: Any) -> None:
    audit = subparsers.add_parser(
        "audit",
        help="show, verify and checkpoint the signed audit log (no passphrase needed)",
        description="Read the vault's signed audit log. These commands need no passphrase.",
    )
    actions = audit.add_subparsers(
        dest="audit_cmd", metavar="ACTION", required=True, parser_class=type(audit)
    )

    def action(name: str, help_text: str, handler: Any) -> argparse.ArgumentParser:
        p = actions.add_parser(
            name, help=help_text, description=help_text, parents=[options.VAULT_PATH, options.JSON]
        )
        p.set_defaults(func=handler)
        return p

    p = action("show", "list audit entries in order", cmd_show)
    p.add_argument("--since", metavar="T", help="only entries at or after T (RFC 3339 time or a date)")
    p.add_argument("--action", metavar="A", help="only this action, or a dotted prefix (e.g. dataset)")
    p.add_argument("--actor", metavar="U", help="only entries by this user")

    p = action("verify", "check every entry, the hash chain, the checkpoints and the public key", cmd_verify)
    trust_options(p)

    p = action(
        "keygen", "make a witness key: FILE (private, keep it off this machine) and FILE.pub", cmd_keygen
    )
    p.add_argument("--out", metavar="FILE", type=Path, required=True, help="where to write the private key")
    p.add_argument(
        "--name", metavar="NAME", help="the witness's name in its cosignatures (default: witness-<key id>)"
    )

    p = action(
        "cosign",
        "cosign the vault's latest checkpoint with a witness key, after checking the log extends the one "
        "it cosigned last (FILE.checkpoint)",
        cmd_cosign,
    )
    p.add_argument("--key", metavar="FILE", type=Path, required=True, help="the witness's private key file")

    p = action(
        "key",
        "write the log's initial sealing key (its first epoch's public key) for the auditor to keep",
        cmd_key,
    )
    p.add_argument("--out", metavar="FILE", type=Path, required=True, help="where to write it (PEM)")

    action("checkpoint", "print the latest signed checkpoint, to keep off this machine", cmd_checkpoint)

    p = action(
        "report",
        "an access report per dataset, person and period, from the log alone (exit 4 if the log fails verification)",
        cmd_report,
    )
    p.add_argument("--since", metavar="DATE", help="from this time or date on (RFC 3339 or YYYY-MM-DD, UTC)")
    p.add_argument("--until", metavar="DATE", help="up to this time, or the end of this date (UTC)")
    p.add_argument("--dataset", metavar="NAME", help="only what concerns this dataset")
    p.add_argument("--user", metavar="NAME", help="only what this person did, or was done to their key slot")
    p.add_argument(
        "--format", choices=("md", "html", "json"), default="md", help="Markdown (default), HTML or JSON"
    )
    p.add_argument(
        "--out", metavar="FILE", type=Path, help="write the report to FILE (default: standard output)"
    )
    trust_options(p)


def trust_options(p: argparse.ArgumentParser) -> None:
    """What an auditor brings from outside the vault, for `verify` and `report` alike."""
    p.add_argument(
        "--checkpoint",
        metavar="FILE",
        type=Path,
        help="a checkpoint saved earlier: proves the log was not cut back",
    )
    p.add_argument(
        "--pubkey", metavar="FILE", type=Path, help="the vault's public key (PEM) from a copy you trust"
    )
    p.add_argument(
        "--key",
        metavar="FILE",
        type=Path,
        help="the log's initial sealing key (from `audit key --out` at init): checks the whole epoch chain",
    )
    p.add_argument(
        "--witness",
        metavar="PUBFILE",
        type=Path,
        action="append",
        default=[],
        help="a witness's public key (FILE.pub); with --checkpoint FILE.checkpoint proves the log extends "
        "what it cosigned (repeatable)",
    )


def trusted(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of `AuditLog.verify` from the trust options, each file checked."""
    initial = None
    if args.key:
        try:
            initial = load_key_pem(_read_input(args.key, "initial key file"))
        except ValueError:
            raise UsageError(
                f"{args.key} is not an Ed25519 public key in PEM form",
                "pass the file `strongroom audit key --out` wrote",
            ) from None
    if args.witness and not args.checkpoint:
        raise UsageError(
            "--witness needs --checkpoint: the checkpoint that witness cosigned",
            "pass --checkpoint FILE.checkpoint (kept beside the witness key)",
        )
    return {
        "pubkey_pem": _read_input(args.pubkey, "public key file") if args.pubkey else None,
        "checkpoint_text": _read_input(args.checkpoint, "checkpoint file") if args.checkpoint else None,
        "initial_key": initial,
        "witnesses": tuple(
            parse_vkey(_read_input(p, "witness key").decode("ascii", "replace"), p) for p in args.witness
        ),
    }


def _audit_log(args: argparse.Namespace) -> AuditLog:
    vault = Path(options.vault_path(args))
    audit_dir = vault / AUDIT_DIR
    if not audit_dir.is_dir():
        raise NotFound(
            f"no audit log at {audit_dir}",
            "pass the vault's directory with --vault (or set STRONGROOM_VAULT)",
        )
    return AuditLog(audit_dir)


def _read_input(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(
            f"cannot read the {what} {path}: {exc.strerror}", "check the path and its permissions"
        ) from None


def _detail_text(detail: Any, width: int = 60) -> str:
    if not isinstance(detail, dict) or not detail:
        return ""
    text = safe(
        " ".join(
            f"{k}={v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, separators=(',', ':'))}"
            for k, v in detail.items()
        )
    )
    return text if len(text) <= width else text[: width - 1] + "\u2026"


def cmd_show(args: argparse.Namespace) -> int:
    log = _audit_log(args)
    places: list[int] = []  # each entry's line: verification names lines, not the seq a line claims
    entries = log.entries(since=args.since, action=args.action, actor=args.actor, positions=places)
    torn = log.torn_tail()
    if torn is not None:
        sys.stderr.write(
            f"strongroom: note: the log ends in a torn line ({torn[1]} bytes at byte {torn[0]}), not shown "
            "(hint: `strongroom audit verify` reports it; the next command repairs it)\n"
        )
    unsealed = log.unsealed()
    for entry, place in zip(entries, places, strict=True):
        entry["sealed"] = place not in unsealed
    if args.json:
        options.emit_json(entries)
        return 0
    if not entries:
        print(
            "no audit entries match"
            if (args.since or args.action or args.actor)
            else "the audit log is empty"
        )
        return 0
    rows = [
        [
            str(e.get("seq")),
            str(e.get("time", ""))[:19].replace("T", " "),
            str(e.get("actor")),
            str(e.get("role")),
            str(e.get("action")),
            safe(e.get("subject"))[:32],
            str(e.get("outcome")) + ("" if e["sealed"] else " \u2717UNSEALED"),
            _detail_text(e.get("detail")),
        ]
        for e in entries
    ]
    print(_table(rows, ["SEQ", "TIME (UTC)", "ACTOR", "ROLE", "ACTION", "SUBJECT", "OUTCOME", "DETAIL"]))
    return 0


def _table(rows: list[list[str]], headers: list[str]) -> str:
    rows = [[safe(cell) for cell in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *rows]
    )


def cmd_verify(args: argparse.Namespace) -> int:
    log = _audit_log(args)
    trust = trusted(args)
    initial = trust["initial_key"]
    report = log.verify(
        trust.pop("pubkey_pem"), trust.pop("checkpoint_text"), on_event=options.progress(args), **trust
    )
    if args.json:
        options.emit_json(report.to_json())
        return 0 if report.ok else EXIT_TAMPERED
    print(f"audit log   {log.log_path}")
    print(f"entries     {report.entries}   root {report.root}")
    source = {"given": f"--pubkey {args.pubkey}", "vault": "audit/pubkey.pem", "none": "no usable public key"}
    print(
        f"signed      first {report.signed_size} of {report.entries} entries (key: {source[report.key_source]})"
    )
    if report.epochs:
        checked = (
            f"matches --key {args.key}"
            if initial is not None and report.initial_key_checked
            else (
                f"NOT the given --key {args.key}" if initial is not None else "not checked: pass --key FILE"
            )
        )
        print(f"sealed      {report.epochs} epochs from initial key {report.initial_key} ({checked})")
    for finding in report.findings:
        print(f"\u2717 {finding.line()}")
    for note in report.notes:
        print(f"! note: {note}")
    first, *rest = report.message.split("\n")
    print(("\u2713 " if report.ok else "\u2717 ") + first)
    for part in rest:
        print(textwrap.fill(part, width=100, initial_indent="  ", subsequent_indent="  "))
    return 0 if report.ok else EXIT_TAMPERED


def cmd_keygen(args: argparse.Namespace) -> int:
    witness = keygen(args.out, args.name)
    if args.json:
        options.emit_json(
            {
                "name": witness.name,
                "private": str(args.out),
                "public": f"{args.out}.pub",
                "vkey": witness.vkey,
            }
        )
    else:
        print(
            f"witness {witness.name}: private key {args.out} (keep it off this machine), public key {args.out}.pub"
        )
        print(f"  {witness.vkey}")
    return 0


def cmd_cosign(args: argparse.Namespace) -> int:
    from vault.audit.cosign import cosign_vault

    done = cosign_vault(_audit_log(args), args.key)
    if args.json:
        options.emit_json(done)
    else:
        since = (
            "first cosignature"
            if done["previous_size"] is None
            else f"extends the {done['previous_size']} entries cosigned before"
        )
        print(f"cosigned {done['origin']} at {done['size']} entries as {done['witness']} ({since})")
        print(f"the witness's copy: {done['memory']}")
    return 0


def cmd_key(args: argparse.Namespace) -> int:
    log = _audit_log(args)
    raw = log.initial_key()
    if raw is None:
        raise NotFound(
            "this log has no sealing epochs yet",
            "the next command that opens the vault starts them; run one (e.g. `strongroom datasets`)",
        )
    atomic_write(args.out, key_pem(raw))
    if args.json:
        options.emit_json({"out": str(args.out), "fingerprint": fingerprint(raw)})
    else:
        print(f"initial sealing key {fingerprint(raw)}")
        print(
            f"wrote {args.out}: compare the fingerprint with the one `strongroom init` printed, keep the file"
        )
        print("off this machine, and check the log with `strongroom audit verify --key FILE`")
    return 0


def cmd_checkpoint(args: argparse.Namespace) -> int:
    log = _audit_log(args)
    text = log.latest_checkpoint()
    if text is None:
        raise NotFound(
            "this vault has no signed checkpoint yet",
            "one is written at the end of every command that opens the vault; run one (e.g. `strongroom datasets`)",
        )
    checked = None
    try:
        pubkey = log.pubkey_path.read_bytes()
        checked = verify_checkpoint(text, pubkey)
    except (OSError, StrongroomError) as exc:
        reason = exc.title if isinstance(exc, StrongroomError) else "audit/pubkey.pem cannot be read"
        sys.stderr.write(
            f"strongroom: warning: this checkpoint does not verify with audit/pubkey.pem: {reason} "
            "(hint: run `strongroom audit verify`)\n"
        )
    if args.json:
        options.emit_json(
            {**(checked.to_json() if checked else {}), "verified": checked is not None, "text": text}
        )
    else:
        sys.stdout.write(text)
    return 0 if checked is not None else EXIT_TAMPERED


def cmd_report(args: argparse.Namespace) -> int:
    from vault.audit.report import Scope, build_report, render_html, render_json, render_markdown
    from vault.audit.report.render import now_text, verdict

    # One report, then the process ends: the cycle collector stays off from here. A report holds no
    # reference cycles, and a collection once it is gathered walks a dict per entry for nothing
    # (a third of a second at a million entries).
    gc.disable()

    log = _audit_log(args)
    scope = Scope(
        since=parse_time(args.since) if args.since else None,
        until=parse_until(args.until) if args.until else None,
        dataset=args.dataset,
        user=args.user,
    )
    if scope.since and scope.until and scope.until < scope.since:
        raise UsageError(
            f"--until {args.until} is before --since {args.since}", "swap them, or widen the period"
        )
    report = build_report(
        log.dir,
        scope,
        generated=now_text(),
        **trusted(args),
    )
    fmt = "json" if args.json else args.format
    if fmt == "json":
        text = render_json(report)
    elif fmt == "html":
        text = render_html(report)
    else:
        text = render_markdown(report)
    if args.out:
        atomic_write(args.out, text.encode("utf-8"))
        first = verdict(report).splitlines()[0]  # the Markdown's first line, not rendered twice
        print(f"{first}\nwrote {args.out} ({fmt}, {len(text.encode())} bytes)")
    else:
        sys.stdout.write(text)
    return 0 if report["verification"]["ok"] else EXIT_TAMPERED
