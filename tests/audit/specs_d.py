"""Audit cases for hrlib.pipeline.converter, .decode, .store, .tilestore, .loaders and hrlib.data.slides (see
harness.py)."""

from __future__ import annotations

import atexit
import functools
import pathlib
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from harness import BAD_IMAGES, Case, image_u8  # noqa: E402

from hrlib.pipeline import store as st  # noqa: E402
from hrlib.pipeline import tilestore  # noqa: E402
from hrlib.pipeline.loaders import TileCache  # noqa: E402


@functools.cache
def _root() -> Path:
    root = Path(tempfile.mkdtemp(prefix="hrlib-audit-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    (root / "src").mkdir()
    Image.fromarray(image_u8(24, 20)).save(root / "src" / "a.png")
    (root / "empty").mkdir()
    st.write_store(root / "store", {"a": image_u8(40, 48), "b": image_u8(32, 32, None)}, tile=16, levels=2)
    return root


def _new(name: str) -> Path:
    """A path that does not exist yet (a fresh output folder per call)."""
    return Path(tempfile.mkdtemp(dir=_root())) / name


def _store() -> tilestore.TileStore:
    return st.open_store(_root() / "store")


MISSING = "/nonexistent/hrlib-audit/missing"
BAD_PATHS = [None, 3, ""]

SPECS: dict[str, Case] = {
    # ------------------------------------------------------------------ convert
    "hrlib.pipeline.converter.convert": Case(
        valid=lambda: {"src": _root() / "src", "dst": _new("out"), "tile": 16, "levels": 2, "progress": False},
        bad={"src": [*BAD_PATHS, MISSING, "/dev/null"], "dst": BAD_PATHS, "fmt": ["tiff", 3], "tile": [0, 4, "64"],
             "levels": [0, 13, 1.5], "on_error": ["ignore", None], "max_pixels": [0, 2.5, True],
             "resume": ["yes", 1], "force": ["no"], "progress": ["off"]}),
    "hrlib.pipeline.converter.list_sources": Case(
        valid=lambda: {"src": _root() / "src"},
        bad={"src": [*BAD_PATHS, MISSING]},
        names={"src": "src"}),
    "hrlib.pipeline.decode.read_image_file": Case(
        valid=lambda: {"path": _root() / "src" / "a.png"},
        bad={"path": [*BAD_PATHS, MISSING], "max_pixels": [0, -1, 2.5, True, "1e6"]}),
    # ------------------------------------------------------------------ store
    "hrlib.pipeline.store.downsample": Case(
        valid=lambda: {"image": image_u8(), "level": 1},
        bad={"image": [*BAD_IMAGES, image_u8(c=5), image_u8().astype(np.float32)], "level": [-1, 1.5, 13, 5]}),
    "hrlib.pipeline.store.open_store": Case(
        valid=lambda: {"path": _root() / "store"},
        bad={"path": [*BAD_PATHS, MISSING, _root() / "empty"]}),
    "hrlib.pipeline.store.verify": Case(
        valid=lambda: {"path": _root() / "store"},
        bad={"path": BAD_PATHS}),
    "hrlib.pipeline.converter.write_example_images": Case(
        valid=lambda: {"folder": _new("examples"), "n": 1, "size": 32},
        bad={"folder": BAD_PATHS, "n": [0, 1.5], "size": [8, "32"], "seed": [-1], "quality": [0, 101],
             "fmt": ["gif"]},
        names={"fmt": "fmt"}),
    "hrlib.pipeline.store.write_store": Case(
        valid=lambda: {"dst": _new("store"), "images": {"a": image_u8()}, "tile": 8, "levels": 2},
        bad={"dst": BAD_PATHS, "images": [None, {}, "a", {"bad id": image_u8()}, {"a": image_u8().astype(float)},
                                          [("a", image_u8()), ("a", image_u8())], [image_u8()]],
             "fmt": ["tiff"], "tile": [0, 7], "levels": [0, 13], "force": ["yes"]},
        names={"images": "image"}),
    "hrlib.pipeline.tilestore.read_manifest": Case(
        valid=lambda: {"path": _root() / "store"},
        bad={"path": [*BAD_PATHS, MISSING, _root() / "empty"]}),
    "hrlib.pipeline.tilestore.TileStore": Case(
        valid=lambda: {"path": _root() / "store"},
        bad={"path": [*BAD_PATHS, MISSING]}),
    "hrlib.pipeline.readers.ZarrTileStore": Case(
        valid=lambda: {"path": _root() / "store"},
        bad={"path": [*BAD_PATHS, MISSING]}),
    "hrlib.pipeline.readers.LmdbTileStore": Case(
        valid=lambda: {"path": _root() / "store"},
        bad={"path": [*BAD_PATHS, MISSING]}),
    "hrlib.pipeline.tilestore.TileStore.read_region": Case(
        fn=lambda **kw: _store().read_region(**kw),
        valid=lambda: {"image_id": "a", "y": 3, "x": 5, "h": 20, "w": 30, "level": 0},
        bad={"image_id": ["nope", None, 3], "y": [-1, 1.5, 21, None], "x": [-1, 19], "h": [0, 41, "20"],
             "w": [0, 49], "level": [-1, 2, 1.0]}),
    "hrlib.pipeline.tilestore.TileStore.read_image": Case(
        fn=lambda **kw: _store().read_image(**kw),
        valid=lambda: {"image_id": "b", "level": 1},
        bad={"image_id": ["nope", None], "level": [-1, 2, "0"]}),
    "hrlib.pipeline.tilestore.TileStore.levels": Case(
        fn=lambda **kw: _store().levels(**kw), valid=lambda: {"image_id": "a"}, bad={"image_id": ["nope", None]}),
    "hrlib.pipeline.tilestore.TileStore.shape": Case(
        fn=lambda **kw: _store().shape(**kw), valid=lambda: {"image_id": "a", "level": 1},
        bad={"image_id": ["nope", None], "level": [-1, 2, "0"]}),
    # ------------------------------------------------------------------ pipeline
    "hrlib.pipeline.loaders.TileCache": Case(
        valid=lambda: {"capacity": 2}, bad={"capacity": [0, -1, "3", None, 2.0]}),
    "hrlib.pipeline.loaders.TileCache.get": Case(
        fn=lambda **kw: TileCache(2).get(**kw), valid=lambda: {"key": "k", "load": lambda: 1},
        bad={"load": [None, 3]}),
    "hrlib.pipeline.loaders.RegionDataset": Case(
        valid=lambda: {"store": _root() / "store", "size": 16, "n_samples": 4, "level": 1, "labels": {"a": 1},
                       "cache": 2, "image_ids": ["a", "b"]},
        bad={"store": [*BAD_PATHS, MISSING], "size": [0, 17, 2.5], "n_samples": [0, None], "level": [-1, 2],
             "transform": ["to_tensor", 3], "labels": [[1, 2], "a"], "seed": [-1, 0.5], "cache": [0, "big"],
             "image_ids": [["nope"], "a", 3]},
        names={"store": "store"}),
    "hrlib.pipeline.loaders.make_loader": Case(
        valid=lambda: {"dataset": list(range(6)), "batch_size": 2, "num_workers": 0},
        bad={"dataset": [None, 3], "batch_size": [0, 1.5], "num_workers": [-1, "2"], "prefetch": [0],
             "shuffle": ["yes"], "seed": [-1], "persistent": ["no"], "pin_memory": [1], "drop_last": ["x"]}),
    "hrlib.pipeline.loaders.StepTimer": Case(
        valid=lambda: {"loader": [1, 2]}, bad={"loader": [None, 3], "sync": ["no"]}),
    "hrlib.pipeline.loaders.batched_augment": Case(
        valid=lambda: {"x": torch.zeros(2, 3, 16, 16, dtype=torch.uint8), "seed": 0, "crop": 8},
        bad={"x": [None, np.zeros((2, 3, 16, 16), np.uint8), torch.zeros(3, 16, 16), torch.zeros(0, 3, 16, 16),
                   torch.zeros(2, 3, 16, 16, dtype=torch.int64)],
             "seed": [-1, None], "crop": [0, 17], "brightness": [-0.1, 2.0, float("nan")]}),
    "hrlib.pipeline.loaders.sample_augment": Case(
        valid=lambda: {"crop": 8, "seed": 0}, bad={"crop": [0, "8"], "seed": [-1], "brightness": [-0.1, 1.5]}),
    # ------------------------------------------------------------------ data
    "hrlib.data.slides.make_slide": Case(
        valid=lambda: {"size": 32, "label": 2, "seed": 1, "site": "B"},
        bad={"size": [0, "64", 2.5], "label": [3, -1], "seed": [-1, None], "site": ["Z", 3],
             "target_frac": [0.0, 0.5, float("nan")], "n_decoys": [-1, 11], "density": [0, 5]}),
    "hrlib.data.slides.downscale": Case(
        valid=lambda: {"image": image_u8(), "factor": 2},
        bad={"image": [None, "x", np.zeros(16, np.uint8), np.zeros((1, 2, 3, 4))], "factor": [0, 17, 1.5]}),
    "hrlib.data.slides.detail_energy": Case(
        valid=lambda: {"image": image_u8(32, 32), "boxes": np.array([[2, 2, 20, 20]], np.float32)},
        bad={"image": [*BAD_IMAGES, image_u8(c=None), image_u8(c=4)],
             "boxes": [[[1, 2, 3]], "boxes", [[0, 0, np.nan, 4]], np.zeros((2, 4, 1))],
             "sigma": [0.0, -1.0, "2"]}),
    "hrlib.data.slides.SlideDataset": Case(
        valid=lambda: {"n": 3, "size": 16, "sites": ("A", "C")},
        bad={"n": [0, 2.5], "size": [0], "seed": [-1], "sites": ["A", [], ["Z"]], "labels": [[0], [0, 1, 5]],
             "target_frac": [0.9], "in_memory": ["yes", None]}),
    "hrlib.data.slides.collate_slides": Case(
        valid=lambda: {"batch": [(image_u8(), 0, np.zeros((0, 4))), (image_u8(), 1, np.zeros((1, 4)))]},
        bad={"batch": [None, [], [(1, 2)], [(image_u8(), 0, None), (image_u8(8, 8), 1, None)]]}),
    "hrlib.data.slides.get_site": Case(valid=lambda: {"site": "C"}, bad={"site": ["Z", 3, None]}),
    "hrlib.data.real.real_image": Case(valid=lambda: {"name": "text"}, bad={"name": ["nope", 3, ["text"]]}),
    "hrlib.data.slides.Site": Case(
        valid=lambda: {"name": "X", "blur": 0.7},
        bad={"name": ["", 3], "stains": [((1, 0, 0),), ((0, 0, 0),) * 3, "abc"], "stain_scale": [(1, 1), (-1, 1, 1)],
             "background": [(0, 0, 0), (300, 240, 240)], "blur": [-1.0, "1"], "noise": [float("nan")]}),
}

EXEMPT: dict[str, str] = {
    "hrlib.pipeline.converter.ConvertError": "an exception type",
    "hrlib.pipeline.tilestore.StoreCorruptError": "an exception type (built by the readers from what is damaged)",
    "hrlib.pipeline.decode.ImageDecodeError": "an exception type (built by the decoder from the file and reason)",
    "hrlib.pipeline.tilestore.TileStore.problems": "takes no arguments (verify's check of a whole store)",
    "hrlib.pipeline.loaders.default_num_workers": "takes no arguments",
    "hrlib.data.slides.Slide": "a result record returned by make_slide",
}
