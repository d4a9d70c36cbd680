"""Opacus' parts, imported one by one: `import opacus` runs the package's `__init__` files, which
load every accountant (the Gaussian one through scipy.stats and scipy.optimize), every optimizer
(FSDP's through torch.distributed.checkpoint), every per-sample gradient rule and PrivacyEngine:
seconds of imports, where a run needs one accountant, the Poisson loader and one optimizer.

`module(name)` imports one Opacus module with the `__init__` of the packages above it deferred.
Each deferred package is the module object Python's own import system builds from the package's
spec, put in `sys.modules` without running its `__init__`; its submodules load from its path as
usual. The first attribute asked of it that no loaded submodule holds runs its `__init__` in place,
as a plain `import opacus` would have, so `from opacus import PrivacyEngine` still works and every
submodule is the same object either way. Nothing inside Opacus is replaced. The package layout
read here is the pinned release's (checked on import).

Three SciPy packages get the same treatment, for the same reason: PRV's composition imports
`convolve` from scipy.signal and `quad` from scipy.integrate, and their `__init__` files load every
filter design, spline, interpolator and ODE solver besides (0.5 s here); RDP's analysis takes
`binom` and `log_ndtr` from scipy.special (and PRV `erfc`), whose `__init__` wraps every special
function for array-API dispatch first (0.15 s); the ufuncs themselves come from `_ufuncs`, the
module those wrappers call. They are deferred only
at the SciPy release whose layout DEFERRED names (requirements.lock pins it); at any other, SciPy
imports as usual.

One torch package is kept out the same way: `opacus.optimizers.optimizer` (DPOptimizer) imports
`DTensor` from `torch.distributed.tensor` for two type annotations only (strings there: the module
has `from __future__ import annotations`), and that package costs 0.4 s with sympy on a run that
never shards a tensor. While that one module imports, `torch.distributed.tensor` is a stand-in
holding nothing but a placeholder `DTensor`; then the stand-in is gone and the Opacus module's
`DTensor` resolves to torch's own class on first use (a module `__getattr__`). At another torch
release, or once torch's package is loaded, the module imports as usual.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import threading
from importlib import metadata
from types import ModuleType
from typing import Any

from vault.errors import StrongroomError

OPACUS = "1.6.0"  # the release whose package layout this module reads (requirements.lock pins it)
SCIPY = "1.17.1"  # likewise for the SciPy packages below
TORCH = "2.14.1"  # likewise for torch.distributed.tensor (see the module's docstring)
OPTIMIZER = "opacus.optimizers.optimizer"
DTENSOR = "torch.distributed.tensor"

# the packages whose __init__ is deferred, and where each name their submodules import from them lives
DEFERRED: dict[str, dict[str, str]] = {
    "opacus": {},
    "opacus.accountants": {"IAccountant": "opacus.accountants.accountant"},
    "opacus.optimizers": {
        "DPOptimizer": "opacus.optimizers.optimizer",
        "DPOptimizerFastGradientClipping": "opacus.optimizers.optimizer_fast_gradient_clipping",
    },
    "scipy.signal": {"convolve": "scipy.signal._signaltools"},
    "scipy.integrate": {"quad": "scipy.integrate._quadpack_py"},
    # RDP's analysis and PRV's distributions take three ufuncs; the package's __init__ first builds
    # SciPy's array-API wrappers over every special function (0.15 s), which call the same ufuncs
    "scipy.special": {name: "scipy.special._ufuncs" for name in ("binom", "log_ndtr", "erfc")},
}

# the accountant classes by the name a run gives (Opacus' registry imports all of them)
ACCOUNTANTS = {
    "rdp": ("opacus.accountants.rdp", "RDPAccountant"),
    "prv": ("opacus.accountants.prv", "PRVAccountant"),
    "gdp": ("opacus.accountants.gdp", "GaussianAccountant"),
}

_lock = threading.RLock()
_checked = False


def _check_version() -> None:
    global _checked
    if _checked:
        return
    try:
        installed = metadata.version("opacus")
    except metadata.PackageNotFoundError:
        raise StrongroomError(
            "Opacus is not installed", "install the versions requirements.lock pins: `make setup`"
        ) from None
    if installed != OPACUS:
        raise StrongroomError(
            f"Opacus {installed} is installed; Strongroom's DP training is written for Opacus {OPACUS}",
            "install the versions requirements.lock pins: `make setup` (or from the wheelhouse)",
        )
    _checked = True


def _complete(package: ModuleType) -> None:
    """Run a deferred package's own __init__ in its module object (once)."""
    with _lock:
        if not package.__dict__.get("__deferred__"):
            return
        package.__dict__["__deferred__"] = False
        package.__dict__.pop("__getattr__", None)
        package.__spec__.loader.exec_module(package)


