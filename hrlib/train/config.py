"""The configuration of ``hrlib train`` (lesson 08): reading a TOML or YAML file and validating it.

:func:`load_config` reads a file, :func:`validate_config` checks it against the pydantic schema of
:mod:`hrlib.train.schema` and fills the defaults (idempotent; a plain dict, so checkpoints store it as JSON).
Unknown keys and bad values raise :class:`ConfigError`, whose message starts with the key path and names the value,
e.g. ``schedule.stages[1].resolution must be an int >= 8, got 'big'``: pydantic's ``ValidationError`` is turned
into that wording here, from each field's ``description``.
"""

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn, get_args, get_origin

from pydantic import BaseModel, Tag, ValidationError

from hrlib._io import load_yaml, read_limited
from hrlib.train.history import Callback
from hrlib.train.schema import CALLBACKS, ConfigError, DiagnosticsSection, TrainConfig

MAX_CONFIG_BYTES = 1 << 20  # a training config is a few kB

__all__ = ["ConfigError", "build_callbacks", "load_config", "validate_config"]

_TABLE = "a table (key = value pairs)"


def _tags(annotation: object) -> dict[str, type[BaseModel]]:
    """``{tag: model}`` of a discriminated union (``data``: generator or store); empty for anything else."""
    tags = {}
    for member in get_args(annotation):
        model, *meta = get_args(member) or (member,)
        tags.update({m.tag: model for m in meta if isinstance(m, Tag)})
    return tags


def _walk(model: type[BaseModel], loc: Sequence[str | int], prefix: Sequence[str]) -> tuple[
        list[str | int], str, type[BaseModel]]:
    """Follow an error's location through the schema: ``(key path, what the value there must be, the model that
    holds the last key)``. Inside a leaf value (a list of names, a table of arguments) the path stops at the field:
    the error is about the whole value."""
    parts: list[str | int] = list(prefix)
    current: Any = model
    owner, what = model, _TABLE
    for key in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            owner, info = current, current.model_fields.get(str(key))
            parts.append(key)
            if info is None:  # an unknown key
                break
            what, current = info.description or _TABLE, info.annotation
        elif key in _tags(current):  # the union's tag, not a key of the config
            current = _tags(current)[str(key)]
        elif get_origin(current) is list and isinstance(key, int) and issubclass(get_args(current)[0], BaseModel):
            parts.append(key)
            what, current = _TABLE, get_args(current)[0]
        else:
            break
    return parts, what, owner


def _raw(config: Any, keys: Sequence[str | int]) -> Any:
    for key in keys:
        try:
            config = config[key]
        except (KeyError, IndexError, TypeError):
            return None
    return config


def _message(error: Mapping[str, Any], model: type[BaseModel], config: Mapping[str, Any],
             prefix: Sequence[str]) -> str:
    """One pydantic error in hrlib's wording: ``<key path> must be <description>, got <value>``."""
    parts, what, owner = _walk(model, error["loc"], prefix)
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" if i else p for i, p in enumerate(parts))
    value = _raw(config, parts[len(prefix):])
    top = len(parts) == 1
    if error["type"] == "value_error":  # a validator's own message
        cause = error["ctx"]["error"]
        return str(cause) if isinstance(cause, ConfigError) else f"{path} {cause}, got {value!r}"
    if error["type"] == "missing":
        return f"{path} is required{f' ({what})' if top else ''}, got nothing"
    if error["type"] == "extra_forbidden":
        return f"{path} is not a known {'section' if top else 'key'} (known: {', '.join(owner.model_fields)}), " \
               f"got {value!r}"
    return f"{path} must be {what}, got {value!r}"


def _config_error(error: ValidationError, model: type[BaseModel], config: Mapping[str, Any],
                  prefix: Sequence[str] = ()) -> NoReturn:
    """Raise the first of pydantic's errors as a :class:`ConfigError` that starts with the key path."""
    raise ConfigError(_message(error.errors(include_url=False)[0], model, config, prefix)) from None


def build_callbacks(diagnostics: Mapping[str, Any]) -> list[Callback]:
    """The ``hrlib.diagnostics.monitors`` callbacks that a ``[diagnostics]`` table asks for.

    Args:
        diagnostics: the table (checked as in :func:`validate_config`): ``grad_norm``, ``divergence``,
            ``grad_clip``, ``overfit``, each true, false, None or a table of the callback's arguments.

    Returns:
        The callbacks, in that order.

    Raises:
        ConfigError: naming ``diagnostics.<key>`` for an unknown key or a bad argument.
    """
    import hrlib.diagnostics.monitors as monitors

    if not isinstance(diagnostics, Mapping):
        raise ConfigError(f"diagnostics must be a table (key = value pairs), got {diagnostics!r:.80}")
    try:
        checked = DiagnosticsSection.model_validate(dict(diagnostics))
    except ValidationError as e:
        _config_error(e, DiagnosticsSection, diagnostics, prefix=("diagnostics",))
    return [getattr(monitors, CALLBACKS[key])(**kwargs) for key, kwargs in checked if kwargs is not None]


def validate_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Check a config (a dict as TOML/YAML give it) and return it complete, with every default filled in.

    Args:
        config: sections ``data``, ``schedule`` (required), ``model``, ``train``, ``diagnostics``, ``output`` (see
            ``examples/train_fast.toml``); a result of this function is accepted too (idempotent).

    Returns:
        A plain dict of plain values (JSON-ready: checkpoints store it).

    Raises:
        ConfigError: naming the key path and the value.
    """
    if not isinstance(config, Mapping):
        raise ConfigError(f"config must be a table (key = value pairs), got {config!r:.80}")
    try:
        return TrainConfig.model_validate(dict(config)).model_dump()
    except ValidationError as e:
        _config_error(e, TrainConfig, config)


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read a ``.toml`` (``tomllib``) or ``.yaml``/``.yml`` (``yaml.safe_load``) file and :func:`validate_config` it.

    Args:
        path: the file. Relative paths inside (``data.path``, ``data.labels``, ``output.dir``) are relative to the
            working directory.

    Returns:
        The validated config (see :func:`validate_config`).

    Raises:
        TypeError: ``path`` is not a path.
        ConfigError: a missing or unreadable file, bad TOML/YAML, or a bad config.
    """
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"config must be the path (str or os.PathLike) of a .toml or .yaml file, got "
                        f"{type(path).__name__} {path!r:.60}")
    file = Path(path)
    if file.suffix.lower() not in (".toml", ".yaml", ".yml"):
        raise ConfigError(f"config must be a .toml, .yaml or .yml file, got {str(path)!r}")
    if not file.is_file():
        raise ConfigError(f"config must be an existing file, got {str(path)!r}")
    try:
        text = read_limited(file, MAX_CONFIG_BYTES).decode("utf-8")
    except OSError as e:  # a FIFO or device, or far larger than a config
        raise ConfigError(f"config {file} cannot be read: {e}") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"config {file} must be UTF-8 text: {e}") from e
    try:
        if file.suffix.lower() == ".toml":
            import tomllib

            raw = tomllib.loads(text)
        else:
            raw = load_yaml(text)  # yaml.safe_load that refuses alias bombs
    except RecursionError as e:
        raise ConfigError(f"config {file} is nested too deeply to parse") from e
    except Exception as e:  # tomllib.TOMLDecodeError, yaml.YAMLError
        raise ConfigError(f"config {file} is not valid {file.suffix[1:].upper()}: {e}") from e
    return validate_config(raw if raw is not None else {})
