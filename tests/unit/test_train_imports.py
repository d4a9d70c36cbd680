"""A small DP run loads only what it uses: Opacus' parts one by one, not its whole package (every
accountant, optimizer and per-sample gradient rule), and no library the run has no use for."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support import REPO

# modules a book-keeping DP run with the PRV accountant has no use for, with what pulls them in
UNUSED = {
    "opacus.privacy_engine": "PrivacyEngine (the hooks and ghost modes only)",
    "opacus.grad_sample": "Opacus' per-sample gradient rules (book-keeping computes its own)",
    "opacus.accountants.gdp": "the Gaussian accountant (scipy.optimize, scipy.stats)",
    "opacus.accountants.analysis.gdp": "the Gaussian accountant's analysis",
    "opacus.optimizers.fsdpoptimizer_fast_gradient_clipping": "FSDP (torch.distributed.checkpoint)",
    "opacus.optimizers.ddpoptimizer": "distributed data parallel",
    "opacus.optimizers.adaclipoptimizer": "adaptive clipping",
    "torch.distributed.checkpoint": "FSDP's checkpointing",
    "torchvision": "resnet18 only",
    "pandas": "nothing in a run",
    "sklearn": "nothing in a run (the peers in tests/peers.py)",
    "scipy.signal._spectral_py": "scipy.signal's whole package (PRV's composition uses convolve)",
    "scipy.integrate._ivp": "scipy.integrate's whole package (PRV's mean uses quad)",
    "torch._dynamo": "torch.compile (torch's optimizers import it in add_param_group, zero_grad, step)",
    "torch.distributed.tensor": "sharded tensors (DPOptimizer's module imports DTensor for annotations)",
    "sympy": "symbolic shapes (torch._dynamo and torch.distributed.tensor)",
}

PROBE = r"""
import json, sys
from tests.support import blobs
from vault.train import TrainConfig
from vault.train.engine import train

outcome = train(blobs(n=80), TrainConfig(model="scatternet", epochs=1, batch_size=20, seed=1))
assert outcome.dp is not None and outcome.dp.accountant == "prv"
print(json.dumps(sorted(m for m in sys.modules if m in set(sys.argv[1:]))))
"""


def test_a_dp_run_imports_only_the_opacus_parts_it_uses() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *UNUSED],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert loaded == [], "a DP run imported: " + "; ".join(f"{m} ({UNUSED[m]})" for m in loaded)


def probed(probe: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_the_whole_package_still_imports_after_the_parts() -> None:
    """A run that loaded parts first can still use Opacus' package, and SciPy's signal and integrate
    packages, as usual (the same module and function objects)."""
    probe = (
        "from vault.privacy import opacus_parts\n"
        "prv = opacus_parts.accountant('prv')\n"
        "loader = opacus_parts.module('opacus.data_loader')\n"
        "from opacus import PrivacyEngine, __version__\n"
        "from opacus.accountants import PRVAccountant, create_accountant\n"
        "import opacus.data_loader\n"
        "assert type(prv) is PRVAccountant and opacus.data_loader is loader\n"
        "import scipy.signal, scipy.integrate\n"
        "from scipy.signal import convolve, welch\n"
        "from scipy.signal._signaltools import convolve as own\n"
        "from scipy.integrate._quadpack_py import quad\n"
        "assert convolve is own and scipy.integrate.quad is quad and callable(welch)\n"
        "assert scipy.integrate.solve_ivp and scipy.signal.windows.hann(3)[1] == 1.0\n"
        "assert type(create_accountant('gdp')).__name__ == 'GaussianAccountant'\n"
        "print(__version__, PrivacyEngine.__name__)\n"
    )
    proc = probed(probe)
    assert proc.stdout.split() == ["1.6.0", "PrivacyEngine"]


def test_dpoptimizers_dtensor_is_torchs_own_once_asked_for() -> None:
    """DPOptimizer's module loads without torch.distributed.tensor, and its DTensor is still
    torch's class for anyone who asks (the package then loads as usual)."""
    probe = (
        "import sys\n"
        "from vault.privacy import opacus_parts\n"
        "opacus_parts.accountant('prv')\n"
        "optimizer = sys.modules['opacus.optimizers.optimizer']\n"
        "assert 'torch.distributed.tensor' not in sys.modules\n"
        "from opacus.optimizers.optimizer import DPOptimizer, DTensor\n"
        "import torch.distributed.tensor\n"
        "assert DTensor is torch.distributed.tensor.DTensor is optimizer.DTensor\n"
        "assert torch.distributed.tensor.Replicate and sys.modules['torch.distributed.tensor._api']\n"
        "print(DPOptimizer.__name__, DTensor.__name__)\n"
    )
    proc = probed(probe)
    assert proc.stdout.split() == ["DPOptimizer", "DTensor"]


def test_scipy_imports_whole_at_a_release_whose_layout_is_not_the_pinned_one() -> None:
    probe = (
        "import sys\n"
        "from vault.privacy import opacus_parts\n"
        "opacus_parts.SCIPY = '0.0'\n"
        "opacus_parts.accountant('prv')\n"
        "assert not sys.modules['scipy.signal'].__dict__.get('__deferred__')\n"
        "assert 'scipy.signal._spectral_py' in sys.modules and 'scipy.integrate._ivp' in sys.modules\n"
        "print(type(sys.modules['opacus'].__dict__.get('__deferred__')).__name__)\n"
    )
    proc = probed(probe)
    assert proc.stdout.split() == ["bool"]  # Opacus' own packages are still deferred


def test_scipy_special_ufuncs_are_the_packages_numbers() -> None:
    """RDP's analysis takes binom and log_ndtr (PRV erfc) from scipy.special's ufuncs without the
    package's array-API wrappers; the whole package, loaded afterwards, gives the same numbers."""
    probe = (
        "import sys\n"
        "from vault.privacy import opacus_parts\n"
        "rdp = opacus_parts.module('opacus.accountants.analysis.rdp')\n"
        "assert 'scipy.special._support_alternative_backends' not in sys.modules\n"
        "special = sys.modules['scipy.special']\n"
        "points = [(a / 3, k) for a in range(2, 200, 7) for k in range(0, 9)]\n"
        "parts = [special.binom(a, k) for a, k in points]\n"
        "tails = [special.log_ndtr(-x / 7) for x in range(0, 400, 3)]\n"
        "erfcs = [special.erfc(x / 11) for x in range(-60, 60, 7)]\n"
        "epsilon = rdp.get_privacy_spent(orders=[1.5, 2.0, 8.0], rdp=rdp.compute_rdp(q=0.01, "
        "noise_multiplier=1.1, steps=500, orders=[1.5, 2.0, 8.0]), delta=1e-5)[0]\n"
        "import scipy.special as whole\n"
        "assert whole is special and whole.gamma(5.0) == 24.0\n"  # a name no part holds: the package's own
        "assert not special.__dict__.get('__deferred__')\n"
        "assert 'scipy.special._support_alternative_backends' in sys.modules\n"
        "assert parts == [whole.binom(a, k) for a, k in points]\n"
        "assert tails == [whole.log_ndtr(-x / 7) for x in range(0, 400, 3)]\n"
        "assert erfcs == [whole.erfc(x / 11) for x in range(-60, 60, 7)]\n"
        "print(len(parts), epsilon > 0)\n"
    )
    proc = probed(probe)
    assert proc.stdout.split() == ["261", "True"]