def _defer(name: str) -> None:
    if name in sys.modules:
        return
    if name.startswith("scipy."):
        try:
            if metadata.version("scipy") != SCIPY:
                return  # another layout: SciPy's package imports whole, as it would without this module
        except metadata.PackageNotFoundError:
            return
        importlib.import_module("scipy")
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        raise StrongroomError(f"no package {name}", "install the versions requirements.lock pins")
    package = importlib.util.module_from_spec(spec)
    providers = DEFERRED[name]

    def __getattr__(attribute: str) -> Any:
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        if attribute in providers:
            return getattr(importlib.import_module(providers[attribute]), attribute)
        if importlib.machinery.PathFinder.find_spec(attribute, package.__path__) is not None:
            return importlib.import_module(f"{name}.{attribute}")  # a submodule (`from . import x`)
        _complete(package)
        return getattr(package, attribute)

    package.__dict__["__getattr__"] = __getattr__
    package.__dict__["__deferred__"] = True
    sys.modules[name] = package
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, package)


class _Unloaded:
    """Stands for torch's DTensor while DPOptimizer's module imports it for its annotations."""


def _import_optimizer() -> None:
    """Import DPOptimizer's module without torch.distributed.tensor (see the module's docstring)."""
    if OPTIMIZER in sys.modules or DTENSOR in sys.modules:
        return
    torch_version = metadata.version("torch").split("+")[0]
    if torch_version != TORCH:
        return
    stand_in = ModuleType(DTENSOR, "a stand-in while DPOptimizer's module imports")
    stand_in.DTensor = _Unloaded  # type: ignore[attr-defined]
    sys.modules[DTENSOR] = stand_in
    try:
        optimizer = importlib.import_module(OPTIMIZER)
    finally:
        if sys.modules.get(DTENSOR) is stand_in:
            del sys.modules[DTENSOR]
    if optimizer.__dict__.get("DTensor") is _Unloaded:
        del optimizer.__dict__["DTensor"]

        def __getattr__(attribute: str) -> Any:
            if attribute == "DTensor":
                return importlib.import_module(DTENSOR).DTensor
            raise AttributeError(f"module {OPTIMIZER!r} has no attribute {attribute!r}")

        optimizer.__dict__["__getattr__"] = __getattr__


class _NoOptimizer:
    """Stands for DPOptimizer in a process that never trains (`accountants_only`)."""


_accountants_only = False


def accountants_only() -> None:
    """Load Opacus' accountants in this process without torch: for a process that does privacy
    arithmetic only and never trains (vault/privacy/calibration.py's worker). The accountants' base
    class imports DPOptimizer for one type annotation, evaluated when the class is defined; here
    that name is a placeholder, and no optimizer module is imported. Refused once an accountant or
    torch is loaded (this process may train)."""
    global _accountants_only
    with _lock:
        if _accountants_only:
            return
        if "torch" in sys.modules or "opacus.accountants.accountant" in sys.modules:
            raise StrongroomError(
                "Opacus' accountants can load without torch only in a process that has neither yet",
                "call accountants_only() first thing in a worker that never trains",
            )
        _check_version()
        for package in DEFERRED:
            _defer(package)
        sys.modules["opacus.optimizers"].__dict__["DPOptimizer"] = _NoOptimizer
        _accountants_only = True


def module(name: str) -> ModuleType:
    """The Opacus module `name` (e.g. "opacus.accountants.rdp"), importing only what it needs."""
    with _lock:
        _check_version()
        for package in DEFERRED:  # parents first: "opacus" is listed before its subpackages
            _defer(package)
        if not _accountants_only:
            _import_optimizer()
        return importlib.import_module(name)


def accountant(name: str) -> Any:
    """A fresh Opacus accountant of the named kind ("prv", "rdp", "gdp")."""
    where, cls = ACCOUNTANTS[name]
    return getattr(module(where), cls)()
