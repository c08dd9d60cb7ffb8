"""hrlib's shape: no import cycles, no private names taken across modules, modest module sizes, one name per job,
Google-style docstrings on the public API, and ``eval_mode`` restoring each submodule's own mode."""

from __future__ import annotations

import ast
import inspect
import sys
from collections import defaultdict
from pathlib import Path

import pytest
import torch
from torch import nn

import hrlib

sys.path.insert(0, str(Path(__file__).parents[1] / "audit"))
from harness import public_callables  # noqa: E402

ROOT = Path(hrlib.__file__).parent
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _modules() -> dict[str, Path]:
    """``hrlib.x.y`` -> file, for every module of hrlib but the generated exercise boilerplate."""
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _target(name: str) -> str | None:
    """The hrlib module that an imported dotted name lives in (a name inside a module maps to the module)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str) -> list[tuple[str, str | None]]:
    """``(target module, imported name or None)`` for every hrlib import in ``module``, top-level or lazy."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(_target(a.name), None) for a in node.names if a.name.split(".")[0] == "hrlib"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != "hrlib":
                continue
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.append((full if full in MODULES else _target(base), None if full in MODULES else alias.name))
    return [(t, n) for t, n in found if t is not None and t != module]


def _cycles(edges: dict[str, set[str]], inits: set[str]) -> list[list[str]]:
    """Strongly connected components with more than one module, leaving out a package ``__init__`` that imports its
    own submodules while they import the package's siblings (re-exports, not a cycle of concern)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)

    def own_package(comp: list[str]) -> bool:
        heads = [c for c in comp if c in inits]
        return len(heads) == 1 and all(c == heads[0] or c.startswith(heads[0] + ".") for c in comp)

    return [c for c in found if not own_package(c)]


def test_import_graph_has_no_cycles():
    edges = defaultdict(set, {m: {t for t, _ in _imports(m)} for m in MODULES})
    assert _cycles(edges, {m for m, p in MODULES.items() if p.name == "__init__.py"}) == []


def test_no_private_names_imported_across_modules():
    """``from hrlib.x import _name`` is allowed only from a package-internal module (one whose own name starts
    with ``_``, e.g. ``hrlib._checks``)."""
    bad = [f"{m} imports {n} from {t}" for m in MODULES for t, n in _imports(m)
           if n is not None and n.startswith("_") and not n.startswith("__")
           and not t.rpartition(".")[2].startswith("_")]
    assert bad == []


def test_the_cycle_check_finds_a_cycle():
    """The checker itself: a two-module cycle is found, a package re-exporting its submodule is not one."""
    assert _cycles(defaultdict(set, {"a": {"b"}, "b": {"a"}}), set()) == [["a", "b"]]
    package = defaultdict(set, {"p": {"p.m"}, "p.m": {"p"}})
    assert _cycles(package, {"p"}) == []
    assert _cycles(package, set()) == [["p", "p.m"]]


def test_modules_and_functions_are_small():
    """Modules at most ~400 lines, functions at most ~60, unless the docstring says why (``Long because``)."""
    big_modules = []
    big_functions = []
    for name, path in MODULES.items():
        if ".exercises." in name:
            continue
        text = path.read_text()
        tree = ast.parse(text)
        doc = ast.get_docstring(tree) or ""
        if len(text.splitlines()) > MAX_MODULE_LINES and "Long because" not in doc:
            big_modules.append(f"{name}: {len(text.splitlines())} lines")
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES and "Long because" not in (ast.get_docstring(node) or ""):
                    big_functions.append(f"{name}.{node.name}: {length} lines")
    assert big_modules == [] and big_functions == []


def test_nothing_but_the_package_is_named_train():
    named = [name for name, _ in public_callables() if name.rpartition(".")[2] == "train"]
    assert named == []


def _needs_sections(obj) -> list[str]:
    """The Google-style sections a public function's docstring must have, from its signature."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return []
    params = [p for p in sig.parameters if p not in ("self", "cls")]
    wanted = ["Args:"] if params else []
    if sig.return_annotation not in (None, "None", inspect.Signature.empty) and not inspect.isclass(obj):
        wanted.append("Yields:" if "Iterator" in str(sig.return_annotation) else "Returns:")
    return wanted


def test_public_functions_have_google_style_docstrings():
    """Every public function with arguments documents them under ``Args:``, and what it returns under
    ``Returns:``/``Yields:``; a public class documents its constructor's arguments (``Args:`` or, for a record,
    ``Attributes:``)."""
    missing = []
    for name, obj in public_callables():
        if inspect.isclass(obj):
            if issubclass(obj, BaseException) or "__init__" not in vars(obj):
                continue
            doc, target = inspect.getdoc(obj) or "", obj.__init__
        else:
            doc, target = inspect.getdoc(obj) or "", obj
        lacks = [s for s in _needs_sections(target) if s not in doc
                 and not (s == "Args:" and inspect.isclass(obj) and "Attributes:" in doc)]
        if lacks:
            missing.append(f"{name}: {', '.join(lacks)}")
    assert missing == [], f"{len(missing)} public callables without Google-style sections"


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.drop = nn.Dropout(0.5)
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.bn(self.conv(x))).mean((2, 3)))


def _frozen_bn_net() -> nn.Module:
    """A model in training mode whose BatchNorm is frozen in eval mode (a common fine-tuning set-up)."""
    net = _Net().train()
    net.bn.eval()
    return net


def _modes(model: nn.Module) -> dict[str, bool]:
    return {name: m.training for name, m in model.named_modules()}


def test_eval_mode_restores_each_submodules_own_mode():
    from hrlib.models import eval_mode

    net = _frozen_bn_net()
    before = _modes(net)
    with eval_mode(net) as inside:
        assert inside is net and not any(_modes(net).values())
    assert _modes(net) == before
    with pytest.raises(RuntimeError), eval_mode(net):
        raise RuntimeError("restored even after an error")
    assert _modes(net) == before


class _ImageSet(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int):
        import numpy as np

        return np.full((8, 8, 3), 40 * i, np.uint8), i % 2


def _to_tensor(image):
    return {"image": torch.from_numpy(image).permute(2, 0, 1).float() / 255}


def test_evaluate_and_grad_cam_leave_a_frozen_submodule_frozen():
    """Functions that switch to eval mode internally give back the model as it came, submodule by submodule."""
    from hrlib.analysis.cam import grad_cam
    from hrlib.train import evaluate

    net = _frozen_bn_net()
    before = _modes(net)
    evaluate(net, _ImageSet(), _to_tensor, batch_size=2, device="cpu")
    assert _modes(net) == before
    grad_cam(net, torch.rand(2, 3, 8, 8), layer=net.conv)
    assert _modes(net) == before
