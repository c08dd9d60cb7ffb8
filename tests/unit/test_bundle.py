"""hrlib.analysis.bundle: the preprocessing shipped with the model matches the training-time path, exported too."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from torch import nn

from hrlib.analysis.bundle import BundledModel, export_bundle, load_bundle
from hrlib.data.slides import SLIDE_STD, SlideDataset, make_slide
from hrlib.models import DSConvNet
from hrlib.staging import Schedule, val_transform
from hrlib.train import fit

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/unit/conftest.py

RES = 64


@pytest.fixture(scope="module")
def trained() -> tuple[nn.Module, None]:
    """A DSConvNet after 1 epoch on 12 slides of 64 px (trained BatchNorm statistics matter for the check)."""
    torch.manual_seed(123)
    model = DSConvNet(widths=(8, 16))
    fit(model, SlideDataset(12, RES, seed=1), Schedule.fixed(RES, 1, policy="warmup"), lr=1e-2, batch_size=4,
        seed=0, device="cpu", progress=False, count_macs=False)
    return model.eval(), None


def slides(side: int, n: int = 6, shape: tuple[int, int] | None = None) -> list[np.ndarray]:
    images = [make_slide(side, seed=40 + i).image for i in range(n)]
    return images if shape is None else [im[:shape[0], :shape[1]].copy() for im in images]


@pytest.mark.parametrize(("side", "shape", "crop_fraction"), [
    (64, None, 1.0),  # the training size: identity
    (96, None, 1.0),  # shrink by 1.5: area averaging
    (128, None, 1.0),  # shrink by 2
    (48, None, 1.0),  # enlarge: bilinear
    (120, (80, 120), 0.875),  # not square: short side to 73 px, centre crop
    (130, (130, 97), 1.0),
])
def test_bundle_matches_the_val_transform_path(trained, side, shape, crop_fraction) -> None:
    model, _ = trained
    images = slides(side, shape=shape)
    transform = val_transform(RES, source_size=side, crop_fraction=crop_fraction, allow_upsample=True)
    expected = torch.stack([transform(image=im)["image"] for im in images])
    bundle = BundledModel(model, RES, crop_fraction=crop_fraction)
    batch = torch.from_numpy(np.stack(images))
    with torch.no_grad():
        x, logits = bundle.preprocess(batch), bundle(batch)
    # at most one 0-255 level per pixel (OpenCV's fixed-point rounding), on few pixels
    assert (x - expected).abs().max() <= 1 / 255 / min(SLIDE_STD) + 1e-4
    assert (x - expected).abs().mean() < 0.005
    with torch.no_grad():
        torch.testing.assert_close(logits, model(expected), atol=0.02, rtol=0)
    assert not model.training and not bundle.training


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory) -> tuple[BundledModel, nn.Module, nn.Module]:
    model, _ = trained
    bundle = BundledModel(model, RES)
    bundle.model.head.train()  # a mixed mode: export runs in eval mode and restores each module's own
    modes = {m: m.training for m in bundle.modules()}
    path = export_bundle(bundle, tmp_path_factory.mktemp("bundle") / "model.pt2")
    assert {m: m.training for m in bundle.modules()} == modes
    bundle.eval()
    return bundle, load_bundle(path), torch.export.load(path).module()


@pytest.mark.parametrize("shape", [(1, 64, 64), (3, 96, 96), (2, 80, 120), (1, 130, 97), (2, 40, 41)])
def test_exported_bundle_equals_the_eager_bundle(exported, shape) -> None:
    bundle, loaded, _ = exported
    images = torch.randint(0, 256, (*shape, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), bundle(images), atol=1e-5, rtol=1e-5)
    assert loaded.kind == "export" and loaded.resolution == RES and loaded.class_names == bundle.class_names


BAD_INPUTS = [  # (images, error, message, whether the raw exported program refuses them too)
    (torch.zeros(2, 64, 64, 3), ValueError, "dtype torch.uint8", True),
    (torch.zeros(2, 3, 64, 64, dtype=torch.uint8), ValueError, r"shape \(N, H, W, 3\)", True),
    (torch.zeros(64, 64, 3, dtype=torch.uint8), ValueError, r"shape \(N, H, W, 3\)", True),
    (torch.zeros(2, 64, 64, 4, dtype=torch.uint8), ValueError, r"shape \(N, H, W, 3\)", True),
    (torch.zeros(2, 1, 64, 3, dtype=torch.uint8), ValueError, "H, W >= 2", False),
    (np.zeros((2, 64, 64, 3), np.uint8), TypeError, "torch.from_numpy", False),
]


@pytest.mark.parametrize(("images", "error", "message", "raw_refuses"), BAD_INPUTS)
def test_bundles_reject_wrong_inputs_with_a_clear_error(exported, images, error, message, raw_refuses) -> None:
    bundle, loaded, raw = exported
    for module in (bundle, loaded):
        with pytest.raises(error, match=f"^images .*{message}"):
            module(images)
    if raw_refuses:  # the raw exported program refuses too, with torch's own guard errors
        with pytest.raises((RuntimeError, AssertionError, IndexError)):
            raw(images)


def test_torchscript_fallback_when_export_fails(trained, tmp_path, monkeypatch) -> None:
    bundle = BundledModel(trained[0], RES)

    def fail(*args, **kwargs):
        raise RuntimeError("unsupported operator")

    monkeypatch.setattr(torch.export, "export", fail)
    with pytest.warns(RuntimeWarning, match="TorchScript trace, which only accepts 64x64"):
        path = export_bundle(bundle, tmp_path / "model.pt")
    loaded = load_bundle(path)
    images = torch.from_numpy(np.stack(slides(64, 3)))
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), bundle(images), atol=1e-5, rtol=1e-5)
    assert loaded.kind == "torchscript" and os.listdir(tmp_path) == ["model.pt"]
    with pytest.raises(ValueError, match="^images "):
        loaded(images.float())


def test_load_bundle_names_a_missing_or_corrupt_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="none.pt2"):
        load_bundle(tmp_path / "none.pt2")
    (tmp_path / "junk.pt2").write_bytes(b"not a zip archive")
    with pytest.raises(ValueError, match="junk.pt2 is not a bundle"):
        load_bundle(tmp_path / "junk.pt2")
    with pytest.raises(TypeError, match="^bundle "):
        export_bundle(DSConvNet(widths=(8,)), tmp_path / "x.pt2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="^crop_fraction "):
        BundledModel(DSConvNet(widths=(8,)), RES, crop_fraction=0.0)
