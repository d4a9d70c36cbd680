"""Calibrating a run's noise in another process while this one loads torch.

A DP run needs its noise multiplier before it can be planned, and the search for it (an RDP
bracket, then a few evaluations of the named accountant, SciPy's imports included) takes about half
a second. Loading torch takes longer, and nothing in the search needs torch: `start` hands the
search to a second Python process (`python -I`, this package's own code, none of the command's
environment, no secret; its numbers on a pipe) and `Pending.collect` reads its answer once torch
has loaded. On two cores the search then costs the run nothing. A `train` command starts the
worker even earlier (`prestart`), so that it loads its accountants while the vault unlocks.

The worker runs `accounting.calibrate`, the same function the run would call, at the same
arguments, and prints its Calibration as JSON; the accountant's epsilon at the chosen noise comes
with it and goes into the process's cache of exact epsilons, so the card's epsilon is still the
named accountant's, exactly. Where the dataset's ledger holds earlier runs, the worker also
composes them with the planned run (`ledger.compose`, as the policy's projection does), and that
epsilon joins the cache under the history it was computed for. An answer is taken only if it has
its form and keeps the target (epsilon at most the asked one); a worker that fails, hangs past
WAIT_S or answers otherwise leaves the run to calibrate itself, as it did before. Whatever the
parent asks that the worker did not compute, it computes itself. In the worker, Opacus'
accountants load without torch (`opacus_parts.accountants_only`).
"""

from __future__ import annotations

import atexit
import json
import math
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

from vault.privacy import accounting, ledger, opacus_parts

History = list[tuple[float, float, int]]

ROOT = str(Path(__file__).resolve().parents[2])  # the folder holding the `vault` package
# The worker's whole environment: nothing of the command's (no passphrase, no PYTHON* variable),
# and one thread for numpy's BLAS, whose idle threads otherwise spin on the core torch is being
# imported on (the worker took 1.3 s of CPU in 0.9 s; with one thread, 0.7 s)
WORKER_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
WAIT_S = 120.0  # a worker still searching by then is stopped, and the run searches itself
WORKER = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from vault.privacy.calibration import worker; raise SystemExit(worker(sys.stdin))"
)
_lock = threading.Lock()
_waiting: subprocess.Popen | None = None  # a worker started ahead (`prestart`), not yet asked


def _spawn() -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-I", "-c", WORKER, ROOT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=dict(WORKER_ENV),
        cwd="/",
        close_fds=True,
    )


def prestart() -> None:
    """Start a worker now, before the run's numbers are known (a `train --dp` command does, before
    it unlocks the vault): it loads its accountants meanwhile and waits for its request on its pipe.
    One that is never asked reads the end of its pipe when this process closes it, and leaves."""
    global _waiting
    with _lock:
        if _waiting is None:
            try:
                _waiting = _spawn()
            except OSError:
                return
            atexit.register(_dismiss, _waiting)


def _dismiss(process: subprocess.Popen) -> None:
    if process.poll() is None and process.stdin is not None:
        process.stdin.close()  # end of input: the worker leaves without an answer
        process.stdin = None


def _take_waiting() -> subprocess.Popen | None:
    global _waiting
    with _lock:
        process, _waiting = _waiting, None
    return process if process is not None and process.poll() is None else None


class Pending:
    """A calibration under way in a worker process."""

    def __init__(
        self, args: tuple[float, float, float, int, str], prior: list[History], ledger_delta: float | None
    ) -> None:
        self.args, self.prior, self.ledger_delta = args, prior, ledger_delta
        request = {"calibrate": list(args), "prior": prior, "ledger_delta": ledger_delta}
        self.process = _take_waiting() or _spawn()
        # on a pipe, not the command line: /proc/PID/cmdline is anyone's to read, and the ledger's
        # histories are the vault's business
        try:
            self.process.stdin.write(json.dumps(request).encode())
            self.process.stdin.close()
            self.process.stdin = None  # written and closed: communicate() has nothing to send
        except OSError:
            self.process.kill()
            self.process.wait()
            raise

    def collect(self) -> accounting.Calibration | None:
        """The worker's calibration, now also in this process's caches; None where it gave none."""
        try:
            out, _ = self.process.communicate(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()
            return None
        if self.process.returncode != 0:
            return None
        try:
            answer = json.loads(out)
            found = accounting.Calibration(
                float(answer["noise_multiplier"]), float(answer["epsilon"]), int(answer["evaluations"])
            )
        except (ValueError, KeyError, TypeError):
            return None
        epsilon = self.args[0]
        if not (0 < found.noise_multiplier <= accounting.MAX_SIGMA and math.isfinite(found.epsilon)):
            return None
        if not 0 <= found.epsilon <= epsilon:
            return None
        accounting.remember_calibration(self.args, found)
        projected = answer.get("projected")
        if self.ledger_delta is not None and isinstance(projected, float) and 0 <= projected < math.inf:
            accounting.remember_epsilon(
                _projection(self.prior, found, self.args), self.ledger_delta, self.args[4], projected
            )
        return found


def _projection(
    prior: list[History], found: accounting.Calibration, args: tuple
) -> list[tuple[float, float, int]]:
    """The ledger's earlier runs and the planned one, as the policy's projection composes them."""
    _, _, sample_rate, epochs, _ = args
    planned = [(found.noise_multiplier, sample_rate, accounting.calibrated_steps(epochs, sample_rate))]
    return [entry for history in [*prior, planned] for entry in ledger.normalise(history)]


def start(
    epsilon: float,
    delta: float,
    sample_rate: float,
    epochs: int,
    accountant: str,
    *,
    prior: list[History] | None = None,
    ledger_delta: float | None = None,
) -> Pending | None:
    """A worker calibrating these arguments (and, with `ledger_delta`, composing the `prior`
    histories with the planned run at that delta), or None where this process knows the answer
    already or could not start one (the run then calibrates itself)."""
    args = (float(epsilon), float(delta), float(sample_rate), int(epochs), str(accountant))
    if accounting.known_calibration(args) is not None:
        return None
    try:
        return Pending(args, [list(map(list, h)) for h in prior or []], ledger_delta)
    except OSError:
        return None


def worker(stream: IO[str]) -> int:
    """The worker's side: load the accountants, then read the JSON request from `stream`,
    calibrate, compose the ledger's projection where asked, and print both as JSON."""
    opacus_parts.accountants_only()
    for name in ("rdp", "prv"):  # loaded before the request comes (see `prestart`)
        opacus_parts.accountant(name)
    text = stream.read()
    if not text:
        return 0  # never asked
    request = json.loads(text)
    epsilon, delta, sample_rate, epochs, accountant = request["calibrate"]
    args = (float(epsilon), float(delta), float(sample_rate), int(epochs), str(accountant))
    try:
        found = accounting.calibrate(*args)
    except ValueError:
        return 1
    answer = {
        "noise_multiplier": found.noise_multiplier,
        "epsilon": found.epsilon,
        "evaluations": found.evaluations,
    }
    if request.get("ledger_delta") is not None:
        history = _projection(request["prior"], found, args)
        answer["projected"] = accounting.epsilon_of(history, float(request["ledger_delta"]), args[4])
    print(json.dumps(answer))
    return 0
