"""Small classifiers and what they cost (lesson 00; the networks are trained in lessons 01-07).

Submodules:

- ``hrlib.models.networks``: :class:`DSConvNet`, :class:`TinyConvNeXt` and their blocks, :func:`build_model`,
  :func:`add_dropblock`, and the module helpers :func:`eval_mode` and :func:`bare_copy`;
- ``hrlib.models.cost``: parameters, MACs and activation memory (:func:`count_cost`, analytic
  :func:`conv2d_params`/:func:`conv2d_macs`), and receptive fields (analytic and measured).
"""

from hrlib.models.cost import Cost, SavedBytes, conv2d_macs, conv2d_params, count_cost, measure_receptive_field
from hrlib.models.cost import receptive_field
from hrlib.models.networks import MODELS, ConvNeXtBlock, DepthwiseSeparableConv, DSConvNet, LayerNorm2d, TinyConvNeXt
from hrlib.models.networks import add_dropblock, bare_copy, build_model, eval_mode

__all__ = ["MODELS", "ConvNeXtBlock", "Cost", "DSConvNet", "DepthwiseSeparableConv", "LayerNorm2d", "SavedBytes",
           "TinyConvNeXt", "add_dropblock", "bare_copy", "build_model", "conv2d_macs", "conv2d_params", "count_cost",
           "eval_mode", "measure_receptive_field", "receptive_field"]
