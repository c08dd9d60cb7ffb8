"""Run records: what produced a result (lesson 07, claim C20; ``hrlib train`` writes one per run).

:func:`record_run` appends one JSON line per run to a log: hyperparameters, metrics, seed, a
:func:`dataset_fingerprint` of the data, the :func:`git_state` (commit, dirty flag) and :func:`package_versions`;
:func:`read_runs` reads the log back. :func:`to_jsonable` converts numpy/torch values to plain JSON types.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
import platform
import subprocess
import warnings
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hrlib._checks import check_int, check_path
from hrlib._io import append_line, read_limited

MAX_LOG_BYTES = 256 << 20  # a run record is about 2 kB: a larger log is not one hrlib wrote

__all__ = ["PACKAGES", "dataset_fingerprint", "git_state", "package_versions", "read_runs", "record_run",
           "to_jsonable"]

PACKAGES = ("torch", "torchvision", "numpy", "albumentations", "hrlib")


def to_jsonable(value: Any, key: str) -> Any:
    """``value`` as plain JSON types: numpy/torch scalars and arrays become numbers and lists, tuples lists, paths
    strings, non-finite floats None.

    Args:
        value: the value to convert (dicts need str keys).
        key: the value's name in error messages, e.g. ``"params"``.

    Returns:
        The converted value.

    Raises:
        TypeError: something JSON cannot hold; the message names where, e.g. ``params['model']``.
    """
    if not isinstance(key, str):
        raise TypeError(f"key must be a str (the value's name for error messages), got {type(key).__name__}")
    if isinstance(value, np.generic | np.ndarray | torch.Tensor):
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        if value.dtype.kind not in "biuf":
            raise TypeError(f"{key} must be JSON-serializable; a numpy value of dtype {value.dtype} is not")
        return to_jsonable(value.tolist(), key)
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        bad = [k for k in value if not isinstance(k, str)]
        if bad:
            raise TypeError(f"{key} must have str keys, got {bad[0]!r}")
        return {k: to_jsonable(v, f"{key}[{k!r}]") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v, f"{key}[{i}]") for i, v in enumerate(value)]
    raise TypeError(f"{key} must be JSON-serializable (numbers, str, bool, None, lists, dicts, numpy values), "
                    f"got {type(value).__name__}")


def _sha256(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _dataset_params(source: Any) -> dict[str, Any] | None:
    """Generator parameters of a ``SlideDataset``-like object (or None): what renders it, with hrlib's version."""
    if not all(hasattr(source, a) for a in ("item_seed", "size", "seed", "sites", "labels", "slide_kwargs")):
        return None
    from hrlib import __version__

    return {"generator": type(source).__name__, "hrlib": __version__, "n": len(source), "size": source.size,
            "seed": source.seed, "sites": list(source.sites), "labels": list(source.labels),
            "slide_kwargs": dict(source.slide_kwargs)}


def dataset_fingerprint(source: Mapping[str, Any] | Sequence[str | os.PathLike] | Any) -> str:
    """sha256 identifying a dataset.

    Args:
        source: generator parameters (a dict, seed included), a ``SlideDataset`` (its n, size, seed, sites,
            labels, slide options and hrlib's version), or a list of file paths (their contents, in any order and
            location: the same bytes give the same fingerprint).

    Returns:
        64 hex digits.

    Raises:
        TypeError: ``source`` is none of these.
        ValueError: an empty list of files.
        FileNotFoundError: a listed file does not exist.
    """
    params = _dataset_params(source)
    if params is not None:
        return _sha256(params)
    if isinstance(source, Mapping):
        return _sha256(to_jsonable(source, "source"))
    if isinstance(source, Sequence) and not isinstance(source, str) and all(
            isinstance(p, str | os.PathLike) for p in source):
        if not source:
            raise ValueError("source must name at least one file, got an empty list")
        digests = []
        for p in source:
            if not Path(p).is_file():
                raise FileNotFoundError(f"source file {p} does not exist")
            h = hashlib.sha256()
            with open(p, "rb") as fh:
                for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                    h.update(block)
            digests.append(h.hexdigest())
        return _sha256(sorted(digests))
    raise TypeError(f"source must be a dict of generator parameters, a SlideDataset or a list of file paths, got "
                    f"{type(source).__name__}")


