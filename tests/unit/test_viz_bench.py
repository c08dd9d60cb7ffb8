"""hrlib.viz figures and the generator benchmark's command line."""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from hrlib.bench import main as bench_main  # noqa: E402
from hrlib.data import make_slide  # noqa: E402
from hrlib.viz import compare_resolutions, show_images  # noqa: E402


def test_show_images_grid_titles_and_boxes():
    s = make_slide(64, label=2, seed=1)
    fig = show_images([s.image, s.image[..., 0], s.image], ["a", "b", "c"], ncols=2, boxes=[s.boxes, None, None])
    axes = [ax for ax in fig.axes if ax.images]
    assert len(axes) == 3 and [ax.get_title() for ax in axes] == ["a", "b", "c"]
    assert len(axes[0].patches) == len(s.boxes) and not axes[1].patches


def test_show_images_errors():
    with pytest.raises(ValueError, match="titles must have one entry per image"):
        show_images([np.zeros((4, 4))], ["a", "b"])
    with pytest.raises(ValueError, match=r"images\[1\] must be"):
        show_images([np.zeros((4, 4)), np.zeros(4)])
    with pytest.raises(ValueError, match="at least one"):
        show_images([])


def test_compare_resolutions_zoom_shrinks_pixels():
    s = make_slide(256, label=2, seed=2)
    fig = compare_resolutions(s.image, (1, 2, 4), box=s.boxes[0])
    sizes = [ax.images[0].get_array().shape[0] for ax in fig.axes]
    assert sizes[0] > sizes[1] > sizes[2] >= 1
    assert fig.axes[0].get_title().startswith("full") and fig.axes[2].get_title().startswith("1/4")


def test_bench_generator_cli(tmp_path, capsys):
    out = tmp_path / "gen.json"
    assert bench_main(["generator", "--sizes", "32", "64", "--seconds", "0.01", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["generator"]
    assert [r["size"] for r in rows] == [32, 64] and all(r["images_per_s"] > 0 for r in rows)
    assert "images/s" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        bench_main(["generator", "--sizes", "0"])
