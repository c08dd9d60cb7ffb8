"""hrlib.viz figures and the generator benchmark's command line."""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from hrlib.bench import main as bench_main  # noqa: E402
from hrlib.data.slides import make_slide  # noqa: E402
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


def test_crop_box_and_format_table():
    from hrlib.viz import crop_box, format_table

    img = np.arange(100).reshape(10, 10)
    np.testing.assert_array_equal(crop_box(img, (2, 3, 5, 6)), img[3:6, 2:5])
    np.testing.assert_array_equal(crop_box(img, (2, 3, 5, 6), pad=1.0), img[0:9, 0:8])
    with pytest.raises(ValueError, match="box must be"):
        crop_box(img, (1, 2, 3))
    table = format_table(["a", "b"], [(1, 0.12345), ("x", np.float32(2.5))])
    assert table.splitlines() == ["| a | b |", "|---|---|", "| 1 | 0.123 |", "| x | 2.5 |"]
    with pytest.raises(ValueError, match=r"rows\[0\] has 1 cells, expected 2"):
        format_table(["a", "b"], [(1,)])


def test_time_it_counts_calls_and_returns_median():
    from hrlib.bench import time_it

    calls = []
    t = time_it(lambda: calls.append(1), repeats=3, warmup=2)
    assert len(calls) == 5 and t >= 0
    with pytest.raises(ValueError, match="repeats must be an int >= 1"):
        time_it(lambda: None, repeats=0)


def test_resolution_slider_widget_and_static_fallback(monkeypatch):
    import ipywidgets
    from matplotlib.figure import Figure

    from hrlib.viz import resolution_slider

    s = make_slide(64, label=2, seed=1)
    monkeypatch.setenv("HRLIB_HEADLESS", "1")
    fig = resolution_slider(s.image, (1, 2, 4), box=s.boxes[0])
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    box = resolution_slider(s.image, (1, 2, 4), static=False)
    slider = box.children[0]
    assert isinstance(slider, ipywidgets.SelectionSlider)
    assert list(slider.options) == [("full", 1), ("1/2", 2), ("1/4", 4)]
    slider.value = 4  # redraws without error


def test_mean_spread():
    from hrlib.viz import mean_spread

    assert mean_spread([0.9, 1.0, 0.8]) == "0.90 ± 0.08"
    assert mean_spread([3], ".1f") == "3.0 ± 0.0"
    with pytest.raises(ValueError, match="at least one"):
        mean_spread([])


def test_hrlib_cli_info_and_bench(capsys):
    from hrlib.__main__ import main

    assert main(["info"]) == 0 and "profile=" in capsys.readouterr().out
    assert main(["bench", "generator", "--sizes", "16", "--seconds", "0.01"]) == 0
    assert "images/s" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main([])
