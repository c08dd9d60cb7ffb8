"""Generate the exercise notebooks of every lesson (00-08) from the solution notebooks:
``python -m hrlib.exercises.build [--check]``.

``solutions/*.ipynb`` is the single source; ``exercises/<same name>.ipynb`` is generated from it:

* in code cells, every block ::

      ### BEGIN SOLUTION (hint: some text)
      ...solution lines...
      ### END SOLUTION

  becomes one line at the BEGIN line's indentation, ``raise NotImplementedError("Exercise: some text")``
  (the ``(hint: ...)`` part is optional);
* cells tagged ``solution-only`` are dropped, and ``# NBVAL_...`` marker comment lines are removed;
* outputs, execution counts and execution timing metadata are cleared; notebook metadata is kept.

The output is deterministic, so ``--check`` can compare bytes: it exits 1 listing the exercise notebooks that
are out of date (or that have no solution any more) and writes nothing.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from hrlib._io import atomic_write

__all__ = [
    "BuildReport",
    "SolutionMarkerError",
    "build_all",
    "build_exercise",
    "main",
    "render",
    "strip_solutions",
]

SOLUTION_ONLY_TAG = "solution-only"
DEFAULT_HINT = "write your code here"
_BEGIN = re.compile(r"^(?P<indent>[ \t]*)###\s*BEGIN SOLUTION\b(?P<rest>.*)$")
_END = re.compile(r"^[ \t]*###\s*END SOLUTION\b(?P<rest>.*)$")
_HINT = re.compile(r"^\s*\(\s*hint\s*:\s*(?P<hint>.*?)\s*\)\s*$")
_NBVAL = re.compile(r"^[ \t]*#\s*NBVAL_[A-Z_]+\s*$")
_VOLATILE_CELL_METADATA = ("execution", "collapsed", "scrolled")


class SolutionMarkerError(ValueError):
    """Unbalanced or malformed ``### BEGIN/END SOLUTION`` markers; the message names notebook and cell."""


def strip_solutions(source: str, where: str = "<cell>") -> str:
    """Replace each BEGIN/END SOLUTION block of a code cell's ``source`` by ``raise NotImplementedError``.

    Args:
        source: a code cell's source text.
        where: notebook and cell, for error messages.

    Returns:
        The source without solutions (and without ``# NBVAL_...`` marker lines).

    Raises:
        SolutionMarkerError: unbalanced or malformed markers.
    """
    out: list[str] = []
    begin_line: int | None = None
    for number, line in enumerate(source.split("\n"), start=1):
        begin, end = _BEGIN.match(line), _END.match(line)
        if begin:
            if begin_line is not None:
                raise SolutionMarkerError(
                    f"{where}: ### BEGIN SOLUTION on line {number} inside the block opened on line "
                    f"{begin_line} (missing ### END SOLUTION)"
                )
            rest = begin.group("rest").strip()
            hint_match = _HINT.match(rest)
            if rest and not hint_match:
                raise SolutionMarkerError(
                    f"{where}: malformed marker on line {number}: {line.strip()!r}; "
                    "write `### BEGIN SOLUTION` or `### BEGIN SOLUTION (hint: some text)`"
                )
            hint = hint_match.group("hint") if hint_match else ""
            message = json.dumps(f"Exercise: {hint or DEFAULT_HINT}", ensure_ascii=False)
            out.append(f"{begin.group('indent')}raise NotImplementedError({message})")
            begin_line = number
        elif end:
            if begin_line is None:
                message = f"{where}: ### END SOLUTION on line {number} without ### BEGIN SOLUTION"
                raise SolutionMarkerError(message)
            if end.group("rest").strip():
                raise SolutionMarkerError(f"{where}: malformed marker on line {number}: {line.strip()!r}")
            begin_line = None
        elif begin_line is None and not _NBVAL.match(line):
            out.append(line)
    if begin_line is not None:
        raise SolutionMarkerError(f"{where}: ### BEGIN SOLUTION on line {begin_line} is never closed")
    return "\n".join(out)


def _cell_id(notebook_name: str, index: int) -> str:
    return hashlib.sha1(f"{notebook_name}:{index}".encode()).hexdigest()[:8]


