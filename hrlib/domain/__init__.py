"""Cross-domain preprocessing and domain-aware normalization (the library of lesson 04).

- ``hrlib.domain.norm``: MixStyle (Zhou et al., 2021), AdaIN, Batch-Instance Normalization, domain-specific
  BatchNorm, and ``convert_batchnorm`` / ``set_domain`` to use them in an existing model;
- ``hrlib.domain.color``: per-domain statistics and normalization, LAB alignment (histogram-matched L, A/B means),
  albumentations' ``HistogramMatching`` and ``FDA`` with their reference images, source-only elastic deformation;
- ``hrlib.domain.crops``: CAM-guided crops for an unlabeled target domain;
- ``hrlib.domain.shift``: lesson 04's measured shift (labeled source sites, an unlabeled target site, an oracle)
  and one training harness for every technique (``make_shift``, ``run``, ``run_table``, ``transfer_curve``);
- ``hrlib.domain.sync``: what ``torch.nn.SyncBatchNorm`` synchronizes (across processes, not domains), on the CPU.
"""

from hrlib.domain.color import (
    LabAlign,
    PerDomainDataset,
    PerDomainNormalize,
    domain_stats,
    fda,
    histogram_matching,
    lab_align,
    lab_reference,
    source_elastic,
)
from hrlib.domain.crops import CamCrop, cam_crops
from hrlib.domain.norm import (
    AdaIN,
    BatchInstanceNorm,
    DomainSpecificBatchNorm,
    MixStyle,
    adain,
    convert_batchnorm,
    insert_mixstyle,
    set_domain,
)

__all__ = ["AdaIN", "BatchInstanceNorm", "CamCrop", "DomainSpecificBatchNorm", "LabAlign", "MixStyle",
           "PerDomainDataset", "PerDomainNormalize", "adain", "cam_crops", "convert_batchnorm", "domain_stats", "fda",
           "histogram_matching", "insert_mixstyle", "lab_align", "lab_reference", "set_domain", "source_elastic"]
