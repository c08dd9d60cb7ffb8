"""Resolution staging (lesson 01): schedules, each stage's transforms, and FixRes at test time.

Submodules:

- ``hrlib.staging.transforms``: each stage's training transform (:func:`stage_transform`, its ``POLICIES``) and
  the deterministic validation transform (:func:`val_transform`, claim C8);
- ``hrlib.staging.schedule``: :class:`Schedule` of :class:`Stage` s (claim C2: :meth:`Schedule.three_stage`,
  :meth:`Schedule.linear_ramp`, :meth:`Schedule.fixed`) and :class:`FixedSchedule` (one given transform);
- ``hrlib.staging.fixres``: :func:`evaluate_at_resolutions` and :func:`recalibrate_bn` (claim C1).
"""

from hrlib.staging.fixres import evaluate_at_resolutions, recalibrate_bn
from hrlib.staging.schedule import FixedSchedule, Schedule, Stage
from hrlib.staging.transforms import POLICIES, Policy, stage_transform, val_transform

__all__ = ["POLICIES", "FixedSchedule", "Policy", "Schedule", "Stage", "evaluate_at_resolutions", "recalibrate_bn",
           "stage_transform", "val_transform"]