def build_exercise(solution: nbformat.NotebookNode, name: str = "<notebook>") -> nbformat.NotebookNode:
    """The exercise version of a solution notebook (the input is not modified).

    Args:
        solution: the solution notebook.
        name: the notebook's name, for error messages and generated cell ids.

    Returns:
        A new notebook: solution-only cells dropped, solutions stripped, outputs cleared.

    Raises:
        SolutionMarkerError: a cell's markers are unbalanced or malformed.
    """
    nb = copy.deepcopy(solution)
    cells = []
    for index, cell in enumerate(nb.cells):
        if SOLUTION_ONLY_TAG in cell.get("metadata", {}).get("tags", []):
            continue
        for key in _VOLATILE_CELL_METADATA:
            cell.metadata.pop(key, None)
        if "id" not in cell and (nb.nbformat, nb.nbformat_minor) >= (4, 5):
            cell["id"] = _cell_id(name, index)
        if cell.cell_type == "code":
            cell.source = strip_solutions(cell.source, f"{name}, cell {index}")
            cell.outputs = []
            cell.execution_count = None
        cells.append(cell)
    nb.cells = cells
    return nb


def render(nb: nbformat.NotebookNode) -> bytes:
    """The bytes ``nbformat.write`` would write (nbformat 4 JSON, sorted keys, one-space indent).

    Args:
        nb: the notebook.

    Returns:
        UTF-8 bytes ending in a newline.
    """
    text = nbformat.writes(nb, version=nbformat.NO_CONVERT)
    if not text.endswith("\n"):
        text += "\n"
    return text.encode("utf-8")


@dataclass
class BuildReport:
    """What a build did or, with ``check=True``, would do: exercise notebooks ``written``, ``unchanged``,
    ``out_of_date`` (check mode) and ``stale`` (no solution any more)."""

    written: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)
    out_of_date: list[Path] = field(default_factory=list)
    stale: list[Path] = field(default_factory=list)

    @property
    def in_sync(self) -> bool:
        """Whether every exercise notebook matches its solution and none is stale."""
        return not self.out_of_date and not self.stale


def build_all(solutions_dir: Path | str, exercises_dir: Path | str, *, check: bool = False) -> BuildReport:
    """Build ``exercises_dir/<name>.ipynb`` for every ``solutions_dir/*.ipynb``.

    Each file is written atomically and keeps the permission bits of the file it replaces.

    Args:
        solutions_dir: the folder of solution notebooks.
        exercises_dir: the folder of exercise notebooks (created if needed).
        check: write nothing; out-of-date and missing files go to ``report.out_of_date``.

    Returns:
        The report; exercise notebooks without a solution are listed in ``report.stale`` (never deleted).

    Raises:
        FileNotFoundError: ``solutions_dir`` does not exist.
        SolutionMarkerError: a solution notebook has malformed markers.
    """
    solutions_dir, exercises_dir = Path(solutions_dir), Path(exercises_dir)
    if not solutions_dir.is_dir():
        raise FileNotFoundError(f"solutions folder {solutions_dir} does not exist")
    report = BuildReport()
    sources = sorted(solutions_dir.glob("*.ipynb"))
    for source in sources:
        solution = nbformat.read(source, as_version=4)
        data = render(build_exercise(solution, str(source)))
        target = exercises_dir / source.name
        if target.is_file() and target.read_bytes() == data:
            report.unchanged.append(target)
        elif check:
            report.out_of_date.append(target)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(target, lambda fh, data=data: fh.write(data), "wb", keep_permissions=True)
            report.written.append(target)
    names = {source.name for source in sources}
    if exercises_dir.is_dir():
        report.stale = [p for p in sorted(exercises_dir.glob("*.ipynb")) if p.name not in names]
    return report


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 ok, 1 out of date with ``--check``, 2 error.
    """
    parser = argparse.ArgumentParser(
        prog="python -m hrlib.exercises.build",
        description="Generate exercises/*.ipynb from solutions/*.ipynb (strip solutions, clear outputs).",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if any file is out of date",
    )
    parser.add_argument("--solutions", type=Path, default=Path("solutions"), help="default: ./solutions")
    parser.add_argument("--exercises", type=Path, default=Path("exercises"), help="default: ./exercises")
    ns = parser.parse_args(argv)
    try:
        report = build_all(ns.solutions, ns.exercises, check=ns.check)
    except (SolutionMarkerError, FileNotFoundError, nbformat.reader.NotJSONError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in report.written:
        print(f"wrote {path}")
    for path in report.stale:
        print(f"stale: {path} has no notebook in {ns.solutions} (delete it, or restore its solution)")
    if ns.check:
        for path in report.out_of_date:
            print(f"out of date: {path}")
        if not report.in_sync:
            print("exercises are not in sync with solutions: run `python -m hrlib.exercises.build`")
            return 1
        print(f"exercises in sync with solutions ({len(report.unchanged)} notebooks)")
    elif not report.written:
        print(f"exercises already up to date ({len(report.unchanged)} notebooks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
