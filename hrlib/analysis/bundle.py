"""Preprocessing shipped with the model (lesson 07, claim C34): one function for training and serving.

:class:`BundledModel` wraps a classifier with ``hrlib.staging.val_transform``'s resize, centre crop and
normalization written in torch, so it takes raw uint8 images of any size; :func:`export_bundle` saves it with
``torch.export`` (sizes stay dynamic) and :func:`load_bundle` reloads it with its metadata.
"""

from __future__ import annotations

import io
import json
import os
import re
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from torch import nn

from hrlib._checks import check_float, check_int, check_model, check_path
from hrlib._io import atomic_write
from hrlib.data.slides import CLASS_NAMES, SLIDE_MEAN, SLIDE_STD
from hrlib.models.networks import eval_mode

__all__ = ["BundledModel", "export_bundle", "load_bundle"]

_META = "hrlib_bundle.json"
_BUNDLE_FORMAT = "hrlib-bundle/1"


def _check_images(images: object) -> torch.Tensor:
    """Raise unless ``images`` is a uint8 tensor (N, H, W, 3), N >= 1, H and W >= 2.

    The served model's own edge, so it runs in ``forward``: dtype and shape only, no device sync. No shared
    validator fits (``check_image`` takes one numpy image, ``check_batch`` a float NCHW tensor).
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.uint8 tensor (N, H, W, 3), got {type(images).__name__} "
                        f"(for numpy images: torch.from_numpy(np.stack(images)))")
    if images.dtype != torch.uint8:
        raise ValueError(f"images must have dtype torch.uint8 (0-255 pixels), got {images.dtype}")
    if images.ndim != 4 or images.shape[3] != 3 or images.shape[0] < 1 or min(images.shape[1:3]) < 2:
        raise ValueError(f"images must have shape (N, H, W, 3), channels last, with N >= 1 and H, W >= 2, got "
                         f"{tuple(images.shape)}")
    return images


def _check_stats(name: str, values: object) -> list[float]:
    """Return 3 finite per-channel floats (0-1 scale; ``std`` > 0), or raise naming ``name``."""
    if isinstance(values, str) or not isinstance(values, Sequence | np.ndarray | torch.Tensor) or len(values) != 3:
        raise ValueError(f"{name} must be 3 floats, one per channel (0-1 scale{', > 0' * (name == 'std')}), "
                         f"got {values!r:.80}")
    return [check_float(f"{name}[{i}]", float(v) if isinstance(v, torch.Tensor) else v, 0.0, 1.0,
                        low_open=name == "std", hint="0-1 scale") for i, v in enumerate(values)]


def _resample(n_in: Any, n_full: Any, start: Any, count: int) -> torch.Tensor:
    """(count, n_in) float32 weights: rows ``start..start+count`` of resizing ``n_in`` px to ``n_full`` px with
    OpenCV's rules: INTER_AREA (exact overlap of pixel intervals) when shrinking, INTER_LINEAR (half-pixel
    centres, edge clamped) when enlarging. Sizes may be symbolic (torch.export): both are built, no branch."""
    scale = n_in / n_full
    i = torch.arange(count, dtype=torch.float64) + start
    j = torch.arange(n_in, dtype=torch.float64)
    overlap = torch.minimum((i[:, None] + 1) * scale, j + 1) - torch.maximum(i[:, None] * scale, j)
    area = overlap.clamp(min=0) / scale
    src = ((i + 0.5) * scale - 0.5).clamp(min=0)
    i0 = src.floor()
    lam = (src - i0)[:, None]
    i0 = i0.clamp(max=n_in - 1)[:, None]
    linear = (1 - lam) * (j == i0) + lam * (j == (i0 + 1).clamp(max=n_in - 1))
    return torch.where(j[-1] + 1 > n_full, area, linear).float()


class BundledModel(nn.Module):
    """A classifier that takes raw uint8 images of any size: the validation preprocessing ships with the weights.

    ``forward(images)``: (N, H, W, 3) uint8 RGB tensor (channels last, as images are stored; H, W >= 2) ->
    (N, num_classes) logits. Preprocessing is ``hrlib.staging.val_transform(resolution, crop_fraction=...)``
    written in torch: short side to ``round(resolution / crop_fraction)`` px (area averaging when shrinking,
    bilinear when enlarging, as OpenCV does), centre crop ``resolution`` px, rounding to whole 0-255 levels as a
    uint8 resize does, then ``(x / 255 - mean) / std``. The resize is two small matrix products, so sizes stay
    dynamic under ``torch.export``. It matches the albumentations path to one 0-255 level per pixel (long-side
    sizes may differ by 1 px at exact .5 ties). The bundle starts in eval mode (so does ``model``).

    Args:
        model: takes (N, 3, resolution, resolution) normalised batches.
        resolution: the training resolution, px, >= 1.
        mean: per-channel means, 0-1 scale.
        std: per-channel standard deviations, 0-1 scale, > 0.
        crop_fraction: the centre crop's share of the short side, in (0, 1].
        class_names: one per logit, stored with an exported bundle.

    Raises:
        TypeError, ValueError: a malformed argument (the message names it).
    """

    def __init__(self, model: nn.Module, resolution: int, *, mean: Sequence[float] = SLIDE_MEAN,
                 std: Sequence[float] = SLIDE_STD, crop_fraction: float = 1.0,
                 class_names: Sequence[str] = CLASS_NAMES) -> None:
        super().__init__()
        check_model("model", model)
        mean, std = _check_stats("mean", mean), _check_stats("std", std)
        if isinstance(class_names, str) or not isinstance(class_names, Sequence) \
                or not all(isinstance(c, str) for c in class_names):
            raise TypeError(f"class_names must be a sequence of str (one per logit), got {class_names!r:.80}")
        self.model = model
        self.resolution = check_int("resolution", resolution)
        self.crop_fraction = check_float("crop_fraction", crop_fraction, 0.0, 1.0, low_open=True)
        self.short = max(self.resolution, round(self.resolution / self.crop_fraction))  # as val_transform
        self.class_names = tuple(class_names)
        self.register_buffer("mean", torch.tensor([float(m) for m in mean]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([float(s) for s in std]).view(1, 3, 1, 1))
        self.eval()  # an inference artefact: BatchNorm uses its running statistics

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """Resize, crop and normalise, as ``val_transform`` does.

        Args:
            images: (N, H, W, 3) uint8 tensor (not checked here: :meth:`forward` checks).

        Returns:
            (N, 3, resolution, resolution) float32, normalised.
        """
        h, w = images.shape[1], images.shape[2]
        if torch.jit.is_tracing():  # sizes are traced as tensors; a trace is fixed to one size anyway
            h, w = int(h), int(w)
        side = torch.sym_min(h, w)
        full_h = (2 * h * self.short + side) // (2 * side)  # round(h * short / side), halves up
        full_w = (2 * w * self.short + side) // (2 * side)
        rows = _resample(h, full_h, (full_h - self.resolution) // 2, self.resolution).to(images.device)
        cols = _resample(w, full_w, (full_w - self.resolution) // 2, self.resolution).to(images.device)
        x = images.permute(0, 3, 1, 2).float()
        x = torch.matmul(torch.matmul(rows, x), cols.T).round()
        return (x / 255.0 - self.mean) / self.std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Classify raw images.

        Args:
            images: (N, H, W, 3) uint8 RGB tensor, H, W >= 2.

        Returns:
            (N, num_classes) logits.

        Raises:
            TypeError, ValueError: ``images`` is not such a tensor.
        """
        return self.model(self.preprocess(_check_images(images)))


