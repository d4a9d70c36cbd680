"""`strongroom selftest`: commissioning checks of this install on this host.

Each step runs the installed product as an operator would and says whether it passed, how long it
took and what it found: the published known-answer vectors shipped in the package, a vault round trip
in a temporary directory (the real commands as child processes, with their isolation), a tiny DP
training whose epsilon is recomputed with Opacus' accountant, `audit verify`, a tamper that must be
found, the network drill (`netcheck`) and the sandbox drill (`sandbox-check`). Nothing is left
behind: the temporary directory is removed whatever happens.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vault.errors import StrongroomError
from vault.selftest import known_answers

# The product, as a child process: isolated mode, so that neither the working directory nor the
# user's site-packages nor PYTHON* variables can put code of theirs on the path.
PRODUCT = (sys.executable, "-I", "-m", "vault.cli")
# Variables that could carry a passphrase into a step's children; the steps use a file instead.
SECRET_VARIABLES = ("STRONGROOM_PASSPHRASE", "STRONGROOM_NEW_PASSPHRASE")
STEP_TIMEOUT_S = 600
RECORDS = 400
TRAIN_EPSILON = 2.0


@dataclass
class Step:
    name: str
    passed: bool
    seconds: float
    detail: str


class StepFailed(Exception):
    """A step's check did not hold; the message says what was found."""


class Room:
    """A temporary vault and the commands run on it, removed by `close`."""

    def __init__(self, product: Sequence[str]) -> None:
        self.product = list(product)
        self.root = Path(tempfile.mkdtemp(prefix="strongroom-selftest-"))
        self.vault = self.root / "vault"
        self.passphrase_file = self.root / "passphrase"
        fd = os.open(self.passphrase_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(24) + "\n")
        self.env = {k: v for k, v in os.environ.items() if k not in SECRET_VARIABLES}
        self.env.pop("STRONGROOM_VAULT", None)
        self.env.pop("STRONGROOM_USER", None)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def run(
        self, *args: str, vault: bool = True, passphrase: bool = True
    ) -> subprocess.CompletedProcess[str]:
        argv = [*self.product, *args]
        if vault:
            argv += ["--vault", str(self.vault)]
        if passphrase:
            argv += ["--passphrase-file", str(self.passphrase_file)]
        return subprocess.run(
            argv,
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            timeout=STEP_TIMEOUT_S,
        )

    def expect(self, code: int, *args: str, **kw: bool) -> subprocess.CompletedProcess[str]:
        done = self.run(*args, **kw)
        if done.returncode != code:
            said = (done.stderr.strip() or done.stdout.strip()).splitlines()
            last = said[-1] if said else "nothing"
            raise StepFailed(f"`strongroom {args[0]}` exited {done.returncode}, not {code}: {last}")
        return done

    def json(self, *args: str, **kw: bool) -> Any:
        done = self.run(*args, "--json", **kw)
        try:
            out = json.loads(done.stdout)
        except json.JSONDecodeError:
            said = done.stderr.strip().splitlines()
            raise StepFailed(
                f"`strongroom {args[0]}` exited {done.returncode} without JSON: "
                + (said[-1] if said else "no output")
            ) from None
        return done.returncode, out


def write_records(path: Path) -> None:
    """Two classes of short texts, generated (no record of anyone's)."""
    words = (("alpha", "beta", "gamma", "delta"), ("omega", "sigma", "tau", "rho"))
    rng = secrets.SystemRandom()
    with path.open("w") as f:
        f.write("text\tlabel\n")
        for i in range(RECORDS):
            f.write(" ".join(rng.choice(words[i % 2]) for _ in range(6)) + f"\t{'ab'[i % 2]}\n")


def vault_round_trip(room: Room) -> str:
    room.expect(0, "init", "--json")
    write_records(room.root / "records.tsv")
    code, imported = room.json("import", "--name", "selftest", str(room.root / "records.tsv"))
    if code != 0 or imported.get("samples") != RECORDS:
        raise StepFailed(f"import exited {code} with {imported.get('samples')} records, not {RECORDS}")
    code, verified = room.json("verify")
    if code != 0:
        raise StepFailed(f"verify of a fresh vault exited {code}: {verified}")
    return f"init, import of {RECORDS} records, verify: intact"


