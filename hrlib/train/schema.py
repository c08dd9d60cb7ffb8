"""The schema of an ``hrlib train`` config (lesson 08): one pydantic model per section, and :class:`ConfigError`.

Sections: ``data`` (:class:`GeneratorData` or :class:`StoreData`, chosen by ``data.source``), ``schedule``
(:class:`ScheduleSection` of :class:`Stage` tables), ``model``, ``train``, ``diagnostics``, ``output``. Every
model forbids unknown keys and has strict types (a bool is not an int, ``"3"`` is not a number); each field's
``description`` says what it must be, which :mod:`hrlib.train.config` puts in the error message. The cross-field
checks (a region no larger than the images, stages no larger than ``source_size``, a labels file that covers the
store, model and callback arguments that build) are validators that raise :class:`ConfigError` with the key path.
"""

import inspect
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from hrlib.models._meta import activation_bytes
from hrlib.train.engine import LR_SCHEDULES

__all__ = ["ConfigError", "DiagnosticsSection", "GeneratorData", "ModelSection", "OutputSection", "ScheduleSection",
           "Stage", "StoreData", "TrainConfig", "TrainSection", "read_labels"]


class ConfigError(ValueError):
    """A bad ``hrlib train`` config: the message starts with the key path (``schedule.stages[1].resolution``),
    then what was expected, then the value that came."""


CALLBACKS: dict[str, str] = {"grad_norm": "GradNormMonitor", "divergence": "DivergenceDetector",
                             "grad_clip": "GradClipper", "overfit": "OverfitDetector"}

TABLE = "a table (key = value pairs)"
Int0 = Annotated[int, Field(ge=0, description="an int >= 0")]
Int1 = Annotated[int, Field(ge=1, description="an int >= 1")]
Int8 = Annotated[int, Field(ge=8, description="an int >= 8")]
Text = Annotated[str, Field(pattern=r"\S", description="a non-empty string")]
Flag = Annotated[bool, Field(description="true or false")]


def _choices(*values: str) -> str:
    return f"one of {', '.join(map(repr, values))}"


def _one_of(choices: Callable[[], Sequence[str]], where: str) -> Any:
    """A str field whose value must be one of ``choices()``, looked up when validating (``hrlib.staging`` and
    ``hrlib.models`` load only then)."""

    def check(value: str) -> str:
        if value not in choices():
            raise ValueError(f"must be {_choices(*choices())}")
        return value

    return Annotated[str, AfterValidator(check), Field(description=f"one of {where}")]


def _policies() -> Sequence[str]:
    from hrlib.staging import POLICIES

    return POLICIES


def _models() -> Sequence[str]:
    from hrlib.models.networks import MODELS

    return sorted(MODELS)


Policy = _one_of(_policies, "hrlib.staging.POLICIES")
ModelName = _one_of(_models, "hrlib.models.MODELS")


def _switch(value: object) -> object:
    """A ``[diagnostics]`` entry: ``true`` means the callback's defaults, ``false`` none."""
    return {} if value is True else None if value is False else value


Switch = Annotated[dict[str, Any] | None, BeforeValidator(_switch),
                   Field(description="true, false or a table of the callback's arguments")]
Source = Annotated[str, Field(description=_choices("generator", "store"))]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class GeneratorData(_Section):
    """``[data]`` with ``source = "generator"``: procedural slides (``hrlib.data.slides.SlideDataset``)."""

    source: Annotated[Literal["generator"], Field(description=_choices("generator", "store"))] = "generator"
    n: Int1 = 48
    n_val: Int0 = 0
    size: Int8 = 64
    sites: Annotated[list[str], Field(description="a non-empty list of site names")] = ["A"]
    seed: Int0 = 0

    @field_validator("sites")
    @classmethod
    def _known_sites(cls, sites: list[str]) -> list[str]:
        from hrlib.data.slides import SITES

        if not sites or any(s not in SITES for s in sites):
            raise ValueError(f"must be a non-empty list of site names from {sorted(SITES)}")
        return sites


