"""Error analysis (lesson 07): error modes, Grad-CAM scored against boxes, run records, bundles.

Submodules:

- ``hrlib.analysis.errors``: error modes, size buckets, failure sets;
- ``hrlib.analysis.cam``: Grad-CAM and Score-CAM, pointing game, overlays;
- ``hrlib.analysis.runs``: run records (parameters, data version, code commit);
- ``hrlib.analysis.bundle``: preprocessing shipped with the model.
"""

from hrlib.analysis.cam import (
    CamScores,
    energy_in_boxes,
    grad_cam,
    overlay,
    pointing_game,
    score_cam,
    score_cams,
    show_cams,
)
from hrlib.analysis.errors import (
    BundledModel,
    ErrorModes,
    FailureCase,
    FailureDiff,
    FailureSet,
    breakdown,
    dataset_fingerprint,
    diff,
    error_modes,
    export_bundle,
    git_state,
    load_bundle,
    package_versions,
    read_runs,
    record_run,
    size_bucket,
    size_bucket_labels,
)
from hrlib.analysis.runs import (
    PACKAGES,
    to_jsonable,
)

__all__ = [
    "BundledModel", "CamScores", "ErrorModes", "FailureCase", "FailureDiff", "FailureSet", "PACKAGES", "breakdown",
    "dataset_fingerprint", "diff", "energy_in_boxes", "error_modes", "export_bundle", "git_state", "grad_cam",
    "load_bundle", "overlay", "package_versions", "pointing_game", "read_runs", "record_run", "score_cam",
    "score_cams", "show_cams", "size_bucket", "size_bucket_labels", "to_jsonable",
]