def dp_training(room: Room) -> str:
    code, card = room.json("train", "selftest", "--dp", "--epsilon", str(TRAIN_EPSILON), "--epochs", "2")
    if code != 0:
        raise StepFailed(f"train exited {code}")
    from opacus.accountants import create_accountant

    accountant = create_accountant(card["accountant"])
    accountant.history = [(card["noise_multiplier"], card["sample_rate"], card["steps"])]
    again = float(accountant.get_epsilon(delta=card["delta"]))
    if not card["dp"] or abs(again - card["epsilon"]) > 1e-9 * max(1.0, again):
        raise StepFailed(
            f"the card says epsilon {card['epsilon']}, Opacus' {card['accountant']} says {again}"
        )
    if card["epsilon"] > TRAIN_EPSILON * (1 + 1e-9):
        raise StepFailed(f"epsilon {card['epsilon']} is over the target {TRAIN_EPSILON}")
    return (
        f"epsilon {card['epsilon']:.4f} <= {TRAIN_EPSILON} recomputed by Opacus' {card['accountant']} "
        f"accountant (noise {card['noise_multiplier']:.4f}, q {card['sample_rate']}, {card['steps']} steps)"
    )


def audit_verify(room: Room) -> str:
    code, report = room.json("audit", "verify", passphrase=False)
    if code != 0:
        raise StepFailed(f"audit verify exited {code} on a fresh log: {report}")
    entries = report.get("entries", report.get("size", "?"))
    return f"the log's {entries} entries, chain and signatures intact"


def tamper(room: Room) -> str:
    objects = sorted(p for p in (room.vault / "objects").rglob("*") if p.is_file())
    if not objects:
        raise StepFailed("the vault holds no object to tamper with")
    victim = objects[len(objects) // 2]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    room.expect(4, "verify")
    return f"one bit flipped in {victim.relative_to(room.vault)}: verify exit 4, as it must"


def drill(room: Room, command: str) -> str:
    code, report = room.json(command, "--no-record", vault=False, passphrase=False)
    attempts = report.get("attempts") or report.get("probe", {}).get("attempts", [])
    open_ = [a["name"] for a in attempts if not a.get("blocked")]
    if code != 0 or open_ or not attempts:
        raise StepFailed(f"{command} exited {code}; not blocked: {', '.join(open_) or 'none listed'}")
    return f"{len(attempts)} attempts, all blocked ({report.get('mode', 'mode not stated')})"


def _vectors(family: str, check: Callable[[Path], known_answers.Outcome]) -> Callable[[Room], str]:
    def step(room: Room) -> str:
        outcome = check(known_answers.VECTORS)
        if outcome.failed or not outcome.ran:
            raise StepFailed(
                f"{len(outcome.failed)} of {outcome.ran} disagree: {', '.join(outcome.failed[:5])}"
            )
        return f"{outcome.ran} vectors agree"

    step.__name__ = family
    return step


STEPS: list[tuple[str, Callable[[Room], str]]] = [
    *(
        (f"known answers: {family}", _vectors(family, check))
        for family, check in known_answers.FAMILIES.items()
    ),
    ("vault round trip (init, import, verify)", vault_round_trip),
    ("DP training, epsilon checked", dp_training),
    ("audit verify", audit_verify),
    ("tamper found (verify exit 4)", tamper),
    ("network drill (netcheck)", lambda room: drill(room, "netcheck")),
    ("sandbox drill (sandbox-check)", lambda room: drill(room, "sandbox-check")),
]


def run(on_step: Callable[[Step], None] | None = None, product: Sequence[str] = PRODUCT) -> dict[str, Any]:
    """Every step in order (a failed step does not stop the others, except that steps on the vault
    need the round trip); returns {"passed", "steps": [{"name", "passed", "seconds", "detail"}]}."""
    steps: list[Step] = []
    room = Room(product)
    try:
        vault_ok = True
        for name, action in STEPS:
            started = time.monotonic()
            needs_vault = action in (dp_training, audit_verify, tamper)
            if needs_vault and not vault_ok:
                step = Step(name, False, 0.0, "not run: the vault round trip failed")
            else:
                try:
                    step = Step(name, True, 0.0, action(room))
                except (StepFailed, StrongroomError, subprocess.TimeoutExpired, OSError) as exc:
                    step = Step(name, False, 0.0, str(exc))
                step.seconds = round(time.monotonic() - started, 2)
            if action is vault_round_trip:
                vault_ok = step.passed
            steps.append(step)
            if on_step:
                on_step(step)
    finally:
        room.close()
    return {"passed": all(s.passed for s in steps), "steps": [asdict(s) for s in steps]}
