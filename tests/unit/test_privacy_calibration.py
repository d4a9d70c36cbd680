"""The noise calibrated in a worker process while torch loads: the same answer as in the run's own
process, exact epsilons in its caches, the ledger's projection composed as the policy composes it,
a worker without torch or environment, and a run that calibrates itself when the worker fails."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import PASSPHRASE, run_python
from vault.privacy import accounting, calibration, ledger

ARGS = (3.0, 1e-5, 0.02, 15, "prv")


@pytest.fixture(autouse=True)
def empty_caches():
    """Each test starts from a process that has computed nothing."""
    accounting._CALIBRATIONS.clear()
    accounting._EPSILONS.clear()
    yield
    accounting._CALIBRATIONS.clear()
    accounting._EPSILONS.clear()


def test_the_worker_finds_the_noise_the_run_itself_finds() -> None:
    pending = calibration.start(*ARGS)
    assert pending is not None
    found = pending.collect()
    assert found is not None
    accounting._CALIBRATIONS.clear()
    accounting._EPSILONS.clear()
    own = accounting.calibrate(*ARGS)
    assert found == own, "the worker runs the same search on the same numbers"
    assert own.epsilon <= ARGS[0]


def test_its_answer_is_the_runs_calibration_and_exact_epsilon() -> None:
    found = calibration.start(*ARGS).collect()
    assert accounting.known_calibration(ARGS) == found
    assert accounting.noise_multiplier_for.__wrapped__(*ARGS) == found.noise_multiplier
    steps = int(ARGS[3] / ARGS[2])
    history = [(found.noise_multiplier, ARGS[2], steps)]
    assert accounting.epsilon_of(history, ARGS[1], "prv") == found.epsilon, "from the cache"
    accounting._EPSILONS.clear()
    assert accounting.epsilon_of(history, ARGS[1], "prv") == pytest.approx(found.epsilon, abs=1e-12)
    assert calibration.start(*ARGS) is None, "a known calibration starts no worker"


def test_the_ledger_projection_composes_the_earlier_runs_with_the_planned_one() -> None:
    prior = [[(1.1, 0.02, 300)], [(0.9, 0.05, 100), (1.1, 0.02, 50)]]
    found = calibration.start(*ARGS, prior=prior, ledger_delta=2e-6).collect()
    planned = [(found.noise_multiplier, ARGS[2], int(ARGS[3] / ARGS[2]))]
    entries = [e for history in [*prior, planned] for e in ledger.normalise(history)]
    remembered = accounting._EPSILONS[(accounting.merged(entries), 2e-6, "prv")]
    accounting._EPSILONS.clear()
    ledger._composed.cache_clear()
    assert ledger.compose([*prior, planned], 2e-6, "prv") == pytest.approx(remembered, abs=1e-12)


def test_a_worker_that_cannot_reach_the_target_leaves_the_run_to_say_so() -> None:
    impossible = (1e-6, 1e-5, 0.5, 50, "prv")
    assert calibration.start(*impossible).collect() is None
    with pytest.raises(Exception, match="cannot be reached"):
        accounting.noise_multiplier_for.__wrapped__(*impossible)


@pytest.mark.parametrize(
    "printed",
    [
        '{"noise_multiplier": 1.0, "epsilon": 3.5, "evaluations": 2}',  # above the target
        '{"noise_multiplier": -1.0, "epsilon": 2.99, "evaluations": 2}',
        '{"noise_multiplier": 1.0, "epsilon": NaN, "evaluations": 2}',
        '{"noise_multiplier": 1.0}',
        "not json",
    ],
)
def test_an_answer_out_of_form_or_over_the_target_is_not_taken(printed: str) -> None:
    pending = object.__new__(calibration.Pending)
    pending.args, pending.prior, pending.ledger_delta = ARGS, [], None
    pending.process = subprocess.Popen(
        [sys.executable, "-c", f"print({printed!r})"], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    assert pending.collect() is None
    assert accounting.known_calibration(ARGS) is None


def test_the_worker_has_none_of_the_commands_environment_and_never_loads_torch() -> None:
    pending = calibration.start(*ARGS, prior=[[(1.1, 0.02, 300)]], ledger_delta=1e-5)
    proc = Path(f"/proc/{pending.process.pid}")
    deadline = time.monotonic() + 30
    while b"vault.privacy.calibration" not in (proc / "cmdline").read_bytes():  # until it has exec'd
        assert time.monotonic() < deadline, "the worker never started"
        time.sleep(0.001)
    environ, cmdline = (proc / "environ").read_bytes(), (proc / "cmdline").read_bytes()
    assert pending.collect() is not None
    assert sorted(environ.split(b"\0")[:-1]) == [
        b"MKL_NUM_THREADS=1",
        b"OMP_NUM_THREADS=1",
        b"OPENBLAS_NUM_THREADS=1",
    ], "nothing of the parent's environment (a passphrase among it) reaches it"
    assert b"300" not in cmdline and b"calibrate" not in cmdline, "the request travels on a pipe"
    probe = run_python(
        """
        import sys
        from vault.privacy import calibration
        import io
        calibration.worker(io.StringIO('{"calibrate": [3.0, 1e-05, 0.02, 15, "prv"], "prior": [], "ledger_delta": null}'))
        print(sorted(m for m in ("torch", "opacus.optimizers.optimizer") if m in sys.modules))
        """
    )
    assert probe.returncode == 0, probe.stderr[-2000:]
    assert probe.stdout.strip().splitlines()[-1] == "[]"


def test_accountants_only_is_refused_in_a_process_that_may_train() -> None:
    probe = run_python(
        """
        import torch
        from vault.errors import StrongroomError
        from vault.privacy import opacus_parts
        try:
            opacus_parts.accountants_only()
        except StrongroomError as error:
            print("refused:", error)
        """
    )
    assert "refused" in probe.stdout, probe.stderr[-2000:]


# A DP run through the door in a fresh process: its noise comes from the worker, so the process
# itself never loads PRV's analysis (nor SciPy's whole special package), and the card's epsilon is
# the accountant's at that noise.
DOOR_RUN = r"""
import json, sys
from pathlib import Path
from vault.crypto import keys
keys.use_test_kdf(True)
from vault.netguard import state
state.waive_for_tests()  # as the test session does: this process cannot isolate itself
from vault.door import Vault
from vault.ingest import ImportOptions

