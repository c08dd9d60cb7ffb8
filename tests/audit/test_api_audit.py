"""Audit of hrlib's public API (issue 9, hardening): every public callable rejects bad input with a clear error.

The cases live in ``specs_*.py`` next to this file (see ``harness.py``). Two checks per case: its valid call
succeeds (so a rejection is about the bad value, not a broken baseline), and every bad value raises one of
``harness.ERRORS`` whose message names the argument. A third test fails when a public name of hrlib (a module's
``__all__``) is neither audited nor exempt with a reason.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from harness import ERRORS, Case, public_callables  # noqa: E402

SPECS: dict[str, Case] = {}
EXEMPT: dict[str, str] = {}
for _file in sorted(HERE.glob("specs_*.py")):
    _spec = importlib.util.spec_from_file_location(f"hrlib_audit_{_file.stem}", _file)
    _mod = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_mod)
    for _name in set(_mod.SPECS) & set(SPECS) | set(_mod.EXEMPT) & set(EXEMPT):
        raise RuntimeError(f"{_file.name}: {_name} is audited in two spec files")
    SPECS.update(_mod.SPECS)
    EXEMPT.update(_mod.EXEMPT)


@pytest.fixture(autouse=True)
def _close_figures():
    """Close what a case drew: thousands of open figures would slow every later test down."""
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def _resolve(name: str) -> Any:
    module, _, attr = name.rpartition(".")
    try:
        return getattr(importlib.import_module(module), attr)
    except ModuleNotFoundError:  # a method: hrlib.pipeline.store.TileStore.read_region
        return getattr(_resolve(module), attr)


def _target(name: str) -> Any:
    case = SPECS[name]
    return case.fn if case.fn is not None else _resolve(name)


def public_names() -> set[str]:
    """``module.name`` of every public callable hrlib defines (``__all__`` of each module but the exercises)."""
    return {name for name, _ in public_callables()}


def test_every_public_callable_is_audited_or_exempt():
    import hrlib

    no_all = [i.name for i in pkgutil.walk_packages(hrlib.__path__, "hrlib.") if ".exercises" not in i.name
              and not i.name.rpartition(".")[2].startswith("_") and not i.ispkg
              and not hasattr(importlib.import_module(i.name), "__all__")]
    assert not no_all, f"modules without __all__ (the audit cannot see their public API): {no_all}"
    public = public_names()
    missing = sorted(public - set(SPECS) - set(EXEMPT))
    assert not missing, f"public callables neither audited nor exempt: {missing}"
    unknown = sorted(n for n in set(SPECS) | set(EXEMPT) if n not in public
                     and not hasattr(_resolve(n.rpartition(".")[0]), "__mro__"))
    assert not unknown, f"audited names that are not public callables (renamed?): {unknown}"
    assert all(EXEMPT.values()), "every exemption needs its reason"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_valid_call_succeeds(name):
    case = SPECS[name]
    if not case.run_valid:
        pytest.skip(case.why or "valid call not run")
    _target(name)(**case.valid())


_BAD = [(name, arg, i) for name in sorted(SPECS) for arg, values in SPECS[name].bad.items()
        for i in range(len(values))]


@pytest.mark.parametrize(("name", "arg", "i"), _BAD, ids=[f"{n}-{a}-{i}" for n, a, i in _BAD])
def test_bad_value_is_rejected_naming_the_argument(name, arg, i):
    case = SPECS[name]
    value = case.bad[arg][i]
    kwargs = dict(case.valid())
    kwargs[arg] = value
    with pytest.raises(ERRORS) as info:
        _target(name)(**kwargs)
    wanted = case.names.get(arg, arg)
    assert wanted in str(info.value), (f"{name}({arg}={value!r:.60}) raised {type(info.value).__name__}: "
                                       f"{info.value!s:.300} -- the message does not name {wanted!r}")
