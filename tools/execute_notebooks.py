"""Re-execute notebooks in place, in the fast profile, so their stored outputs are what nbval compares against.

Usage: ``python tools/execute_notebooks.py lessons/00_why_high_resolution.ipynb [...]`` (or ``make execute``).
Each notebook runs top to bottom in a fresh kernel from its own folder; its run time is printed. Timing metadata
is not recorded, so a re-run only changes outputs that really changed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def execute(path: Path, timeout: int = 900) -> float:
    """Execute ``path`` in place and return its wall time in seconds."""
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    elapsed = time.perf_counter() - start
    for cell in nb.cells:
        cell.metadata.pop("execution", None)  # timestamps from other tools
    tmp = path.with_suffix(".ipynb.tmp")
    nbformat.write(nb, tmp)
    os.replace(tmp, path)
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    ns = parser.parse_args(argv)
    os.environ["HRLIB_PROFILE"] = "fast"
    os.environ["HRLIB_HEADLESS"] = "1"  # stored outputs show static figures, not widgets without a frontend
    for path in ns.notebooks:
        if not path.is_file() or path.suffix != ".ipynb":
            parser.error(f"not a notebook: {path}")
        print(f"{path}: {execute(path):.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
