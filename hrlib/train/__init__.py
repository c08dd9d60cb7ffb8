"""Training (lessons 01 and 08): one training engine, the ``hrlib train`` runner and its checkpoints.

Submodules:

- ``hrlib.train.engine``: ``fit``, ``evaluate`` and the one epoch loop (seeds, loaders and LR schedules of every run);
- ``hrlib.train.history``: the per-epoch history, the training state and the callback hooks;
- ``hrlib.train.config``: the ``hrlib train`` config: reading and validating TOML/YAML;
- ``hrlib.train.runner``: ``hrlib train --config FILE`` on one process or under torchrun;
- ``hrlib.train.checkpoint``: atomic checkpoints loaded with ``weights_only``.
"""

from hrlib.train.checkpoint import (
    checkpoint_path,
    latest_checkpoint,
    load_checkpoint,
    restore_rng_state,
    rng_state,
    save_checkpoint,
)
from hrlib.train.config import (
    ConfigError,
    load_config,
    validate_config,
)
from hrlib.train.engine import (
    Schedule,
    TransformedDataset,
    epoch_loader,
    epoch_seeds,
    evaluate,
    fit,
    lr_scheduler,
    train_epoch,
)
from hrlib.train.history import (
    Callback,
    EvalResult,
    History,
    TrainState,
)
from hrlib.train.runner import (
    add_arguments,
    main,
    train,
)

__all__ = [
    "Callback", "ConfigError", "EvalResult", "History", "Schedule", "TrainState", "TransformedDataset",
    "add_arguments", "checkpoint_path", "epoch_loader", "epoch_seeds", "evaluate", "fit", "latest_checkpoint",
    "load_checkpoint", "load_config", "lr_scheduler", "main", "restore_rng_state", "rng_state", "save_checkpoint",
    "train", "train_epoch", "validate_config",
]
