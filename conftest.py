"""Repository-wide pytest configuration.

Hypothesis runs derandomized in CI (see below) and randomized elsewhere.

nbval compares a checked cell's outputs with the stored ones. stderr (tqdm progress bars, warnings) differs from run
to run, so it is left out of the comparison; so are widget views and HTML (tqdm's notebook bars).
"""

from __future__ import annotations

import os

from hypothesis import settings

os.environ.setdefault("HRLIB_PROFILE", "fast")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("HRLIB_HEADLESS", "1")  # widgets fall back to static figures (hrlib.viz.resolution_slider)


# Property tests explore new random examples on every local run (that is how edge cases are found); in CI
# (CI=true) they are derandomized, so a green main stays green and a failure there is reproducible.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
    settings.load_profile("ci")


def pytest_collectstart(collector):  # noqa: ANN001 - pytest hook
    if hasattr(collector, "skip_compare"):  # nbval's IPyNbFile
        collector.skip_compare = (*collector.skip_compare, "stderr", "text/html",
                                  "application/vnd.jupyter.widget-view+json")
