"""Odd but legal input works, and bad input gets one clear line naming the argument or file, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from hrlib.pipeline import RegionDataset, convert, open_store, verify, write_store
from hrlib.pipeline.converter import write_example_images


def test_a_non_ascii_file_name_converts_to_a_store_that_reads_back(tmp_path):
    src = tmp_path / "src"
    write_example_images(src, n=1, size=64, fmt="jpg")
    (src / "example_00.jpg").rename(src / "café_slide.jpg")
    convert(src, tmp_path / "dst", tile=32, levels=1, progress=False)
    assert verify(tmp_path / "dst") == []
    assert open_store(tmp_path / "dst").image_ids == ["caf__slide"]


@pytest.mark.parametrize("args", [["verify", ""], ["convert", "", "out"]])
def test_an_empty_path_on_the_command_line_is_a_usage_error(tmp_path, args):
    out = subprocess.run([sys.executable, "-m", "hrlib", *args], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr and "must be" in out.stderr, out.stderr


@pytest.mark.parametrize("shape", [(0, 16, 3), (16, 0), (0, 0, 1)])
def test_an_empty_image_is_refused_when_written_not_called_damaged_later(tmp_path, shape):
    with pytest.raises(ValueError, match=r"images\['a'\]|image 'a'"):
        write_store(tmp_path / "store", {"a": np.zeros(shape, np.uint8)}, tile=16, levels=1)
    assert not (tmp_path / "store").exists()


def test_a_float_index_names_the_index(tmp_path):
    write_store(tmp_path / "store", {"a": np.zeros((64, 64, 3), np.uint8)}, tile=16, levels=1)
    dataset = RegionDataset(tmp_path / "store", size=16, n_samples=4)
    with pytest.raises(TypeError, match=r"^i must be an int index, got float 1.0"):
        dataset[1.0]
