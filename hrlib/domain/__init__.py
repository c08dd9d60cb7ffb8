"""Cross-domain preprocessing and domain-aware training (lesson 04).

Submodules:

- ``hrlib.domain.color``: per-domain statistics and normalization, LAB alignment (histogram-matched L, A/B means),
  albumentations' ``HistogramMatching`` and ``FDA`` with their reference images, source-only elastic deformation;
- ``hrlib.domain.style``: MixStyle (Zhou et al., 2021) and AdaIN, as functions and modules with their own
  generators, and ``StyleSwap`` (AdaIN toward unlabeled target images in training);
- ``hrlib.domain.norm``: Batch-Instance Normalization, domain-specific BatchNorm, ``convert_batchnorm`` and
  ``set_domain`` to use them in an existing model;
- ``hrlib.domain.crops``: CAM-guided crops for an unlabeled target domain;
- ``hrlib.domain.shift``: the data of the lesson's measured shift (``make_shift``: labeled source sites, an unlabeled
  target site, a target test set);
- ``hrlib.domain.tensor_fit``: ``fit_tensors`` and ``accuracy``, training and scoring on in-memory tensors through
  ``hrlib.train``'s one epoch loop;
- ``hrlib.domain.experiment``: the harness that trains every technique on the same shift, seeds and budget
  (``run``, ``run_table``, ``summarize``, ``transfer_curve``);
- ``hrlib.domain.sync``: what ``torch.nn.SyncBatchNorm`` synchronizes (across processes, not domains), on the CPU.

(``hrlib.domain._stats`` is package-internal: the unchecked kernels the modules' ``forward`` passes call.)
"""

from hrlib.domain.color import LabAlign, LabReference, PerDomainDataset, PerDomainNormalize, ReferenceCompose
from hrlib.domain.color import domain_stats, elastic_rms_displacement, fda, histogram_matching, lab_align, lab_reference
from hrlib.domain.color import source_elastic
from hrlib.domain.crops import CamCrop, cam_crops, crop_box, find_peaks
from hrlib.domain.experiment import TECHNIQUES, RunResult, gap_recovered, run, run_table, source_transform, summarize
from hrlib.domain.experiment import transfer_curve
from hrlib.domain.norm import BatchInstanceNorm, DomainSpecificBatchNorm, clip_gates_, convert_batchnorm
from hrlib.domain.norm import domain_batchnorm_summary, set_domain
from hrlib.domain.shift import ShiftData, make_shift
from hrlib.domain.style import AdaIN, MixStyle, StyleSwap, adain, insert_mixstyle, mixstyle
from hrlib.domain.sync import SyncDemo, syncbn_demo
from hrlib.domain.tensor_fit import accuracy, fit_tensors

__all__ = ["AdaIN", "BatchInstanceNorm", "CamCrop", "DomainSpecificBatchNorm", "LabAlign", "LabReference", "MixStyle",
           "PerDomainDataset", "PerDomainNormalize", "ReferenceCompose", "RunResult", "ShiftData", "StyleSwap",
           "SyncDemo", "TECHNIQUES", "accuracy", "adain", "cam_crops", "clip_gates_", "convert_batchnorm", "crop_box",
           "domain_batchnorm_summary", "domain_stats", "elastic_rms_displacement", "fda", "find_peaks", "fit_tensors",
           "gap_recovered", "histogram_matching", "insert_mixstyle", "lab_align", "lab_reference", "make_shift",
           "mixstyle", "run", "run_table", "set_domain", "source_elastic", "source_transform", "summarize",
           "syncbn_demo", "transfer_curve"]