def git_state(repo: str | os.PathLike | None = None) -> dict[str, Any]:
    """The commit and state of a git work tree.

    Args:
        repo: a folder in the work tree (default: the current directory).

    Returns:
        ``{"commit": sha or None, "dirty": bool or None}``; None where git is missing, slow (> 5 s) or ``repo`` is
        not in a repository.

    Raises:
        TypeError: ``repo`` is not a path or None.
        FileNotFoundError: ``repo`` is not an existing folder.
    """
    if repo is not None and not check_path("repo", repo).is_dir():
        raise FileNotFoundError(f"repo must be an existing folder, got {os.fspath(repo)!r}")

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=5, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip()

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def package_versions() -> dict[str, str | None]:
    """The versions a result depends on.

    Returns:
        Python's and each of ``PACKAGES``' installed version (None if not installed).
    """
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def record_run(path: str | os.PathLike, *, params: Mapping[str, Any], metrics: Mapping[str, Any], seed: int,
               dataset: Any, repo: str | os.PathLike | None = None) -> dict[str, Any]:
    """Append one run to a JSON-lines log (one JSON object per line; created if missing).

    The record also holds an ISO-8601 UTC ``timestamp``, the :func:`git_state` and package ``versions``. The line
    is serialized first, then appended by ``hrlib._io.append_line``: never through a symlink, one writer at a time,
    fsynced, and truncated back if the write fails (a full disk), so no partial line is left. A cut-off last line
    left by an interrupted writer is moved to ``<path>.cut`` first (with a warning).

    Args:
        path: the log file, in an existing folder.
        params: hyperparameters (JSON-serializable after converting numpy/torch values; NaN/inf become null).
        metrics: results, as ``params``.
        seed: the run's seed, >= 0.
        dataset: a fingerprint from :func:`dataset_fingerprint` (64 hex digits) or anything it accepts (a dict's
            parameters and a ``SlideDataset``'s are stored too).
        repo: where to ask git for the commit (default: the current directory).

    Returns:
        The record written.

    Raises:
        TypeError, ValueError: a malformed argument (the message names it, e.g. ``params['model']``).
        FileNotFoundError: ``path`` is a folder or its folder does not exist.
        OSError: ``path`` is a symlink or a special file, or the write failed (the log is then unchanged).
    """
    seed = check_int("seed", seed, 0)
    if check_path("path", path).is_dir() or not Path(path).parent.is_dir():
        raise FileNotFoundError(f"path must be a file in an existing folder, got {os.fspath(path)!r}")
    if not isinstance(params, Mapping) or not isinstance(metrics, Mapping):
        raise TypeError(f"params and metrics must be dicts, got {type(params).__name__} and "
                        f"{type(metrics).__name__}")
    data = _dataset_entry(dataset)
    record = {"timestamp": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
              "seed": seed, "params": to_jsonable(params, "params"), "metrics": to_jsonable(metrics, "metrics"),
              "dataset": data, "git": git_state(repo), "versions": package_versions()}
    moved = append_line(path, (json.dumps(record, allow_nan=False) + "\n").encode())
    if moved:
        warnings.warn(f"{os.fspath(path)} ended in a cut-off record (an interrupted write); its bytes were moved to "
                      f"{moved}", RuntimeWarning, stacklevel=2)
    return record


def _dataset_entry(dataset: Any) -> dict[str, Any]:
    """``{"fingerprint": ...}`` of ``dataset`` (a fingerprint or a description), with its ``params`` if described."""
    if isinstance(dataset, str):
        if len(dataset) != 64 or any(c not in "0123456789abcdef" for c in dataset):
            raise ValueError(f"dataset must be a 64-hex-digit fingerprint or a dataset description, got {dataset!r}")
        return {"fingerprint": dataset}
    try:
        data: dict[str, Any] = {"fingerprint": dataset_fingerprint(dataset)}
    except (TypeError, ValueError, FileNotFoundError) as e:
        raise type(e)(f"dataset must be a 64-hex-digit fingerprint or a dataset description that "
                      f"dataset_fingerprint accepts ({e})") from e
    described = _dataset_params(dataset) or (dataset if isinstance(dataset, Mapping) else None)
    if described is not None:
        data["params"] = to_jsonable(described, "dataset")
    return data


def read_runs(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a :func:`record_run` log back.

    Args:
        path: the log file.

    Returns:
        The records, oldest first (blank lines skipped, and a cut-off last line without a newline, with a warning).

    Raises:
        TypeError: ``path`` is not a path.
        FileNotFoundError: no such file.
        ValueError: a corrupt line (the message names the file and line number).
    """
    path = check_path("path", path)
    if not path.is_file():
        raise FileNotFoundError(f"path must be an existing run log file, got {str(path)!r}")
    runs = []
    try:
        text = read_limited(path, MAX_LOG_BYTES).decode("utf-8")
    except OSError as exc:  # a FIFO or device, or a log far larger than runs write
        raise ValueError(f"path {path} cannot be read as a run log: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ValueError(f"path {path} must be a UTF-8 run log (JSON lines): {exc}") from exc
    lines = text.splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except RecursionError as exc:
            raise ValueError(f"path {path}, line {number} is nested too deeply to be a run record") from exc
        except json.JSONDecodeError as exc:
            if number == len(lines) and not text.endswith("\n"):  # what an interrupted write leaves
                warnings.warn(f"{path}: skipped a cut-off last line (an interrupted write): {line[:80]!r}",
                              RuntimeWarning, stacklevel=2)
                break
            raise ValueError(f"path {path}, line {number} is not valid JSON ({exc.msg}): {line[:80]!r}") from exc
        if not isinstance(record, dict):
            raise ValueError(f"path {path}, line {number} must be a JSON object, got {type(record).__name__}")
        runs.append(record)
    return runs
