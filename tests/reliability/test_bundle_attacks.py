"""A crafted bundle must not run code on load: each attack plants a pickle whose loading would create a file."""

from __future__ import annotations

import io
import json
import pickle
import sys
import zipfile
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from limits import run_limited  # noqa: E402


class _Plant:
    """Unpickling this calls ``open(path, "w")``: the file appears only if the pickle was loaded."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    from hrlib.analysis import BundledModel, export_bundle
    from hrlib.models import build_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("bundle") / "model.pt2"
    export_bundle(BundledModel(build_model("dsconvnet", num_classes=3).eval(), 32), path)
    return path


def _rewrite(src: Path, dst: Path, edit) -> None:
    """Copy the zip ``src`` to ``dst``, entry by entry, through ``edit(short_name, data) -> data | None``."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        root = zin.namelist()[0].split("/", 1)[0] + "/"
        for name in zin.namelist():
            data = edit(name[len(root):], zin.read(name))
            if data is not None:
                zout.writestr(name, data)
        for name, data in edit.extra(root):
            zout.writestr(name, data)


def _torch_saved(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _pickled_weight(marker: str):
    def edit(name, data):
        if name == "data/weights/model_weights_config.json":
            config = json.loads(data)
            first = next(iter(config["config"].values()))
            first["use_pickle"] = True
            return json.dumps(config).encode()
        if name == "data/weights/weight_0":
            return _torch_saved(_Plant(marker))
        return data
    edit.extra = lambda root: []
    return edit


def _pickled_sample_inputs(marker: str):
    def edit(name, data):
        return _torch_saved((_Plant(marker),)) if name == "data/sample_inputs/model.pt" else data
    edit.extra = lambda root: []
    return edit


def _opaque_constant(marker: str):
    def edit(name, data):
        if name == "data/constants/model_constants_config.json":
            return json.dumps({"config": {"planted": {"path_name": "opaque_obj_0", "is_param": False,
                                                      "use_pickle": True, "tensor_meta": None}}}).encode()
        return data
    edit.extra = lambda root: [(root + "data/constants/opaque_obj_0", pickle.dumps(_Plant(marker)))]
    return edit


@pytest.mark.parametrize("attack", [_pickled_weight, _pickled_sample_inputs, _opaque_constant],
                         ids=["use_pickle weight", "pickled sample inputs", "opaque constant"])
def test_a_crafted_bundle_runs_no_code_and_raises_value_error(bundle, tmp_path, attack):
    marker = tmp_path / "code-ran"
    crafted = tmp_path / "crafted.pt2"
    _rewrite(bundle, crafted, attack(str(marker)))
    out = run_limited("""
        from hrlib.analysis import load_bundle
        load_bundle(path)
    """, path=str(crafted))
    assert not marker.exists(), "loading the crafted bundle ran the planted code"
    assert out.status == "error" and out.error == "ValueError" and str(crafted) in out.message, out


def test_the_genuine_bundle_still_loads(bundle):
    from hrlib.analysis import load_bundle

    loaded = load_bundle(bundle)
    assert loaded.kind == "export" and loaded(torch.zeros(1, 40, 40, 3, dtype=torch.uint8)).shape == (1, 3)