folder = Path(sys.argv[1])
rows = ["text,label"] + [f"{w} {w} item {i},{w}" for i in range(120) for w in ("spam", "ham")]
(folder / "t.csv").write_text("\n".join(rows) + "\n")
v = Vault.create(folder / "vault", passphrase=sys.argv[2].encode())
v.import_dataset(folder / "t.csv", name="t", options=ImportOptions())
first = v.train({"dataset": "t", "epsilon": 3.0, "epochs": 2, "seed": 1})
loaded = sorted(m for m in ("opacus.accountants.analysis.prv", "scipy.special._basic") if m in sys.modules)
v.close()
print(json.dumps({"loaded": loaded, "noise": first["noise_multiplier"], "epsilon": first["epsilon"],
                  "sample_rate": first["sample_rate"], "steps": first["steps"], "delta": first["delta"]}))
"""


def test_a_dp_run_in_a_fresh_process_takes_the_workers_noise(tmp_path: Path) -> None:
    proc = run_python(DOOR_RUN, str(tmp_path), PASSPHRASE, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["loaded"] == [], "the run's own process computed what the worker had"
    # the epsilon on the card is the accountant's own at the noise used, recomputed here
    history = [(result["noise"], result["sample_rate"], result["steps"])]
    assert accounting.epsilon_of(history, result["delta"], "prv") == pytest.approx(
        result["epsilon"], abs=1e-12
    )
    assert 3.0 - accounting.EPSILON_TOLERANCE <= result["epsilon"] <= 3.0


def test_a_worker_started_ahead_serves_the_next_calibration() -> None:
    calibration.prestart()
    waiting = calibration._waiting
    assert waiting is not None and waiting.poll() is None
    pending = calibration.start(*ARGS)
    assert pending.process is waiting and calibration._waiting is None
    found = pending.collect()
    accounting._CALIBRATIONS.clear()
    accounting._EPSILONS.clear()
    assert found == accounting.calibrate(*ARGS)


def test_a_worker_started_ahead_and_never_asked_leaves() -> None:
    calibration.prestart()
    waiting = calibration._take_waiting()
    assert waiting is not None
    calibration._dismiss(waiting)  # what the command's exit does
    assert waiting.wait(timeout=60) == 0
    assert waiting.stdout.read() == b"", "no answer without a request"
