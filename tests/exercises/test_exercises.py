"""Self-checking exercises: the checks, the solution -> exercise build, and the exercise notebooks."""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import matplotlib
import nbformat
import numpy as np
import pytest
import wrong_02  # tests/exercises/wrong_02.py (pytest puts this folder on sys.path)
import wrong_03
import wrong_04
import wrong_05
from nbformat import v4

from hrlib.exercises import NOT_IMPLEMENTED_MSG, CheckResult, check, list_checks, register
from hrlib.exercises.build import (
    SolutionMarkerError,
    build_all,
    build_exercise,
    main,
    render,
    strip_solutions,
)

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[2]
SOLUTIONS = ROOT / "solutions"
EXERCISES = ROOT / "exercises"
CHECK_CALL = re.compile(r"""check\(\s*["']([^"']+)["']\s*,\s*([A-Za-z_]\w*)\s*\)""")


# ------------------------------------------------------------------------------------------------- helpers


def run_code_cells(
    path: Path,
    *,
    tolerate: tuple[type[BaseException], ...] = (),
) -> tuple[dict[str, Any], dict]:
    """Exec a notebook's code cells in one namespace; return it and {exercise id: name of checked object}."""
    import matplotlib.pyplot as plt

    nb = nbformat.read(path, as_version=4)
    namespace: dict[str, Any] = {"__name__": "__notebook__"}
    checked: dict[str, str] = {}
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        lines = [
            line
            for line in cell.source.splitlines()
            if not line.lstrip().startswith(("%", "!")) and line.strip() != "plt.show()"
        ]
        source = "\n".join(lines)
        checked.update(dict(CHECK_CALL.findall(source)))
        try:
            exec(compile(source, f"{path.name}[cell {index}]", "exec"), namespace)
        except tolerate:
            pass
    plt.close("all")
    return namespace, checked


def checked_functions(folder: Path, *, tolerate: tuple[type[BaseException], ...] = ()) -> dict[str, Any]:
    """{exercise id: the function passed to check(...)} over all notebooks of ``folder``."""
    found: dict[str, Any] = {}
    for path in sorted(folder.glob("*.ipynb")):
        namespace, checked = run_code_cells(path, tolerate=tolerate)
        for exercise_id, name in checked.items():
            found[exercise_id] = namespace[name]
    return found


@pytest.fixture(scope="module")
def solutions() -> dict[str, Any]:
    return checked_functions(SOLUTIONS)


@pytest.fixture(scope="module")
def stubs() -> dict[str, Any]:
    return checked_functions(EXERCISES, tolerate=(NotImplementedError,))


# ----------------------------------------------------------------------------------- plausible wrong answers


class Wrong(NamedTuple):
    """A plausible wrong answer and a word the rejection message must contain."""

    fn: Callable[..., Any]
    keyword: str


def _area(image: np.ndarray, f: int) -> np.ndarray:
    h, w = image.shape[0] // f, image.shape[1] // f
    x = image[: h * f, : w * f].astype(np.float64)
    return x.reshape(h, f, w, f, *image.shape[2:]).mean(axis=(1, 3))


