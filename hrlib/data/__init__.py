"""The course data (lesson 00; the domain generators of lesson 03): procedural slides with ground truth, small
domain generators and real images.

Submodules:

- ``hrlib.data.slides``: histology-like slides rendered through a stain model (``make_slide``), their dataset, and
  the measures of what shrinking loses (``downscale``, ``detail_energy``);
- ``hrlib.data.synth``: multispectral, industrial-scratch and X-ray generators with known truth, and
  ``SynthDataset`` over any generator;
- ``hrlib.data.documents``: text-like pages whose class is the glyphs' aspect ratio;
- ``hrlib.data.real``: real images bundled with scikit-image.
"""

from hrlib.data.documents import DOCUMENT_CLASSES, GLYPH_ASPECTS, make_document
from hrlib.data.real import REAL_IMAGES, real_image
from hrlib.data.slides import CLASS_NAMES, RUIFROK_STAINS, SITES, SLIDE_MEAN, SLIDE_STD, Site, Slide, SlideDataset
from hrlib.data.slides import collate_slides, detail_energy, downscale, get_site, make_slide
from hrlib.data.synth import BAND_NAMES, MULTISPECTRAL_CLASSES, SCRATCH_CLASSES, XRAY_CLASSES, Sample, SynthDataset
from hrlib.data.synth import make_multispectral, make_scratch, make_xray, ndvi

__all__ = [
    "BAND_NAMES", "CLASS_NAMES", "DOCUMENT_CLASSES", "GLYPH_ASPECTS", "MULTISPECTRAL_CLASSES", "REAL_IMAGES",
    "RUIFROK_STAINS", "SCRATCH_CLASSES", "SITES", "SLIDE_MEAN", "SLIDE_STD", "XRAY_CLASSES", "Sample", "Site", "Slide",
    "SlideDataset", "SynthDataset", "collate_slides", "detail_energy", "downscale", "get_site", "make_document",
    "make_multispectral", "make_scratch", "make_slide", "make_xray", "ndvi", "real_image",
]
