"""Error analysis (lesson 07): error modes, failure sets, Grad-CAM scored against boxes, run records, bundles.

Submodules:

- ``hrlib.analysis.errors``: error modes, accuracy per group, size buckets;
- ``hrlib.analysis.failures``: a fixed set of failing samples and its diff after a change;
- ``hrlib.analysis.cam``: Grad-CAM and Score-CAM maps;
- ``hrlib.analysis.heatmaps``: overlays, pointing game and energy in boxes;
- ``hrlib.analysis.runs``: run records (parameters, data version, code commit);
- ``hrlib.analysis.bundle``: preprocessing shipped with the model.
"""

from hrlib.analysis.bundle import BundledModel, export_bundle, load_bundle
from hrlib.analysis.cam import grad_cam, score_cam
from hrlib.analysis.errors import ErrorModes, breakdown, error_modes, size_bucket, size_bucket_labels
from hrlib.analysis.failures import FailureCase, FailureDiff, FailureSet, diff
from hrlib.analysis.heatmaps import CamScores, energy_in_boxes, overlay, pointing_game, score_cams, show_cams
from hrlib.analysis.runs import PACKAGES, dataset_fingerprint, git_state, package_versions, read_runs, record_run
from hrlib.analysis.runs import to_jsonable

__all__ = [
    "BundledModel", "CamScores", "ErrorModes", "FailureCase", "FailureDiff", "FailureSet", "PACKAGES", "breakdown",
    "dataset_fingerprint", "diff", "energy_in_boxes", "error_modes", "export_bundle", "git_state", "grad_cam",
    "load_bundle", "overlay", "package_versions", "pointing_game", "read_runs", "record_run", "score_cam",
    "score_cams", "show_cams", "size_bucket", "size_bucket_labels", "to_jsonable",
]
