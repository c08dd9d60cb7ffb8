"""hrlib.config: the profile knob, the device helper and seeding."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from hrlib.config import describe, get_device, get_profile, seed_everything


def test_profile_env_var_wins(monkeypatch):
    monkeypatch.setenv("HRLIB_PROFILE", "full")
    monkeypatch.setenv("CI", "true")
    p = get_profile()
    assert p.name == "full" and p.image_size == 2048 and p.train_size == 1024 and p.pick(1, 2) == 2


def test_ci_forces_fast(monkeypatch):
    monkeypatch.delenv("HRLIB_PROFILE", raising=False)
    monkeypatch.setenv("CI", "true")
    assert get_profile().name == "fast" and get_profile().reason == "CI"


def test_hardware_default(monkeypatch):
    monkeypatch.delenv("HRLIB_PROFILE", raising=False)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert get_profile().name == "fast"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert get_profile().name == "full"


def test_bad_profile(monkeypatch):
    monkeypatch.setenv("HRLIB_PROFILE", "medium")
    with pytest.raises(ValueError, match="HRLIB_PROFILE must be 'fast' or 'full', got 'medium'"):
        get_profile()


def test_device(monkeypatch):
    monkeypatch.delenv("HRLIB_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert get_device().type in ("cpu", "mps")
    assert get_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="not available"):
        get_device("cuda")
    with pytest.raises(ValueError, match="prefer must name a device type, one of"):
        get_device("tpu")


def test_seed_everything_repeats():
    def draw():
        return random.random(), np.random.rand(), torch.rand(1).item()  # noqa: NPY002

    seed_everything(3)
    a = draw()
    rng = seed_everything(3)
    assert draw() == a
    assert rng.integers(1000) == np.random.default_rng(3).integers(1000)
    with pytest.raises(TypeError, match="seed must be an int"):
        seed_everything(1.5)
    with pytest.raises(ValueError, match="seed must be an int >= 0, got -2"):
        seed_everything(-2)


def test_describe_mentions_profile_and_seed():
    line = describe(seed=7)
    assert "profile=" in line and "seed=7" in line and "device=" in line
