"""The configuration of ``hrlib train`` (:mod:`hrlib.train.runner`): reading a TOML or YAML file and validating it.

:func:`load_config` reads a file, :func:`validate_config` checks every section against its schema and fills the
defaults (idempotent); unknown keys and bad values raise :class:`ConfigError`, whose message starts with the key
path and names the value, e.g. ``schedule.stages[1].resolution must be an int >= 8, got 'big'``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hrlib.train.engine import (
    LR_SCHEDULES,
)

__all__ = ["ConfigError", "load_config", "validate_config"]

_REQUIRED = object()
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")
SOURCES: tuple[str, ...] = ("generator", "store")
CALLBACKS: dict[str, str] = {"grad_norm": "GradNormMonitor", "divergence": "DivergenceDetector",
                             "grad_clip": "GradClipper", "overfit": "OverfitDetector"}
SECTIONS: tuple[str, ...] = ("data", "schedule", "model", "train", "diagnostics", "output")


class ConfigError(ValueError):
    """A bad config: the message starts with the key path (``schedule.stages[1].resolution``), then what was
    expected, then the value that came."""


# ----------------------------------------------------------------------------------------------- config checks
def _int(minimum: int) -> Any:
    def check(path: str, v: object) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise ConfigError(f"{path} must be an int >= {minimum}, got {v!r}")
        return v
    return check


def _float(minimum: float, open_: bool = False) -> Any:
    def check(path: str, v: object) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or (
                v <= minimum if open_ else v < minimum):
            raise ConfigError(f"{path} must be a number {'>' if open_ else '>='} {minimum:g}, got {v!r}")
        return float(v)
    return check


def _choice(choices: Sequence[str]) -> Any:
    def check(path: str, v: object) -> str:
        if not isinstance(v, str) or v not in choices:
            raise ConfigError(f"{path} must be one of {', '.join(map(repr, choices))}, got {v!r}")
        return v
    return check


def _bool(path: str, v: object) -> bool:
    if not isinstance(v, bool):
        raise ConfigError(f"{path} must be true or false, got {v!r}")
    return v


def _text(path: str, v: object) -> str:
    if not isinstance(v, str) or not v.strip():
        raise ConfigError(f"{path} must be a non-empty string, got {v!r}")
    return v


def _mapping(path: str, v: object) -> dict[str, Any]:
    if not isinstance(v, Mapping):
        raise ConfigError(f"{path} must be a table (key = value pairs), got {v!r}")
    return dict(v)


def _sites(path: str, v: object) -> list[str]:
    from hrlib.data.slides import SITES

    if isinstance(v, str) or not isinstance(v, Sequence) or not v or any(s not in SITES for s in v):
        raise ConfigError(f"{path} must be a non-empty list of site names from {sorted(SITES)}, got {v!r}")
    return list(v)


def _table(path: str, raw: object, spec: Mapping[str, tuple[Any, Any]]) -> dict[str, Any]:
    """``raw`` checked against ``spec`` (key -> (check, default)); a None value keeps a None default."""
    raw = _mapping(path, raw)
    for key, value in raw.items():
        if key not in spec:
            raise ConfigError(f"{path}.{key} is not a known key (known: {', '.join(spec)}), got {value!r}")
    out = {}
    for key, (check, default) in spec.items():
        if key in raw and not (raw[key] is None and default is None):
            out[key] = check(f"{path}.{key}", raw[key])
        elif default is _REQUIRED:
            raise ConfigError(f"{path}.{key} is required, got nothing")
        else:
            out[key] = default
    return out


_GENERATOR = {"source": (_choice(SOURCES), "generator"), "n": (_int(1), 48), "n_val": (_int(0), 0),
              "size": (_int(8), 64), "sites": (_sites, ["A"]), "seed": (_int(0), 0)}
_STORE = {"source": (_choice(SOURCES), "store"), "path": (_text, _REQUIRED), "region": (_int(8), _REQUIRED),
          "level": (_int(0), 0), "n_samples": (_int(1), _REQUIRED), "n_val": (_int(0), 0),
          "labels": (_text, _REQUIRED), "num_classes": (_int(1), None), "seed": (_int(0), 0), "cache": (_int(0), 0)}
_STAGE = {"name": (_text, _REQUIRED), "resolution": (_int(8), _REQUIRED), "epochs": (_int(1), _REQUIRED),
          "policy": (None, "warmup")}
_TRAIN = {"lr": (_float(0.0, True), 3e-3), "weight_decay": (_float(0.0), 1e-4), "batch_size": (_int(1), 16),
          "seed": (_int(0), 0), "workers": (_int(0), 0), "amp": (_bool, False),
          "lr_schedule": (_choice(LR_SCHEDULES), "onecycle"), "device": (_choice(DEVICES), "auto"),
          "epochs_per_eval": (_int(1), 1)}
_OUTPUT = {"dir": (_text, "runs/train"), "keep_last": (_int(1), 2), "progress": (_bool, True),
           "debug_ranks": (_bool, False)}


def _stages(path: str, v: object) -> list[dict[str, Any]]:
    from hrlib.staging import POLICIES

    if isinstance(v, str | Mapping) or not isinstance(v, Sequence) or not v:
        raise ConfigError(f"{path} must be a non-empty list of stages ([[schedule.stages]] tables), got {v!r}")
    spec = {**_STAGE, "policy": (_choice(POLICIES), "warmup")}
    return [_table(f"{path}[{i}]", s, spec) for i, s in enumerate(v)]


def _read_labels(path: str) -> dict[str, int]:
    """``data.labels``: a JSON object ``{"image_id": class}`` or a CSV of ``image_id,class`` rows (header allowed)."""
    file = Path(path)
    if not file.is_file():
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
        _int(0)(f"data.labels[{key!r}]", value)
    return labels


def _check_data(data: object) -> dict[str, Any]:
    source = _mapping("data", data).get("source", "generator")
    d = _table("data", data, _STORE if _choice(SOURCES)("data.source", source) == "store" else _GENERATOR)
    if d["source"] == "store":
        from hrlib.pipeline.store import open_store

        try:
            with open_store(d["path"]) as store:
                ids, sides = store.image_ids, [min(store.shape(i, 0)[:2]) >> d["level"] for i in store.image_ids]
        except (OSError, RuntimeError) as e:
            raise ConfigError(f"data.path must be a finished hrlib tile store, got {d['path']!r} ({e})") from e
        if d["region"] > min(sides):
            raise ConfigError(f"data.region must be <= the smallest image side at data.level ({min(sides)} px), "
                              f"got {d['region']}")
        labels = _read_labels(d["labels"])
        missing = [i for i in ids if i not in labels]
        if missing:
            raise ConfigError(f"data.labels must give a class for every image of the store, got none for "
                              f"{missing[0]!r} ({len(missing)} missing)")
        top = max(labels[i] for i in ids)
        if d["num_classes"] is not None and top >= d["num_classes"]:
            raise ConfigError(f"data.num_classes must exceed every label, got {d['num_classes']} with a label {top}")
        d["num_classes"] = top + 1 if d["num_classes"] is None else d["num_classes"]
    return d


def _check_model(model: object, num_classes: int) -> dict[str, Any]:
    import inspect

    from hrlib.models import MODELS, build_model

    m = _table("model", model, {"name": (_choice(sorted(MODELS)), "dsconvnet"), "kwargs": (_mapping, {})})
    params = inspect.signature(MODELS[m["name"]]).parameters
    for key, value in m["kwargs"].items():
        if key in ("num_classes", "in_channels"):
            raise ConfigError(f"model.kwargs.{key} is set by hrlib train from the data, got {value!r}")
        if key not in params:
            known = ", ".join(p for p in params if p not in ("num_classes", "in_channels"))
            raise ConfigError(f"model.kwargs.{key} is not a parameter of {m['name']} (known: {known}), got {value!r}")
    try:
        build_model(m["name"], num_classes, **m["kwargs"])
    except (TypeError, ValueError) as e:  # the constructors' messages start with the argument's name
        raise ConfigError(f"model.kwargs.{e}") from e
    return m


def _build_callbacks(diagnostics: Mapping[str, Any]) -> list[Any]:
    import hrlib.diagnostics.monitors as diag

    return [getattr(diag, CALLBACKS[k])(**kw) for k, kw in diagnostics.items() if kw is not None]


def _check_diagnostics(raw: object) -> dict[str, Any]:
    import inspect

    import hrlib.diagnostics.monitors as diag

    spec = {k: (lambda path, v: v, None) for k in CALLBACKS}
    out: dict[str, Any] = {}
    for key, value in _table("diagnostics", raw, spec).items():
        if value is None or value is False:
            out[key] = None
            continue
        kwargs = {} if value is True else _mapping(f"diagnostics.{key}", value)
        params = inspect.signature(getattr(diag, CALLBACKS[key])).parameters
        for name, v in kwargs.items():
            if name not in params:
                raise ConfigError(f"diagnostics.{key}.{name} is not a parameter of {CALLBACKS[key]} "
                                  f"(known: {', '.join(params)}), got {v!r}")
        try:
            getattr(diag, CALLBACKS[key])(**kwargs)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"diagnostics.{key}.{e}") from e
        out[key] = kwargs
    return out


def validate_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Check a config (a dict as TOML/YAML give it) and return it complete, with every default filled in.

    Sections: ``data``, ``schedule``, ``model``, ``train``, ``diagnostics``, ``output`` (see the examples in
    ``examples/train_fast.toml``). Raises :class:`ConfigError` naming the key path and the value. Idempotent.
    """
    config = _mapping("config", config)
    for key, value in config.items():
        if key not in SECTIONS:
            raise ConfigError(f"{key} is not a known section (known: {', '.join(SECTIONS)}), got {value!r}")
    if "schedule" not in config:
        raise ConfigError("schedule is required (a [schedule] with [[schedule.stages]]), got nothing")
    data = _check_data(config.get("data", {}))
    side = data["size"] if data["source"] == "generator" else data["region"]
    schedule = _table("schedule", config["schedule"], {"source_size": (_int(8), side),
                                                       "allow_upsample": (_bool, False),
                                                       "stages": (_stages, _REQUIRED)})
    for i, stage in enumerate(schedule["stages"]):
        if stage["resolution"] > schedule["source_size"] and not schedule["allow_upsample"]:
            raise ConfigError(f"schedule.stages[{i}].resolution must be <= schedule.source_size "
                              f"({schedule['source_size']} px) unless schedule.allow_upsample = true, "
                              f"got {stage['resolution']}")
    num_classes = data["num_classes"] if data["source"] == "store" else 3
    return {"data": data, "schedule": schedule, "model": _check_model(config.get("model", {}), num_classes),
            "train": _table("train", config.get("train", {}), _TRAIN),
            "diagnostics": _check_diagnostics(config.get("diagnostics", {})),
            "output": _table("output", config.get("output", {}), _OUTPUT)}


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read a ``.toml`` (``tomllib``) or ``.yaml``/``.yml`` (``yaml.safe_load``) file and :func:`validate_config`
    it. Relative paths inside (``data.path``, ``data.labels``, ``output.dir``) are relative to the working
    directory."""
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"config must be the path (str or os.PathLike) of a .toml or .yaml file, got "
                        f"{type(path).__name__} {path!r:.60}")
    file = Path(path)
    if file.suffix.lower() not in (".toml", ".yaml", ".yml"):
        raise ConfigError(f"config must be a .toml, .yaml or .yml file, got {str(path)!r}")
    if not file.is_file():
        raise ConfigError(f"config must be an existing file, got {str(path)!r}")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"config {file} must be UTF-8 text: {e}") from e
    try:
        if file.suffix.lower() == ".toml":
            import tomllib

            raw = tomllib.loads(text)
        else:
            import yaml

            raw = yaml.safe_load(text)
    except Exception as e:  # tomllib.TOMLDecodeError, yaml.YAMLError
        raise ConfigError(f"config {file} is not valid {file.suffix[1:].upper()}: {e}") from e
    return validate_config(raw if raw is not None else {})


# ----------------------------------------------------------------------------------------------- training
