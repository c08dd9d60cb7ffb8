"""Repository-wide pytest configuration.

nbval compares a checked cell's outputs with the stored ones. stderr (tqdm progress bars, warnings) differs from run
to run, so it is left out of the comparison; so are widget views and HTML (tqdm's notebook bars).
"""

from __future__ import annotations

import os

os.environ.setdefault("HRLIB_PROFILE", "fast")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("HRLIB_HEADLESS", "1")  # widgets fall back to static figures (hrlib.viz.resolution_slider)


def pytest_collectstart(collector):  # noqa: ANN001 - pytest hook
    if hasattr(collector, "skip_compare"):  # nbval's IPyNbFile
        collector.skip_compare = (*collector.skip_compare, "stderr", "text/html",
                                  "application/vnd.jupyter.widget-view+json")
