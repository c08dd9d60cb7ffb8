"""The notebook-testing set-up: stderr (tqdm, warnings) and widgets stay out of nbval's comparison, headless."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]

CHECKED = '''# NBVAL_CHECK_OUTPUT
import sys, warnings
from tqdm.auto import tqdm
import ipywidgets
for _ in tqdm(range(3), desc="work"):
    pass
warnings.warn("a warning that changes between runs")
print("stdout", file=sys.stderr)
display(ipywidgets.IntSlider(value=3))
print("result: 42")'''


def _notebook(path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(CHECKED)]
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()  # headless: tqdm and the widget run fine
    stored = nb.cells[0].outputs
    assert any(o.get("name") == "stderr" for o in stored), "the stored outputs should include stderr"
    for o in stored:  # make stored stderr differ from what the next run prints
        if o.get("name") == "stderr":
            o["text"] = "something else entirely\n"
    nbformat.write(nb, path)


def _nbval(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
                           "--nbval-current-env", "nb.ipynb"], cwd=folder, capture_output=True, text=True,
                          timeout=300)


def test_stderr_and_widgets_are_not_compared(tmp_path):
    with_conftest, without = tmp_path / "with", tmp_path / "without"
    for folder in (with_conftest, without):
        folder.mkdir()
        _notebook(folder / "nb.ipynb")
        (folder / "pytest.ini").write_text("[pytest]\n")
    shutil.copy(ROOT / "conftest.py", with_conftest / "conftest.py")
    ok = _nbval(with_conftest)
    assert ok.returncode == 0, ok.stdout[-2000:]
    # the same notebook without the course's conftest fails on stderr: the conftest is what makes it pass
    assert _nbval(without).returncode != 0
