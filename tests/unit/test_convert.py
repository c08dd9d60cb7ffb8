"""hrlib.pipeline.converter and the `convert` / `verify` commands: resumable atomic conversion, input errors, pixel
limit."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import hrlib.pipeline.converter as conv
from hrlib.__main__ import main
from hrlib.pipeline import ImageDecodeError, read_image_file
from hrlib.pipeline.converter import ConvertError, convert, write_example_images
from hrlib.pipeline.store import open_store, verify


@pytest.fixture()
def src(tmp_path):
    """Three 300 x 257 lossless PNG inputs."""
    folder = tmp_path / "src"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (257, 300, 3), dtype=np.uint8)).save(folder / f"img{i}.png")
    return folder


def _pixels(path):
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.mark.parametrize("fmt", ["zarr", "lmdb"])
def test_convert_writes_a_verified_store_with_manifest(tmp_path, src, fmt):
    result = convert(src, tmp_path / "out", fmt=fmt, tile=64, levels=2, progress=False)
    assert [p.split("/")[-1] for p in result["converted"]] == ["img0.png", "img1.png", "img2.png"]
    assert result["skipped"] == [] and result["failed"] == {}
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    entry = manifest["images"]["img1"]
    assert manifest["complete"] is True and manifest["format"] == fmt and manifest["tile"] == 64
    assert entry["shape"] == [257, 300, 3] and entry["source"] == "img1.png" and entry["level_shapes"][1] == [128, 150]
    store = open_store(tmp_path / "out")
    expected = _pixels(src / "img1.png")[60:130, 120:210]
    np.testing.assert_array_equal(store.read_region("img1", 60, 120, 70, 90), expected)
    assert verify(tmp_path / "out") == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "src"]  # no temporary folder left


def test_interrupted_conversion_leaves_no_store_and_resume_finishes(tmp_path, src, monkeypatch):
    calls = []
    real = conv.read_image_file

    def fail_on_second(path, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the run dies on the 2nd image
        return real(path, **kwargs)

    monkeypatch.setattr(conv, "read_image_file", fail_on_second)
    dst = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        convert(src, dst, tile=64, progress=False)
    assert not dst.exists()
    with pytest.raises(FileNotFoundError, match="--resume"):
        open_store(dst)
    assert verify(dst) and "no manifest.json" in verify(dst)[0]
    with pytest.raises(FileNotFoundError):  # nor does the temporary folder look like a finished store
        open_store(tmp_path / ".out.partial")
    with pytest.raises(FileExistsError, match="--resume"):
        convert(src, dst, tile=64, progress=False)
    with pytest.raises(ValueError, match="^tile "):
        convert(src, dst, tile=32, resume=True, progress=False)
    result = convert(src, dst, tile=64, resume=True, progress=False)
    assert [p.split("/")[-1] for p in result["skipped"]] == ["img0.png"]
    assert [p.split("/")[-1] for p in result["converted"]] == ["img1.png", "img2.png"]
    assert verify(dst) == [] and open_store(dst).image_ids == ["img0", "img1", "img2"]
    np.testing.assert_array_equal(open_store(dst).read_image("img0"), _pixels(src / "img0.png"))
    assert not (tmp_path / ".out.partial").exists()
    again = convert(src, dst, tile=64, resume=True, progress=False)  # a finished store: nothing to do
    assert again["converted"] == [] and len(again["skipped"]) == 3


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_input_is_named_and_stops_or_is_skipped(tmp_path, src, damage):
    bad = src / "img1.png"
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"not an image at all" * 10)
    with pytest.raises(ConvertError, match=r"img1\.png.*--on-error skip"):
        convert(src, tmp_path / "out", tile=64, progress=False)
    assert not (tmp_path / "out").exists()
    result = convert(src, tmp_path / "out", tile=64, on_error="skip", resume=True, progress=False)
    assert list(result["failed"]) == [str(bad)] and "img1.png" in result["failed"][str(bad)]
    assert open_store(tmp_path / "out").image_ids == ["img0", "img2"]
    assert list(json.loads((tmp_path / "out" / "manifest.json").read_text())["failed"]) == [str(bad)]


def test_refuses_to_overwrite_without_force(tmp_path, src):
    convert(src, tmp_path / "out", tile=64, levels=1, progress=False)
    with pytest.raises(FileExistsError, match="^dst .*--force"):
        convert(src, tmp_path / "out", tile=64, levels=1, progress=False)
    convert(src / "img2.png", tmp_path / "out", tile=64, levels=1, force=True, progress=False)
    assert open_store(tmp_path / "out").image_ids == ["img2"]


def test_max_pixels_names_file_and_limit_and_never_changes_pils_guard(tmp_path, src, monkeypatch):
    with pytest.raises(ImageDecodeError, match=r"img0\.png' could not be decoded: 300x257 = 77,100 pixels exceeds "
                                                r"max_pixels=50,000.*--max-pixels") as err:
        read_image_file(src / "img0.png", max_pixels=50_000)
    assert err.value.path == src / "img0.png" and err.value.reason.startswith("300x257 = 77,100 pixels")
    with pytest.raises(ValueError, match=r"img0\.png' could not be decoded: 300x257 = 77,100 pixels exceeds "
                                         r"max_pixels=10,000.*--max-pixels"):
        read_image_file(src / "img0.png", max_pixels=10_000)  # checked from the header: PIL's guard is left alone
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # a strict guard: raised for one call, then restored
    assert read_image_file(src / "img0.png", max_pixels=100_000).shape == (257, 300, 3)
    assert Image.MAX_IMAGE_PIXELS == 1000
    with pytest.raises(Image.DecompressionBombError):
        Image.open(src / "img0.png")
    with pytest.raises(ConvertError, match=r"img0\.png.*max_pixels=10,000"):
        convert(src, tmp_path / "out", max_pixels=10_000, progress=False)
    assert Image.MAX_IMAGE_PIXELS == 1000


def test_read_image_file_modes(tmp_path):
    Image.fromarray(np.arange(12, dtype=np.uint8).reshape(3, 4)).save(tmp_path / "g.png")
    Image.fromarray(np.zeros((3, 4), np.uint16)).save(tmp_path / "d.png")
    assert read_image_file(tmp_path / "g.png").shape == (3, 4, 1)
    with pytest.raises(ValueError, match=r"d\.png' could not be decoded: mode .* not 8-bit"):
        read_image_file(tmp_path / "d.png")


def test_bad_arguments_name_the_argument(tmp_path, src):
    for kwargs, name in [({"fmt": "tiff"}, "fmt"), ({"tile": 0}, "tile"), ({"levels": 0}, "levels"),
                         ({"on_error": "ignore"}, "on_error"), ({"max_pixels": 0}, "max_pixels")]:
        with pytest.raises(ValueError, match=f"^{name} "):
            convert(src, tmp_path / "out", progress=False, **kwargs)
    with pytest.raises(ValueError, match="^src .*does not exist"):
        convert(tmp_path / "missing", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="^src "):
        convert(tmp_path / "empty", tmp_path / "out")


def test_command_line(tmp_path, capsys):
    write_example_images(tmp_path / "src", n=2, size=128, seed=1)
    out = str(tmp_path / "out")
    assert main(["convert", str(tmp_path / "src"), out, "--format", "lmdb", "--tile", "64", "--quiet"]) == 0
    assert "2 converted" in capsys.readouterr().out
    assert main(["verify", out]) == 0 and "healthy" in capsys.readouterr().out
    with pytest.raises(SystemExit) as err:
        main(["convert", str(tmp_path / "src"), out, "--tile", "64"])
    assert err.value.code == 2 and "--force" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["convert", str(tmp_path / "src"), out, "--format", "tiff"])
    assert "--format" in capsys.readouterr().err
    (tmp_path / "out" / "tiles.lmdb" / "data.mdb").write_bytes(b"")
    assert main(["verify", out]) == 1 and "problem" in capsys.readouterr().out
