"""The course data (lesson 00; the generators of lesson 03): procedural slides with ground truth and small
domain generators.

Submodules:

- ``hrlib.data.slides``: histology-like slides rendered through a stain model, datasets, real images bundled with
scikit-image;
- ``hrlib.data.synth``: multispectral, industrial-scratch, X-ray and document generators with known truth.
"""

from hrlib.data.slides import (
    BAND_NAMES,
    CLASS_NAMES,
    DOCUMENT_CLASSES,
    MULTISPECTRAL_CLASSES,
    RUIFROK_STAINS,
    SCRATCH_CLASSES,
    SITES,
    SLIDE_MEAN,
    SLIDE_STD,
    XRAY_CLASSES,
    Sample,
    Site,
    Slide,
    SlideDataset,
    SynthDataset,
    collate_slides,
    detail_energy,
    downscale,
    get_site,
    make_document,
    make_multispectral,
    make_scratch,
    make_slide,
    make_xray,
    ndvi,
    real_image,
)

__all__ = [
    "BAND_NAMES", "CLASS_NAMES", "DOCUMENT_CLASSES", "MULTISPECTRAL_CLASSES", "RUIFROK_STAINS", "SCRATCH_CLASSES",
    "SITES", "SLIDE_MEAN", "SLIDE_STD", "Sample", "Site", "Slide", "SlideDataset", "SynthDataset", "XRAY_CLASSES",
    "collate_slides", "detail_energy", "downscale", "get_site", "make_document", "make_multispectral",
    "make_scratch", "make_slide", "make_xray", "ndvi", "real_image",
]
