"""Training (lessons 01 and 08): one training engine, the ``hrlib train`` runner, its config and checkpoints.

Submodules:

- ``hrlib.train.fitting``: ``fit`` and ``evaluate`` (lesson 01);
- ``hrlib.train.history``: the per-epoch history, the training state and the callback hooks;
- ``hrlib.train.engine``: the one epoch loop (``train_epoch``) and an epoch's seeds, loader and LR schedule;
- ``hrlib.train.loop``: ``EpochLoop``, the per-epoch body that ``fit`` and ``hrlib train`` share;
- ``hrlib.train.schema``: the ``hrlib train`` config's sections as pydantic models, and ``ConfigError``;
- ``hrlib.train.config``: reading and validating a TOML/YAML config (lesson 08);
- ``hrlib.train.runner``: ``hrlib train --config FILE`` on one process or under torchrun (lesson 08);
- ``hrlib.train.checkpoint``: atomic checkpoints loaded with ``weights_only``.
"""

from hrlib.train.checkpoint import checkpoint_path, latest_checkpoint, load_checkpoint, restore_rng_state, rng_state
from hrlib.train.checkpoint import save_checkpoint
from hrlib.train.config import build_callbacks, load_config, validate_config
from hrlib.train.engine import Schedule, TransformedDataset, epoch_loader, epoch_seeds, lr_scheduler, train_epoch
from hrlib.train.fitting import evaluate, fit
from hrlib.train.history import Callback, EvalResult, History, TrainState, check_callbacks
from hrlib.train.loop import EpochLoop, build_optimizer, forward_macs
from hrlib.train.runner import add_arguments, main, run_cli, run_config
from hrlib.train.schema import ConfigError, read_labels

__all__ = [
    "Callback", "ConfigError", "EpochLoop", "EvalResult", "History", "Schedule", "TrainState", "TransformedDataset",
    "add_arguments", "build_callbacks", "build_optimizer", "check_callbacks", "checkpoint_path", "epoch_loader",
    "epoch_seeds", "evaluate", "fit", "forward_macs", "latest_checkpoint", "load_checkpoint", "load_config",
    "lr_scheduler", "main", "read_labels", "restore_rng_state", "rng_state", "run_cli", "run_config",
    "save_checkpoint", "train_epoch", "validate_config",
]