class StoreData(_Section):
    """``[data]`` with ``source = "store"``: random regions of a tile store, classes from a labels file."""

    source: Annotated[Literal["store"], Field(description=_choices("generator", "store"))] = "store"
    path: Text
    region: Int8
    level: Int0 = 0
    n_samples: Int1
    n_val: Int0 = 0
    labels: Text
    num_classes: Int1 | None = None
    seed: Int0 = 0
    cache: Int0 = 0

    @model_validator(mode="after")
    def _matches_the_store(self) -> "StoreData":
        from hrlib.pipeline.store import open_store

        try:
            with open_store(self.path) as store:
                ids = store.image_ids
                sides = [min(store.shape(i, 0)[:2]) >> self.level for i in ids]
        except (OSError, RuntimeError) as e:
            raise ConfigError(f"data.path must be a finished hrlib tile store, got {self.path!r} ({e})") from e
        if self.region > min(sides):
            raise ConfigError(f"data.region must be <= the smallest image side at data.level ({min(sides)} px), "
                              f"got {self.region}")
        labels = read_labels(self.labels)
        missing = [i for i in ids if i not in labels]
        if missing:
            raise ConfigError(f"data.labels must give a class for every image of the store, got none for "
                              f"{missing[0]!r} ({len(missing)} missing)")
        top = max(labels[i] for i in ids)
        if self.num_classes is not None and top >= self.num_classes:
            raise ConfigError(f"data.num_classes must exceed every label, got {self.num_classes} with a label {top}")
        self.num_classes = top + 1 if self.num_classes is None else self.num_classes
        return self


def _data_source(data: object) -> str:
    """Which ``[data]`` model applies: a table (validation) or a model (serialization) with ``source = "store"``."""
    source = data.get("source") if isinstance(data, Mapping) else getattr(data, "source", None)
    return "store" if source == "store" else "generator"


Data = Annotated[Annotated[GeneratorData, Tag("generator")] | Annotated[StoreData, Tag("store")],
                 Discriminator(_data_source), Field(description=TABLE)]


class Stage(_Section):
    """One ``[[schedule.stages]]`` table: ``hrlib.staging.Stage(name, resolution, num_epochs, policy)``."""

    name: Text
    resolution: Int8
    num_epochs: Int1
    policy: Policy = "warmup"


class ScheduleSection(_Section):
    """``[schedule]``: the stages, and the full resolution (default: the data's image or region side)."""

    source_size: Int8 | None = None
    allow_upsample: Flag = False
    stages: Annotated[list[Stage], Field(min_length=1, description="a non-empty list of stages "
                                                                   "([[schedule.stages]] tables)")]


def _blocks(kwargs: Mapping[str, Any]) -> int:
    """The most stages (a list's length) or ConvNeXt blocks (``sum(depths)``) that ``kwargs`` ask for, counted
    before anything is built (building 10**9 blocks, even without weights, would not end)."""
    n = 0
    for key, value in kwargs.items():
        if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            n = max(n, len(value), sum(max(v, 0) for v in value) if key == "depths" else 0)
    return n


