"""``--force`` replaces only what hrlib wrote: never a folder that merely holds a ``manifest.json`` or an
``index.json``, and never the sources."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hrlib.pipeline import convert, open_store, write_shards, write_small_files
from hrlib.pipeline.converter import write_example_images


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture()
def images(tmp_path) -> Path:
    folder = tmp_path / "images"
    write_example_images(folder, n=2, size=96, fmt="png")
    return folder


def _web_app(folder: Path, marker: str) -> dict[str, bytes]:
    folder.mkdir()
    (folder / marker).write_text('{"name": "my app", "start_url": "/"}')
    (folder / "index.html").write_text("<html>precious</html>")
    return _snapshot(folder)


def test_convert_force_keeps_a_folder_that_only_holds_a_manifest(images, tmp_path):
    dst = tmp_path / "webapp"
    before = _web_app(dst, "manifest.json")
    out = subprocess.run([sys.executable, "-m", "hrlib", "convert", str(images), str(dst), "--tile", "32",
                          "--levels", "1", "--force"], capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "not an hrlib store" in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert _snapshot(dst) == before


def test_convert_into_its_own_source_is_refused(images):
    (images / "manifest.json").write_text("{}")  # a source folder that happens to hold a manifest
    before = _snapshot(images)
    with pytest.raises(ValueError, match="source"):
        convert(images, images, tile=32, levels=1, force=True, progress=False)
    with pytest.raises(ValueError, match="source"):
        convert(images, images.parent, tile=32, levels=1, force=True, progress=False)  # dst holds the source
    assert _snapshot(images) == before


@pytest.mark.parametrize("writer", [write_shards, write_small_files])
def test_sample_writers_force_keeps_a_folder_that_only_holds_an_index(tmp_path, writer):
    dst = tmp_path / "site"
    before = _web_app(dst, "index.json")
    samples = [(np.zeros((8, 8, 3), np.uint8), 0)]
    with pytest.raises(FileExistsError, match="not an hrlib"):
        writer(samples, dst, force=True)
    assert _snapshot(dst) == before


def test_force_still_replaces_what_hrlib_wrote(images, tmp_path):
    dst = tmp_path / "store"
    convert(images, dst, tile=32, levels=1, progress=False)
    convert(images, dst, tile=32, levels=2, force=True, progress=False)
    with open_store(dst) as store:
        assert store.levels(store.image_ids[0]) == 2
    samples = [(np.zeros((8, 8, 3), np.uint8), 0)]
    write_shards(samples, tmp_path / "shards")
    write_shards(samples * 2, tmp_path / "shards", force=True)