class _LoadedBundle(nn.Module):
    """A loaded bundle: checks ``images`` like :class:`BundledModel`, then runs the saved program (eval only)."""

    def __init__(self, program: nn.Module, meta: dict[str, Any], kind: str) -> None:
        super().__init__()
        self.program, self.kind = program, kind
        self.resolution, self.crop_fraction = int(meta["resolution"]), float(meta["crop_fraction"])
        self.class_names = tuple(meta["class_names"])

    def train(self, mode: bool = True) -> _LoadedBundle:
        self.training = mode  # the saved program is fixed in eval mode (exported modules refuse train())
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.program(_check_images(images))


def export_bundle(bundle: BundledModel, path: str | os.PathLike, example_size: int | None = None) -> Path:
    """Save ``bundle`` (in eval mode; each module's mode is restored) with ``torch.export`` to ``path``, atomically.

    Batch size, height and width stay dynamic (H, W >= 2). If export fails, a TorchScript trace is saved instead
    with a warning: a trace is fixed to the example's size. The raw programs reject wrong inputs with torch's own
    guard errors; :func:`load_bundle` checks first and names the problem.

    Args:
        bundle: the model with its preprocessing.
        path: the file to write, in an existing folder.
        example_size: the example images' side, px (>= 2), which a TorchScript fallback is fixed to (default:
            the short side ``val_transform`` resizes to).

    Returns:
        ``path`` as a ``Path``.

    Raises:
        TypeError: ``bundle`` is not a :class:`BundledModel` or ``path`` not a path.
        FileNotFoundError: ``path`` is a folder or its folder does not exist.
    """
    if not isinstance(bundle, BundledModel):
        raise TypeError(f"bundle must be a BundledModel, got {type(bundle).__name__}")
    target = check_path("path", path)
    if target.is_dir() or not target.parent.is_dir():
        raise FileNotFoundError(f"path must be a file in an existing folder, got {str(path)!r}"
                                f"{' (a folder)' if target.is_dir() else ' (its folder does not exist)'}")
    side = bundle.short if example_size is None else check_int("example_size", example_size, 2)
    device = bundle.mean.device
    example = torch.randint(0, 256, (2, side, side, 3), dtype=torch.uint8, device=device,
                            generator=torch.Generator(device).manual_seed(0))
    meta = json.dumps({"format": _BUNDLE_FORMAT, "resolution": bundle.resolution,
                       "crop_fraction": bundle.crop_fraction, "class_names": list(bundle.class_names),
                       "mean": bundle.mean.flatten().tolist(), "std": bundle.std.flatten().tolist()})
    dims = {0: torch.export.Dim("batch", min=1), 1: torch.export.Dim("height", min=2),
            2: torch.export.Dim("width", min=2)}
    with eval_mode(bundle):
        try:
            artefact: Any = torch.export.export(bundle, (example,), dynamic_shapes={"images": dims})
        except Exception as exc:  # an op export cannot trace: keep a working, size-specialised artefact
            warnings.warn(f"torch.export failed ({type(exc).__name__}: {str(exc)[:200]}); saving a TorchScript "
                          f"trace, which only accepts {side}x{side} images", RuntimeWarning, stacklevel=2)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # trace deprecation and TracerWarnings: the size is fixed, as warned
                artefact = torch.jit.trace(bundle, (example,))

    def write(fh: IO[Any]) -> None:
        if isinstance(artefact, torch.export.ExportedProgram):
            torch.export.save(artefact, fh, extra_files={_META: meta})
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated: this is the fallback
                torch.jit.save(artefact, fh, _extra_files={_META: meta})

    return atomic_write(path, write, "wb")