class ModelSection(_Section):
    """``[model]``: ``hrlib.models.build_model(name, num_classes from the data, **kwargs)``.

    The model is first built on the meta device (shapes only, no memory): more than :attr:`MAX_PARAMETERS`
    parameters or :attr:`MAX_BLOCKS` stages/blocks is a :class:`ConfigError` naming ``model.kwargs``, not an
    allocation of hundreds of GB.

    Attributes:
        MAX_PARAMETERS: the largest model ``hrlib train`` builds (100 M parameters: 400 MB of float32 weights, x4
            with AdamW's state and the gradients).
        MAX_BLOCKS: the most stages or blocks ``kwargs`` may ask for.
    """

    MAX_PARAMETERS: ClassVar[int] = 100_000_000
    MAX_BLOCKS: ClassVar[int] = 256
    name: ModelName = "dsconvnet"
    kwargs: Annotated[dict[str, Any], Field(default_factory=dict, description=TABLE)]

    def check_kwargs(self, num_classes: int) -> Any:
        """Raise :class:`ConfigError` naming ``model.kwargs.<key>`` unless the model builds with ``kwargs`` and
        has at most :attr:`MAX_PARAMETERS` parameters.

        Args:
            num_classes: the number of classes the data gives.

        Returns:
            The model, built on the meta device (shapes, no weights).
        """
        import torch

        from hrlib.models.networks import MODELS, build_model

        params = inspect.signature(MODELS[self.name]).parameters
        for key, value in self.kwargs.items():
            if key in ("num_classes", "in_channels"):
                raise ConfigError(f"model.kwargs.{key} is set by hrlib train from the data, got {value!r}")
            if key not in params:
                known = ", ".join(p for p in params if p not in ("num_classes", "in_channels"))
                raise ConfigError(f"model.kwargs.{key} is not a parameter of {self.name} (known: {known}), "
                                  f"got {value!r}")
        largest = f"model.kwargs must give a model of at most {self.MAX_PARAMETERS:,} parameters"
        if _blocks(self.kwargs) > self.MAX_BLOCKS:
            raise ConfigError(f"model.kwargs must ask for at most {self.MAX_BLOCKS} stages or blocks, got "
                              f"{_blocks(self.kwargs):,} ({self.kwargs!r:.120})")
        try:
            with torch.device("meta"):  # shapes only: a 10**9-channel layer costs no memory here
                model = build_model(self.name, num_classes, **self.kwargs)
        except (TypeError, ValueError) as e:  # the constructors' messages start with the argument's name
            raise ConfigError(f"model.kwargs.{e}") from e
        except (RuntimeError, OverflowError) as e:  # a tensor too large even to describe
            raise ConfigError(f"{largest}, got one too large to describe ({self.kwargs!r:.120})") from e
        params = sum(p.numel() for p in model.parameters())
        if params > self.MAX_PARAMETERS:
            raise ConfigError(f"{largest}, got {params:,} parameters ({self.name} with {self.kwargs!r:.120})")
        return model


class TrainSection(_Section):
    """``[train]``: optimizer, batch, seed and device settings."""

    lr: Annotated[float, Field(gt=0, allow_inf_nan=False, description="a number > 0")] = 3e-3
    weight_decay: Annotated[float, Field(ge=0, allow_inf_nan=False, description="a number >= 0")] = 1e-4
    batch_size: Int1 = 16
    seed: Int0 = 0
    num_workers: Int0 = 0
    amp: Flag = False
    lr_schedule: Annotated[Literal[LR_SCHEDULES], Field(description=_choices(*LR_SCHEDULES))] = "onecycle"
    device: Annotated[Literal["auto", "cpu", "cuda", "mps"],
                      Field(description=_choices("auto", "cpu", "cuda", "mps"))] = "auto"
    epochs_per_eval: Int1 = 1


class DiagnosticsSection(_Section):
    """``[diagnostics]``: ``hrlib.diagnostics.monitors`` callbacks, each true, false or a table of its arguments."""

    grad_norm: Switch = None
    divergence: Switch = None
    grad_clip: Switch = None
    overfit: Switch = None

    @model_validator(mode="after")
    def _callbacks_build(self) -> "DiagnosticsSection":
        import hrlib.diagnostics.monitors as monitors

        for key, kwargs in self:
            if kwargs is None:
                continue
            cls = getattr(monitors, CALLBACKS[key])
            params = inspect.signature(cls).parameters
            for name, value in kwargs.items():
                if name not in params:
                    raise ConfigError(f"diagnostics.{key}.{name} is not a parameter of {CALLBACKS[key]} "
                                      f"(known: {', '.join(params)}), got {value!r}")
            try:
                cls(**kwargs)
            except (TypeError, ValueError) as e:
                raise ConfigError(f"diagnostics.{key}.{e}") from e
        return self


class OutputSection(_Section):
    """``[output]``: where the run writes, how many checkpoints it keeps, progress and per-rank debug files."""

    dir: Text = "runs/train"
    keep_last: Int1 = 2
    progress: Flag = True
    debug_ranks: Flag = False