def _mem(widths: list[int], s: int, b: int, nbytes: int, first: int = 2, square: bool = True) -> int:
    sides = [s // first // 2**i for i in range(len(widths))]
    per_stage = [w * (side * side if square else side) for w, side in zip(widths, sides, strict=True)]
    return b * nbytes * sum(per_stage)


def _cost(stages: list[tuple[int, int]], s: int, square: bool = True, weighted: bool = True,
          divide: bool = True) -> float:
    terms = [(e if weighted else 1) * (r / s) ** (2 if square else 1) for r, e in stages]
    return sum(terms) / ((sum(e for _, e in stages) if weighted else len(stages)) if divide else 1)


def _val_pipeline(resolution: int, *, random: bool = False, normalize: bool = True, crop: bool = True):
    import albumentations as A
    import cv2

    from hrlib.data.slides import SLIDE_MEAN, SLIDE_STD

    steps = [A.SmallestMaxSize(max_size=resolution + (8 if random else 0), interpolation=cv2.INTER_AREA)]
    steps.append(A.RandomCrop(resolution, resolution) if random else A.CenterCrop(resolution, resolution))
    if not crop:
        steps = [A.Resize(resolution // 2, resolution // 2, interpolation=cv2.INTER_AREA)]
    steps += [A.Normalize(mean=SLIDE_MEAN, std=SLIDE_STD) if normalize else A.ToFloat(), A.ToTensorV2()]
    return A.Compose(steps)


WRONG_ANSWERS: dict[str, list[Wrong]] = {
    "07.pointing_game": [
        Wrong(lambda cam, boxes, tol: _pointing(cam, boxes, tol, swap=True), "(row, col)"),
        Wrong(lambda cam, boxes, tol: _pointing(cam, boxes, tol, flat_miss=False), "flat map"),
        Wrong(lambda cam, boxes, tol: _pointing(cam, boxes, tol, none=False), "return None"),
        Wrong(lambda cam, boxes, tol: _pointing(cam, boxes, tol, chebyshev=True), "Euclidean"),
        Wrong(lambda cam, boxes, tol: _pointing(cam, boxes, tol, to_centre=True), "not to its centre"),
        Wrong(lambda cam, boxes, tol: _pointing(cam, boxes, tol, last_max=True), "row-major"),
        Wrong(lambda cam, boxes, tol: int(bool(_pointing(cam, boxes, tol))), "True, False or None"),
    ],
    "07.failure_diff": [
        Wrong(lambda ids, b, n, y: _failure_diff(ids, b, n, y, fixed_if_changed=True), "not merely"),
        Wrong(lambda ids, b, n, y: _failure_diff(ids, b, n, y, still_if_same=True), "another class"),
        Wrong(lambda ids, b, n, y: _failure_diff(ids, b, n, y, new_excludes_cases_only=True), "failed before"),
        Wrong(lambda ids, b, n, y: _failure_diff(ids, b, n, y, new_in_cases_only=True), "every sample"),
        Wrong(lambda ids, b, n, y: _failure_diff(ids, b, n, y, reverse=True), "sorted"),
        Wrong(lambda ids, b, n, y: list(_failure_diff(ids, b, n, y).values()), "keys"),
    ],
    "06.layer_grad_norms": [
        Wrong(lambda m: _norms(m, per_param=True), "owns them"),
        Wrong(lambda m: _norms(m, summed=True), "not the sum of their norms"),
        Wrong(lambda m: _norms(m, zeros=True), ".grad is None"),
        Wrong(lambda m: {k: v**2 for k, v in _norms(m).items()}, "sqrt"),
        Wrong(lambda m: None, "return"),
    ],
    "06.first_divergence": [
        Wrong(lambda losses: _divergence(losses, use_window=False), "last `window`"),
        Wrong(lambda losses: _divergence(losses, nan=False), "isfinite"),
        Wrong(lambda losses: _divergence(losses, min_known=0), "at least 5"),
        Wrong(lambda losses: _divergence(losses, shift=-1), "not of the one before"),
        Wrong(lambda losses: _divergence(losses, factor=5.0), "median"),
        Wrong(lambda losses: float(_divergence(losses) or 0), "int index or None"),
    ],
    "06.overfit_epoch": [
        Wrong(lambda t, v, p: _overfit(t, v, p, need_train=False), "training loss to keep falling"),
        Wrong(lambda t, v, p: _overfit(t, v, p, vs_previous=True), "best one before"),
        Wrong(lambda t, v, p: _overfit(t, v, p, early=True), "more than `patience`"),
    ],
    "01.relative_cost": [
        Wrong(lambda stages, s: _cost(stages, s, square=False), "not the ratio itself"),
        Wrong(lambda stages, s: _cost(stages, s, weighted=False), "weight each stage"),
        Wrong(lambda stages, s: _cost(stages, s, divide=False), "divide by the total number of epochs"),
        Wrong(lambda stages, s: None, "return"),
    ],
    "01.budget_schedule": [
        Wrong(lambda s, e, b: [(s, e)], "over the budget"),
        Wrong(lambda s, e, b: [(s // 4, e)], "finish with at least one epoch at full resolution"),
        Wrong(lambda s, e, b: [(s, 1), (s // 4, e - 1)], "never decrease"),
        Wrong(lambda s, e, b: [(16, e - 1), (s, 1)], "well under the budget"),
        Wrong(lambda s, e, b: [(s // 3 + 1, e - 1), (s, 1)], "multiple of 16"),
        Wrong(lambda s, e, b: [(s // 4, e), (s, 1)], "add up"),
    ],
    "01.val_transform": [
        Wrong(lambda r: _val_pipeline(r, random=True), "deterministic"),
        Wrong(lambda r: _val_pipeline(r, normalize=False), "not normalized"),
        Wrong(lambda r: _val_pipeline(r, crop=False), "expected (3,"),
        Wrong(lambda r: (lambda image: image), "torch.Tensor"),
    ],
    "00.conv_macs": [
        Wrong(lambda ci, co, k, h, w, groups=1: co * ci * k * k * h * w, "groups"),
        Wrong(lambda ci, co, k, h, w, groups=1: 2 * co * (ci // groups) * k * k * h * w, "FLOPs"),
        Wrong(lambda ci, co, k, h, w, groups=1: co * (ci // groups) * k * k, "output size"),
        Wrong(lambda ci, co, k, h, w, groups=1: co * (ci // groups) * k * h * w, "square the kernel"),
        Wrong(lambda ci, co, k, h, w, groups=1: co * ci / groups * k * k * h * w, "return an int"),
        Wrong(lambda ci, co, k, h, w: co * ci * k * k * h * w, "TypeError"),
    ],
    "00.activation_memory": [
        Wrong(lambda widths, s, b=1, nbytes=4: _mem(widths, s, b, nbytes, square=False), "quadratically"),
        Wrong(lambda widths, s, b=1, nbytes=4: _mem(widths, s, 1, nbytes), "batch_size"),
        Wrong(lambda widths, s, b=1, nbytes=4: _mem(widths, s, b, 1), "bytes_per_value"),
        Wrong(lambda widths, s, b=1, nbytes=4: sum(b * w * s * s * nbytes for w in widths), "downsampling"),
        Wrong(lambda widths, s, b=1, nbytes=4: _mem(widths, s, b, nbytes, first=1), "stage 0"),
        Wrong(
            lambda widths, s, b=1, nbytes=4: _mem(widths[-1:], s >> (len(widths) - 1), b, nbytes),
            "all the stages",
        ),
    ],
    "00.area_downsample": [
        Wrong(lambda image, f: image[::f, ::f], "every f-th pixel"),
        Wrong(lambda image, f: image[f // 2 :: f, f // 2 :: f].astype(float), "every f-th pixel"),
        Wrong(lambda image, f: _area(image, f).astype(image.dtype), "don't round"),
        Wrong(lambda image, f: np.round(_area(image, f)), "don't round"),
        Wrong(
            lambda image, f: image.reshape(image.shape[0] // f, f, image.shape[1] // f, f).mean((1, 3)),
            "crop",
        ),
        Wrong(lambda image, f: _area(image, f).mean(axis=-1) if image.ndim == 3 else _area(image, f), "chan"),
        Wrong(lambda image, f: _area(image, f)[:, :-1], "expected shape"),
        Wrong(lambda image, f: _area(image, f).tolist(), "NumPy array"),
        Wrong(
            lambda image, f: _area(image, f).reshape(-1)[::-1].reshape(_area(image, f).shape),
            "mean of image[",
        ),
    ],
}


# one file per later exercise, so that they are edited apart
for _extra in (wrong_02.WRONG, wrong_03.WRONG, wrong_04.WRONG, wrong_05.WRONG):
    for _exercise_id, _wrongs in _extra.items():
        WRONG_ANSWERS.setdefault(_exercise_id, []).extend(Wrong(fn, keyword) for fn, keyword in _wrongs)


def test_every_check_has_wrong_answers() -> None:
    missing = [exercise_id for exercise_id in list_checks() if not WRONG_ANSWERS.get(exercise_id)]
    assert not missing, f"add plausible wrong answers to WRONG_ANSWERS for {missing}"
    assert set(WRONG_ANSWERS) <= set(list_checks())


def _pointing(cam, boxes, tol, *, swap=False, flat_miss=True, none=True, chebyshev=False, to_centre=False,
              last_max=False):
    cam, boxes = np.asarray(cam, dtype=float), np.asarray(boxes, dtype=float).reshape(-1, 4)
    if len(boxes) == 0:
        return None if none else False
    if flat_miss and cam.max() <= cam.min():
        return False
    flat = cam.ravel()
    index = len(flat) - 1 - int(np.argmax(flat[::-1])) if last_max else int(np.argmax(flat))
    row, col = np.unravel_index(index, cam.shape)
    px, py = (row + 0.5, col + 0.5) if swap else (col + 0.5, row + 0.5)
    if to_centre:
        dx, dy = px - (boxes[:, 0] + boxes[:, 2]) / 2, py - (boxes[:, 1] + boxes[:, 3]) / 2
    else:
        dx = np.maximum(np.maximum(boxes[:, 0] - px, px - boxes[:, 2]), 0.0)
        dy = np.maximum(np.maximum(boxes[:, 1] - py, py - boxes[:, 3]), 0.0)
    dist = np.maximum(np.abs(dx), np.abs(dy)) if chebyshev else np.hypot(dx, dy)
    return bool((dist <= tol).any())


def _failure_diff(ids, before, now, labels, *, fixed_if_changed=False, still_if_same=False,
                  new_excludes_cases_only=False, new_in_cases_only=False, reverse=False):
    right_now = [i for i in ids if (now[i] != before[i] if fixed_if_changed else now[i] == labels[i])]
    still = [i for i in ids if (now[i] == before[i] if still_if_same else now[i] != labels[i])]
    pool = ids if new_in_cases_only else range(len(labels))
    if new_excludes_cases_only:
        new = [i for i in pool if now[i] != labels[i] and i not in ids]
    else:
        new = [i for i in pool if now[i] != labels[i] and before[i] == labels[i]]
    order = (lambda x: sorted(x, reverse=True)) if reverse else sorted
    return {"fixed": order(right_now), "still_failing": order(still), "newly_failing": order(new)}


def _norms(model, *, per_param: bool = False, summed: bool = False, zeros: bool = False) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, p in model.named_parameters():
        if p.grad is None and not zeros:
            continue
        key = name if per_param else name.rpartition(".")[0]
        value = 0.0 if p.grad is None else float(p.grad.norm())
        out[key] = out.get(key, 0.0) + value if summed else (out.get(key, 0.0) ** 2 + value**2) ** 0.5
    return out


def _divergence(losses, factor=10.0, window=20, *, use_window=True, mean=False, nan=True, min_known=5, shift=0):
    import math

    recent: list[float] = []
    for i, loss in enumerate(losses):
        if not math.isfinite(loss):
            if nan:
                return i + shift
            continue
        base = recent[-window:] if use_window else recent
        if len(recent) >= min_known and base and loss > factor * (np.mean(base) if mean else np.median(base)):
            return i + shift
        recent.append(loss)
    return None


def _overfit(train, val, patience, *, need_train=True, vs_previous=False, early=False):
    for e in range(len(val)):
        if e < patience and not early:
            continue
        if e < 1:
            continue
        start = max(e - patience, 0)
        fell = train[e] < train[start]
        if vs_previous:
            stalled = val[e] >= val[e - 1]
        else:
            stalled = min(val[start + 1 : e + 1]) >= min(val[: start + 1])
        if stalled and (fell or not need_train):
            return e
    return None


# ------------------------------------------------------------------------------------------------- checks


@pytest.mark.parametrize("exercise_id", list_checks())
def test_check_accepts_solution(
    exercise_id: str,
    solutions: dict[str, Any],
    capsys: pytest.CaptureFixture,
) -> None:
    assert exercise_id in solutions, f"no solution notebook calls check({exercise_id!r}, ...)"
    result = check(exercise_id, solutions[exercise_id])
    assert result.passed, result.message
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and f"PASS {exercise_id}: " in out and re.search(r"\(\d+ cases\)\n$", out)
    assert check(exercise_id, solutions[exercise_id], quiet=True).line() == out.rstrip("\n")


@pytest.mark.parametrize("exercise_id", list_checks())
def test_check_rejects_stub(exercise_id: str, stubs: dict[str, Any]) -> None:
    assert exercise_id in stubs, f"no exercise notebook calls check({exercise_id!r}, ...)"
    result = check(exercise_id, stubs[exercise_id], quiet=True)
    assert not result.passed
    assert result.message == NOT_IMPLEMENTED_MSG


@pytest.mark.parametrize(
    ("exercise_id", "wrong"),
    [(exercise_id, wrong) for exercise_id, wrongs in WRONG_ANSWERS.items() for wrong in wrongs],
    ids=lambda value: value if isinstance(value, str) else value.keyword.replace(" ", "_"),
)
def test_check_rejects_wrong_answer(exercise_id: str, wrong: Wrong, capsys: pytest.CaptureFixture) -> None:
    result = check(exercise_id, wrong.fn)
    assert not result.passed
    assert wrong.keyword in result.message
    out = capsys.readouterr().out
    assert out.startswith(f"\u2717 NOT YET {exercise_id}: ") and out.count("\n") == 1


class _Weird:
    """An object that breaks every comparison and conversion."""

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no comparing me")

    __hash__ = None  # type: ignore[assignment]

    def __index__(self) -> int:
        raise RuntimeError("no converting me")


def _raises_value_error(*args: Any, **kwargs: Any) -> Any:
    raise ValueError("something went wrong inside")


BAD_ANSWERS: dict[str, Any] = {
    "none": None,
    "int": 42,
    "string": "my_function",
    "returns_none": lambda *args, **kwargs: None,
    "returns_array": lambda *args, **kwargs: np.zeros((3, 3, 3)),
    "returns_string": lambda *args, **kwargs: "42",
    "returns_weird": lambda *args, **kwargs: _Weird(),
    "raises_value_error": _raises_value_error,
    "no_arguments": lambda: 1,
}


@pytest.mark.parametrize("exercise_id", list_checks())
@pytest.mark.parametrize("kind", list(BAD_ANSWERS))
def test_bad_answers_never_crash(exercise_id: str, kind: str) -> None:
    result = check(exercise_id, BAD_ANSWERS[kind], quiet=True)
    assert isinstance(result, CheckResult)
    assert not result.passed and not result
    assert result.message.strip()
    if kind == "raises_value_error":
        assert "ValueError" in result.message and "something went wrong inside" in result.message


def test_unknown_id_raises() -> None:
    with pytest.raises(ValueError, match="00.conv_macs"):
        check("99.nope", lambda: None)


def test_duplicate_registration_raises() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register(list_checks()[0])(lambda answer: "ok")


def test_check_result() -> None:
    ok, bad = CheckResult("00.x", True, "fine (1 cases)"), CheckResult("00.x", False, "hint")
    assert ok and not bad
    assert "PASS 00.x: fine" in repr(ok) and "NOT YET 00.x: hint" in repr(bad)
    assert ok == CheckResult("00.x", True, "fine (1 cases)", printed=True)


def test_result_is_shown_once_in_jupyter(capsys: pytest.CaptureFixture) -> None:
    check("00.conv_macs", None)._ipython_display_()  # the cell's value after check printed: nothing more
    assert capsys.readouterr().out.count("NOT YET") == 1
    check("00.conv_macs", None, quiet=True)._ipython_display_()
    assert capsys.readouterr().out.count("NOT YET") == 1


# -------------------------------------------------------------------------------------------------- build


def test_exercises_in_sync_with_solutions(capsys: pytest.CaptureFixture) -> None:
    assert sorted(p.name for p in SOLUTIONS.glob("*.ipynb")), "no solution notebooks"
    code = main(["--check", "--solutions", str(SOLUTIONS), "--exercises", str(EXERCISES)])
    assert code == 0, capsys.readouterr().out


def _notebook(*cells: nbformat.NotebookNode) -> nbformat.NotebookNode:
    nb = v4.new_notebook()
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    nb.cells = list(cells)
    for index, cell in enumerate(nb.cells):
        cell.id = f"c{index}"
    return nb


SOLVED = '''def f(x):
    """Doc."""
    if x:
        ### BEGIN SOLUTION (hint: use "//" or \\ here)
        return x // 2
        ### END SOLUTION
    ### BEGIN SOLUTION
    return 0
    ### END SOLUTION'''


def test_build_strips_solutions_and_outputs(tmp_path: Path) -> None:
    code = v4.new_code_cell("# NBVAL_CHECK_OUTPUT\n" + SOLVED, execution_count=3)
    code.outputs = [v4.new_output("stream", name="stdout", text="hi\n")]
    code.metadata["execution"] = {"iopub.status.busy": "2024-01-01T00:00:00"}
    secret = v4.new_code_cell("print('answer')", metadata={"tags": ["solution-only"]})
    nb = _notebook(v4.new_markdown_cell("# Title"), code, secret)
    exercise = build_exercise(nb, "demo.ipynb")
    assert [cell.cell_type for cell in exercise.cells] == ["markdown", "code"]
    stub = exercise.cells[1]
    assert stub.outputs == [] and stub.execution_count is None and "execution" not in stub.metadata
    assert stub.source == (
        'def f(x):\n    """Doc."""\n    if x:\n'
        '        raise NotImplementedError("Exercise: use \\"//\\" or \\\\ here")\n'
        '    raise NotImplementedError("Exercise: write your code here")'
    )
    namespace: dict[str, Any] = {}
    exec(stub.source, namespace)
    with pytest.raises(NotImplementedError, match=r'Exercise: use "//" or \\ here'):
        namespace["f"](1)
    assert nb.cells[1].outputs, "the input notebook must not be modified"
    assert exercise.metadata == nb.metadata


def test_build_is_deterministic_and_check_mode(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    solutions, exercises = tmp_path / "solutions", tmp_path / "exercises"
    solutions.mkdir()
    nbformat.write(_notebook(v4.new_code_cell(SOLVED)), solutions / "01_demo.ipynb")
    assert main(["--check", "--solutions", str(solutions), "--exercises", str(exercises)]) == 1
    assert "01_demo.ipynb" in capsys.readouterr().out
    assert main(["--solutions", str(solutions), "--exercises", str(exercises)]) == 0
    first = (exercises / "01_demo.ipynb").read_bytes()
    assert first == render(build_exercise(nbformat.read(solutions / "01_demo.ipynb", as_version=4)))
    report = build_all(solutions, exercises)
    assert report.written == [] and (exercises / "01_demo.ipynb").read_bytes() == first
    assert build_all(solutions, exercises, check=True).in_sync
    assert sorted(p.name for p in exercises.iterdir()) == ["01_demo.ipynb"], "temporary files left behind"
    (exercises / "02_orphan.ipynb").write_bytes(first)
    capsys.readouterr()
    assert main(["--check", "--solutions", str(solutions), "--exercises", str(exercises)]) == 1
    assert "02_orphan.ipynb" in capsys.readouterr().out


@pytest.mark.parametrize(
    "source",
    [
        "### BEGIN SOLUTION\nx = 1",
        "x = 1\n### END SOLUTION",
        "### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION",
        "### BEGIN SOLUTION hint: no parentheses\n### END SOLUTION",
    ],
)
def test_build_rejects_bad_markers(tmp_path: Path, source: str, capsys: pytest.CaptureFixture) -> None:
    solutions = tmp_path / "solutions"
    solutions.mkdir()
    bad = _notebook(v4.new_markdown_cell("hi"), v4.new_code_cell(source))
    nbformat.write(bad, solutions / "07_bad.ipynb")
    with pytest.raises(SolutionMarkerError, match=r"07_bad\.ipynb, cell 1"):
        build_all(solutions, tmp_path / "exercises")
    assert main(["--solutions", str(solutions), "--exercises", str(tmp_path / "exercises")]) == 2
    assert "07_bad.ipynb" in capsys.readouterr().err
    assert not (tmp_path / "exercises" / "07_bad.ipynb").exists()


def test_strip_solutions_without_markers_is_identity() -> None:
    source = "x = 1\n\n# a comment\n"
    assert strip_solutions(source) == source


# ------------------------------------------------------------------------------------ exercise notebooks


@pytest.mark.notebook
@pytest.mark.parametrize("path", sorted(EXERCISES.glob("*.ipynb")), ids=lambda p: p.name)
def test_exercise_notebook_runs_with_only_not_implemented_errors(path: Path) -> None:
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            ast.parse(cell.source)
    client = NotebookClient(
        nb, kernel_name="python3", timeout=120, allow_errors=True, resources={"metadata": {"path": str(ROOT)}}
    )
    client.execute()
    errors = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    errors = [out for out in errors if out.output_type == "error"]
    assert all(out.ename == "NotImplementedError" for out in errors), [(e.ename, e.evalue) for e in errors]
    for cell in nb.cells:
        if cell.cell_type == "code" and CHECK_CALL.search(cell.source):
            text = "".join(out.get("text", "") for out in cell.outputs if out.output_type == "stream")
            assert "NOT YET" in text and text.count("\n") == 1, "a check cell shows exactly one line"
            assert [out.output_type for out in cell.outputs] == ["stream"], cell.outputs