# Every entry torch.export.save writes for one model ("model"), under one root folder; nothing else is read.
_EXPORT_ENTRIES = re.compile(r"data/weights/(weight_\d+|model_weights_config\.json)|data/constants/(tensor_\d+|"
                             r"model_constants_config\.json)|models/model\.json|data/sample_inputs/model\.pt|"
                             r"extra/[\w.]+\.json|archive_format|archive_version|\.data/version|"
                             r"\.data/serialization_id|byteorder")


def _check_export_archive(archive: zipfile.ZipFile) -> None:
    """Refuse a ``torch.export`` archive with anything torch would unpickle, before torch reads it.

    ``torch.export.load`` unpickles (``weights_only=False``: arbitrary code) weights and constants whose config says
    ``use_pickle``, custom and opaque objects, and sample inputs that ``weights_only=True`` cannot load. A bundle
    needs none of them, so only the entries :func:`export_bundle` writes are allowed (one root folder, no duplicate
    names), every weight and constant must be a raw tensor, and the sample inputs must load with
    ``weights_only=True`` (so torch never falls back).

    Raises:
        ValueError: what is not allowed, by entry name.
    """
    names = archive.namelist()
    root = names[0].split("/", 1)[0] + "/" if names else ""
    if len(set(names)) != len(names):
        raise ValueError("the archive has duplicate entry names (a reader could pick either)")
    for name in names:
        if not name.startswith(root) or not _EXPORT_ENTRIES.fullmatch(name[len(root):]):
            raise ValueError(f"unexpected archive entry {name!r} (a bundle holds raw tensors and JSON only)")
    for config in ("data/weights/model_weights_config.json", "data/constants/model_constants_config.json"):
        for key, meta in json.loads(archive.read(root + config))["config"].items():
            raw = isinstance(meta, dict) and meta.get("use_pickle") is False
            if not raw or not re.fullmatch(r"(weight|tensor)_\d+", str(meta.get("path_name"))):
                raise ValueError(f"{config}: {key!r} is not a raw tensor (pickled entries would run code on load)")
    try:
        torch.load(io.BytesIO(archive.read(root + "data/sample_inputs/model.pt")), weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch would retry with weights_only=False: refuse instead
        raise ValueError(f"the sample inputs are not plain tensors ({type(exc).__name__})") from exc


def load_bundle(path: str | os.PathLike) -> nn.Module:
    """Load a bundle saved by :func:`export_bundle` (torch.export, or TorchScript mapped to the CPU).

    Args:
        path: the bundle file.

    Returns:
        A module that maps (N, H, W, 3) uint8 images to logits, raises ``TypeError``/``ValueError`` on other
        inputs, and has ``resolution``, ``crop_fraction``, ``class_names`` and ``kind`` (``"export"`` or
        ``"torchscript"``).

    Raises:
        TypeError: ``path`` is not a path.
        FileNotFoundError: no such file.
        ValueError: the file is not a bundle saved by :func:`export_bundle`.
    """
    path = check_path("path", path)
    if not path.is_file():
        raise FileNotFoundError(f"path must be an existing bundle file, got {str(path)!r} (does not exist"
                                f"{'; it is a folder' if path.is_dir() else ''})")
    extra = {_META: ""}
    data = path.read_bytes()  # checked and loaded from the same bytes: the file cannot change in between
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            exported = any(n.endswith("archive_format") for n in archive.namelist())
            if exported:
                _check_export_archive(archive)
        if exported:
            program, kind = torch.export.load(io.BytesIO(data), extra_files=extra).module(), "export"
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                program = torch.jit.load(io.BytesIO(data), map_location="cpu", _extra_files=extra)
            kind = "torchscript"
        raw = extra[_META]
        meta = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        if meta.get("format") != _BUNDLE_FORMAT:
            raise ValueError(f"format is {meta.get('format')!r}, expected {_BUNDLE_FORMAT!r}")
    except Exception as exc:  # noqa: BLE001 - whatever a crafted file makes torch raise, the caller gets ValueError
        raise ValueError(f"path {path} is not a bundle saved by export_bundle: {exc!r:.300}") from exc
    return _LoadedBundle(program, meta, kind)