class TrainConfig(_Section):
    """A whole ``hrlib train`` config; :func:`validate_config` is its front door.

    Besides each section's checks: the model's activations for one ``train.batch_size`` batch at the largest
    stage resolution (traced on the meta device) must stay within :attr:`MAX_ACTIVATION_BYTES`.

    Attributes:
        MAX_ACTIVATION_BYTES: 32 GiB, far beyond what the lessons' configs need (well under 1 GiB).
    """

    MAX_ACTIVATION_BYTES: ClassVar[int] = 32 * 2**30

    data: Annotated[Data, Field(default_factory=GeneratorData)]
    schedule: Annotated[ScheduleSection, Field(description="a [schedule] with [[schedule.stages]]")]
    model: Annotated[ModelSection, Field(default_factory=ModelSection, description=TABLE)]
    train: Annotated[TrainSection, Field(default_factory=TrainSection, description=TABLE)]
    diagnostics: Annotated[DiagnosticsSection, Field(default_factory=DiagnosticsSection, description=TABLE)]
    output: Annotated[OutputSection, Field(default_factory=OutputSection, description=TABLE)]

    @model_validator(mode="after")
    def _sections_agree(self) -> "TrainConfig":
        side = self.data.size if isinstance(self.data, GeneratorData) else self.data.region
        schedule = self.schedule
        schedule.source_size = side if schedule.source_size is None else schedule.source_size
        for i, stage in enumerate(schedule.stages):
            if stage.resolution > schedule.source_size and not schedule.allow_upsample:
                raise ConfigError(f"schedule.stages[{i}].resolution must be <= schedule.source_size "
                                  f"({schedule.source_size} px) unless schedule.allow_upsample = true, "
                                  f"got {stage.resolution}")
        model = self.model.check_kwargs(3 if isinstance(self.data, GeneratorData) else self.data.num_classes)
        resolution, batch = max(s.resolution for s in schedule.stages), self.train.batch_size
        needed = activation_bytes(model, batch, resolution)
        if needed is not None and needed > self.MAX_ACTIVATION_BYTES:
            raise ConfigError(f"model.kwargs with train.batch_size {batch} at {resolution} px needs about "
                              f"{needed / 2**30:,.0f} GiB of activations per batch, more than the "
                              f"{self.MAX_ACTIVATION_BYTES // 2**30} GiB allowed: use smaller model.kwargs, a smaller "
                              f"train.batch_size or lower resolutions")
        return self


def read_labels(path: str | os.PathLike) -> dict[str, int]:
    """Read ``data.labels``: a JSON object ``{"image_id": class}`` or a CSV of ``image_id,class`` rows (a header
    allowed).

    Args:
        path: the ``.json`` file, or a CSV (any other suffix).

    Returns:
        ``{image_id: class}`` with classes ints >= 0.

    Raises:
        ConfigError: naming ``data.labels``: a missing file, bad JSON, or a class that is not an int >= 0.
    """
    file = Path(path) if isinstance(path, str | os.PathLike) and str(path) else None
    if file is None or not file.is_file():
        raise ConfigError(f"data.labels must be an existing JSON or CSV file, got {path!r}")
    text = file.read_text()
    if file.suffix.lower() == ".json":
        try:
            labels = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"data.labels must be a JSON object of image id -> class, got {path!r} ({e})") from e
    else:
        rows = [[c.strip() for c in line.split(",")] for line in text.splitlines() if line.strip()]
        if rows and not rows[0][-1].lstrip("-").isdigit():
            rows = rows[1:]  # a header
        labels = {r[0]: int(r[1]) if len(r) == 2 and r[1].lstrip("-").isdigit() else r[1:] for r in rows}
    if not isinstance(labels, dict):
        raise ConfigError(f"data.labels must map image ids to classes, got {type(labels).__name__} in {path!r}")
    for key, value in labels.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"data.labels[{key!r}] must be an int >= 0, got {value!r}")
    return labels
