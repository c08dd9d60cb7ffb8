"""Files that would hang a reader or fill its memory are refused at once, with an error that names the file. Each
attack runs in a child process with a time and memory limit: a hang or a blow-up fails the test, not CI."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.reliability.limits import run_limited
from tests.reliability.stores import FORMATS, chunk_file, edit_manifest, noise_store

READ = """
from hrlib.pipeline import open_store
with open_store(path) as store:
    return store.read_region("a", 0, 0, 16, 16).tolist()
"""


def _assert_refused(out, *words):
    assert out.status == "error", (out.status, out.error, out.message[:300], out.stderr[-500:])
    assert out.error in ("StoreCorruptError", "FileNotFoundError", "ValueError", "ConfigError"), out.message[:300]
    assert all(w in out.message for w in words), out.message[:300]
    assert len(out.message) < 1000, out.message[:300]


def test_a_huge_sparse_chunk_file_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "store"
    noise_store(path, "zarr")
    with open(chunk_file(path, "a", 0, 0, 0), "r+b") as fh:
        fh.truncate(3 << 30)  # 3 GiB of holes: no disk space, but a naive reader allocates it all
    out = run_limited(READ, 60, path=str(path))
    _assert_refused(out, "chunk (0, 0)", str(path))


@pytest.mark.parametrize("target", ["/dev/zero", "fifo"])
@pytest.mark.parametrize("what", ["manifest.json", "zarr.json"])
def test_a_metadata_file_that_is_a_device_or_fifo_is_refused(tmp_path, what, target):
    path = tmp_path / "store"
    noise_store(path, "zarr")
    file = path / what if what == "manifest.json" else path / "images.zarr" / "a" / "0" / "zarr.json"
    file.unlink()
    if target == "fifo":
        os.mkfifo(file)
    else:
        os.symlink(target, file)
    out = run_limited(READ, 60, path=str(path))
    _assert_refused(out, str(path))
    assert "regular file" in out.message, out.message


def test_an_lmdb_data_file_that_is_a_fifo_is_refused(tmp_path):
    path = tmp_path / "store"
    noise_store(path, "lmdb")
    data = path / "tiles.lmdb" / "data.mdb"
    data.unlink()
    os.mkfifo(data)
    out = run_limited(READ, 60, path=str(path))
    _assert_refused(out, str(path), "data.mdb")


@pytest.mark.parametrize("fmt", FORMATS)
def test_verify_of_a_manifest_claiming_a_huge_image_is_prompt(tmp_path, fmt):
    path = tmp_path / "store"
    noise_store(path, fmt)

    def claim(m):
        m["images"]["a"]["shape"] = [2**20, 2**20, 3]
        m["images"]["a"]["level_shapes"] = [[2**20, 2**20]]

    edit_manifest(path, claim)
    out = run_limited("from hrlib.pipeline import verify\nreturn verify(path)", 60, path=str(path))
    assert out.status == "ok", (out.error, out.message, out.stderr[-500:])
    assert 1 <= len(out.value) <= 10 and all(str(path) in line for line in out.value), out.value


def test_a_deeply_nested_manifest_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "store"
    noise_store(path, "zarr")
    (path / "manifest.json").write_text("[" * 10**6)
    out = run_limited(READ, 60, path=str(path))
    _assert_refused(out, "manifest.json", "nested")


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path):
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    config = tmp_path / "bomb.yaml"
    lines.append("schedule: {stages: *i}")  # 9^9 strings once expanded
    config.write_text("\n".join(lines) + "\n")
    assert config.stat().st_size < 600
    out = run_limited("from hrlib.train import load_config\nreturn load_config(path)", 30, path=str(config))
    _assert_refused(out, "bomb.yaml", "aliases")


def test_a_deeply_nested_config_is_an_error_naming_the_file(tmp_path):
    config = tmp_path / "deep.yaml"
    config.write_text("[" * 10**6)
    out = run_limited("from hrlib.train import load_config\nreturn load_config(path)", 30, path=str(config))
    _assert_refused(out, "deep.yaml")


def test_a_huge_tile_is_refused_before_anything_is_written(tmp_path):
    from hrlib.pipeline.converter import write_example_images

    write_example_images(tmp_path / "src", n=1, size=64, fmt="png")
    out = subprocess.run([sys.executable, "-m", "hrlib", "convert", str(tmp_path / "src"), str(tmp_path / "dst"),
                          "--tile", "32768"], capture_output=True, text=True, timeout=120,
                         preexec_fn=lambda: __import__("resource").setrlimit(
                             __import__("resource").RLIMIT_AS, (8 << 30, 8 << 30)))
    assert out.returncode == 2 and "tile must be <=" in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]
