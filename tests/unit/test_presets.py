"""hrlib.augment.presets: letterbox, dataset statistics, domain presets, trained through a FixedSchedule."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest
import torch

from hrlib.augment.presets import (
    DOMAINS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    dataset_stats,
    imagenet_stats,
    letterbox,
    preset,
)
from hrlib.augment.stain import HEDJitter
from hrlib.staging import FixedSchedule


def _names(compose: A.Compose) -> list[str]:
    return [type(t).__name__ for t in compose.transforms]


@pytest.mark.parametrize(("h", "w", "size"), [(64, 192, 96), (200, 50, 64), (30, 30, 90), (7, 100, 32)])
def test_letterbox_keeps_the_aspect_and_pads_centred(h, w, size):
    image = np.full((h, w), 50, np.uint8)
    out = letterbox(image, size, fill=255)
    assert out.shape == (size, size) and out.dtype == np.uint8
    rows, cols = np.flatnonzero((out < 200).any(1)), np.flatnonzero((out < 200).any(0))
    ch, cw = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
    assert max(ch, cw) == size
    assert ch / cw == pytest.approx(h / w, rel=0.1, abs=1.5 / min(ch, cw))
    assert abs((rows[0] + rows[-1]) / 2 - (size - 1) / 2) <= 1 and abs((cols[0] + cols[-1]) / 2 - (size - 1) / 2) <= 1
    assert (out == 255).sum() == size * size - ch * cw  # everything outside the content is the fill


def test_letterbox_on_rgb_uses_per_channel_fill():
    out = letterbox(np.zeros((10, 40, 3), np.uint8), 40, fill=(10, 20, 30))
    assert out.shape == (40, 40, 3)
    assert tuple(out[0, 0]) == (10, 20, 30) and tuple(out[20, 20]) == (0, 0, 0)


def test_dataset_stats_are_per_channel_in_unit_range():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 100, (8, 12, 3), dtype=np.uint8), rng.integers(100, 256, (4, 4, 3), dtype=np.uint8)]
    mean, std = dataset_stats(images)
    pixels = np.concatenate([im.reshape(-1, 3) for im in images]).astype(float) / 255
    np.testing.assert_allclose(mean, pixels.mean(0), rtol=1e-9)
    np.testing.assert_allclose(std, pixels.std(0), rtol=1e-9)
    gray_mean, gray_std = dataset_stats([np.full((4, 4), 51, np.uint8)])
    assert gray_mean == pytest.approx((0.2,)) and len(gray_std) == 1
    assert imagenet_stats(3) == (IMAGENET_MEAN, IMAGENET_STD) and len(imagenet_stats(1)[0]) == 1


@pytest.mark.parametrize("domain", DOMAINS)
def test_every_preset_ends_in_normalize_and_tensor_and_validation_is_deterministic(domain):
    channels = 3 if domain == "pathology" else 1
    mean, std = imagenet_stats(channels)
    image = np.random.default_rng(1).integers(0, 256, (70, 110, channels), dtype=np.uint8)
    train = preset(domain, 48, mean=mean, std=std, seed=0)
    assert _names(train)[-2:] == ["Normalize", "ToTensorV2"]
    x = train(image=image)["image"]
    assert isinstance(x, torch.Tensor) and x.shape == (channels, 48, 48) and x.dtype == torch.float32
    val = preset(domain, 48, train=False, mean=mean, std=std)
    assert torch.equal(val(image=image)["image"], val(image=image)["image"])
    assert set(_names(val)) <= {"Resize", "LongestMaxSize", "PadIfNeeded", "Normalize", "ToTensorV2"}


def test_domain_choices():
    xray = _names(preset("xray", 64, mean=(0.5,), std=(0.2,)))
    assert "VerticalFlip" not in xray and "HorizontalFlip" not in xray and "Rotate" in xray
    assert next(t for t in preset("xray", 64).transforms if isinstance(t, A.Rotate)).limit == (-10, 10)
    assert "HorizontalFlip" in _names(preset("xray", 64, flips="horizontal"))
    assert "ElasticTransform" in _names(preset("industrial", 64, rotation="elastic"))
    free = next(t for t in preset("industrial", 64, rotation="free").transforms if isinstance(t, A.Rotate))
    assert free.limit == (-180, 180)
    assert _names(preset("document", 64))[:2] == ["LongestMaxSize", "PadIfNeeded"]
    assert _names(preset("document", 64, resize="plain"))[0] == "Resize"
    patho = preset("pathology", 64)
    assert any(isinstance(t, HEDJitter) for t in patho.transforms)
    bc = next(t for t in patho.transforms if isinstance(t, A.RandomBrightnessContrast))
    assert bc.brightness_limit == (-0.1, 0.1) and not any(isinstance(t, A.ColorJitter | A.HueSaturationValue)
                                                          for t in patho.transforms)


def test_same_seed_same_augmented_tensor():
    image = np.random.default_rng(2).integers(0, 256, (64, 64, 1), dtype=np.uint8)
    a = preset("industrial", 64, rotation="free", seed=5, mean=(0.5,), std=(0.2,))
    b = preset("industrial", 64, rotation="free", seed=5, mean=(0.5,), std=(0.2,))
    assert all(torch.equal(a(image=image)["image"], b(image=image)["image"]) for _ in range(3))


def test_a_preset_in_a_fixed_schedule_trains_with_fit(one_thread):
    from torch.utils.data import Subset

    from hrlib.data.synth import SynthDataset
    from hrlib.models import DSConvNet
    from hrlib.train import fit

    data = Subset(SynthDataset("xray", 8, 32, channels=1), range(8))
    policy = FixedSchedule(preset("xray", 32, mean=(0.4,), std=(0.2,)), 32, 2, name="xray")
    assert policy.stage_at(1).name == "xray" and policy.resolution_at(0) == 32 and policy.train_transform(0)
    history = fit(DSConvNet(2, 1, (4, 8)), data, policy, batch_size=4, progress=False, count_macs=False)
    assert len(history) == 2 and set(history.column("resolution")) == {32}
    with pytest.raises(IndexError, match=r"^epoch "):
        policy.stage_at(2)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r"^domain "):
        preset("satellite", 64)
    with pytest.raises(ValueError, match=r"^rotation "):
        preset("industrial", 64, rotation="any")
    with pytest.raises(ValueError, match=r"^rotation_limit "):
        preset("industrial", 64, rotation_limit=90)
    with pytest.raises(ValueError, match=r"^flips "):
        preset("xray", 64, flips="up")
    with pytest.raises(ValueError, match=r"^resize "):
        preset("document", 64, resize="crop")
    with pytest.raises(TypeError, match=r"^resolution "):
        preset("xray", 64.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^image "):
        letterbox(np.zeros(5, np.uint8), 32)
    with pytest.raises(ValueError, match=r"^images\[1\] "):
        dataset_stats([np.zeros((2, 2, 3)), np.zeros((2, 2, 1))])
    with pytest.raises(TypeError, match=r"^transform "):
        FixedSchedule("resize", 32, 1)  # type: ignore[arg-type]
