"""The input pipeline (lesson 05): tile stores, conversion, image decoding, shards and small files, loaders.

Submodules:

- ``hrlib.pipeline.store``: write a zarr or LMDB tile store (``write_store``), open it, verify it; the pyramid rule
  (``downsample``);
- ``hrlib.pipeline.tilestore``: reading regions of a store (``TileStore`` and its zarr and LMDB readers) and
  ``StoreCorruptError``, which says what is damaged;
- ``hrlib.pipeline.converter``: image files into a tile store (``convert``, ``hrlib convert``), example sources;
- ``hrlib.pipeline.decode``: the one hardened image-file decoder (``read_image_file``, ``decode_image``) and
  ``ImageDecodeError``;
- ``hrlib.pipeline.shards``: whole image files, shards and small files (the baselines a store replaces);
- ``hrlib.pipeline.loaders``: region datasets, the tile cache, ``make_loader``, batched augmentation, the step timer.

(``hrlib.pipeline._storage`` is package-internal: the on-disk layout and the atomic folder commit the writers share.)
"""

from hrlib.pipeline.converter import ON_ERROR, SUFFIXES, ConvertError, convert, list_sources, write_example_images
from hrlib.pipeline.decode import DEFAULT_MAX_PIXELS, ImageDecodeError, decode_image, read_image_file
from hrlib.pipeline.loaders import RegionDataset, StepTimer, TileCache, batched_augment, default_num_workers
from hrlib.pipeline.loaders import make_loader, sample_augment
from hrlib.pipeline.shards import Batch, ImageFileDataset, ShardDataset, SkippedSample, SmallFileDataset
from hrlib.pipeline.shards import collate_skipping, to_tensor, write_shards, write_small_files
from hrlib.pipeline.store import FORMATS, downsample, open_store, verify, write_store
from hrlib.pipeline.readers import LmdbTileStore, ZarrTileStore
from hrlib.pipeline.tilestore import StoreCorruptError, TileStore, read_manifest

__all__ = [
    "Batch", "ConvertError", "DEFAULT_MAX_PIXELS", "FORMATS", "ImageDecodeError", "ImageFileDataset", "LmdbTileStore",
    "ON_ERROR", "RegionDataset", "SUFFIXES", "ShardDataset", "SkippedSample", "SmallFileDataset", "StepTimer",
    "StoreCorruptError", "TileCache", "TileStore", "ZarrTileStore", "batched_augment", "collate_skipping", "convert",
    "decode_image", "default_num_workers", "downsample", "list_sources", "make_loader", "open_store",
    "read_image_file", "read_manifest", "sample_augment", "to_tensor", "verify", "write_example_images",
    "write_shards", "write_small_files", "write_store",
]
