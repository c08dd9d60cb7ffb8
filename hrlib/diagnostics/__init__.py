"""Training diagnostics (lesson 06): gradient norms, detectors, clipping, curves, memory and pruning.

Submodules:

- ``hrlib.diagnostics.monitors``: per-layer gradient norms, divergence and overfitting detectors, clipping;
- ``hrlib.diagnostics.curves``: the overfitting rule, learning-rate plot and live training curves;
- ``hrlib.diagnostics.memory``: memory and time of one training step under mixed precision and checkpointing;
- ``hrlib.diagnostics.pruning``: magnitude and channel pruning.
"""

from hrlib.diagnostics.curves import LivePlot, is_overfitting, plot_lr
from hrlib.diagnostics.memory import MODES, Checkpointed, StepProfile, compare_modes, largest_batch, profile_step
from hrlib.diagnostics.monitors import DivergenceDetector, DivergenceReport, GradClipper, GradNormMonitor
from hrlib.diagnostics.monitors import OverfitDetector, grad_norms, total_grad_norm
from hrlib.diagnostics.pruning import magnitude_prune, prune_channels, sparsity

__all__ = [
    "Checkpointed", "DivergenceDetector", "DivergenceReport", "GradClipper", "GradNormMonitor", "LivePlot", "MODES",
    "OverfitDetector", "StepProfile", "compare_modes", "grad_norms", "is_overfitting", "largest_batch",
    "magnitude_prune", "plot_lr", "profile_step", "prune_channels", "sparsity", "total_grad_norm",
]
